#!/usr/bin/env python3
"""The elastic pool under a stepped load: a chart and two figures.

    python3 infra/bench/elastic.py [--low 2000] [--out docs/elastic.svg]

A release `weir dev` (its own broker; its provisioner starts `weir worker`
processes as tasks need slots) runs a keyed aggregation with
`'sql.parallelism' = 'auto'` over a 12-partition topic, while a producer
drives it through idle → low → 4× low → low → idle. Each source row costs a
SHA-256 of a few KiB (--row-cost, in KiB), standing in for the parsing a
large record costs, so that one task is busy at rates a producer on this
machine reaches.

The pool's autoscaler is set to benchmark periods (interval 2 s, window
10 s, stabilization 20 s, catch-up 30 s, target utilization 0.7); the
production defaults are longer (see README, "Elastic compute pools").

Every second it records the load, the statement's lag, its tasks per stage
and the pool's current_cfu into a CSV, and draws them with the
`elastic_chart` example (plotters). Printed:

- the time to catch up after the 4× step: from the step until the lag is
  back under one second of input and stays there;
- the steady-state over-provisioning: CFU allocated ÷ CFU needed at full
  busy (the tasks' summed busy time per second), over the last half of the
  4× step.

Needs `confluent-kafka` (infra/test.sh installs it in
~/.cache/weir/tools/confluent; this script re-runs itself with that Python
when the one running it lacks it).
"""
import argparse, csv, json, os, subprocess, sys, threading, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.expanduser("~/.cache/weir/tools/confluent/bin/python")
try:
    import confluent_kafka  # noqa: F401
except ImportError:
    if os.path.exists(VENV) and sys.executable != VENV:
        os.execv(VENV, [VENV] + sys.argv)
    raise SystemExit("needs confluent-kafka: pip install confluent-kafka, or run infra/test.sh once")
from confluent_kafka import Producer  # noqa: E402

sys.path.insert(0, HERE)
import vs_flink as vf  # noqa: E402

