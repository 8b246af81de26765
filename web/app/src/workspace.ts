// The workspace: SQL cells (saved per user in Weir's store) beside the
// catalog tree. A cell runs its SQL as a statement and shows its results
// as they stream.

import {
  Api,
  ApiError,
  query,
  results,
  setStopped,
  statementsPath,
  submit,
  waitStarted,
  TERMINAL,
  type Scope,
  type Statement,
} from "./api";
import { h, clear, badge, download } from "./dom";
import { SqlEditor, type Completions } from "./editor";
import { Changelog, Grid } from "./results";
import type { SQLNamespace } from "@codemirror/lang-sql";

export interface CellDoc {
  id: string;
  sql: string;
  catalog: string;
  database: string;
}

interface WorkspaceDoc {
  cells: CellDoc[];
}

interface Table {
  name: string;
  columns: { name: string; type: string }[];
  watermark?: string;
  primaryKey: string[];
  options: [string, string][];
  /** Schema registry subjects of its topic (`<table>-key`, `-value`). */
  subjects: string[];
}

/** The environment's catalog as `INFORMATION_SCHEMA` lists it. */
interface CatalogTree {
  catalog: string;
  databases: Map<string, Map<string, Table>>;
}

function workspacePath(s: Scope): string {
  return `/weir/v1/environments/${encodeURIComponent(s.env)}/workspace`;
}

/** "… (line 2, column 10)" in a statement's failure detail. */
export function positionIn(detail: string): { line?: number; column?: number } {
  const m = /line (\d+), column (\d+)/.exec(detail);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : {};
}

export class Workspace {
  readonly el: HTMLElement;
  private cells: Cell[] = [];
  private cellsEl: HTMLElement;
  private treeEl: HTMLElement;
  tree: CatalogTree | null = null;
  functions: string[] = [];
  private saveTimer: number | undefined;
  private dirty = false;
  private saveState: HTMLElement;
  private loaded = false;
  focused: Cell | null = null;
  private expanded = new Set<string>();
  private catalogGen = 0;

  constructor(
    readonly api: Api,
    readonly scope: Scope,
    readonly envs: { id: string; display_name: string }[],
  ) {
    this.treeEl = h("div", { class: "tree", role: "tree", "aria-label": "catalog" }, "Loading the catalog…");
    this.treeEl.addEventListener("keydown", (e) => this.treeKey(e));
    this.cellsEl = h("div", { class: "cells" });
    this.saveState = h("span", { class: "muted save-state", "aria-live": "polite" });
    const add = h("button", { class: "add-cell" }, "+ Add cell");
    add.onclick = () => {
      const c = this.addCell({ id: crypto.randomUUID(), sql: "", catalog: this.defaultCatalog(), database: this.defaultDatabase() });
      c.editor.focus();
      this.save();
    };
    const refresh = h("button", { title: "read the catalog again" }, "↻");
    refresh.onclick = () => this.loadCatalog();
    addEventListener("pagehide", () => this.flush(true));
    this.el = h(
      "div",
      { class: "workspace" },
      h("aside", { class: "catalog" }, h("div", { class: "aside-head" }, h("h2", {}, "Catalog"), refresh), this.treeEl),
      h("section", { class: "cells-pane" }, h("div", { class: "cells-head" }, h("h2", {}, "SQL"), this.saveState), this.cellsEl, add),
    );
  }

  /** Called each time the page shows the workspace. */
  shown(): void {
    if (this.loaded) return;
    this.loaded = true;
    this.loadCells();
    this.loadCatalog();
  }

  defaultCatalog(): string {
    return this.tree?.catalog ?? this.envs.find((e) => e.id === this.scope.env)?.display_name ?? "";
  }

  defaultDatabase(): string {
    return this.tree ? ([...this.tree.databases.keys()][0] ?? "") : "";
  }

