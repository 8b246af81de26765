// Weir's web SQL workspace: sign in with an API key, then the workspace
// (SQL cells and the catalog), the statements and the compute pools. Every
// figure on the page comes from Weir's public REST API.

import "./style.css";
import { Api, ApiError, environments, organization, type Scope } from "./api";
import { h, clear } from "./dom";
import { Workspace } from "./workspace";
import { statementsPage, statementPage } from "./statements";
import { poolsPage } from "./pools";

const CREDS = "weir.credentials";

interface SignedIn {
  api: Api;
  scope: Scope;
  envs: { id: string; display_name: string }[];
}

let session: SignedIn | null = null;
let workspace: Workspace | null = null;
/** What the current page runs in the background, stopped on leaving it. */
let leave: (() => void) | null = null;

const root = document.getElementById("app")!;

function signInPage(message?: string): void {
  clear(root);
  const key = h("input", { id: "key", name: "key", autocomplete: "username", required: "", spellcheck: "false" });
  const secret = h("input", { id: "secret", name: "secret", type: "password", autocomplete: "current-password", required: "" });
  const error = h("p", { class: "error", role: "alert" }, message ?? "");
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "signin", "aria-label": "sign in" },
    h("h1", {}, "Weir"),
    h("p", { class: "muted" }, "Sign in with an API key and secret (`weir dev` prints them). They are kept for this tab only."),
    h("label", { for: "key" }, "API key"),
    key,
    h("label", { for: "secret" }, "API secret"),
    secret,
    button,
    error,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.setAttribute("disabled", "");
    error.textContent = "";
    try {
      await signIn({ key: (key as HTMLInputElement).value.trim(), secret: (secret as HTMLInputElement).value.trim() });
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401 ? "That key and secret are not valid." : (err as Error).message;
      button.removeAttribute("disabled");
    }
  });
  root.appendChild(form);
  (key as HTMLInputElement).focus();
}

async function signIn(creds: { key: string; secret: string }, env?: string): Promise<void> {
  const api = new Api(creds);
  const org = await organization(api);
  const envs = await environments(api);
  if (!envs.length) throw new ApiError(403, "forbidden", "this key sees no environment");
  // The tab's last environment, else the one named `default` (as `weir
  // dev` names its own), else the first listed.
  const chosen =
    envs.find((e) => e.id === (env ?? sessionStorage.getItem("weir.env"))) ??
    envs.find((e) => e.display_name === "default") ??
    envs[0];
  sessionStorage.setItem(CREDS, JSON.stringify(creds));
  sessionStorage.setItem("weir.env", chosen.id);
  session = { api, scope: { org, env: chosen.id }, envs };
  workspace = null;
  if (!location.hash || location.hash === "#/") location.hash = "#/workspace";
  route();
}

function signOut(): void {
  sessionStorage.removeItem(CREDS);
  session = null;
  workspace = null;
  leave?.();
  leave = null;
  location.hash = "";
  signInPage();
}

function shell(active: string): HTMLElement {
  const s = session!;
  const envSelect = h("select", { "aria-label": "environment" }) as HTMLSelectElement;
  for (const e of s.envs) {
    const o = h("option", { value: e.id }, `${e.display_name} (${e.id})`) as HTMLOptionElement;
    if (e.id === s.scope.env) o.selected = true;
    envSelect.appendChild(o);
  }
  envSelect.onchange = () => switchEnv(envSelect.value);
  const link = (hash: string, label: string) =>
    h("a", { href: hash, class: active === hash ? "active" : "", "aria-current": active === hash ? "page" : "false" }, label);
  const main = h("main", { id: "main" });
  clear(root);
  root.append(
    h(
      "header",
      { class: "top" },
      h("span", { class: "brand" }, "Weir"),
      h("nav", {}, link("#/workspace", "Workspace"), link("#/statements", "Statements"), link("#/pools", "Compute pools")),
      h("span", { class: "spacer" }),
      envSelect,
      h("button", { onclick: signOut }, "Sign out"),
    ),
    main,
  );
  return main;
}

function switchEnv(env: string): void {
  if (!session || !session.envs.some((e) => e.id === env)) return;
  sessionStorage.setItem("weir.env", env);
  session.scope = { ...session.scope, env };
  workspace?.flush();
  workspace = null;
  route();
}

window.addEventListener("weir-switch-env", (e) => switchEnv((e as CustomEvent<string>).detail));

function route(): void {
  if (!session) return signInPage();
  leave?.();
  leave = null;
  const hash = location.hash || "#/workspace";
  const s = session;
  if (hash.startsWith("#/statements/")) {
    const main = shell("#/statements");
    leave = statementPage(main, s.api, s.scope, decodeURIComponent(hash.slice("#/statements/".length)));
  } else if (hash.startsWith("#/statements")) {
    const main = shell("#/statements");
    leave = statementsPage(main, s.api, s.scope);
  } else if (hash.startsWith("#/pools")) {
    const main = shell("#/pools");
    leave = poolsPage(main, s.api, s.scope);
  } else {
    const main = shell("#/workspace");
    if (!workspace) workspace = new Workspace(s.api, s.scope, s.envs);
    main.appendChild(workspace.el);
    workspace.shown();
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("weir-unauthorized", () => {
  if (!session) return;
  sessionStorage.removeItem(CREDS);
  session = null;
  workspace = null;
  leave?.();
  leave = null;
  signInPage("Your key is no longer valid (deleted, or its secret changed); sign in again.");
});

const saved = sessionStorage.getItem(CREDS);
if (saved) {
  signIn(JSON.parse(saved)).catch((e) => {
    sessionStorage.removeItem(CREDS);
    signInPage(
      e instanceof ApiError && e.status === 401
        ? "Your key is no longer valid (deleted, or its secret changed); sign in again."
        : `Weir could not be reached (${(e as Error).message}); sign in again.`,
    );
  });
} else {
  signInPage();
}
