#!/usr/bin/env python3
"""A statement at parallelism 1 and 2, through the broker.

    python3 infra/bench/parallel.py [--events 1000000] [--partitions 8]
        [--bootstrap HOST:PORT] [--checkpoint-interval '1 s']

A release `weir dev` (its own `weir broker`; statements on its `weir
worker` child), the Nexmark bids produced into a `bid` topic of
--partitions partitions, then each query run as `CREATE TABLE ... AS`
over a bounded scan of them (`'sql.tables.scan.bounded.mode' =
'latest-offset'`), timed from submission to COMPLETED, in three modes:

- `one task`: without `'sql.parallelism'`, the whole statement in one task;
- `p=1`: `'sql.parallelism' = '1'`: for a keyed query, one source task
  and one keyed task with the repartition topic between them;
- `p=2`: two tasks per stage.

Printed per query and mode: events/s (wall) and events per CPU-second of
`weir dev` and its workers, and the broker's CPU-seconds apart (its own
broker only). With --bootstrap a broker with Kafka transactions (noida-db,
Apache Kafka) makes the stages exactly-once: each task commits once per
--checkpoint-interval, which then bounds how soon the keyed stage sees
its input. The
repartition hop's cost per event is the CPU of `p=1` less that of `one
task`, over the events. Uses `vs_flink.py`'s helpers; only the standard
library.
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_flink as vf  # noqa: E402

QUERIES = {
    "filter": "SELECT auction, bidder, price FROM bid WHERE MOD(auction, 10) = 0",
    "keyed-agg": "SELECT auction, COUNT(*) AS bids, MAX(price) AS top, SUM(price) AS total FROM bid GROUP BY auction",
}
MODES = {"one task": None, "p=1": "1", "p=2": "2"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--queries", default=",".join(QUERIES), help="of: " + ", ".join(QUERIES))
    ap.add_argument("--bootstrap", help="a broker to use instead of weir dev's own")
    ap.add_argument("--checkpoint-interval", help="'execution.checkpointing.interval' of each statement")
    a = ap.parse_args()
    queries = {q: QUERIES[q] for q in a.queries.split(",")}
    weir_bin, data_bin = vf.build()
    sql = json.loads(subprocess.run([data_bin, "sql"], capture_output=True, text=True, check=True).stdout)
    data_dir, counts = vf.nexmark_files(data_bin, a.events)
    bids = counts["bid"]
    w = vf.Weir(weir_bin, a.bootstrap)
    results = []
    try:
        for i, ddl in enumerate(sql["tables"]):
            ddl = ddl.replace("DISTRIBUTED INTO 1 BUCKETS", f"DISTRIBUTED INTO {a.partitions} BUCKETS")
            w.submit(f"ddl-{i}", ddl)
            w.wait_phase(f"ddl-{i}", ("COMPLETED",))
        vf.log(f"producing the events into {w.env['WEIR_BOOTSTRAP']}…")
        subprocess.run([data_bin, "produce", "--bootstrap", w.env["WEIR_BOOTSTRAP"], "--dir", data_dir], check=True)
        n = 0
        for qname, q in queries.items():
            for mode, p in MODES.items():
                n += 1
                props = {"sql.tables.scan.bounded.mode": "latest-offset"}
                if a.checkpoint_interval:
                    props["execution.checkpointing.interval"] = a.checkpoint_interval
                if p:
                    props["sql.parallelism"] = p
                stmt = f"b{n}"
                broker0 = vf.cpu_seconds(w.broker) if w.broker else 0.0
                c0, t0 = vf.weir_cpu(w.proc.pid), time.time()
                s, r = w.call("POST", w.url, {"name": stmt, "spec": {
                    "statement": f"CREATE TABLE out_{n}_{os.getpid()} AS {q}", "properties": props}})
                if s >= 300:
                    raise SystemExit(f"{qname} {mode}: {s} {r}")
                r = w.wait_phase(stmt, ("COMPLETED", "FAILED"), timeout=900)
                t1, c1 = time.time(), vf.weir_cpu(w.proc.pid)
                broker1 = vf.cpu_seconds(w.broker) if w.broker else 0.0
                if r["status"]["phase"] != "COMPLETED":
                    raise SystemExit(f"{qname} {mode}: {r['status']}")
                res = {"query": qname, "mode": mode, "wall": t1 - t0, "cpu": vf.cpu_between(c0, c1),
                       "broker": broker1 - broker0,
                       "guarantee": r["status"].get("metrics", {}).get("delivery_guarantee", "")}
                vf.log(f"{res}")
                results.append(res)
                w.call("DELETE", f"{w.url}/{stmt}")
    finally:
        w.stop()
    through = f"the broker at {a.bootstrap}" if a.bootstrap else "weir dev's own broker"
    print(f"\n{bids:,} Nexmark bids in a {a.partitions}-partition topic, through {through}, on {os.cpu_count()} cores")
    print("| query | mode | delivery | events/s | events/CPU-s (Weir) | Weir CPU-s | broker CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        broker = f"{r['broker']:.2f}" if w.broker else "n/a"
        print(f"| {r['query']} | {r['mode']} | {r['guarantee']} | {bids / r['wall']:,.0f} | "
              f"{bids / max(r['cpu'], 0.01):,.0f} | {r['cpu']:.2f} | {broker} |")
    for qname in queries:
        by = {r["mode"]: r for r in results if r["query"] == qname}
        hop = (by["p=1"]["cpu"] - by["one task"]["cpu"]) / bids * 1e6
        hop_b = (by["p=1"]["broker"] - by["one task"]["broker"]) / bids * 1e6
        print(f"{qname}: p=1 less one task: {hop:+.2f} µs of Weir CPU and {hop_b:+.2f} µs of broker CPU per event")


if __name__ == "__main__":
    main()
