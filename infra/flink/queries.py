"""Apache Flink 2.3 runs the conformance corpus's query cases and writes what it emitted.

    python3 infra/flink/queries.py [STEM ...]           # (re)write compute-pool/tests/sql/<stem>.flink.json
    python3 infra/flink/queries.py --check [STEM ...]   # fail if Flink now answers differently
    python3 infra/flink/queries.py --reclassify STEM... # re-apply the rules below to stored answers
    python3 infra/flink/queries.py STEM::CASE ...       # run only these cases again

Each case of compute-pool/tests/sql/<stem>.yaml runs on Flink (PyPI
apache-flink, installed once into ~/.cache/weir/tools/flink; streaming mode,
parallelism 1, `pipeline.auto-watermark-interval` 0 so that every record
moves the watermark, as Weir's corpus runner does): each table is a JSON
file of the case's records, in their order, and the query's columns are
cast to STRING (the text Weir's results API writes). Flink's changelog
(row kinds and values) is stored per case; so is its refusal when it
refuses the query. The test `conformance` compares Weir with the stored
changelog (family `flink`), so the README's test command needs no Flink.

A case Flink cannot run as written is stored with the reason and not
compared: input that is not JSON values (raw bytes, headers), processing
time, several partitions, `$rowtime` or metadata columns (Kafka's),
upsert or retract tables, Weir-only properties. A file source would end
with a final watermark that fires every window still open, where Weir's
corpus input is unbounded: the files are read as monitored directories,
which never end, and a case's changelog is what Flink emitted until it
has been quiet for WEIR_FLINK_QUIET seconds (default 2).
"""
import json, os, re, sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(ROOT, "compute-pool", "tests", "sql")
sys.path.insert(0, HERE)
from functions import in_flink  # noqa: E402


def translate(ddl):
    """A Weir CREATE TABLE as a Flink one over a JSON file, or why not."""
    if re.search(r"\bMETADATA\b|\$rowtime|PRIMARY\s+KEY", ddl, re.I):
        return None, "a metadata column, $rowtime or a primary key (a Kafka or upsert table)"
    opts = dict(re.findall(r"'([^']+)'\s*=\s*'([^']*)'", ddl.split(" WITH ", 1)[1])) if " WITH " in ddl else {}
    if opts.get("value.format", "json") != "json" or opts.get("changelog.mode", "append") != "append":
        return None, "a table that is not append-only JSON"
    weir_only = {"late-handling.mode", "error-handling.mode", "scan.bounded.mode", "key.fields"}
    if weir_only & set(opts):
        return None, "a table option of Kafka tables (" + ", ".join(sorted(weir_only & set(opts))) + ")"
    parts = re.split(r"\)\s*(?:DISTRIBUTED|WITH|COMMENT)\b", ddl, maxsplit=1)
    body = parts[0] + ")" if len(parts) > 1 else ddl
    if "LIKE" in ddl.upper().split(")")[-1]:
        return None, "CREATE TABLE ... LIKE"
    m = re.match(r"\s*CREATE\s+TABLE\s+(`?[\w$]+`?)", body, re.I)
    if not m:
        return None, "not a CREATE TABLE"
    return (m.group(1).strip("`"), body), None


