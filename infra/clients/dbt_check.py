"""dbt-confluent (dbt-core with Confluent's adapter, PyPI) against a running Weir.

Usage: python dbt_check.py <dev.env written by `weir dev`> <dbt executable>

Runs the project in infra/clients/dbt_project (a copy of it, so that dbt's
target/ and logs/ stay out of the repository): its source table is created
and filled through Confluent's DB-API driver (the one dbt-confluent ships
with), then `dbt run`, `dbt test`, a test that must fail once a bad row
streams through, and a second `dbt run` that finds everything in place.
Exits non-zero, naming the check, on the first failure.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_sql import ExecutionMode
from weir_env import Checks, connect, env_file, first_database

check = Checks()


def main():
    env = env_file(sys.argv[1])
    dbt = sys.argv[2]
    database = first_database(env)
    conn = connect(env, database)

    def ddl(sql):
        c = conn.cursor(mode=ExecutionMode.SNAPSHOT_DDL)
        c.execute(sql)
        return c.statement.phase.name

    def count(sql):
        c = conn.cursor()
        c.execute(sql)
        return c.fetchall()[0][0]

    check(
        "the source table is created",
        ddl("CREATE TABLE orders (id BIGINT, who STRING, amount DOUBLE) WITH ('value.format' = 'json')")
        == "COMPLETED",
    )
    rows = ", ".join(f"({i}, 'c{i % 4}', {i * 2.5})" for i in range(20))
    check("the source rows are written", ddl(f"INSERT INTO orders VALUES {rows}") == "COMPLETED")

    project = tempfile.mkdtemp(prefix="weir-dbt-")
    shutil.copytree(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "dbt_project"),
        project,
        dirs_exist_ok=True,
    )
    run_env = dict(os.environ, **env, WEIR_DATABASE=database, DBT_SEND_ANONYMOUS_USAGE_STATS="false")

    def dbt_cmd(*args):
        p = subprocess.run(
            [dbt, *args, "--profiles-dir", project, "--project-dir", project],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return p.returncode, p.stdout + p.stderr

    code, out = dbt_cmd("run")
    check("dbt run builds the view and the streaming table", code == 0, out[-3000:])
    # ids 5..19 have amount > 10.
    want = 15
    deadline = time.time() + 60
    got = None
    while time.time() < deadline:
        got = count("SELECT COUNT(*) FROM paid_orders_topic")
        if got == want:
            break
        time.sleep(0.5)
    check("the streaming table holds the view's rows", got == want, got)
    check("the view reads its query", count("SELECT COUNT(*) FROM paid_orders WHERE who LIKE 'C%'") == want)

    code, out = dbt_cmd("test")
    check("dbt test passes on good data", code == 0, out[-3000:])

    # A row the singular test forbids streams through the running INSERT.
    ddl("INSERT INTO orders VALUES (100, 'big', 5000.0)")
    deadline = time.time() + 60
    while time.time() < deadline and count("SELECT COUNT(*) FROM paid_orders_topic WHERE amount > 1000") == 0:
        time.sleep(0.5)
    code, out = dbt_cmd("test")
    check(
        "dbt test fails once a bad row reaches the streaming table",
        code != 0 and "no_order_above_a_thousand" in out,
        out[-3000:],
    )

    code, out = dbt_cmd("run")
    check(
        "a second dbt run finds everything in place",
        code == 0 and "already exists. Skipping" in out,
        out[-3000:],
    )
    shutil.rmtree(project, ignore_errors=True)
    conn.close()
    print(f"dbt-confluent: {check.passed} checks passed")


if __name__ == "__main__":
    main()
