// The web workspace in headless Chromium against a running `weir dev`:
//
//     WEIR_DEV_ENV=path/to/dev.env node --test tests/
//
// (infra/test.sh starts the `weir dev` and passes its dev.env). The page is
// driven as a user drives it, by the keyboard and the mouse; what it shows
// is checked against what Weir's REST API answers.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { chromium } from "playwright-core";

const envFile = process.env.WEIR_DEV_ENV;
if (!envFile) throw new Error("set WEIR_DEV_ENV to the dev.env of a running `weir dev`");
const ENV = Object.fromEntries(
  fs.readFileSync(envFile, "utf8").match(/WEIR_\w+=\S+/g).map((kv) => {
    const i = kv.indexOf("=");
    return [kv.slice(0, i), kv.slice(i + 1)];
  }),
);
const URL = ENV.WEIR_URL;
const AUTH = "Basic " + Buffer.from(`${ENV.WEIR_API_KEY}:${ENV.WEIR_API_SECRET}`).toString("base64");
const STATEMENTS = `${URL}/sql/v1/organizations/${ENV.WEIR_ORG}/environments/${ENV.WEIR_ENV}/statements`;
const TABLE = `web_orders_${Date.now().toString(36)}`;

let browser;
const PYTHON = process.env.WEIR_KAFKA_PYTHON ?? "python3";
const SHOTS = process.env.WEIR_SCREENSHOTS;

