"""What the client checks share: reading `weir dev`'s dev.env, naming each
check as it passes or stopping at the first that fails, and connecting
Confluent's DB-API driver to Weir."""

import sys

import confluent_sql


def env_file(path):
    """The `KEY=value` pairs of a dev.env written by `weir dev`."""
    env = {}
    for line in open(path):
        for part in line.split():
            if "=" in part:
                k, v = part.split("=", 1)
                env[k] = v
    return env


class Checks:
    def __init__(self):
        self.passed = 0

    def __call__(self, name, cond, detail=""):
        if not cond:
            print(f"FAIL {name}: {detail}")
            sys.exit(1)
        self.passed += 1
        print(f"ok   {name}")


def connect(env, database=None):
    """The driver, pointed at Weir with the dev.env's key, as a user would."""
    kwargs = dict(
        flink_api_key=env["WEIR_API_KEY"],
        flink_api_secret=env["WEIR_API_SECRET"],
        organization_id=env["WEIR_ORG"],
        environment_id=env["WEIR_ENV"],
        compute_pool_id=env["WEIR_COMPUTE_POOL"],
        endpoint=env["WEIR_URL"],
    )
    if database is not None:
        kwargs["database"] = database
    return confluent_sql.connect(**kwargs)


def first_database(env):
    """The name of the first database (Kafka cluster) Weir lists."""
    conn = connect(env)
    cur = conn.cursor()
    cur.execute("SHOW DATABASES")
    name = cur.fetchall()[0][0]
    conn.close()
    return name
