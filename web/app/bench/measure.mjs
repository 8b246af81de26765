// Figures of the web workspace in headless Chromium against a running
// `weir dev` (not a test: it prints what it measures).
//
//     WEIR_DEV_ENV=.weir/dev.env WEIR_KAFKA_PYTHON=python-with-confluent-kafka \
//       node bench/measure.mjs [--rate 5000] [--seconds 15] [--runs 5]
//
// 1. Ctrl+Enter to the first row in the grid, for a streaming SELECT over
//    a topic that holds records (median of --runs).
// 2. The page's frame rate, long tasks and changes applied per second while
//    a grouped aggregation's changelog streams in: Confluent's Python client
//    produces --rate records a second for --seconds into 1,000 keys, and each
//    record changes a group (-U and +U: twice --rate changes a second).

import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { chromium } from "playwright-core";

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (i % 2 ? a : [...a, [v.replace(/^--/, ""), all[i + 1]]]), []));
const rate = Number(args.rate ?? 5000);
const seconds = Number(args.seconds ?? 15);
const runs = Number(args.runs ?? 5);
const ENV = Object.fromEntries(
  fs.readFileSync(process.env.WEIR_DEV_ENV, "utf8").match(/WEIR_\w+=\S+/g).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
const AUTH = "Basic " + Buffer.from(`${ENV.WEIR_API_KEY}:${ENV.WEIR_API_SECRET}`).toString("base64");
const STATEMENTS = `${ENV.WEIR_URL}/sql/v1/organizations/${ENV.WEIR_ORG}/environments/${ENV.WEIR_ENV}/statements`;
const PYTHON = process.env.WEIR_KAFKA_PYTHON ?? "python3";
const TABLE = `measure_${Date.now().toString(36)}`;

async function sql(text) {
  const name = `measure-${Math.random().toString(36).slice(2, 10)}`;
  await fetch(STATEMENTS, { method: "POST", headers: { Authorization: AUTH, "Content-Type": "application/json" }, body: JSON.stringify({ name, spec: { statement: text } }) });
  for (;;) {
    const s = await (await fetch(`${STATEMENTS}/${name}`, { headers: { Authorization: AUTH } })).json();
    if (s.status.phase === "COMPLETED") return;
    if (s.status.phase === "FAILED") throw new Error(s.status.detail);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function produce(extra) {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [path.join(import.meta.dirname, "../tests/produce.py"), ENV.WEIR_BOOTSTRAP, ...extra], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`produce.py exited ${code}`))));
  });
}

const browser = await chromium.launch({
  executablePath: process.env.WEIR_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.on("crash", () => console.error("page crashed"));
page.on("pageerror", (e) => console.error("pageerror", e.message));
await page.goto(ENV.WEIR_URL);
await page.fill("#key", ENV.WEIR_API_KEY);
await page.fill("#secret", ENV.WEIR_API_SECRET);
await page.click("button[type=submit]");
await page.waitForSelector(".cell .cm-content");

async function setSql(text) {
  await page.locator(".cell .cm-content").first().click();
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text);
  await page.keyboard.press("Escape");
}

await sql(`CREATE TABLE ${TABLE} (k STRING, v BIGINT) WITH ('value.format' = 'json', 'kafka.partitions' = '1')`);
await produce(["--rate", "1000", "--seconds", "1", "--topic", TABLE, "--keys", "1000"]);

// 1. Ctrl+Enter to the first row.
const firsts = [];
for (let i = 0; i < runs; i++) {
  await setSql(`SELECT k, v FROM ${TABLE}`);
  // The clock starts at the key press, as the page sees it, and stops when
  // the first row is in the grid.
  await page.evaluate(() => {
    window.__firstMs = 0;
    new Promise((resolve) => {
      let start = 0;
      const key = (e) => {
        if (e.key === "Enter" && e.ctrlKey) {
          start = performance.now();
          document.removeEventListener("keydown", key, true);
        }
      };
      document.addEventListener("keydown", key, true);
      const obs = new MutationObserver(() => {
        if (start && document.querySelector(".cell .grid-row")) {
          obs.disconnect();
          resolve(performance.now() - start);
        }
      });
      obs.observe(document.querySelector(".cell"), { childList: true, subtree: true });
    }).then((ms) => (window.__firstMs = ms));
  });
  await page.keyboard.press("Control+Enter");
  firsts.push(await (await page.waitForFunction(() => window.__firstMs, null, { timeout: 60000 })).jsonValue());
  await page.click(".cell button.stop");
}
firsts.sort((a, b) => a - b);
console.log(`Ctrl+Enter to the first row: median ${firsts[Math.floor(runs / 2)].toFixed(0)} ms (runs: ${firsts.map((m) => m.toFixed(0)).join(", ")} ms)`);

// 2. Frame rate while the changelog streams in.
await setSql(`SELECT k, COUNT(*) AS n, SUM(v) AS total FROM ${TABLE} GROUP BY k`);
await page.keyboard.press("Control+Enter");
await page.waitForSelector(".cell .grid-row");
// Every key of the first second's records is in the grid.
await page.waitForFunction(() => Number(document.querySelector(".cell .count")?.dataset.rows) >= 900);
await page.evaluate(() => {
  window.__frames = 0;
  window.__long = [];
  const tick = () => {
    window.__frames++;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  new PerformanceObserver((l) => window.__long.push(...l.getEntries().map((e) => e.duration))).observe({ type: "longtask" });
});
const changes0 = Number(await page.locator(".cell .count").getAttribute("data-changes"));
const f0 = await page.evaluate(() => window.__frames);
const t0 = Date.now();
const produced = await produce(["--rate", String(rate), "--seconds", String(seconds), "--topic", TABLE, "--keys", "1000"]);
const elapsed = (Date.now() - t0) / 1000;
const f1 = await page.evaluate(() => window.__frames);
const changes1 = Number(await page.locator(".cell .count").getAttribute("data-changes"));
const long = await page.evaluate(() => window.__long);
console.log(
  `while ${produced} records arrived at ${rate}/s for ${elapsed.toFixed(1)} s: ` +
    `${((changes1 - changes0) / elapsed).toFixed(0)} changes/s applied, ` +
    `${((f1 - f0) / elapsed).toFixed(1)} frames/s, ` +
    `${long.length} long tasks (> 50 ms; longest ${long.length ? Math.max(...long).toFixed(0) : 0} ms)`,
);
await page.click(".cell button.stop");
await browser.close();
