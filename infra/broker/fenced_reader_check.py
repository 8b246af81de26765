#!/usr/bin/env python3
"""Does a read_committed reader that waited at a killed transactional
writer's open transaction still see what is written after the fence?

    python3 infra/broker/fenced_reader_check.py BOOTSTRAP [--same-id]

A child process opens a transaction under id T, writes a record into each
of 4 partitions (after two committed transactions) and is killed. A
read_committed consumer reads up to the open transaction and waits there.
Then T is fenced (`init_transactions` under T) and three transactions
are committed: by default under a new id (what Weir does since it met the
problem), with --same-id under T itself (the same producer id). Prints
what the waiting reader got and its positions, and exits 1 when it skipped
committed records. On noida-db, --same-id loses the new records (the
reader's position jumps past them; a fresh consumer reads them); a new id
does not. Needs confluent-kafka (the test command installs it into
~/.cache/weir/tools/confluent).
"""
import subprocess, sys, time, uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N = 4


def main():
    bs = sys.argv[1]
    same_id = "--same-id" in sys.argv
    topic = "fence-" + uuid.uuid4().hex[:8]
    tid = "tid-" + topic
    admin = AdminClient({"bootstrap.servers": bs})  # kept alive until the topic is made
    admin.create_topics([NewTopic(topic, N, 1)])[topic].result()
    child = subprocess.Popen([sys.executable, "-c", f"""
from confluent_kafka import Producer
import time
p = Producer({{'bootstrap.servers': '{bs}', 'transactional.id': '{tid}', 'transaction.timeout.ms': 60000}})
p.init_transactions()
for i in range(2):
    p.begin_transaction()
    for k in range({N}):
        p.produce('{topic}', b'old%d' % i, partition=k)
    p.commit_transaction()
p.begin_transaction()
for k in range({N}):
    p.produce('{topic}', b'zombie', partition=k)
p.flush()
print('sent', flush=True)
time.sleep(100)
"""], stdout=subprocess.PIPE)
    child.stdout.readline()
    child.kill()
    child.wait()
    c = Consumer({"bootstrap.servers": bs, "group.id": "g" + topic, "isolation.level": "read_committed",
                  "fetch.wait.max.ms": 50})
    c.assign([TopicPartition(topic, k, 0) for k in range(N)])
    got = []

    def drain(seconds):
        t = time.time()
        while time.time() - t < seconds:
            m = c.poll(0.2)
            if m and not m.error():
                got.append(m.value())

    drain(2)
    fence = Producer({"bootstrap.servers": bs, "transactional.id": tid, "transaction.timeout.ms": 60000})
    fence.init_transactions()
    writer = fence if same_id else Producer(
        {"bootstrap.servers": bs, "transactional.id": tid + ".new", "transaction.timeout.ms": 60000})
    if not same_id:
        writer.init_transactions()
    for i in range(3):
        writer.begin_transaction()
        for k in range(N):
            writer.produce(topic, f"new{i}".encode(), partition=k)
        writer.commit_transaction()
    drain(6)
    new = sum(1 for v in got if v.startswith(b"new"))
    pos = [(p.partition, p.offset) for p in c.position([TopicPartition(topic, k) for k in range(N)])]
    print(f"{'same' if same_id else 'a new'} transactional id after the fence: "
          f"the waiting reader got {new} of {3 * N} new records; positions {pos}")
    sys.exit(0 if new == 3 * N else 1)


if __name__ == "__main__":
    main()