def runnable(case):
    """The case as Flink runs it, or why it cannot."""
    if any(k not in ("sql.local-time-zone",) for k in case.get("properties", {})):
        return None, "a Weir property"
    if "/*+" in case["sql"] or re.search(r"`\s*\.\s*`", case["sql"]):
        return None, "a hint with Kafka options, or a name qualified by Weir's catalog and database"
    if re.search(r"\$rowtime|PROCTIME\(|CURRENT_WATERMARK|\bINSERT\b", case["sql"], re.I):
        return None, "$rowtime, processing time, CURRENT_WATERMARK or INSERT"
    tables = []
    for ddl in case.get("tables", []):
        t, why = translate(ddl)
        if why:
            return None, why
        tables.append(t)
    names = [n for n, _ in tables]
    inputs = {n: [] for n in names}
    # Flink's JSON format reads a TIMESTAMP_LTZ as an instant ('...Z').
    ltz = {n: set(re.findall(r"`?(\w+)`?\s+TIMESTAMP_LTZ", body, re.I)) for n, body in tables}
    for rec in case.get("input", []):
        if set(rec) - {"t", "v", "ts"}:
            return None, "input with raw bytes, headers, partitions or processing time"
        t = rec.get("t") or (names[0] if len(names) == 1 else None)
        if t not in inputs:
            return None, "input for a table the case does not declare"
        v = dict(rec["v"]) if isinstance(rec["v"], dict) else rec["v"]
        if isinstance(v, dict):
            for c in ltz[t]:
                if isinstance(v.get(c), str) and not v[c].endswith("Z"):
                    v[c] = v[c] + "Z"
        inputs[t].append(v)
    with_names = re.findall(r"(?:\bWITH|,)\s+(\w+)\s+AS\s*\(", case["sql"], re.I)
    return {
        "tables": tables,
        "inputs": inputs,
        "sql": case["sql"],
        "zone": case.get("properties", {}).get("sql.local-time-zone", "UTC"),
        # Several sources (or one read twice, directly or through a WITH
        # query, or a table joined with VALUES) interleave as Flink reads
        # them, in no defined order: only the final result compares.
        "compare": "final" if len([n for n in names if inputs[n]]) > 1 or any(
            len(re.findall(rf"\b{re.escape(n)}\b", case["sql"])) > 1 for n in names) or any(
            len(re.findall(rf"\b{re.escape(n)}\b", case["sql"])) > 2 for n in with_names)
            or re.search(r"\bJOIN\s*\(\s*VALUES\b", case["sql"], re.I) else "changelog",
    }, None


# Runs inside Flink's Python: reads cases on stdin, writes answers on stdout.
RUN = r'''
import json, os, sys, tempfile, threading, time
from pyflink.table import EnvironmentSettings, TableEnvironment
from pyflink.common import RowKind
KIND = {RowKind.INSERT: "+I", RowKind.UPDATE_BEFORE: "-U", RowKind.UPDATE_AFTER: "+U", RowKind.DELETE: "-D"}
QUIET, LONGEST = float(os.environ.get("WEIR_FLINK_QUIET", "2")), 60
def env(zone):
    t = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    c = t.get_config()
    c.set("parallelism.default", "1")
    c.set("pipeline.auto-watermark-interval", "0")
    c.set("table.local-time-zone", zone)
    return t
def run(case):
    t = env(case["zone"])
    d = tempfile.mkdtemp()
    for (name, body) in case["tables"]:
        path = os.path.join(d, name)
        os.makedirs(path)
        with open(os.path.join(path, "part.json"), "w") as f:
            for r in case["inputs"].get(name, []):
                f.write(json.dumps(r) + "\n")
        # A monitored directory never ends: no final watermark fires the
        # windows still open, as Weir's unbounded corpus input does not.
        t.execute_sql(body + f" WITH ('connector' = 'filesystem', 'path' = '{path}', "
                      "'format' = 'json', 'source.monitor-interval' = '1 h')")
    q = t.sql_query(case["sql"])
    names = q.get_schema().get_field_names()
    cols = ", ".join("CAST(`%s` AS STRING)" % n.replace("`", "``") for n in names)
    t.create_temporary_view("__q", q)
    result = t.execute_sql(f"SELECT {cols} FROM __q")
    out, last, failure = [], [time.time()], []
    def read():
        try:
            with result.collect() as rows:
                for r in rows:
                    out.append([KIND[r.get_row_kind()], [None if v is None else str(v) for v in r]])
                    last[0] = time.time()
        except Exception as ex:
            failure.append(ex)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.time()
    while reader.is_alive() and time.time() - last[0] < QUIET and time.time() - start < LONGEST:
        time.sleep(0.2)
    try:
        result.get_job_client().cancel().result()
    except Exception:
        pass
    reader.join(10)
    if failure and not out and "cancel" not in str(failure[0]).lower():
        raise failure[0]
    return names, list(out)
answers = []
for c in json.load(sys.stdin):
    try:
        names, rows = run(c["case"])
        answers.append({"name": c["name"], "columns": names, "rows": rows})
    except Exception as ex:
        lines = [l.strip() for l in str(ex).split("\n") if "Exception:" in l]
        msg = lines[0].split("Exception:", 1)[1].strip() if lines else str(ex).strip().split("\n")[0]
        answers.append({"name": c["name"], "error": msg[:400]})
    print(f"{len(answers)} {c['name']}", file=sys.stderr)
json.dump(answers, sys.stdout)
'''


