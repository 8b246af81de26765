#!/usr/bin/env python3
"""Weir and Apache Flink side by side on the same Nexmark queries.

    python3 infra/bench/vs_flink.py [--events 1000000] [--bootstrap HOST:PORT]
                                    [--queries q0,q1,...] [--no-flink] [--perf DIR]
                                    [--repeat N] [--weir BIN]

Weir: a release `weir dev` (its own `weir broker`, or the Kafka cluster of
--bootstrap), the events produced into the `person`, `auction` and `bid`
topics first, then each query run as `CREATE TABLE ... AS` into a Kafka
topic, timed from its submission until every input record is processed and
its output acknowledged by the broker (`records_processed` in the
statement's metrics). CPU: the `weir dev` process and its `weir worker`
children, where the statements run (the broker is a process of its own;
its CPU is printed apart).

Flink: Apache Flink 2.3 from PyPI (installed once into
~/.cache/weir/tools/flink), local mini-cluster, parallelism 1, the same
events from JSON-lines files, into a blackhole sink; each query timed
from submission to the end of its bounded job. CPU: Flink's JVM. One
warm-up run of q0 goes first (the JIT), not counted.

With --perf DIR, each of Weir's queries is also recorded by `perf record
-a -g` (every process: Weir's, its workers' and the broker's) into
DIR/<query>.perf.data, for `perf report -i DIR/q0.perf.data --sort comm,dso`.

With --repeat N each of Weir's queries runs N times (a new statement
each time) and the run of median CPU is printed; --weir BIN runs a built
binary (to compare two builds on the same events).

Printed per query: input events, events/s wall and events per CPU-second
of each engine, and the ratio of events per CPU-second (Weir / Flink).
Only the standard library here; builds `weir` and `nexmark-data` in
release first.
"""
import argparse, base64, json, os, re, shutil, socket, subprocess, sys, tempfile, time
import urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weir/target"))
TOOLS = os.environ.get("WEIR_TOOLS", os.path.expanduser("~/.cache/weir/tools"))
FLINK_VERSION = "2.3.0"

KEYED_TUMBLE = """SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end"""
DEFAULT_QUERIES = "q0,q1,q2,q5,q7,q8,tumble,q18,q19"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_seconds(pid):
    rest = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                rest = open(f"/proc/{d}/stat").read().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(rest[1]) == pid:
                out.append(int(d))
    return out


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return []


def weir_cpu(pid):
    """CPU-seconds per process of `weir dev` and its `weir worker` children
    (where the statements run), not its broker. `weir dev`'s own figure
    includes the workers it has stopped and reaped, so that a worker that
    ends between two samples still counts. Every child but the broker
    counts: a worker that has exited but is not reaped yet has no command
    line any more, and left out of the first sample its whole life's CPU
    would land in the second (as `weir dev`'s children's time)."""
    rest = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
    cpu = {pid: sum(int(x) for x in rest[11:15]) / os.sysconf("SC_CLK_TCK")}
    for c in children(pid):
        if cmdline(c)[1:2] != [b"broker"]:
            try:
                cpu[c] = cpu_seconds(c)
            except OSError:
                pass
    return cpu


def cpu_between(before, after):
    """CPU spent between two `weir_cpu` samples (a worker started in
    between counts from zero; one that ended is in its parent's figure)."""
    return sum(after.values()) - sum(before.values())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def build():
    log("building weir and nexmark-data (release)…")
    subprocess.run(["cargo", "build", "--release", "--bin", "weir", "--bin", "nexmark-data"],
                   cwd=ROOT, check=True, env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    return os.path.join(TARGET, "release", "weir"), os.path.join(TARGET, "release", "nexmark-data")


def nexmark_files(data_bin, events):
    """The folder of `events` Nexmark events as JSON-lines files (made once,
    kept under ~/.cache/weir/bench), and the count of records per table."""
    data_dir = os.path.join(os.path.expanduser("~/.cache/weir/bench"), f"nexmark-{events}")
    counts_file = os.path.join(data_dir, "counts.json")
    if not os.path.exists(counts_file):
        out = subprocess.run([data_bin, "files", "--events", str(events), "--dir", data_dir],
                             capture_output=True, text=True, check=True).stdout
        open(counts_file, "w").write(out)
    return data_dir, json.load(open(counts_file))


def flink_python():
    venv = os.path.join(TOOLS, "flink")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".installed-" + FLINK_VERSION)):
        log(f"installing apache-flink {FLINK_VERSION} into {venv} (first run only, about a minute)…")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"apache-flink=={FLINK_VERSION}"], check=True)
        open(os.path.join(venv, ".installed-" + FLINK_VERSION), "w").close()
    return py