  private async loadCells(): Promise<void> {
    let doc: WorkspaceDoc = { cells: [] };
    try {
      doc = await this.api.call<WorkspaceDoc>("GET", workspacePath(this.scope));
    } catch (e) {
      this.saveState.textContent = `cells could not be loaded: ${(e as Error).message}`;
    }
    if (!doc.cells.length)
      doc.cells = [{ id: crypto.randomUUID(), sql: "SHOW TABLES;", catalog: this.defaultCatalog(), database: this.defaultDatabase() }];
    for (const c of doc.cells) this.addCell(c);
  }

  /** Saves the cells a second after the last change (at once when the
   * tab is hidden or closed). */
  save(): void {
    clearTimeout(this.saveTimer);
    this.dirty = true;
    this.saveState.textContent = "unsaved";
    this.saveTimer = window.setTimeout(() => this.flush(), 1000);
  }

  async flush(keepalive = false): Promise<void> {
    if (!this.dirty) return;
    clearTimeout(this.saveTimer);
    this.dirty = false;
    const body: WorkspaceDoc = { cells: this.cells.map((c) => c.doc()) };
    try {
      await this.api.call("PUT", workspacePath(this.scope), body, "application/json", keepalive);
      this.saveState.textContent = "saved";
    } catch (e) {
      this.dirty = true;
      this.saveState.textContent = `not saved: ${(e as Error).message}`;
    }
  }

  private addCell(doc: CellDoc): Cell {
    const cell = new Cell(this, doc);
    this.cells.push(cell);
    this.cellsEl.appendChild(cell.el);
    return cell;
  }

  removeCell(cell: Cell): void {
    cell.stop();
    this.cells = this.cells.filter((c) => c !== cell);
    cell.el.remove();
    this.save();
  }

  completions(cell: CellDoc): Completions {
    const schema: SQLNamespace = {};
    if (this.tree) {
      const dbs: Record<string, SQLNamespace> = {};
      for (const [db, tables] of this.tree.databases) {
        const ts: Record<string, SQLNamespace> = {};
        for (const t of tables.values()) ts[t.name] = t.columns.map((c) => ({ label: c.name, detail: c.type, type: "property" }));
        dbs[db] = ts;
      }
      // `catalog.db.table`, `db.table`, and (through the default schema)
      // the cell's database's tables by their names alone.
      Object.assign(schema as Record<string, SQLNamespace>, dbs);
      (schema as Record<string, SQLNamespace>)[this.tree.catalog] = dbs;
    }
    return { schema, catalog: cell.catalog, database: cell.database, functions: this.functions };
  }

  async loadCatalog(): Promise<void> {
    // Of loads that overlap, the last one started wins: an earlier one may
    // have read the catalog before a change.
    const gen = ++this.catalogGen;
    try {
      const none = () => [] as unknown[][];
      const [cols, marks, keys, options, fns, subjects] = await Promise.all([
        query(
          this.api,
          this.scope,
          "SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, FULL_DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS",
        ).catch((e) => {
          // An environment without a Kafka cluster has no database: an
          // empty catalog, not an error.
          if (/current database/.test((e as Error).message)) return none();
          throw e;
        }),
        query(
          this.api,
          this.scope,
          "SELECT TABLE_SCHEMA, TABLE_NAME, WATERMARK_COLUMN, WATERMARK_EXPRESSION FROM INFORMATION_SCHEMA.TABLES",
        ).catch(none),
        query(this.api, this.scope, "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE").catch(none),
        query(this.api, this.scope, "SELECT TABLE_SCHEMA, TABLE_NAME, OPTION_KEY, OPTION_VALUE FROM INFORMATION_SCHEMA.TABLE_OPTIONS").catch(none),
        query(this.api, this.scope, "SHOW FUNCTIONS").catch(none),
        this.api.call<string[]>("GET", `/schema-registry/${encodeURIComponent(this.scope.env)}/subjects`).catch(() => [] as string[]),
      ]);
      const tree: CatalogTree = { catalog: this.defaultCatalog(), databases: new Map() };
      const tableOf = (db: string, table: string) => {
        let tables = tree.databases.get(db);
        if (!tables) tree.databases.set(db, (tables = new Map()));
        let t = tables.get(table);
        if (!t) {
          const subs = subjects.filter((s) => s === `${table}-key` || s === `${table}-value`);
          tables.set(table, (t = { name: table, columns: [], primaryKey: [], options: [], subjects: subs }));
        }
        return t;
      };
      for (const [cat, db, table, col, type] of cols as string[][]) {
        tree.catalog = cat;
        tableOf(db, table).columns.push({ name: col, type });
      }
      for (const [db, table, col, expr] of marks as (string | null)[][])
        if (col && tree.databases.get(db!)?.has(table!)) tableOf(db!, table!).watermark = `${col} AS ${expr}`;
      for (const [db, table, col] of [...(keys as string[][])].sort((a, b) => Number(a[3]) - Number(b[3])))
        if (tree.databases.get(db)?.has(table)) tableOf(db, table).primaryKey.push(col);
      for (const [db, table, k, v] of options as string[][]) if (tree.databases.get(db)?.has(table)) tableOf(db, table).options.push([k, v]);
      // Databases without tables (SHOW DATABASES lists every cluster).
      for (const [db] of (await query(this.api, this.scope, "SHOW DATABASES").catch(() => [])) as string[][])
        if (!tree.databases.has(db)) tree.databases.set(db, new Map());
      if (gen !== this.catalogGen) return;
      this.tree = tree;
      this.functions = (fns as string[][]).map((r) => r[0]).filter(Boolean);
      this.renderTree();
      for (const c of this.cells) c.catalogChanged();
    } catch (e) {
      if (gen !== this.catalogGen) return;
      this.treeEl.textContent = `The catalog could not be read: ${(e as Error).message}`;
    }
  }