def run(cases):
    return in_flink(RUN, cases)


def answers_for(stem, only=None):
    cases = yaml.safe_load(open(os.path.join(CORPUS, stem + ".yaml"))) or []
    out, todo = {}, []
    path = os.path.join(CORPUS, stem + ".flink.json")
    kept = json.load(open(path)) if only and os.path.exists(path) else {}
    for c in cases:
        if only and c["name"] not in only and c["name"] in kept:
            out[c["name"]] = kept[c["name"]]
            continue
        spec, why = runnable(c)
        if why:
            out[c["name"]] = {"skipped": why}
        else:
            todo.append({"name": c["name"], "case": spec})
    for a in run(todo):
        name = a.pop("name")
        spec = next(t["case"] for t in todo if t["name"] == name)
        out[name] = {**a, "compare": spec["compare"]}
    return {c["name"]: out[c["name"]] for c in cases}


def reclassify(stem):
    """The stored answers of `stem` with today's rules of what runs and
    how it compares, without running Flink again."""
    path = os.path.join(CORPUS, stem + ".flink.json")
    stored = json.load(open(path))
    for c in yaml.safe_load(open(os.path.join(CORPUS, stem + ".yaml"))) or []:
        spec, why = runnable(c)
        if why:
            stored[c["name"]] = {"skipped": why}
        elif c["name"] in stored and "skipped" not in stored[c["name"]]:
            stored[c["name"]]["compare"] = spec["compare"]
    with open(path, "w") as f:
        json.dump(stored, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    unknown = [a for a in sys.argv[1:] if a.startswith("-") and a not in ("--check", "--reclassify")]
    if unknown:
        # Not a rerun of the whole corpus by mistake (it rewrites every stem).
        sys.exit(f"unknown option {unknown[0]}; see the top of {__file__}")
    if "--reclassify" in sys.argv:
        for stem in args:
            reclassify(stem)
        return
    stems = args or sorted(f[:-5] for f in os.listdir(CORPUS) if f.endswith(".yaml"))
    failed = False
    only = {}
    for a in args:
        if "::" in a:
            stem, case = a.split("::", 1)
            only.setdefault(stem, set()).add(case)
    if only:
        # STEM::CASE arguments: those cases run again, the others kept.
        stems = sorted(only)
    for stem in stems:
        path = os.path.join(CORPUS, stem + ".flink.json")
        got = answers_for(stem, only.get(stem))
        ran = sum(1 for a in got.values() if "skipped" not in a)
        if "--check" in sys.argv:
            stored = json.load(open(path)) if os.path.exists(path) else {}
            if stored != got:
                failed = True
                for k in sorted(set(stored) | set(got)):
                    if stored.get(k) != got.get(k):
                        print(f"{stem}::{k}\n  stored: {stored.get(k)}\n  flink:  {got.get(k)}")
            continue
        with open(path, "w") as f:
            json.dump(got, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{stem}: {ran} of {len(got)} cases run on Flink -> {os.path.relpath(path, ROOT)}")
    if failed:
        sys.exit("the stored answers differ from Flink's")


if __name__ == "__main__":
    main()
