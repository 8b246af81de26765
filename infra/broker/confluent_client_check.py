"""Confluent's Python client (confluent-kafka, librdkafka underneath)
against a Kafka-protocol broker: topics, an idempotent producer with keys
and headers, a consumer group of two members sharing partitions, commits,
watermarks and offsets by time. Exits non-zero, saying what failed.

    python confluent_client_check.py HOST:PORT
"""
import sys, time, uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

boot = sys.argv[1]
topic = f"confluent-check-{uuid.uuid4().hex[:8]}"
group = f"g-{uuid.uuid4().hex[:8]}"
admin = AdminClient({"bootstrap.servers": boot})
for f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
    f.result(10)
assert topic in admin.list_topics(timeout=10).topics, "the new topic is listed"

p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "linger.ms": 5})
start_ms = int(time.time() * 1000)
for i in range(3000):
    p.produce(topic, key=str(i), value=f'{{"id": {i}}}', headers=[("source", b"check")])
assert p.flush(30) == 0, "every record acknowledged"


def member():
    c = Consumer({"bootstrap.servers": boot, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    return c


members = [member(), member()]
seen = [[], []]
deadline = time.time() + 60
while sum(map(len, seen)) < 3000 and time.time() < deadline:
    for i, c in enumerate(members):
        for m in c.consume(500, 0.05):
            assert not m.error(), m.error()
            assert m.headers() == [("source", b"check")], m.headers()
            seen[i].append(int(m.key()))
ids = sorted(seen[0] + seen[1])
assert ids == list(range(3000)), f"each record once to the group: {len(ids)} read, {len(set(ids))} distinct"
assert seen[0] and seen[1], "both members were given partitions"
for c in members:
    c.commit(asynchronous=False)
committed = members[0].committed([TopicPartition(topic, i) for i in range(3)], timeout=10)
lo_hi = [members[0].get_watermark_offsets(TopicPartition(topic, i), timeout=10) for i in range(3)]
assert [tp.offset for tp in committed] == [hi for _, hi in lo_hi], (committed, lo_hi)
assert sum(hi - lo for lo, hi in lo_hi) == 3000, lo_hi
found = members[0].offsets_for_times([TopicPartition(topic, 0, start_ms - 60_000)], timeout=10)
assert found[0].offset == 0, found
for c in members:
    c.close()
for f in admin.delete_topics([topic]).values():
    f.result(10)
assert topic not in admin.list_topics(timeout=10).topics, "the deleted topic is gone"
print(f"confluent-kafka against {boot}: ok")