  private renderTree(): void {
    const t = this.tree!;
    clear(this.treeEl);
    // Nodes open before a re-read of the catalog stay open.
    const node = (label: string, cls: string, children: () => HTMLElement[], insert?: string, title?: string, path = label) => {
      const li = h("li", { role: "treeitem", "aria-expanded": "false", class: cls });
      const toggle = h("button", { class: "twisty", "aria-label": `expand ${label}` }, "▸");
      const name = h("button", { class: "node-name", title: title ?? (insert ? `insert ${insert}` : label) }, label);
      const kids = h("ul", { role: "group", hidden: "" });
      let filled = false;
      toggle.onclick = () => {
        const open = li.getAttribute("aria-expanded") !== "true";
        li.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "▾" : "▸";
        if (open && !filled) {
          kids.append(...children());
          filled = true;
        }
        kids.hidden = !open;
        if (open) this.expanded.add(path);
        else this.expanded.delete(path);
      };
      name.onclick = () => (insert ? this.insert(insert) : toggle.click());
      li.append(toggle, name, kids);
      if (this.expanded.has(path)) toggle.click();
      return li;
    };
    const leaf = (label: string, detail: string, insert: string) =>
      h(
        "li",
        { role: "treeitem", class: "column" },
        h("button", { class: "node-name", title: `insert ${insert}`, onclick: () => this.insert(insert) }, label, " ", h("span", { class: "type" }, detail)),
      );
    // The catalog and its first database start open.
    if (!this.expanded.size) {
      this.expanded.add(t.catalog);
      if (t.databases.size) this.expanded.add(`${t.catalog}.${[...t.databases.keys()][0]}`);
    }
    const dbs = [...t.databases.entries()].map(([db, tables]) =>
      node(
        db,
        "database",
        () => [
          ...[...tables.values()].map((table) =>
            node(
              table.name,
              "table",
              () => [
                ...table.columns.map((c) => leaf(c.name, c.type, quote(c.name))),
                ...(table.primaryKey.length ? [h("li", { class: "meta primary-key" }, "primary key ", h("code", {}, table.primaryKey.join(", ")))] : []),
                ...(table.watermark ? [h("li", { class: "meta watermark" }, "watermark ", h("code", {}, table.watermark))] : []),
                ...table.subjects.map((sub) => h("li", { class: "meta subject" }, "schema ", h("code", {}, sub))),
                ...table.options.map(([k, v]) => h("li", { class: "meta option" }, h("code", {}, `'${k}' = '${v}'`))),
                h("li", { class: "definition" }, h("button", { onclick: () => this.showDefinition(t.catalog, db, table.name) }, "SHOW CREATE TABLE")),
              ],
              quote(table.name),
              undefined,
              `${t.catalog}.${db}.${table.name}`,
            ),
          ),
        ],
        quote(db),
        undefined,
        `${t.catalog}.${db}`,
      ),
    );
    const cat = node(
      t.catalog,
      "catalog",
      () => (dbs.length ? dbs : [h("li", { class: "meta" }, "no databases (no Kafka cluster in this environment)")]),
      quote(t.catalog),
    );
    // The other environments are the other catalogs: listed, and browsed
    // on demand; a statement reads the tables of its own environment only,
    // so querying them means switching to it.
    const others = this.envs
      .filter((e) => e.id !== this.scope.env)
      .map((e) => node(e.display_name, "catalog other", () => this.otherCatalog(e), undefined, `${e.display_name} (${e.id})`, `env:${e.id}`));
    this.treeEl.append(h("ul", {}, cat, ...others));
  }

