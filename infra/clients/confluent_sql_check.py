"""Confluent's DB-API driver (`confluent-sql`, PyPI) against a running Weir.

Usage: python confluent_sql_check.py <dev.env written by `weir dev`>

Every check uses only the driver's public API, as a user's script or
notebook would after changing its endpoint to Weir. Exits non-zero, naming
the check, on the first failure.
"""

import datetime
import decimal
import sys
import time
import uuid

import confluent_sql
from confluent_sql import ExecutionMode
from weir_env import Checks, connect, env_file


check = Checks()


def main():
    env = env_file(sys.argv[1])
    # The database is a Kafka cluster; find its name as a user would.
    conn = connect(env)
    cur = conn.cursor()
    cur.execute("SHOW DATABASES")
    databases = [r[0] for r in cur.fetchall()]
    check("SHOW DATABASES lists the cluster", len(databases) >= 1, databases)
    conn.close()
    conn = connect(env, databases[0])

    table = "orders_" + uuid.uuid4().hex[:8]
    ddl = conn.cursor(mode=ExecutionMode.SNAPSHOT_DDL)
    ddl.execute(
        f"CREATE TABLE `{table}` (id BIGINT, who STRING, amount DOUBLE) "
        "DISTRIBUTED BY HASH(id) INTO 2 BUCKETS WITH ('value.format' = 'json')"
    )
    check("CREATE TABLE completes", ddl.statement.phase.name == "COMPLETED", ddl.statement.phase)

    cur = conn.cursor()
    cur.execute("SHOW TABLES")
    tables = [r[0] for r in cur.fetchall()]
    check("SHOW TABLES lists the new table", table in tables, tables)

    cur = conn.cursor()
    cur.execute(f"DESCRIBE `{table}`")
    desc = cur.fetchall()
    check(
        "DESCRIBE gives names, types and nullability as Python values",
        [(r[0], r[1], r[2]) for r in desc[:3]]
        == [("id", "BIGINT", True), ("who", "STRING", True), ("amount", "DOUBLE", True)],
        desc,
    )

    # Rows go in through SQL, as a dbt seed or a notebook would.
    ins = conn.cursor(mode=ExecutionMode.SNAPSHOT_DDL)
    values = ", ".join(f"({i}, '{['ann', 'bob', 'cy'][i % 3]}', {i * 1.5})" for i in range(30))
    ins.execute(f"INSERT INTO `{table}` VALUES {values}")
    check("INSERT INTO ... VALUES completes", ins.statement.phase.name == "COMPLETED", ins.statement.phase)

    # A snapshot query (the default cursor) reads what the topic holds.
    cur = conn.cursor()
    cur.execute(f"SELECT id, who, amount FROM `{table}` WHERE id < %s", (5,))
    rows = sorted(cur.fetchall())
    check(
        "a snapshot SELECT with a parameter returns typed rows",
        rows == [(i, ["ann", "bob", "cy"][i % 3], i * 1.5) for i in range(5)],
        rows,
    )
    check(
        "the cursor describes the columns",
        [d[0] for d in cur.description] == ["id", "who", "amount"],
        cur.description,
    )

    cur = conn.cursor()
    cur.execute(f"SELECT who, COUNT(*) AS n FROM `{table}` GROUP BY who")
    counts = dict(cur.fetchall())
    check("a snapshot aggregation returns its final rows", counts == {"ann": 10, "bob": 10, "cy": 10}, counts)

    # Every type the driver converts, through the results format.
    cur = conn.cursor()
    cur.execute(
        "SELECT TRUE AS b, CAST(7 AS TINYINT) AS ti, CAST(300 AS SMALLINT) AS si, CAST(101 AS INT) AS i, "
        "CAST(9007199254740993 AS BIGINT) AS bi, CAST(0.5 AS FLOAT) AS f, CAST(1e10 AS DOUBLE) AS d, "
        "CAST(12.5 AS DECIMAL(10, 2)) AS dec, 'x' AS s, CAST('AB' AS BYTES) AS by, "
        "DATE '2024-02-29' AS dt, CAST('2024-02-29 13:14:15.120' AS TIMESTAMP(3)) AS ts, "
        "TO_TIMESTAMP_LTZ(0, 3) AS ltz, ARRAY[1, 2] AS arr, MAP(ARRAY['k'], ARRAY[1]) AS m, "
        "ROW(1, 'a') AS r, CAST(NULL AS INT) AS nothing"
    )
    (row,) = cur.fetchall()
    want = (
        True,
        7,
        300,
        101,
        9007199254740993,
        0.5,
        1e10,
        decimal.Decimal("12.50"),
        "x",
        b"AB",
        datetime.date(2024, 2, 29),
        datetime.datetime(2024, 2, 29, 13, 14, 15, 120000),
        datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc),
        [1, 2],
        {"k": 1},
        None,  # compared below
        None,
    )
    for i, (got, w) in enumerate(zip(row, want)):
        if i == 15:
            check("ROW arrives as a tuple of its fields", tuple(got) == (1, "a"), got)
            continue
        check(f"column {cur.description[i][0]} converts", got == w and type(got) is type(w), (got, w))

    # Streaming: an unbounded query, its changelog, stop and delete.
    stream = conn.streaming_cursor()
    stream.execute(f"SELECT who, COUNT(*) AS n FROM `{table}` GROUP BY who")
    check("a streaming aggregation is a changelog", stream.returns_changelog)
    latest = {}
    deadline = time.time() + 60
    while latest != {"ann": 10, "bob": 10, "cy": 10} and time.time() < deadline:
        for op, r in stream.fetchmany(100):
            if op.name in ("INSERT", "UPDATE_AFTER"):
                latest[r[0]] = r[1]
        time.sleep(0.1)
    check("the changelog replays to the current counts", latest == {"ann": 10, "bob": 10, "cy": 10}, latest)
    name = stream.statement.name
    stopped = stream.stop_statement()
    check("stop_statement stops it (JSON Patch)", stopped.phase.name == "STOPPED", stopped.phase)
    stream.delete_statement()
    try:
        conn.get_statement(name)
        gone = False
    except confluent_sql.StatementNotFoundError:
        gone = True
    check("delete_statement deletes it", gone)

    listed = [s.name for s in conn.list_statements(page_size=2)]
    check("list_statements pages through every statement", len(listed) >= 5, listed)
    tagged = conn.cursor()
    tagged.execute("SELECT 1 AS one", statement_name="labelled-check", statement_labels=["weir-check"])
    check("a labelled statement runs", tagged.fetchall() == [(1,)])
    by_label = [s.name for s in conn.list_statements(label="weir-check")]
    check("list_statements finds statements by label", by_label == ["labelled-check"], by_label)

    # Dry runs are validated and planned, answered at once, and not kept.
    dry = conn.dry_run_statement(f"SELECT id, who FROM `{table}`")
    check(
        "a dry run answers with the result schema",
        [c.name for c in dry.schema.columns] == ["id", "who"],
        dry.schema,
    )
    conn.dry_run_statement("CREATE TABLE never_made (x INT)")
    cur = conn.cursor()
    cur.execute("SHOW TABLES")
    check("a dry-run CREATE TABLE creates nothing", "never_made" not in [r[0] for r in cur.fetchall()])
    try:
        conn.dry_run_statement("SELECT nope FROM nowhere_at_all")
        err = None
    except confluent_sql.OperationalError as e:
        err = str(e)
    check("a dry run of bad SQL is an OperationalError", err is not None and "nowhere_at_all" in err, err)

    # Errors map to the driver's exception classes, with the server's detail.
    cur = conn.cursor()
    try:
        cur.execute("SELECT id FROM\nnowhere_at_all")
        err = None
    except confluent_sql.OperationalError as e:
        err = str(e)
    check("an unknown table is an OperationalError naming it", err is not None and "nowhere_at_all" in err, err)
    try:
        cur.execute("SELEC 1")
        err = None
    except confluent_sql.OperationalError as e:
        err = str(e)
    check("a syntax error is an OperationalError with its position", err is not None and "line 1" in err, err)

    conn.close()
    print(f"confluent-sql: {check.passed} checks passed")


if __name__ == "__main__":
    main()