/** Produces records with Confluent's Python client (tests/produce.py). */
function produce(records) {
  const input = records.map((r) => JSON.stringify(r)).join("\n");
  const r = spawnSync(PYTHON, [path.join(import.meta.dirname, "produce.py"), ENV.WEIR_BOOTSTRAP], { input, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(Number(r.stdout.trim()), records.length);
}

/** Saves a screenshot when WEIR_SCREENSHOTS names a folder. */
async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function rest(method, url, body) {
  const r = await fetch(url, {
    method,
    headers: { Authorization: AUTH, "Content-Type": "application/json" },
    body: body && JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function statement(name) {
  return (await rest("GET", `${STATEMENTS}/${name}`)).json;
}

/** Runs SQL over REST and waits until it leaves PENDING/RUNNING (or is
 * RUNNING, for `running`). */
async function sql(text, { running = false } = {}) {
  const name = `web-test-${Math.random().toString(36).slice(2, 10)}`;
  const r = await rest("POST", STATEMENTS, { name, spec: { statement: text } });
  assert.equal(r.status < 300, true, JSON.stringify(r.json));
  for (let i = 0; i < 300; i++) {
    const s = await statement(name);
    const p = s.status.phase;
    if (p === "FAILED") throw new Error(`${text}: ${s.status.detail}`);
    if (p === "COMPLETED" || (running && p === "RUNNING")) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${text} did not finish`);
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  return page;
}

async function signIn(page) {
  await page.goto(URL);
  await page.fill("#key", ENV.WEIR_API_KEY);
  await page.fill("#secret", ENV.WEIR_API_SECRET);
  await page.click("button[type=submit]");
  await page.waitForSelector(".cell .cm-content");
}

/** Replaces the text of cell `i` (0-based) with `text`, entered as a
 * user's input (as a paste is: one input event). */
async function typeInto(page, i, text) {
  const editor = page.locator(".cell .cm-content").nth(i);
  await editor.click();
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text);
}

async function rowsShown(page, i = 0) {
  return page.locator(".cell").nth(i).locator(".result .count").getAttribute("data-rows");
}

async function gridText(page, i = 0) {
  return page
    .locator(".cell")
    .nth(i)
    .locator(".grid-row")
    .evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
}

async function until(what, check, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.WEIR_CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

test("the page is served at / and signs in with a key kept for the tab only", async () => {
  const r = await fetch(URL + "/");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/html/);
  assert.match(r.headers.get("content-security-policy"), /default-src 'self'/);
  const page = await newPage();
  await page.goto(URL);
  await page.fill("#key", ENV.WEIR_API_KEY);
  await page.fill("#secret", "not-the-secret");
  await page.click("button[type=submit]");
  await page.waitForSelector(".signin .error:has-text('not valid')");
  await page.fill("#secret", ENV.WEIR_API_SECRET);
  await page.click("button[type=submit]");
  await page.waitForSelector(".cell .cm-content");
  assert.ok(!page.url().includes(ENV.WEIR_API_SECRET) && !page.url().includes(ENV.WEIR_API_KEY));
  const stored = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.getItem("weir.credentials") }));
  assert.equal(stored.local, 0);
  assert.ok(stored.session.includes(ENV.WEIR_API_KEY));
  // A new tab of another context starts signed out.
  const other = await newPage();
  await other.goto(URL);
  await other.waitForSelector("#key");
  // Signing out forgets the key.
  await page.click("text=Sign out");
  await page.waitForSelector("#key");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("weir.credentials")), null);
  assert.deepEqual(page.errors, []);
  await page.context().close();
  await other.context().close();
});

test("Ctrl+Enter runs a cell; the grid shows a bounded result; CSV downloads what it shows", async () => {
  const page = await newPage();
  await signIn(page);
  await typeInto(page, 0, "SELECT * FROM (VALUES (1, 'a, b'), (2, 'c')) AS t(x, y)");
  await page.keyboard.press("Control+Enter");
  await until("two rows", async () => (await gridText(page)).length === 2);
  assert.deepEqual(await gridText(page), [
    ["1", "a, b"],
    ["2", "c"],
  ]);
  await page.waitForSelector(".cell .status .badge:has-text('COMPLETED')");
  // Sort by x, descending (two clicks), and filter.
  const header = page.locator(".cell .grid-col").first();
  await header.click();
  await header.click();
  await until("sorted", async () => JSON.stringify(await gridText(page)) === JSON.stringify([["2", "c"], ["1", "a, b"]]));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(".cell .result-bar button:has-text('CSV')")]);
  const csv = fs.readFileSync(await download.path(), "utf8");
  assert.equal(csv, 'x,y\r\n2,c\r\n1,"a, b"\r\n');
  await page.fill(".cell input[type=search]", "a,");
  await until("filtered", async () => (await gridText(page)).length === 1);
  assert.deepEqual(await gridText(page), [["1", "a, b"]]);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a SQL error is marked in the editor at its line and column", async () => {
  const page = await newPage();
  await signIn(page);
  await typeInto(page, 0, "SELECT a,\n  b FRM nosuch");
  await page.keyboard.press("Control+Enter");
  const mark = page.locator(".cell .cm-lintRange-error");
  await mark.waitFor();
  assert.equal(await mark.textContent(), "nosuch");
  // It is on the second line.
  const line = await mark.evaluate((el) => el.closest(".cm-line").textContent);
  assert.equal(line, "  b FRM nosuch");
  await page.waitForSelector(".cell .result .error:has-text('line 2, column 9')");
  // The unknown table of a query that parses is marked too.
  await typeInto(page, 0, "SELECT *\nFROM no_such_table");
  await page.keyboard.press("Control+Enter");
  await until("the table marked", async () => (await page.locator(".cell .cm-lintRange-error").textContent().catch(() => "")) === "no_such_table");
  // Editing clears the mark.
  await page.keyboard.type(" ");
  await until("the mark cleared", async () => (await page.locator(".cell .cm-lintRange-error").count()) === 0);
  await page.context().close();
});

test("a table made in a cell and fed by another client: windows appear, groups update and retract, the changelog shows the kinds", async () => {
  const page = await newPage();
  await signIn(page);
  await typeInto(
    page,
    0,
    `CREATE TABLE ${TABLE} (who STRING, amount DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n` +
      `WITH ('value.format' = 'json', 'kafka.partitions' = '1')`,
  );
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector(".cell .status .badge:text-is('COMPLETED')");
  // The catalog is read again after DDL and shows the new table.
  await page.waitForSelector(`.tree li.table > .node-name:text-is("${TABLE}")`, { state: "attached" });
  produce([
    { topic: TABLE, value: { who: "ann", amount: 10.0, ts: "2026-01-01 00:00:01" } },
    { topic: TABLE, value: { who: "bob", amount: 5.0, ts: "2026-01-01 00:00:02" } },
    { topic: TABLE, value: { who: "ann", amount: 7.5, ts: "2026-01-01 00:00:03" } },
  ]);

  // A windowed aggregation in a second cell: a window's rows appear once
  // the watermark passes its end.
  await page.click("button.add-cell");
  await typeInto(
    page,
    1,
    `SELECT window_start, who, COUNT(*) AS n, SUM(amount) AS total\n` +
      `FROM TABLE(TUMBLE(TABLE ${TABLE}, DESCRIPTOR(ts), INTERVAL '1' MINUTE))\n` +
      `GROUP BY window_start, window_end, who`,
  );
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector(".cell >> nth=1 >> .status .badge:text-is('RUNNING')");
  assert.equal(await page.locator(".cell").nth(1).locator(".grid-row").count(), 0);
  produce([{ topic: TABLE, value: { who: "cy", amount: 2.0, ts: "2026-01-01 00:01:05" } }]);
  const windowRows = async () => (await gridText(page, 1)).sort((a, b) => a[1].localeCompare(b[1]));
  await until("the first window", async () =>
    JSON.stringify(await windowRows()) ===
    JSON.stringify([
      ["2026-01-01 00:00:00.000", "ann", "2", "17.5"],
      ["2026-01-01 00:00:00.000", "bob", "1", "5.0"],
    ]),
  );

  // A grouped aggregation in the first cell: rows update in place.
  await typeInto(page, 0, `SELECT who, COUNT(*) AS n, SUM(amount) AS total FROM ${TABLE} GROUP BY who`);
  await page.keyboard.press("Control+Enter");
  const sorted = async () => (await gridText(page)).sort((a, b) => a[0].localeCompare(b[0]));
  await until("ann, bob and cy", async () =>
    JSON.stringify(await sorted()) === JSON.stringify([["ann", "2", "17.5"], ["bob", "1", "5.0"], ["cy", "1", "2.0"]]),
  );
  produce([{ topic: TABLE, value: { who: "bob", amount: 1.0, ts: "2026-01-01 00:01:06" } }]);
  await until("bob's update", async () =>
    JSON.stringify(await sorted()) === JSON.stringify([["ann", "2", "17.5"], ["bob", "2", "6.0"], ["cy", "1", "2.0"]]),
  );
  assert.equal(await rowsShown(page), "3");
  await page.keyboard.press("Escape");
  await shot(page, "workspace");
  // The raw changelog shows each change with its kind: bob's old row
  // retracted (-U), the new one (+U).
  await page.locator(".cell").first().locator(".result-bar button:has-text('Changelog')").click();
  const raw = await until("the raw changelog", async () => {
    const rows = await gridText(page);
    return rows.some((r) => r[0] === "-U") ? rows : null;
  });
  const kinds = raw.map((r) => r[0]);
  assert.ok(kinds.includes("+I") && kinds.includes("-U") && kinds.includes("+U"), kinds.join(" "));
  assert.ok(raw.some((r) => r.join(" ") === "-U bob 1 5.0"), JSON.stringify(raw));
  assert.ok(raw.some((r) => r.join(" ") === "+U bob 2 6.0"), JSON.stringify(raw));
  await shot(page, "changelog");
  // Stop ends the statement.
  const name = (await page.locator(".cell .status").first().textContent()).match(/workspace-[0-9a-f]+/)[0];
  await page.locator(".cell").first().locator("button.stop").click();
  await until("stopped", async () => (await statement(name)).status.phase === "STOPPED");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a statement that fails while it runs shows its exception in the cell", async () => {
  const bad = `${TABLE}_bad`;
  await sql(`CREATE TABLE ${bad} (who STRING) WITH ('value.format' = 'json', 'kafka.partitions' = '1')`);
  produce([{ topic: bad, raw: "this is not JSON" }]);
  const page = await newPage();
  await signIn(page);
  await typeInto(page, 0, `SELECT who FROM ${bad}`);
  await page.keyboard.press("Control+Enter");
  const error = page.locator(".cell .result pre.error");
  await error.waitFor({ timeout: 30000 });
  assert.match(await error.textContent(), new RegExp(`${bad}.*could not be decoded|decoded.*${bad}`, "s"));
  await page.waitForSelector(".cell .status .badge:text-is('FAILED')");
  await page.context().close();
});

test("HTML in names and values is shown as text, never run", async () => {
  const page = await newPage();
  await signIn(page);
  await page.evaluate(() => (window.__ran = false));
  await typeInto(
    page,
    0,
    `SELECT '<img src=x onerror="window.__ran = true">' AS \`<b>col</b>\`, '<script>window.__ran = true</script>' AS s`,
  );
  await page.keyboard.press("Control+Enter");
  await until("the row", async () => (await gridText(page)).length === 1);
  assert.deepEqual(await gridText(page), [['<img src=x onerror="window.__ran = true">', "<script>window.__ran = true</script>"]]);
  assert.equal(await page.locator(".cell .grid-col").first().textContent(), "<b>col</b>");
  assert.equal(await page.locator(".cell .grid img, .cell .grid b, .cell .grid script").count(), 0);
  assert.equal(await page.evaluate(() => window.__ran), false);
  await page.context().close();
});

test("a key deleted while the page is open, or wrong, shows the sign-in page with a message", async () => {
  // A key of the weir dev user, made for this test.
  const owner = (await statement((await sql("SHOW TABLES")).name)).spec.principal;
  const made = await rest("POST", `${URL}/iam/v2/api-keys`, { spec: { owner: { id: owner } } });
  assert.ok(made.status < 300, JSON.stringify(made.json));
  const key = made.json.id;
  const secret = made.json.spec.secret;
  const page = await newPage();
  await page.goto(URL);
  await page.fill("#key", key);
  await page.fill("#secret", secret);
  await page.click("button[type=submit]");
  await page.waitForSelector(".cell .cm-content");
  const del = await rest("DELETE", `${URL}/iam/v2/api-keys/${key}`);
  assert.ok(del.status < 300, JSON.stringify(del.json));
  // The next call the page makes is refused: it signs out and says why.
  await page.locator("nav >> text=Statements").click({ timeout: 2000 }).catch(() => {});
  await page.waitForSelector(".signin .error:has-text('no longer valid')");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("weir.credentials")), null);
  // A tab that comes back with a key that no longer works says so too.
  await page.evaluate((k) => sessionStorage.setItem("weir.credentials", JSON.stringify(k)), { key, secret });
  await page.reload();
  await page.waitForSelector(".signin .error:has-text('no longer valid')");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("weir.credentials")), null);
  await page.context().close();
});

test("a large result scrolls through a virtualised grid", async () => {
  const page = await newPage();
  await signIn(page);
  const hundred = Array.from({ length: 100 }, (_, i) => `(${i})`).join(", ");
  const twoHundred = Array.from({ length: 200 }, (_, i) => `(${i})`).join(", ");
  await typeInto(page, 0, `SELECT a.x * 1000 + b.y AS v FROM (VALUES ${hundred}) AS a(x) CROSS JOIN (VALUES ${twoHundred}) AS b(y)`);
  await page.keyboard.press("Control+Enter");
  await until("20,000 rows", async () => (await rowsShown(page)) === "20000", 120000);
  const drawn = await page.locator(".cell .grid-row").count();
  assert.ok(drawn > 5 && drawn < 100, `${drawn} rows drawn for 20,000`);
  // Sorted by v descending, the last row at the bottom is the smallest.
  const header = page.locator(".cell .grid-col").first();
  await header.click();
  await until("sorted", async () => (await gridText(page))[0]?.[0] === "0");
  await page.locator(".cell .grid-body").evaluate((el) => (el.scrollTop = el.scrollHeight));
  await until("the last rows", async () => (await gridText(page)).some((r) => r[0] === "99199"));
  await page.context().close();
});

test("completion offers keywords, functions, the catalog's tables and their columns", async () => {
  const page = await newPage();
  await signIn(page);
  await page.waitForSelector(".tree .database");
  await typeInto(page, 0, `SELECT * FROM ${TABLE.slice(0, 8)}`);
  await page.keyboard.press("Control+Space");
  const options = page.locator(".cm-tooltip-autocomplete li");
  await until("the table offered", async () => (await options.allTextContents()).some((t) => t.startsWith(TABLE)));
  await page.keyboard.press("Escape");
  await typeInto(page, 0, `SELECT ${TABLE}.am`);
  await page.keyboard.press("Control+Space");
  await until("the column offered", async () => (await options.allTextContents()).some((t) => t.startsWith("amount")));
  // Enter accepts it (CodeMirror ignores an accept within 75 ms of the
  // list opening, as a guard against keys typed before it showed).
  await page.waitForTimeout(150);
  await page.keyboard.press("Enter");
  assert.equal(await page.locator(".cell .cm-content").first().textContent(), `SELECT ${TABLE}.amount`);
  await typeInto(page, 0, "SELECT JSON_VA");
  await page.keyboard.press("Control+Space");
  await until("a function offered", async () => (await options.allTextContents()).some((t) => t.startsWith("JSON_VALUE")));
  await page.context().close();
});

test("the catalog tree shows tables and columns, and a click inserts a name", async () => {
  const page = await newPage();
  await signIn(page);
  // The first database starts open.
  const table = page.locator(`.tree li.table:has(> .node-name:text-is("${TABLE}"))`);
  await table.locator(".twisty").click();
  const cols = await table.locator("li.column").allTextContents();
  // With the system column every table has, as INFORMATION_SCHEMA lists it.
  assert.deepEqual(cols, ["who STRING", "amount DOUBLE", "ts TIMESTAMP(3)", "$rowtime TIMESTAMP_LTZ(3) NOT NULL"]);
  // Its watermark and options, as INFORMATION_SCHEMA has them.
  assert.equal(await table.locator("li.watermark").textContent(), "watermark ts AS ts - INTERVAL '1' SECOND");
  const options = await table.locator("li.option").allTextContents();
  assert.ok(options.includes("'value.format' = 'json'"), options.join(" | "));
  // A table's primary key, in its order.
  await sql(`CREATE TABLE ${TABLE}_pk (a BIGINT, b STRING, c INT, PRIMARY KEY (c, a) NOT ENFORCED)`);
  await page.click(".aside-head button");
  const pk = page.locator(`.tree li.table:has(> .node-name:text-is("${TABLE}_pk"))`);
  await pk.locator(".twisty").click();
  assert.equal(await pk.locator("li.primary-key").textContent(), "primary key c, a");
  // A table whose topic has a subject in the registry shows it.
  const subject = `${TABLE}_bad-value`;
  const reg = await rest("POST", `${URL}/schema-registry/${ENV.WEIR_ENV}/subjects/${subject}/versions`, {
    schemaType: "JSON",
    schema: JSON.stringify({ type: "object", properties: { who: { type: "string" } } }),
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.json));
  await page.click(".aside-head button");
  const bad = page.locator(`.tree li.table:has(> .node-name:text-is("${TABLE}_bad"))`);
  await bad.locator(".twisty").click();
  assert.equal(await bad.locator("li.subject").textContent(), `schema ${subject}`);
  await typeInto(page, 0, "SELECT ");
  await table.locator("li.column .node-name").nth(1).click();
  assert.equal(await page.locator(".cell .cm-content").first().textContent(), "SELECT amount");
  // By the keyboard: from the table, Down to its first column, Enter
  // inserts it; Left twice goes back up to the table and closes it.
  await typeInto(page, 0, "SELECT ");
  await table.locator(":scope > .node-name").focus();
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "who STRING");
  await page.keyboard.press("Enter");
  assert.equal(await page.locator(".cell .cm-content").first().textContent(), "SELECT who");
  await table.locator("li.column .node-name").first().focus();
  await page.keyboard.press("ArrowLeft");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), TABLE);
  await page.keyboard.press("ArrowLeft");
  assert.equal(await table.getAttribute("aria-expanded"), "false");
  await page.context().close();
});