  /** Another environment's databases and tables, read with a lookup in
   * that environment, and the button that switches the page to it. */
  private otherCatalog(env: { id: string; display_name: string }): HTMLElement[] {
    const switcher = h(
      "li",
      { class: "switch-env" },
      h("button", { onclick: () => dispatchEvent(new CustomEvent("weir-switch-env", { detail: env.id })) }, `Switch to ${env.display_name} to query it`),
    );
    const loading = h("li", { class: "meta" }, "Loading…");
    query(this.api, { org: this.scope.org, env: env.id }, "SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES")
      .then((rows) => {
        const dbs = new Map<string, string[]>();
        for (const [db, table] of rows as string[][]) dbs.set(db, [...(dbs.get(db) ?? []), table]);
        if (!dbs.size) return loading.replaceWith(h("li", { class: "meta" }, "no tables"));
        loading.replaceWith(
          ...[...dbs].map(([db, tables]) =>
            h(
              "li",
              { role: "treeitem", class: "database other" },
              h("span", { class: "node-label" }, db),
              h("ul", { role: "group" }, ...tables.map((t) => h("li", { role: "treeitem", class: "table other" }, t))),
            ),
          ),
        );
      })
      .catch((e) => {
        const m = (e as Error).message;
        loading.replaceWith(
          /current database/.test(m)
            ? h("li", { class: "meta" }, "no databases (no Kafka cluster in this environment)")
            : h("li", { class: "meta error" }, m),
        );
      });
    return [switcher, loading];
  }

  /** Arrow keys move through the tree's visible nodes; Right opens a
   * node (or moves into it), Left closes it (or moves to its parent);
   * Enter and Space act as a click. */
  private treeKey(e: KeyboardEvent): void {
    const target = e.target as HTMLElement;
    if (!target.classList.contains("node-name") && !target.classList.contains("twisty")) return;
    const visible = [...this.treeEl.querySelectorAll<HTMLButtonElement>(".node-name")].filter((b) => b.offsetParent !== null);
    const item = target.closest("li")!;
    const at = visible.indexOf(item.querySelector(":scope > .node-name") as HTMLButtonElement);
    const twisty = item.querySelector<HTMLButtonElement>(":scope > .twisty");
    const open = item.getAttribute("aria-expanded") === "true";
    let next: HTMLButtonElement | undefined;
    switch (e.key) {
      case "ArrowDown":
        next = visible[at + 1];
        break;
      case "ArrowUp":
        next = visible[at - 1];
        break;
      case "ArrowRight":
        if (twisty && !open) twisty.click();
        else next = visible[at + 1];
        break;
      case "ArrowLeft":
        if (twisty && open) twisty.click();
        else next = item.parentElement?.closest("li")?.querySelector<HTMLButtonElement>(":scope > .node-name") ?? undefined;
        break;
      default:
        return;
    }
    e.preventDefault();
    next?.focus();
  }

