// Weir's public REST API, as the workspace calls it: HTTP Basic with the
// API key and secret the user signed in with, the API's error shape turned
// into an `ApiError` that keeps a SQL error's line and column.

export interface Credentials {
  key: string;
  secret: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
  }
}

export type Phase =
  | "PENDING"
  | "RUNNING"
  | "COMPLETED"
  | "DEGRADED"
  | "STOPPING"
  | "STOPPED"
  | "FAILING"
  | "FAILED"
  | "DELETING";

export const TERMINAL: Phase[] = ["COMPLETED", "STOPPED", "FAILED"];

export interface Column {
  name: string;
  type: { type: string; nullable: boolean; [k: string]: unknown };
}

export interface Statement {
  name: string;
  organization_id: string;
  environment_id: string;
  metadata: { created_at: string; updated_at: string; labels: Record<string, string>; resource_version: string };
  spec: {
    statement: string;
    compute_pool_id?: string;
    principal?: string;
    properties: Record<string, string>;
    stopped: boolean;
  };
  status: {
    phase: Phase;
    detail: string;
    traits?: {
      sql_kind?: string;
      is_bounded?: boolean;
      is_append_only?: boolean;
      upsert_columns?: number[] | null;
      schema?: { columns: Column[] };
    };
    metrics?: Record<string, unknown>;
    latest_offsets?: Record<string, string>;
    scaling?: Record<string, unknown>;
  };
}

export interface ResultRow {
  op: number;
  row: unknown[];
}

export interface ComputePool {
  id: string;
  spec: { display_name: string; max_cfu: number; environment: { id: string } };
  status: { phase: string; current_cfu: number };
}

/** Labels the workspace puts on the statements it runs for itself (catalog
 * lookups), which its statement list hides and which it deletes once read. */
export const INTERNAL_LABEL = "weir.dev/workspace-internal";

export class Api {
  constructor(
    private creds: Credentials,
    readonly base = "",
  ) {}

  private auth(): string {
    return "Basic " + btoa(`${this.creds.key}:${this.creds.secret}`);
  }

