// A statement's results: the changelog applied to a table (or kept raw),
// shown in a virtualised grid that only draws the rows in view, so that
// thousands of changes a second do not freeze the tab.

import type { ResultRow } from "./api";

export const OPS = ["+I", "-U", "+U", "-D"];
const ROW_H = 24;
const RAW_KEEP = 100_000;

/** The changelog applied: +I and +U add a row, -U and -D take one away
 * (by its key when the result has upsert columns, else an equal row). */
export class Changelog {
  rows: (unknown[] | null)[] = [];
  live = 0;
  raw: ResultRow[] = [];
  rawDropped = 0;
  changes = 0;
  private index = new Map<string, number[]>();
  private holes = 0;
  private lastRetracted = -1;

  constructor(readonly upsert: number[] | null) {}

  private key(row: unknown[]): string {
    return JSON.stringify(this.upsert && this.upsert.length ? this.upsert.map((i) => row[i]) : row);
  }

  apply(batch: ResultRow[]): void {
    for (const r of batch) {
      this.changes++;
      this.raw.push(r);
      const k = this.key(r.row);
      if (r.op === 0 || r.op === 2) {
        if (this.upsert && this.upsert.length) {
          // An upsert replaces the row of its key in place.
          const at = this.index.get(k)?.[0];
          if (at !== undefined) {
            this.rows[at] = r.row;
            continue;
          }
        }
        let at = this.rows.length;
        if (r.op === 2 && this.lastRetracted >= 0 && this.rows[this.lastRetracted] === null) {
          // -U then +U: the new row takes the old one's place.
          at = this.lastRetracted;
          this.rows[at] = r.row;
          this.holes--;
        } else {
          this.rows.push(r.row);
        }
        this.lastRetracted = -1;
        const list = this.index.get(k);
        if (list) list.push(at);
        else this.index.set(k, [at]);
        this.live++;
      } else {
        const list = this.index.get(k);
        if (!list || !list.length) continue; // a retraction of a row not shown
        const at = list.pop()!;
        if (!list.length) this.index.delete(k);
        this.rows[at] = null;
        this.holes++;
        this.live--;
        this.lastRetracted = r.op === 1 ? at : -1;
      }
    }
    if (this.raw.length > RAW_KEEP * 1.5) {
      const drop = this.raw.length - RAW_KEEP;
      this.raw.splice(0, drop);
      this.rawDropped += drop;
    }
    if (this.holes > 1024 && this.holes > this.rows.length / 2) this.compact();
  }

  private compact(): void {
    const rows = this.rows.filter((r): r is unknown[] => r !== null);
    this.rows = rows;
    this.holes = 0;
    this.lastRetracted = -1;
    this.index.clear();
    rows.forEach((r, i) => {
      const k = this.key(r);
      const list = this.index.get(k);
      if (list) list.push(i);
      else this.index.set(k, [i]);
    });
  }
}

export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The grid: a header that sorts, a filter, and rows drawn as they scroll
 * into view. */
export class Grid {
  readonly el: HTMLElement;
  private head: HTMLElement;
  private body: HTMLElement;
  private spacer: HTMLElement;
  private layer: HTMLElement;
  private view: { op?: number; row: unknown[] }[] = [];
  private dirty = true;
  private lastBuild = 0;
  sortCol = -1;
  sortDesc = false;
  filter = "";
  raw = false;

  constructor(
    private columns: string[],
    private log: Changelog,
  ) {
    this.el = document.createElement("div");
    this.el.className = "grid";
    this.el.setAttribute("role", "table");
    this.head = document.createElement("div");
    this.head.className = "grid-head";
    this.head.setAttribute("role", "row");
    this.body = document.createElement("div");
    this.body.className = "grid-body";
    this.body.tabIndex = 0;
    this.body.setAttribute("aria-label", "result rows");
    this.spacer = document.createElement("div");
    this.layer = document.createElement("div");
    this.layer.className = "grid-layer";
    this.spacer.appendChild(this.layer);
    this.body.appendChild(this.spacer);
    this.el.append(this.head, this.body);
    this.body.addEventListener("scroll", () => this.draw());
    this.renderHead();
  }

  private shownColumns(): string[] {
    return this.raw ? ["op", ...this.columns] : this.columns;
  }

  private template(): string {
    return this.shownColumns()
      .map((c) => (c === "op" && this.raw ? "3.5em" : "minmax(8em, 1fr)"))
      .join(" ");
  }