class Weir:
    def __init__(self, weir, bootstrap):
        self.dir = tempfile.mkdtemp(prefix="weir-vs-flink-")
        args = [weir, "dev", "--port", "0", "--data-dir", self.dir]
        args += ["--bootstrap", bootstrap] if bootstrap else ["--broker-port", str(free_port())]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "weir.log"), "w"), text=True)
        env = {}
        for line in self.proc.stdout:
            if line.startswith("export "):
                for kv in line[7:].split():
                    k, v = kv.split("=", 1)
                    env[k] = v
                break
        if "WEIR_URL" not in env:
            raise SystemExit(f"weir dev did not start; see {self.dir}/weir.log")
        self.env = env
        self.url = f"{env['WEIR_URL']}/sql/v1/organizations/{env['WEIR_ORG']}/environments/{env['WEIR_ENV']}/statements"
        self.auth = "Basic " + base64.b64encode(f"{env['WEIR_API_KEY']}:{env['WEIR_API_SECRET']}".encode()).decode()
        self.broker = None if bootstrap else next(
            (c for c in children(self.proc.pid) if cmdline(c)[1:2] == [b"broker"]), None)

    def call(self, method, url, body=None):
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": self.auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def submit(self, name, sql):
        s, r = self.call("POST", self.url, {"name": name, "spec": {"statement": sql}})
        if s >= 300:
            raise RuntimeError(f"{name}: {s} {r}")
        return r

    def status(self, name):
        return self.call("GET", f"{self.url}/{name}")[1]

    def wait_phase(self, name, phases, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.status(name)
            if r["status"]["phase"] in phases:
                return r
            time.sleep(0.05)
        raise RuntimeError(f"{name} still {r['status']['phase']}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_weir(weir_bin, data_bin, data_dir, sql, counts, queries, bootstrap, perf_dir=None, repeat=1):
    w = Weir(weir_bin, bootstrap)
    results, runs = {}, {}
    try:
        for i, ddl in enumerate(sql["tables"]):
            try:
                w.submit(f"ddl-{i}", ddl)
            except RuntimeError as e:
                if "already exists" in str(e):
                    raise SystemExit("the topics person, auction and bid exist on this cluster already: "
                                     "the benchmark needs a cluster without them (delete them first)")
                raise
            w.wait_phase(f"ddl-{i}", ("COMPLETED",))
        boot = w.env["WEIR_BOOTSTRAP"]
        log(f"weir: producing the events into {boot}…")
        subprocess.run([data_bin, "produce", "--bootstrap", boot, "--dir", data_dir], check=True)
        for (name, q), rep in ((nq, rep) for nq in queries.items() for rep in range(repeat)):
            want = sum(counts[t] for t in tables_of(q))
            broker0 = cpu_seconds(w.broker) if w.broker else 0.0
            c0, t0 = weir_cpu(w.proc.pid), time.time()
            stmt = f"s-{name}-{rep}"
            perf = None
            if perf_dir:
                os.makedirs(perf_dir, exist_ok=True)
                perf = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "999", "-o",
                                         os.path.join(perf_dir, f"{name}.{rep}.perf.data" if rep else f"{name}.perf.data")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            w.submit(stmt, f"CREATE TABLE out_{name}_{rep}_{os.getpid()} AS {q}")
            deadline = time.time() + 600
            phase, done = "", 0
            while time.time() < deadline:
                r = w.status(stmt)
                phase = r["status"]["phase"]
                metrics = r["status"].get("metrics") or {}
                done = metrics.get("records_processed") or 0
                if done >= want or phase in ("FAILED", "COMPLETED", "STOPPED"):
                    break
                time.sleep(0.1)  # each GET costs Weir ~1 ms of CPU: poll gently
            t1, c1 = time.time(), weir_cpu(w.proc.pid)
            if perf:
                perf.send_signal(2)
                perf.wait()
            broker1 = cpu_seconds(w.broker) if w.broker else 0.0
            err = None if done >= want else f"{phase}: {done} of {want} records; {r['status'].get('detail', '')}"
            runs.setdefault(name, []).append({
                "events": want, "wall": t1 - t0, "cpu": cpu_between(c0, c1), "broker_cpu": broker1 - broker0,
                "records_out": metrics.get("records_out"), "error": err})
            log(f"weir {name}: {runs[name][-1]}")
            w.call("DELETE", f"{w.url}/{stmt}")
        # The run of median CPU of each query (the VM's noise is large),
        # leaving out a run that shows more CPU than its wall time on every
        # core: a process counted twice (seen rarely, cause not found). A
        # query that failed in any run is shown failed, never hidden by a
        # median.
        cores = os.cpu_count() or 1
        for name, rs in runs.items():
            failed = [r for r in rs if r["error"]]
            sane = [r for r in rs if r["cpu"] <= r["wall"] * cores * 1.05] or rs
            if len(sane) < len(rs):
                log(f"weir {name}: {len(rs) - len(sane)} run(s) left out: more CPU than wall time × {cores} cores")
            results[name] = failed[0] if failed else sorted(sane, key=lambda r: r["cpu"])[len(sane) // 2]
    finally:
        w.stop()
    return results


def tables_of(sql):
    """The tables a query reads (as every query here names them)."""
    return [t for t in ("person", "auction", "bid") if re.search(rf"\b(FROM|JOIN|TABLE)\s+{t}\b", sql, re.I)]


def run_flink(data_dir, sql, counts, queries):
    py = flink_python()
    cfg = os.path.join(data_dir, "flink.json")
    json.dump({"dir": data_dir, "tables": sql["tables"], "queries": queries, "warmup": next(iter(queries))}, open(cfg, "w"))
    log("flink: running the queries…")
    out = subprocess.run([py, os.path.join(ROOT, "infra", "bench", "flink_runner.py"), cfg],
                         capture_output=True, text=True)
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            if r["query"] in queries:
                r["events"] = sum(counts[t] for t in tables_of(queries[r["query"]]))
                results[r["query"]] = r
                log(f"flink {r['query']}: {r}")
    if not results:
        log(out.stderr[-3000:])
        raise SystemExit("Flink ran no query")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--bootstrap", help="a Kafka cluster for Weir instead of weir dev's own broker")
    ap.add_argument("--queries", default=DEFAULT_QUERIES)
    ap.add_argument("--no-flink", action="store_true")
    ap.add_argument("--perf", metavar="DIR", help="record each Weir query with perf into DIR")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each of Weir's queries N times; print the run of median CPU")
    ap.add_argument("--weir", metavar="BIN", help="run this `weir` binary instead of building one (to compare builds)")
    a = ap.parse_args()
    weir_bin, data_bin = build()
    weir_bin = a.weir or weir_bin
    sql = json.loads(subprocess.run([data_bin, "sql"], capture_output=True, text=True, check=True).stdout)
    all_queries = dict(sql["queries"], tumble=KEYED_TUMBLE)
    queries = {q: all_queries[q] for q in a.queries.split(",")}
    data_dir, counts = nexmark_files(data_bin, a.events)
    weir = run_weir(weir_bin, data_bin, data_dir, sql, counts, queries, a.bootstrap, a.perf, max(a.repeat, 1))
    flink = {} if a.no_flink else run_flink(data_dir, sql, counts, queries)
    broker = a.bootstrap or "weir dev's own broker"
    print(f"\nNexmark, {a.events} events; Weir through {broker}; Flink {FLINK_VERSION} local, parallelism 1, from files to blackhole")
    print("| query | events | Weir records out | Weir events/s | Weir events/CPU-s | Flink events/s | Flink events/CPU-s | Weir ÷ Flink per CPU-s |")
    print("|---|---|---|---|---|---|---|---|")
    for q in queries:
        w, f = weir.get(q), flink.get(q)
        def rates(r):
            if not r or r.get("error"):
                return "failed", "failed", None
            per_cpu = r["events"] / max(r["cpu"], 0.01)
            return f"{r['events'] / r['wall']:,.0f}", f"{per_cpu:,.0f}", per_cpu
        ww, wc, wr = rates(w)
        fw, fc, fr = rates(f) if f else ("-", "-", None)
        ratio = f"{wr / fr:.1f}×" if wr and fr else "-"
        out = f"{w['records_out']:,}" if w and w.get("records_out") is not None else "-"
        print(f"| {q} | {(w or f)['events']:,} | {out} | {ww} | {wc} | {fw} | {fc} | {ratio} |")
    errors = {f"{e} {q}": r["error"] for e, rs in (("weir", weir), ("flink", flink)) for q, r in rs.items() if r.get("error")}
    for k, v in errors.items():
        print(f"{k}: {v}")
    if not a.bootstrap:
        print("Broker CPU-s (weir broker, not counted above): " + ", ".join(f"{q} {r['broker_cpu']:.2f}" for q, r in weir.items()))


if __name__ == "__main__":
    main()
