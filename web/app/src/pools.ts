// The compute pools: each pool's current and maximum CFU over time (while
// the page is open), its statements, and its usage in CFU-hours by day.

import { Api, INTERNAL_LABEL, listStatements, pools, type Scope } from "./api";
import { h, clear, badge } from "./dom";
import { TimeChart } from "./chart";

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

export function poolsPage(main: HTMLElement, api: Api, scope: Scope): () => void {
  const list = h("div", { class: "pools" });
  const note = h("p", { class: "muted", "aria-live": "polite" });
  const usage = new TimeChart("Usage by day (CFU-hours)", ["CFU-hours"], {
    bars: true,
    yLabel: "CFU-hours",
    xRange: () => {
      const today = Math.floor(Date.now() / 86_400_000) * 86_400;
      return [today - 30 * 86_400, today + 86_400];
    },
  });
  const usageTotal = h("p", { class: "muted" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Compute pools")),
    note,
    list,
    h("section", {}, h("h2", {}, "Usage, last 30 days"), usageTotal, h("div", { class: "charts" }, usage.el)),
  );
  const charts = new Map<string, { card: HTMLElement; chart: TimeChart; body: HTMLElement }>();
  const load = async () => {
    try {
      const [ps, sts] = await Promise.all([pools(api, scope.env), listStatements(api, scope)]);
      note.textContent = `${ps.length} compute pools in ${scope.env}`;
      const t = Date.now() / 1000;
      for (const p of ps) {
        let c = charts.get(p.id);
        if (!c) {
          const chart = new TimeChart(`${p.spec.display_name}: CFU`, ["current", "max"]);
          const body = h("div", {});
          const card = h("article", { class: "pool", "data-pool": p.id }, body, h("div", { class: "charts" }, chart.el));
          list.append(card);
          c = { card, chart, body };
          charts.set(p.id, c);
        }
        const mine = sts.filter((s) => s.spec.compute_pool_id === p.id && !s.metadata.labels?.[INTERNAL_LABEL]);
        const running = mine.filter((s) => s.status.phase === "RUNNING");
        clear(c.body);
        c.body.append(
          h("h2", {}, p.spec.display_name, " ", h("span", { class: "muted" }, p.id), " ", badge(p.status.phase)),
          h("p", { class: "cfu" }, `${p.status.current_cfu} of ${p.spec.max_cfu} CFU in use · ${running.length} running of ${mine.length} statements`),
          h(
            "ul",
            { class: "pool-statements" },
            ...mine.slice(0, 20).map((s) => h("li", {}, h("a", { href: `#/statements/${encodeURIComponent(s.name)}` }, s.name), " ", badge(s.status.phase))),
          ),
        );
        c.chart.push(t, [p.status.current_cfu, p.spec.max_cfu]);
      }
    } catch (e) {
      note.textContent = `The pools could not be listed: ${(e as Error).message}`;
    }
  };
  const loadUsage = async () => {
    const end = new Date(Date.now() + 86_400_000);
    const start = new Date(Date.now() - 29 * 86_400_000);
    try {
      const u = await api.call<{ data: { start: string; cfu_hours: number }[]; total_cfu_minutes: number }>(
        "GET",
        `/weir/v1/usage?granularity=DAILY&environment=${encodeURIComponent(scope.env)}&start=${day(start)}&end=${day(end)}`,
      );
      const byDay = new Map<number, number>();
      for (const b of u.data) {
        const t = new Date(b.start).getTime() / 1000;
        byDay.set(t, (byDay.get(t) ?? 0) + b.cfu_hours);
      }
      const days = [...byDay.keys()].sort((a, b) => a - b);
      usage.set(days, [days.map((d) => byDay.get(d)!)]);
      usageTotal.textContent = `${(u.total_cfu_minutes / 60).toFixed(2)} CFU-hours (${u.total_cfu_minutes} CFU-minutes)`;
    } catch (e) {
      usageTotal.textContent = `Usage could not be read: ${(e as Error).message}`;
    }
  };
  load();
  loadUsage();
  const timer = window.setInterval(load, 3000);
  const slow = window.setInterval(loadUsage, 30000);
  return () => {
    clearInterval(timer);
    clearInterval(slow);
  };
}