PARTITIONS = 12
KEYS = 200


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--low", type=int, default=2000,
                    help="records/s of the low steps (4× of 4000 is more than this 2-core machine does)")
    ap.add_argument("--row-cost", type=int, default=96, help="KiB hashed per source row")
    ap.add_argument("--steps", default="idle:10,low:40,high:60,low:40,idle:50",
                    help="name:seconds, names idle, low, high (4× low)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "docs", "elastic.svg"))
    a = ap.parse_args()
    weir_bin, _ = vf.build()
    # With the binaries vf.build() built, so that features unify as they
    # did there (`-p weir-cli` alone builds DataFusion again).
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "weir", "--bin", "nexmark-data",
                    "--example", "elastic_chart"],
                   cwd=vf.ROOT, check=True, env={**os.environ, "CARGO_TARGET_DIR": vf.TARGET})
    chart_bin = os.path.join(vf.TARGET, "release", "examples", "elastic_chart")
    w = vf.Weir(weir_bin, None)
    env = w.env
    pools = f"{env['WEIR_URL']}/fcpm/v2/compute-pools/{env['WEIR_COMPUTE_POOL']}?environment={env['WEIR_ENV']}"
    try:
        settings = {"target_utilization": 0.7, "catch_up_seconds": 30, "stabilization_seconds": 20,
                    "max_scale_down": 0.5, "rescale_grace_seconds": 5, "window_seconds": 10,
                    "interval_seconds": 2, "rescale_pause_seconds": 2}
        s, r = w.call("PATCH", pools, {"spec": {"max_cfu": 16, "autoscaler": settings}})
        assert s == 200, r
        src, dst = "elastic_load", "elastic_totals"
        for i, ddl in enumerate([
            f"CREATE TABLE {src} (k BIGINT, v BIGINT) DISTRIBUTED BY HASH(k) INTO {PARTITIONS} BUCKETS",
            f"CREATE TABLE {dst} (k BIGINT, n BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED)",
        ]):
            w.submit(f"ddl-{i}", ddl)
            w.wait_phase(f"ddl-{i}", ("COMPLETED",))
        sql = (f"INSERT INTO {dst} SELECT k, COUNT(*) AS n, SUM(v) AS s FROM {src} "
               f"WHERE SHA256(REPEAT(CAST(v AS STRING), {a.row_cost * 1024})) IS NOT NULL GROUP BY k")
        s, r = w.call("POST", w.url, {"name": "totals", "spec": {"statement": sql,
                                                                 "properties": {"sql.parallelism": "auto"}}})
        assert s < 300, r
        w.wait_phase("totals", ("RUNNING",), timeout=60)

        rate = [0]
        produced = [0]
        stop = threading.Event()

        def feed():
            p = Producer({"bootstrap.servers": env["WEIR_BOOTSTRAP"], "linger.ms": 5,
                          "queue.buffering.max.messages": 1_000_000})
            i = 0
            while not stop.is_set():
                tick = time.time()
                n = rate[0] // 10
                for _ in range(n):
                    while True:
                        try:
                            p.produce(src, value=json.dumps({"k": i % KEYS, "v": i % 7}), partition=i % PARTITIONS)
                            break
                        except BufferError:
                            p.poll(0.01)
                    i += 1
                p.poll(0)
                produced[0] = i
                time.sleep(max(0.0, 0.1 - (time.time() - tick)))
            p.flush()
            produced[0] = i

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        rows, marks = [], []
        t0 = time.time()
        last_n, last_t, last_busy = 0, t0, None
        for step in a.steps.split(","):
            name, secs = step.split(":")
            rate[0] = {"idle": 0, "low": a.low, "high": 4 * a.low}[name]
            marks.append((name, time.time() - t0))
            vf.log(f"{name}: {rate[0]} records/s for {secs} s")
            end = time.time() + float(secs)
            while time.time() < end:
                time.sleep(1.0)
                now = time.time()
                st = w.status("totals")["status"]
                sc = st.get("scaling") or {}
                par = sc.get("parallelism") or {}
                keyed = sum(v for k, v in par.items() if k != "source")
                busy = (st.get("metrics") or {}).get("busy_ms", 0)
                _, pool = w.call("GET", pools)
                load = (produced[0] - last_n) / (now - last_t)
                needed = None if last_busy is None or busy < last_busy else (busy - last_busy) / 1000 / (now - last_t)
                rows.append({"t": round(now - t0, 1), "load": round(load), "lag": sc.get("pending_records") or 0,
                             "source": par.get("source", 0), "keyed": keyed,
                             "cfu": pool["status"]["current_cfu"], "needed": needed, "step": name})
                last_n, last_t, last_busy = produced[0], now, busy
        stop.set()
        feeder.join()
        csv_path = os.path.splitext(a.out)[0] + ".csv"
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["t", "load", "lag", "source", "keyed", "cfu"])
            for r in rows:
                out.writerow([r["t"], r["load"], r["lag"], r["source"], r["keyed"], r["cfu"]])
        subprocess.run([chart_bin, csv_path, a.out], check=True)
        events = w.call("GET", f"{w.url}/totals/scaling-events")[1]["data"]
        report(rows, marks, events, a)
    finally:
        w.stop()


def report(rows, marks, events, a):
    high_start = next(t for n, t in marks if n == "high")
    high_end = next((t for n, t in marks if t > high_start), rows[-1]["t"])
    high = [r for r in rows if high_start <= r["t"] < high_end]
    threshold = 4 * a.low  # one second of the 4× input
    caught = None
    for i, r in enumerate(high):
        if all(x["lag"] < threshold for x in high[i:]):
            caught = r["t"] - high_start
            break
    tail = high[len(high) // 2:]
    ratios = [r["cfu"] / r["needed"] for r in tail if r["needed"]]
    over = sum(ratios) / len(ratios) if ratios else float("nan")
    print("\nscaling decisions (oldest first):")
    for e in reversed(events):
        if e["to"] != e["from"]:
            print(f"  {e['at']}  {e['stage']}: {e['from']} → {e['to']}  {e['reason']}")
    print(f"\nlow step {a.low} records/s, 4× step {4 * a.low} records/s, {a.row_cost} KiB hashed per row")
    print(f"catch-up after the 4× step: {caught:.0f} s" if caught is not None else "catch-up after the 4× step: never within the step")
    print(f"over-provisioning in the 4× step's second half: {over:.2f}× (CFU allocated ÷ CFU busy)")
    print(f"most CFU: {max(r['cfu'] for r in rows)}; CFU at the end: {rows[-1]['cfu']}")


if __name__ == "__main__":
    main()
