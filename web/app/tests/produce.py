"""Produces records for the workspace's browser tests with Confluent's
Python client (a client independent of Weir): JSON lines on stdin, each
`{"topic": ..., "value": {...}}` (or `"raw": "text"` for bytes that are not
JSON), or with `--rate N --seconds S --topic T
--keys K` that many records a second of `{"k": "key-i", "v": i}`.
Prints how many records the broker acknowledged.

    python produce.py BOOTSTRAP [--rate N --seconds S --topic T --keys K]
"""
import json, sys, time

from confluent_kafka import Producer

boot = sys.argv[1]
args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
p = Producer({"bootstrap.servers": boot, "linger.ms": 5})
acked = 0


def done(err, _msg):
    global acked
    if err is None:
        acked += 1
    else:
        print(f"not delivered: {err}", file=sys.stderr)


if "--rate" in args:
    rate, seconds = int(args["--rate"]), float(args["--seconds"])
    topic, keys = args["--topic"], int(args.get("--keys", "1000"))
    start = time.time()
    sent = 0
    while time.time() - start < seconds:
        due = int((time.time() - start) * rate)
        while sent < due:
            p.produce(topic, value=json.dumps({"k": f"key-{sent % keys}", "v": sent}), on_delivery=done)
            sent += 1
        p.poll(0)
        time.sleep(0.005)
else:
    for line in sys.stdin:
        if line.strip():
            r = json.loads(line)
            value = r["raw"].encode() if "raw" in r else json.dumps(r["value"])
            p.produce(r["topic"], value=value, on_delivery=done)
if p.flush(30) != 0:
    sys.exit("some records were not acknowledged in 30 s")
print(acked)
