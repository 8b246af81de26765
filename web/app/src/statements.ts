// The statements: a list with phase badges and filters, and a page per
// statement with its SQL, properties, metrics over time, scaling
// decisions, exceptions, plan, and stop, resume and delete.

import { Api, INTERNAL_LABEL, listStatements, query, setStopped, statementsPath, type Scope, type Statement } from "./api";
import { h, clear, badge, formatTime } from "./dom";
import { TimeChart } from "./chart";

const PHASES = ["PENDING", "RUNNING", "COMPLETED", "DEGRADED", "STOPPING", "STOPPED", "FAILING", "FAILED", "DELETING"];

/** Shows the list in `main`; returns what stops its refreshing. */
export function statementsPage(main: HTMLElement, api: Api, scope: Scope): () => void {
  const phase = h("select", { "aria-label": "phase" }, h("option", { value: "" }, "every phase"), ...PHASES.map((p) => h("option", { value: p }, p)));
  const pool = h("select", { "aria-label": "compute pool" }, h("option", { value: "" }, "every pool"));
  const text = h("input", { type: "search", placeholder: "filter by name or SQL", "aria-label": "filter statements" });
  const body = h("tbody");
  const note = h("p", { class: "muted", "aria-live": "polite" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Statements"), phase, pool, text),
    h(
      "table",
      { class: "list statements" },
      h("thead", {}, h("tr", {}, ...["Name", "Phase", "Pool", "Principal", "Created", "Detail"].map((c) => h("th", { scope: "col" }, c)))),
      body,
    ),
    note,
  );
  let all: Statement[] = [];
  const render = () => {
    const pools = new Set(all.map((s) => s.spec.compute_pool_id ?? "").filter(Boolean));
    const chosen = pool.value;
    if (pool.options.length - 1 !== pools.size) {
      clear(pool);
      pool.append(h("option", { value: "" }, "every pool"), ...[...pools].sort().map((p) => h("option", { value: p }, p)));
      pool.value = pools.has(chosen) ? chosen : "";
    }
    const f = text.value.toLowerCase();
    const shown = all.filter(
      (s) =>
        (!phase.value || s.status.phase === phase.value) &&
        (!pool.value || s.spec.compute_pool_id === pool.value) &&
        (!f || s.name.toLowerCase().includes(f) || s.spec.statement.toLowerCase().includes(f)),
    );
    clear(body);
    for (const s of shown) {
      body.append(
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/statements/${encodeURIComponent(s.name)}` }, s.name)),
          h("td", {}, badge(s.status.phase)),
          h("td", {}, s.spec.compute_pool_id ?? ""),
          h("td", {}, s.spec.principal ?? ""),
          h("td", {}, formatTime(s.metadata.created_at)),
          h("td", { class: "detail" }, s.status.detail),
        ),
      );
    }
    note.textContent = `${shown.length} of ${all.length} statements`;
  };
  phase.onchange = render;
  pool.onchange = render;
  text.oninput = render;
  const load = async () => {
    try {
      all = (await listStatements(api, scope))
        .filter((s) => !s.metadata.labels?.[INTERNAL_LABEL])
        .sort((a, b) => b.metadata.created_at.localeCompare(a.metadata.created_at));
      render();
    } catch (e) {
      note.textContent = `The statements could not be listed: ${(e as Error).message}`;
    }
  };
  load();
  const timer = window.setInterval(load, 3000);
  return () => clearInterval(timer);
}

/** One statement's page. */
export function statementPage(main: HTMLElement, api: Api, scope: Scope, name: string): () => void {
  const path = `${statementsPath(scope)}/${encodeURIComponent(name)}`;
  const head = h("div", { class: "page-head" }, h("h1", {}, name));
  const phaseEl = h("span", { "aria-live": "polite" });
  const actions = h("div", { class: "actions" });
  const detail = h("p", { class: "detail" });
  const sqlEl = h("pre", { class: "sql" });
  const props = h("table", { class: "props" });
  const metricsNow = h("dl", { class: "metrics" });
  const records = new TimeChart("Records per second", ["in", "out"], { yLabel: "records/s" });
  const behind = new TimeChart("Messages behind", ["behind"]);
  const state = new TimeChart("State size", ["bytes"], { yLabel: "bytes" });
  const cfu = new TimeChart("Tasks (CFU) by scaling decision", ["tasks"]);
  const scaling = h("ol", { class: "scaling" });
  const exceptions = h("ol", { class: "exceptions" });
  const plan = h("pre", { class: "plan" });
  const planBtn = h("button", {}, "Show plan (EXPLAIN)");
  head.append(phaseEl, actions);
  main.append(
    head,
    detail,
    h("section", {}, h("h2", {}, "SQL"), sqlEl),
    h("section", {}, h("h2", {}, "Properties"), props),
    h("section", {}, h("h2", {}, "Metrics"), metricsNow, h("div", { class: "charts" }, records.el, behind.el, state.el, cfu.el)),
    h("section", {}, h("h2", {}, "Scaling decisions"), scaling),
    h("section", {}, h("h2", {}, "Exceptions"), exceptions),
    h("section", {}, h("h2", {}, "Plan"), planBtn, plan),
  );
  let last: { t: number; in: number; out: number } | null = null;
  let st: Statement | null = null;
  planBtn.onclick = async () => {
    if (!st) return;
    plan.textContent = "planning…";
    try {
      const rows = await query(api, scope, `EXPLAIN ${st.spec.statement}`, {
        ...Object.fromEntries(Object.entries(st.spec.properties).filter(([k]) => k.startsWith("sql.current-"))),
      });
      plan.textContent = rows.map((r) => r.map((v) => String(v ?? "")).join("\n")).join("\n");
    } catch (e) {
      plan.textContent = (e as Error).message;
    }
  };
  const act = async (what: string, run: () => Promise<unknown>) => {
    try {
      await run();
      await load();
    } catch (e) {
      detail.textContent = `${what} failed: ${(e as Error).message}`;
    }
  };
  const stopped = (value: boolean) => setStopped(api, scope, name, value);
  const renderActions = (s: Statement) => {
    clear(actions);
    const stop = h("button", {}, "Stop");
    stop.onclick = () => act("stop", () => stopped(true));
    const resume = h("button", {}, "Resume");
    resume.onclick = () => act("resume", () => stopped(false));
    const del = h("button", { class: "danger" }, "Delete");
    del.onclick = () => {
      if (!confirm(`Delete statement ${name}?`)) return;
      act("delete", async () => {
        await api.call("DELETE", path);
        location.hash = "#/statements";
      });
    };
    if (["RUNNING", "PENDING", "DEGRADED"].includes(s.status.phase)) actions.append(stop);
    if (s.status.phase === "STOPPED" || s.status.phase === "FAILED") actions.append(resume);
    actions.append(del);
  };
  const load = async () => {
    try {
      st = await api.call<Statement>("GET", path);
    } catch (e) {
      detail.textContent = (e as Error).message;
      return;
    }
    const s = st;
    clear(phaseEl);
    phaseEl.append(badge(s.status.phase));
    renderActions(s);
    detail.textContent = s.status.detail;
    if (sqlEl.textContent !== s.spec.statement) sqlEl.textContent = s.spec.statement;
    clear(props);
    const rows: [string, string][] = [
      ["compute pool", s.spec.compute_pool_id ?? ""],
      ["principal", s.spec.principal ?? ""],
      ["created", formatTime(s.metadata.created_at)],
      ...Object.entries(s.spec.properties),
    ];
    for (const [k, v] of rows) props.append(h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v)));
    const m = (s.status.metrics ?? {}) as Record<string, number | string>;
    clear(metricsNow);
    for (const k of ["records_in", "records_out", "records_skipped", "records_late", "pending_records", "state_bytes", "checkpoints", "delivery_guarantee"])
      if (m[k] !== undefined && m[k] !== "") metricsNow.append(h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, String(m[k])));
    const t = Date.now() / 1000;
    const rin = Number(m.records_in ?? 0);
    const rout = Number(m.records_out ?? 0);
    if (last) {
      const dt = Math.max(0.001, t - last.t);
      records.push(t, [Math.max(0, (rin - last.in) / dt), Math.max(0, (rout - last.out) / dt)]);
    }
    last = { t, in: rin, out: rout };
    behind.push(t, [Number(m.pending_records ?? 0)]);
    state.push(t, [Number(m.state_bytes ?? 0)]);
  };
  const loadRest = async () => {
    try {
      const ex = await api.call<{ data: { name: string; message: string; timestamp: string }[] }>("GET", `${path}/exceptions`);
      clear(exceptions);
      if (!ex.data.length) exceptions.append(h("li", { class: "muted" }, "none"));
      for (const e of ex.data) exceptions.append(h("li", {}, h("time", {}, formatTime(e.timestamp)), " ", h("strong", {}, e.name), ": ", e.message));
      const sc = await api.call<{ data: { at: string; stage: string; from: number; to: number; reason: string; state: string }[] }>(
        "GET",
        `${path}/scaling-events`,
      );
      clear(scaling);
      if (!sc.data.length) scaling.append(h("li", { class: "muted" }, "none yet"));
      for (const d of sc.data.slice(0, 50))
        scaling.append(h("li", {}, h("time", {}, formatTime(d.at)), ` ${d.stage}: ${d.from} → ${d.to} tasks (${d.state}) — ${d.reason}`));
      const points = [...sc.data].reverse().filter((d) => d.at);
      cfu.set(
        points.map((d) => new Date(d.at).getTime() / 1000),
        [points.map((d) => d.to)],
      );
    } catch {
      /* shown on the next tick */
    }
  };
  load();
  loadRest();
  const timer = window.setInterval(load, 2000);
  const slow = window.setInterval(loadRest, 5000);
  return () => {
    clearInterval(timer);
    clearInterval(slow);
  };
}
