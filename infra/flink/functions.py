"""Apache Flink 2.3 writes the expectations of Weir's function corpus.

    python3 infra/flink/functions.py            # (re)write compute-pool/tests/flink/functions.flink.json
    python3 infra/flink/functions.py --check    # fail if Flink now answers differently
    python3 infra/flink/functions.py --new      # ask Flink only about lines without a stored answer

Each expression of compute-pool/tests/flink/functions.sql is evaluated by
Flink (PyPI apache-flink, installed once into ~/.cache/weir/tools/flink;
batch mode, parallelism 1) as `SELECT CAST(e AS STRING), TYPEOF(e)`: the
text of its value as Flink casts it to a string (the form Weir's results
API writes), and its type. A refusal is kept as Flink's error. The test
`conformance` (family `flink_functions`) compares Weir with the stored
answers, so the README's test command needs no Flink.
"""
import json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(ROOT, "compute-pool", "tests", "flink", "functions.sql")
STORED = os.path.join(ROOT, "compute-pool", "tests", "flink", "functions.flink.json")
TOOLS = os.environ.get("WEIR_TOOLS", os.path.expanduser("~/.cache/weir/tools"))
FLINK_VERSION = "2.3.0"


def flink_python():
    venv = os.path.join(TOOLS, "flink")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".installed-" + FLINK_VERSION)):
        print(f"installing apache-flink {FLINK_VERSION} into {venv} (first run only, about a minute)…",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"apache-flink=={FLINK_VERSION}"], check=True)
        open(os.path.join(venv, ".installed-" + FLINK_VERSION), "w").close()
    return py


def cases():
    """(family, expression, differs) of every line of the corpus."""
    family, out = None, []
    for n, line in enumerate(open(CORPUS), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("--"):
            continue
        if line.startswith("# "):
            family = line[2:].strip()
            continue
        expr, note = line, {}
        for mark in ("differs", "gap"):
            if f"-- {mark}:" in expr:
                expr, why = expr.split(f"-- {mark}:", 1)
                note = {mark: why.strip()}
        out.append({"family": family, "expr": expr.strip(), "line": n, **note})
    return out


# Runs inside Flink's Python: reads cases on stdin, writes answers on stdout.
EVALUATE = r'''
import json, sys
from pyflink.table import EnvironmentSettings, TableEnvironment
t = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
t.get_config().set("parallelism.default", "1")
t.get_config().set("table.local-time-zone", "UTC")
def run(cs):
    # Several expressions in one job (a job per expression starts a mini
    # cluster each time, and hundreds of them exhaust the JVM's heap).
    items = ", ".join(f"CAST({c['expr']} AS STRING), TYPEOF({c['expr']})" for c in cs)
    with t.execute_sql(f"SELECT {items}").collect() as rows:
        row = list(rows)[0]
    return [{**c, "value": row[2 * i], "type": row[2 * i + 1]} for i, c in enumerate(cs)]
def one(c):
    try:
        return run([c])[0]
    except Exception as ex:
        lines = [l.strip() for l in str(ex).split("\n") if "Exception:" in l]
        msg = lines[0].split("Exception:", 1)[1].strip() if lines else str(ex).strip().split("\n")[0]
        return {**c, "error": msg[:300]}
out = []
cases = json.load(sys.stdin)
for i in range(0, len(cases), 20):
    chunk = cases[i:i + 20]
    try:
        out.extend(run(chunk))
    except Exception:
        # One of them fails: each alone, so that the others keep their answer.
        out.extend(one(c) for c in chunk)
    print(f"{len(out)} of {len(cases)}", file=sys.stderr)
json.dump(out, sys.stdout)
'''


def in_flink(code, payload):
    """Runs `code` in Flink's Python with `payload` as JSON on stdin; its
    JSON answer on stdout."""
    r = subprocess.run([flink_python(), "-c", code], input=json.dumps(payload),
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"Flink failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def evaluate(all_cases):
    return in_flink(EVALUATE, all_cases)


def key(c):
    """What Flink answered, without the corpus's own marks."""
    return {k: v for k, v in c.items() if k not in ("line", "differs", "gap")}


def main():
    unknown = [a for a in sys.argv[1:] if a not in ("--check", "--new")]
    if unknown:
        sys.exit(f"unknown argument {unknown[0]}; see the top of {__file__}")
    if "--new" in sys.argv:
        # Keep every stored answer whose expression is still in the corpus;
        # ask Flink about the rest (a probe of new lines takes a minute, not
        # the whole corpus's ten).
        stored = {(c["family"], c["expr"]): c for c in json.load(open(STORED))}
        todo = [c for c in cases() if (c["family"], c["expr"]) not in stored]
        print(f"asking Flink about {len(todo)} new expressions", file=sys.stderr)
        fresh = {(c["family"], c["expr"]): key(c) for c in evaluate(todo)} if todo else {}
        answers = [stored.get((c["family"], c["expr"])) or fresh[(c["family"], c["expr"])]
                   for c in cases()]
    else:
        answers = evaluate(cases())
    if "--check" in sys.argv:
        stored = json.load(open(STORED))
        a, b = [key(c) for c in stored], [key(c) for c in answers]
        if a != b:
            for x, y in zip(a, b):
                if x != y:
                    print(f"stored: {x}\nflink:  {y}")
            sys.exit("the stored expectations differ from Flink's answers")
        print(f"{len(answers)} expectations equal Flink's answers")
        return
    with open(STORED, "w") as f:
        # The marks stay in functions.sql, where the test reads them.
        json.dump([key(c) for c in answers], f, indent=1, ensure_ascii=False)
        f.write("\n")
    errors = sum(1 for c in answers if "error" in c)
    print(f"wrote {len(answers)} expectations ({errors} refused by Flink) to {STORED}")


if __name__ == "__main__":
    main()