  renderHead(): void {
    this.head.replaceChildren();
    this.head.style.gridTemplateColumns = this.template();
    this.shownColumns().forEach((c, i) => {
      const b = document.createElement("button");
      b.className = "grid-col";
      b.setAttribute("role", "columnheader");
      const data = this.raw ? i - 1 : i;
      const arrow = data === this.sortCol && data >= 0 ? (this.sortDesc ? " ▼" : " ▲") : "";
      b.textContent = c + arrow;
      b.title = data >= 0 ? `sort by ${c}` : "row kind";
      if (data >= 0)
        b.onclick = () => {
          if (this.sortCol === data) this.sortDesc = !this.sortDesc;
          else {
            this.sortCol = data;
            this.sortDesc = false;
          }
          this.renderHead();
          this.changed(true);
        };
      this.head.appendChild(b);
    });
  }

  setRaw(raw: boolean): void {
    this.raw = raw;
    this.renderHead();
    this.changed(true);
  }

  setFilter(f: string): void {
    this.filter = f.toLowerCase();
    this.changed(true);
  }

  /** Marks the rows changed; the grid redraws on the next frame (at most
   * every 100 ms while rows stream in). */
  changed(now = false): void {
    this.dirty = true;
    if (now) this.lastBuild = 0;
    requestAnimationFrame(() => this.draw());
  }

  private build(): void {
    let view: { op?: number; row: unknown[] }[];
    if (this.raw) view = this.log.raw.map((r) => ({ op: r.op, row: r.row }));
    else {
      view = [];
      for (const r of this.log.rows) if (r) view.push({ row: r });
    }
    if (this.filter) {
      const f = this.filter;
      view = view.filter((r) => r.row.some((v) => cellText(v).toLowerCase().includes(f)));
    }
    if (this.sortCol >= 0) {
      const c = this.sortCol;
      const dir = this.sortDesc ? -1 : 1;
      const collator = new Intl.Collator(undefined, { numeric: true });
      view.sort((a, b) => dir * collator.compare(cellText(a.row[c]), cellText(b.row[c])));
    }
    this.view = view;
    this.dirty = false;
    this.lastBuild = performance.now();
  }

  /** The rows as shown (sorted and filtered), for the CSV download. */
  shownRows(): { op?: number; row: unknown[] }[] {
    if (this.dirty) this.build();
    return this.view;
  }

  count(): number {
    if (this.dirty) this.build();
    return this.view.length;
  }

  draw(): void {
    if (this.dirty && performance.now() - this.lastBuild > 100) this.build();
    else if (this.dirty) {
      setTimeout(() => this.draw(), 100);
    }
    const total = this.view.length;
    this.spacer.style.height = `${total * ROW_H}px`;
    // As tall as its rows, up to a screenful.
    this.body.style.height = `${Math.min(320, Math.max(2 * ROW_H, total * ROW_H + 2))}px`;
    const top = this.body.scrollTop;
    const height = this.body.clientHeight || 300;
    const first = Math.max(0, Math.floor(top / ROW_H) - 5);
    const last = Math.min(total, Math.ceil((top + height) / ROW_H) + 5);
    const frag = document.createDocumentFragment();
    const tmpl = this.template();
    for (let i = first; i < last; i++) {
      const r = this.view[i];
      const div = document.createElement("div");
      div.className = "grid-row";
      div.setAttribute("role", "row");
      div.style.top = `${i * ROW_H}px`;
      div.style.gridTemplateColumns = tmpl;
      if (this.raw) {
        const op = document.createElement("span");
        op.className = `op op-${r.op}`;
        op.textContent = OPS[r.op ?? 0] ?? "?";
        div.appendChild(op);
      }
      for (const v of r.row) {
        const cell = document.createElement("span");
        cell.setAttribute("role", "cell");
        const t = cellText(v);
        cell.textContent = t;
        if (v === null) cell.className = "null";
        cell.title = t;
        div.appendChild(cell);
      }
      frag.appendChild(div);
    }
    this.layer.replaceChildren(frag);
  }

  csv(): string {
    const cols = this.shownColumns();
    const lines = [cols.map(csvField).join(",")];
    for (const r of this.shownRows()) {
      const cells = r.row.map((v) => csvField(v === null ? "" : cellText(v)));
      lines.push((this.raw ? [OPS[r.op ?? 0], ...cells] : cells).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }
}