test("cells are saved for the user and come back after a reload", async () => {
  const page = await newPage();
  await signIn(page);
  await page.click("button.add-cell");
  const n = await page.locator(".cell").count();
  const text = `SELECT 'kept ${Date.now()}'`;
  await typeInto(page, n - 1, text);
  await page.waitForSelector(".save-state:text-is('saved')");
  await page.reload();
  await page.waitForSelector(".cell .cm-content");
  await until("the cell back", async () => (await page.locator(".cell .cm-content").nth(n - 1).textContent()) === text);
  // So does the REST API, for this user.
  const saved = await rest("GET", `${URL}/weir/v1/environments/${ENV.WEIR_ENV}/workspace`);
  assert.equal(saved.json.cells[n - 1].sql, text);
  // Removing it saves too.
  await page.locator(".cell").nth(n - 1).locator("button.remove").click();
  await page.waitForSelector(".save-state:text-is('saved')");
  const after = await rest("GET", `${URL}/weir/v1/environments/${ENV.WEIR_ENV}/workspace`);
  assert.equal(after.json.cells.length, n - 1);
  await page.context().close();
});

test("the statements page lists statements by phase and pool; a statement's page stops and resumes it", async () => {
  const running = await sql(`SELECT who FROM ${TABLE}`, { running: true });
  const page = await newPage();
  await signIn(page);
  await page.click("nav >> text=Statements");
  const row = page.locator(`table.statements tr:has(a:text-is("${running.name}"))`);
  await row.waitFor();
  assert.equal(await row.locator(".badge").textContent(), "RUNNING");
  assert.equal(await row.locator("td").nth(2).textContent(), ENV.WEIR_COMPUTE_POOL);
  await page.selectOption("select[aria-label=phase]", "COMPLETED");
  await until("filtered out", async () => (await row.count()) === 0);
  const badges = await page.locator("table.statements .badge").allTextContents();
  assert.ok(badges.length > 0 && badges.every((b) => b === "COMPLETED"), badges.join(","));
  // The workspace's own catalog lookups are not listed.
  assert.equal(await page.locator("table.statements td:has-text('INFORMATION_SCHEMA')").count(), 0);
  await page.selectOption("select[aria-label=phase]", "");
  await row.locator("a").click();
  await page.waitForSelector(`pre.sql:text-is("SELECT who FROM ${TABLE}")`);
  await page.waitForSelector("figure.chart[data-chart='Records per second'] canvas");
  await page.goBack();
  await row.waitFor();
  await shot(page, "statements");
  await row.locator("a").click();
  await page.waitForSelector(`pre.sql:text-is("SELECT who FROM ${TABLE}")`);
  await until("a rate", async () => (await page.locator("figure.chart[data-chart='Records per second'] canvas").count()) > 0);
  await shot(page, "statement");
  await page.click(".actions button:has-text('Stop')");
  await until("stopped", async () => (await statement(running.name)).status.phase === "STOPPED");
  await page.waitForSelector(".page-head .badge:text-is('STOPPED')");
  await page.click(".actions button:has-text('Resume')");
  await until("running again", async () => (await statement(running.name)).status.phase === "RUNNING");
  await page.click("section >> button:has-text('EXPLAIN')");
  await until("a plan", async () => ((await page.locator("pre.plan").textContent()) ?? "").length > 20 && !(await page.locator("pre.plan").textContent()).includes("planning"));
  page.once("dialog", (d) => d.accept());
  await page.click(".actions button:has-text('Delete')");
  await until("deleted", async () => (await rest("GET", `${STATEMENTS}/${running.name}`)).status === 404);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("the compute pools page shows each pool's CFU and the usage chart", async () => {
  const page = await newPage();
  await signIn(page);
  await page.click("nav >> text=Compute pools");
  const pool = page.locator(`article.pool[data-pool="${ENV.WEIR_COMPUTE_POOL}"]`);
  await pool.waitFor();
  const pools = (await rest("GET", `${URL}/fcpm/v2/compute-pools?environment=${ENV.WEIR_ENV}`)).json.data;
  const mine = pools.find((p) => p.id === ENV.WEIR_COMPUTE_POOL);
  assert.match(await pool.locator(".cfu").textContent(), new RegExp(`of ${mine.spec.max_cfu} CFU in use`));
  await pool.locator("canvas").first().waitFor();
  await page.waitForSelector("figure.chart[data-chart^='Usage by day'] canvas");
  await shot(page, "pools");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("other environments are other catalogs in the tree, and switching to one shows its own", async () => {
  const made = await rest("POST", `${URL}/org/v2/environments`, { display_name: `other-${Date.now().toString(36)}` });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const other = made.json;
  try {
    const page = await newPage();
    await signIn(page);
    const node = page.locator(`.tree li.catalog.other:has(> .node-name:text-is("${other.display_name}"))`);
    await node.locator(".twisty").click();
    // A new environment has no cluster, so no databases.
    await node.locator("li.meta:has-text('no databases')").waitFor();
    await node.locator("li.switch-env button").click();
    await until("the switch", async () => (await page.locator("select[aria-label=environment]").inputValue()) === other.id);
    await page.waitForSelector(`.tree li.catalog:not(.other) > .node-name:text-is("${other.display_name}")`);
    // The environment the page came from is now one of the others.
    await page.waitForSelector(".tree li.catalog.other");
    assert.deepEqual(page.errors, []);
    await page.context().close();
  } finally {
    // Its lookups are deleted as they finish; the environment goes once
    // they have.
    await until("the environment deleted", async () => (await rest("DELETE", `${URL}/org/v2/environments/${other.id}`)).status === 204);
  }
});