  private async showDefinition(catalog: string, db: string, table: string): Promise<void> {
    const cell = this.addCell({ id: crypto.randomUUID(), sql: `SHOW CREATE TABLE ${quote(table)};`, catalog, database: db });
    this.save();
    cell.run();
  }

  /** Inserts a name at the cursor of the last cell used. */
  insert(text: string): void {
    const cell = this.focused ?? this.cells[this.cells.length - 1];
    if (!cell) return;
    const v = cell.editor.view;
    const { from, to } = v.state.selection.main;
    v.dispatch({ changes: { from, to, insert: text }, selection: { anchor: from + text.length } });
    v.focus();
  }
}

export function quote(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : "`" + name.replace(/`/g, "``") + "`";
}

/** One SQL cell: its editor, where it runs, and its results. */
class Cell {
  readonly el: HTMLElement;
  readonly editor: SqlEditor;
  private catalogSel: HTMLSelectElement;
  private dbSel: HTMLSelectElement;
  private statusEl: HTMLElement;
  private resultEl: HTMLElement;
  private abort: AbortController | null = null;
  private running: Statement | null = null;
  private runBtn: HTMLButtonElement;
  private stopBtn: HTMLButtonElement;

  constructor(
    private ws: Workspace,
    private d: CellDoc,
  ) {
    this.catalogSel = h("select", { "aria-label": "catalog" });
    this.dbSel = h("select", { "aria-label": "database" });
    this.catalogSel.onchange = () => {
      this.d.catalog = this.catalogSel.value;
      this.ws.save();
      this.editor.setCompletions(this.ws.completions(this.d));
    };
    this.dbSel.onchange = () => {
      this.d.database = this.dbSel.value;
      this.ws.save();
      this.editor.setCompletions(this.ws.completions(this.d));
    };
    this.runBtn = h("button", { class: "primary run", title: "Run (Ctrl+Enter)" }, "Run");
    this.runBtn.onclick = () => this.run();
    this.stopBtn = h("button", { class: "stop", disabled: "" }, "Stop");
    this.stopBtn.onclick = () => this.stopStatement();
    const remove = h("button", { class: "remove", "aria-label": "remove cell", title: "remove cell" }, "✕");
    remove.onclick = () => this.ws.removeCell(this);
    this.statusEl = h("span", { class: "status", "aria-live": "polite" });
    this.resultEl = h("div", { class: "result" });
    const editorEl = h("div", { class: "editor" });
    this.el = h(
      "div",
      { class: "cell" },
      h("div", { class: "cell-bar" }, this.catalogSel, this.dbSel, this.runBtn, this.stopBtn, this.statusEl, h("span", { class: "spacer" }), remove),
      editorEl,
      this.resultEl,
    );
    this.editor = new SqlEditor(
      editorEl,
      d.sql,
      {
        onRun: () => this.run(),
        onChange: (text) => {
          this.d.sql = text;
          this.ws.save();
        },
      },
      this.ws.completions(d),
    );
    editorEl.addEventListener("focusin", () => (this.ws.focused = this));
    this.catalogChanged();
  }

  doc(): CellDoc {
    return { ...this.d };
  }

  /** Fills the catalog and database choices from the catalog tree. */
  catalogChanged(): void {
    const tree = this.ws.tree;
    const cats = tree ? [tree.catalog] : [this.d.catalog || this.ws.defaultCatalog()];
    const dbs = tree ? [...tree.databases.keys()] : [this.d.database];
    if (!this.d.catalog) this.d.catalog = cats[0] ?? "";
    if (!this.d.database) this.d.database = dbs[0] ?? "";
    const fill = (sel: HTMLSelectElement, options: string[], value: string) => {
      clear(sel);
      for (const o of new Set([...options, value].filter(Boolean))) {
        const opt = h("option", { value: o }, o) as HTMLOptionElement;
        if (o === value) opt.selected = true;
        sel.appendChild(opt);
      }
    };
    fill(this.catalogSel, cats, this.d.catalog);
    fill(this.dbSel, dbs, this.d.database);
    this.editor.setCompletions(this.ws.completions(this.d));
  }

  private setStatus(phase: string | null, text: string): void {
    clear(this.statusEl);
    if (phase) this.statusEl.append(badge(phase), " ");
    this.statusEl.append(text);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
  }

  private async stopStatement(): Promise<void> {
    const st = this.running;
    if (!st) return;
    this.stop();
    this.running = null;
    this.stopBtn.disabled = true;
    try {
      await setStopped(this.ws.api, this.ws.scope, st.name, true);
      // Unless the cell ran something else meanwhile.
      if (!this.running) this.setStatus("STOPPED", `${st.name} stopped`);
    } catch (e) {
      this.setStatus(null, `could not stop ${st.name}: ${(e as Error).message}`);
    }
  }

  async run(): Promise<void> {
    this.stop();
    // A query this cell was showing is stopped: its rows would go unread.
    // (An INSERT or CREATE TABLE AS keeps running; the statements page
    // stops it.)
    const previous = this.running;
    if (previous && previous.status.traits?.sql_kind === "SELECT") {
      setStopped(this.ws.api, this.ws.scope, previous.name, true).catch(() => {});
    }
    this.running = null;
    const abort = new AbortController();
    this.abort = abort;
    const signal = abort.signal;
    const api = this.ws.api;
    const scope = this.ws.scope;
    const sqlText = this.editor.text().replace(/;\s*$/, "");
    this.editor.clearError();
    clear(this.resultEl);
    if (!sqlText.trim()) return;
    this.setStatus(null, "submitting…");
    const props: Record<string, string> = {};
    if (this.d.catalog) props["sql.current-catalog"] = this.d.catalog;
    if (this.d.database) props["sql.current-database"] = this.d.database;
    let st: Statement;
    try {
      st = await submit(api, scope, sqlText, props);
    } catch (e) {
      const err = e as ApiError;
      this.editor.showError(err.message, err.line, err.column);
      this.setStatus("FAILED", err.message);
      this.resultEl.append(h("pre", { class: "error", role: "alert" }, err.message));
      return;
    }
    this.running = st;
    this.stopBtn.disabled = false;
    this.setStatus(st.status.phase, st.name);
    st = await waitStarted(api, scope, st.name, signal);
    if (signal.aborted) return;
    this.running = st;
    if (st.status.phase === "FAILED") {
      const pos = positionIn(st.status.detail);
      this.editor.showError(st.status.detail, pos.line, pos.column);
      this.setStatus("FAILED", st.status.detail);
      this.resultEl.append(h("pre", { class: "error", role: "alert" }, st.status.detail));
      this.stopBtn.disabled = true;
      return;
    }
    const columns = st.status.traits?.schema?.columns ?? [];
    const kind = st.status.traits?.sql_kind ?? "";
    if (/^(CREATE|DROP|ALTER)/.test(kind) || /^\s*(create|drop|alter)\b/i.test(sqlText)) {
      // The catalog may have changed: read it again once this is done.
      this.untilTerminal(st, signal).then(() => this.ws.loadCatalog());
    }
    if (!columns.length) {
      // DDL and other statements without rows: their outcome, and the
      // catalog again, since it may have changed.
      const done = await this.untilTerminal(st, signal);
      this.setStatus(done.status.phase, done.status.detail || `${done.name} ${done.status.phase.toLowerCase()}`);
      this.stopBtn.disabled = !(done.status.phase === "RUNNING");
      return;
    }
    await this.stream(st, columns.map((c) => c.name), signal);
  }

  /** A statement that failed while it ran: its newest exception (or its
   * detail) under the cell's rows. */
  private async showFailure(st: Statement): Promise<void> {
    let message = st.status.detail;
    try {
      const ex = await this.ws.api.call<{ data: { name: string; message: string }[] }>(
        "GET",
        `${statementsPath(this.ws.scope)}/${encodeURIComponent(st.name)}/exceptions`,
      );
      if (ex.data.length) message = `${ex.data[0].name}: ${ex.data[0].message}`;
    } catch {
      /* the detail says enough */
    }
    this.resultEl.querySelector("pre.error")?.remove();
    this.resultEl.prepend(h("pre", { class: "error", role: "alert" }, message));
  }

  private async untilTerminal(st: Statement, signal: AbortSignal): Promise<Statement> {
    const path = `${statementsPath(this.ws.scope)}/${encodeURIComponent(st.name)}`;
    for (let i = 0; i < 100 && !signal.aborted; i++) {
      if (TERMINAL.includes(st.status.phase) || st.status.phase === "RUNNING") return st;
      await new Promise((r) => setTimeout(r, 200));
      st = await this.ws.api.call<Statement>("GET", path);
    }
    return st;
  }

  private async stream(st: Statement, columns: string[], signal: AbortSignal): Promise<void> {
    const upsert = st.status.traits?.upsert_columns ?? null;
    const log = new Changelog(upsert && upsert.length ? upsert : null);
    const grid = new Grid(columns, log);
    let paused = false;
    const pending: Parameters<Changelog["apply"]>[0][] = [];
    const count = h("span", { class: "count", "aria-live": "off" });
    const rawToggle = h("button", { "aria-pressed": "false", title: "show each change with its kind" }, "Changelog");
    const pause = h("button", { "aria-pressed": "false" }, "Pause");
    const filter = h("input", { type: "search", placeholder: "filter rows", "aria-label": "filter rows" });
    const csv = h("button", {}, "CSV");
    rawToggle.onclick = () => {
      grid.setRaw(!grid.raw);
      rawToggle.setAttribute("aria-pressed", String(grid.raw));
      render();
    };
    pause.onclick = () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        for (const p of pending.splice(0)) log.apply(p);
        grid.changed();
      }
      render();
    };
    filter.oninput = () => {
      grid.setFilter(filter.value);
      render();
    };
    csv.onclick = () => download(`${st.name}.csv`, grid.csv());
    this.resultEl.append(h("div", { class: "result-bar" }, rawToggle, pause, filter, csv, count), grid.el);
    const started = performance.now();
    let phase = st.status.phase;
    const render = () => {
      const secs = Math.max(0.001, (performance.now() - started) / 1000);
      const rate = Math.round(log.changes / secs);
      count.textContent = `${grid.raw ? log.raw.length + log.rawDropped : log.live} ${grid.raw ? "changes" : "rows"} · ${log.changes} changes · ${rate}/s${
        paused ? ` · paused (${pending.reduce((n, p) => n + p.length, 0)} waiting)` : ""
      }`;
      count.dataset.rows = String(log.live);
      count.dataset.changes = String(log.changes);
    };
    render();
    grid.changed();
    // The statement's phase, every two seconds, beside the rows.
    const path = `${statementsPath(this.ws.scope)}/${encodeURIComponent(st.name)}`;
    const watch = window.setInterval(async () => {
      try {
        const now = await this.ws.api.call<Statement>("GET", path);
        phase = now.status.phase;
        this.setStatus(phase, now.status.detail || now.name);
        if (TERMINAL.includes(phase)) {
          clearInterval(watch);
          this.stopBtn.disabled = true;
        }
        if (phase === "FAILED") {
          await this.showFailure(now);
          this.stop();
        }
      } catch {
        /* the next tick tries again */
      }
    }, 2000);
    signal.addEventListener("abort", () => clearInterval(watch));
    this.setStatus(phase, st.name);
    try {
      for await (const page of results(this.ws.api, this.ws.scope, st.name, signal)) {
        if (paused) pending.push(page);
        else {
          log.apply(page);
          grid.changed();
        }
        render();
      }
      if (!signal.aborted) {
        const now = await this.ws.api.call<Statement>("GET", path);
        this.setStatus(now.status.phase, now.status.detail || now.name);
        if (TERMINAL.includes(now.status.phase)) this.stopBtn.disabled = true;
      }
    } catch (e) {
      if (!signal.aborted) this.setStatus(null, `results stopped: ${(e as Error).message}`);
    }
  }
}
