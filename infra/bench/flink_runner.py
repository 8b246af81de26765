"""Runs Nexmark queries on Apache Flink (PyFlink, local mini-cluster,
parallelism 1) from JSON-lines files into a blackhole sink, and prints, per
query, the wall seconds and the CPU seconds of Flink's JVM as JSON lines.

Started by infra/bench/vs_flink.py with the Python of a venv that has
apache-flink installed:  python flink_runner.py CONFIG.json
CONFIG: {"dir": ..., "tables": [weir DDL...], "queries": {name: sql},
"counts": {"bid": n, ...}, "warmup": "q0"}
"""
import json, os, re, sys, time

from pyflink.table import EnvironmentSettings, TableEnvironment, TableDescriptor


def jvm_pid():
    """The JVM this Python process started (PyFlink's gateway)."""
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        rest = stat.rsplit(") ", 1)[1].split()
        if int(rest[1]) == me and "java" in stat.split(") ")[0]:
            return int(d)
    raise SystemExit("could not find Flink's JVM among this process's children")


def cpu_seconds(pid):
    rest = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def quoted(sql):
    """Flink 2's parser takes `dateTime` for a keyword: quote it."""
    return re.sub(r"(?<![`\w])dateTime(?![`\w])", "`dateTime`", sql)


def flink_ddl(ddl, path):
    """Weir's Kafka-table DDL as a Flink filesystem table over `path`."""
    head = re.split(r"\)\s*DISTRIBUTED", ddl, maxsplit=1)[0]
    return quoted(f"{head}) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')")


def main():
    cfg = json.load(open(sys.argv[1]))
    settings = EnvironmentSettings.in_streaming_mode()
    tenv = TableEnvironment.create(settings)
    tenv.get_config().set("parallelism.default", "1")
    tenv.get_config().set("table.exec.resource.default-parallelism", "1")
    for ddl in cfg["tables"]:
        name = re.match(r"\s*CREATE TABLE (\w+)", ddl).group(1)
        tenv.execute_sql(flink_ddl(ddl, os.path.join(cfg["dir"], f"{name}.json")))
    pid = jvm_pid()
    runs = []
    if cfg.get("warmup"):
        runs.append(("warmup", cfg["queries"][cfg["warmup"]]))
    runs += list(cfg["queries"].items())
    for name, sql in runs:
        c0, t0 = cpu_seconds(pid), time.time()
        try:
            tenv.sql_query(quoted(sql)).execute_insert(
                TableDescriptor.for_connector("blackhole").build()
            ).wait()
            err = None
        except Exception as e:  # a query Flink refuses: say so, go on
            err = str(e).splitlines()[0][:300]
        t1, c1 = time.time(), cpu_seconds(pid)
        print(json.dumps({"query": name, "wall": t1 - t0, "cpu": c1 - c0, "error": err}), flush=True)


main()