  async call<T>(method: string, path: string, body?: unknown, contentType = "application/json", keepalive = false): Promise<T> {
    let resp: Response;
    try {
      resp = await fetch(this.base + path, {
        method,
        headers: {
          Authorization: this.auth(),
          ...(body === undefined ? {} : { "Content-Type": contentType }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        keepalive,
      });
    } catch (e) {
      throw new ApiError(0, "network", `Weir did not answer (${(e as Error).message})`);
    }
    const text = await resp.text();
    let json: any = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (resp.status === 401) {
      // The key was deleted or the secret is wrong: the page signs out.
      dispatchEvent(new CustomEvent("weir-unauthorized"));
    }
    if (!resp.ok) {
      const err = json?.errors?.[0] ?? json?.error ?? {};
      throw new ApiError(
        resp.status,
        err.code ?? String(resp.status),
        err.detail ?? json?.message ?? `${method} ${path} answered ${resp.status}`,
        err.source?.line,
        err.source?.column,
      );
    }
    return json as T;
  }

  /** The path of a statement URL given as absolute by the API. */
  static pathOf(url: string): string {
    try {
      const u = new URL(url, location.href);
      return u.pathname + u.search;
    } catch {
      return url;
    }
  }
}

/** The organization and environment the key works in, and what it can
 * see there. */
export interface Scope {
  org: string;
  env: string;
}

export function statementsPath(s: Scope): string {
  return `/sql/v1/organizations/${encodeURIComponent(s.org)}/environments/${encodeURIComponent(s.env)}/statements`;
}

export async function organization(api: Api): Promise<string> {
  const r = await api.call<{ data: { id: string }[] }>("GET", "/org/v2/organizations");
  if (!r.data.length) throw new ApiError(403, "forbidden", "this key sees no organization");
  return r.data[0].id;
}

export async function environments(api: Api): Promise<{ id: string; display_name: string }[]> {
  const r = await api.call<{ data: { id: string; display_name: string }[] }>("GET", "/org/v2/environments");
  return r.data;
}

export async function pools(api: Api, env: string): Promise<ComputePool[]> {
  const r = await api.call<{ data: ComputePool[] }>("GET", `/fcpm/v2/compute-pools?environment=${encodeURIComponent(env)}`);
  return r.data;
}

export async function listStatements(api: Api, s: Scope): Promise<Statement[]> {
  const out: Statement[] = [];
  let path: string | null = statementsPath(s) + "?page_size=100";
  for (let i = 0; path && i < 50; i++) {
    const r: { data: Statement[]; metadata: { next?: string } } = await api.call("GET", path);
    out.push(...r.data);
    path = r.metadata.next ? Api.pathOf(r.metadata.next) : null;
  }
  return out;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export function newName(prefix: string): string {
  const r = Array.from(crypto.getRandomValues(new Uint8Array(5)))
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `${prefix}-${r}`;
}

export interface Run {
  statement: Statement;
  /** Called with each page of changelog rows, in order. */
  rows: AsyncGenerator<ResultRow[], Statement, void>;
}

/** Submits `sql` and waits until it has left PENDING; the rows generator
 * then walks its changelog until it ends (or `signal` aborts). */
export async function submit(
  api: Api,
  s: Scope,
  sql: string,
  properties: Record<string, string>,
  opts: { pool?: string; labels?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Statement> {
  const base = statementsPath(s);
  return api.call<Statement>("POST", base, {
    name: newName("workspace"),
    metadata: { labels: opts.labels ?? {} },
    spec: { statement: sql, properties, ...(opts.pool ? { compute_pool_id: opts.pool } : {}) },
  });
}

export async function waitStarted(api: Api, s: Scope, name: string, signal?: AbortSignal): Promise<Statement> {
  const path = `${statementsPath(s)}/${encodeURIComponent(name)}`;
  for (;;) {
    const st = await api.call<Statement>("GET", path);
    if (st.status.phase !== "PENDING" || signal?.aborted) return st;
    await sleep(50, signal);
  }
}

/** Pages of a statement's changelog, until it ends or `signal` aborts. */
export async function* results(
  api: Api,
  s: Scope,
  name: string,
  signal?: AbortSignal,
): AsyncGenerator<ResultRow[], void, void> {
  const stPath = `${statementsPath(s)}/${encodeURIComponent(name)}`;
  let path: string | null = `${stPath}/results`;
  // Empty pages back off from 50 ms to 400 ms, so that the first rows show
  // soon after they exist and an idle query costs few requests.
  let empty = 0;
  while (path && !signal?.aborted) {
    const r: { results: { data: ResultRow[] }; metadata: { next?: string } } = await api.call("GET", path);
    if (r.results.data.length) yield r.results.data;
    empty = r.results.data.length ? 0 : empty + 1;
    path = r.metadata.next ? Api.pathOf(r.metadata.next) : null;
    if (path && r.results.data.length < 1000) await sleep(empty ? Math.min(400, 50 * empty) : 100, signal);
  }
}

/** Stops (or resumes) a statement, as the managed service's clients do:
 * a JSON Patch of `/spec/stopped`. */
export function setStopped(api: Api, s: Scope, name: string, stopped: boolean): Promise<unknown> {
  return api.call(
    "PATCH",
    `${statementsPath(s)}/${encodeURIComponent(name)}`,
    [{ op: "replace", path: "/spec/stopped", value: stopped }],
    "application/json-patch+json",
  );
}

/** Runs a bounded statement (SHOW, INFORMATION_SCHEMA) for the workspace
 * itself: its rows, then the statement is deleted. */
export async function query(api: Api, s: Scope, sql: string, properties: Record<string, string> = {}): Promise<unknown[][]> {
  const st = await submit(api, s, sql, properties, { labels: { [INTERNAL_LABEL]: "true" } });
  try {
    const started = await waitStarted(api, s, st.name);
    if (started.status.phase === "FAILED") throw new ApiError(400, "failed", started.status.detail);
    const rows: unknown[][] = [];
    for await (const page of results(api, s, st.name)) for (const r of page) rows.push(r.row);
    return rows;
  } finally {
    api.call("DELETE", `${statementsPath(s)}/${encodeURIComponent(st.name)}`).catch(() => {});
  }
}
