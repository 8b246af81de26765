"""Confluent's own Python client and serializers (confluent-kafka with its
SchemaRegistryClient, AvroSerializer/AvroDeserializer and
JSONSerializer/JSONDeserializer) against `weir dev`'s built-in schema
registry and Weir's tables: registration, lookups, compatibility answers and
error codes; records Confluent produced read by Weir as typed tables with
every type of the mapping; records Weir wrote read back by Confluent's
deserializers; one running statement reading a subject across a
compatible evolution. Stops at the first check that fails, saying what.

    python schema_registry_check.py path/to/dev.env path/to/weir
"""
import datetime
import decimal
import json
import os
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

env = {}
for part in open(sys.argv[1]).read().split():
    if "=" in part:
        k, v = part.split("=", 1)
        env[k] = v
weir = sys.argv[2]
run = uuid.uuid4().hex[:6]
passed = 0


def check(name, cond, detail=""):
    global passed
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok   {name}")


def error_code(f):
    try:
        f()
    except SchemaRegistryError as e:
        return e.error_code
    return None


def sql(statement, timeout=60):
    """A bounded statement's rows through the `weir` CLI, as JSON rows."""
    out = subprocess.run([weir, "sql", "--output", "json", statement], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"weir sql failed: {out.stderr.strip()} {out.stdout.strip()}")
    return [json.loads(line)["row"] for line in out.stdout.splitlines() if line.startswith("{")]


def wait_for(what, f, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = f()
            if last:
                return last
        except RuntimeError as e:
            last = e
        time.sleep(0.5)
    check(what, False, f"still {last!r} after {timeout} s")


def bounded(table):
    return f"SELECT * FROM `{table}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */"


def consume(topic, want, decode, timeout=60):
    """Up to `want` records of `topic` from the start, each as decode(msg)."""
    consumer = Consumer({"bootstrap.servers": env["WEIR_BOOTSTRAP"], "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    while len(got) < want and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(decode(m))
    consumer.close()
    return got


url = f"{env['WEIR_URL']}/schema-registry/{env['WEIR_ENV']}"
auth = f"{env['WEIR_API_KEY']}:{env['WEIR_API_SECRET']}"
sr = SchemaRegistryClient({"url": url, "basic.auth.user.info": auth})
producer = Producer({"bootstrap.servers": env["WEIR_BOOTSTRAP"]})

# ---- the registry API, as Confluent's client sees it -------------------------
subject = f"api_{run}-value"
v1 = json.dumps({"type": "record", "name": "User", "fields": [
    {"name": "id", "type": "int"}, {"name": "name", "type": "string"}]})
id1 = sr.register_schema(subject, Schema(v1, "AVRO"))
check("registering a schema returns an id", isinstance(id1, int) and id1 > 0, id1)
check("registering it again returns the same id", sr.register_schema(subject, Schema(v1, "AVRO")) == id1)
latest = sr.get_latest_version(subject)
check("the latest version is version 1 with that id", (latest.version, latest.schema_id) == (1, id1),
      (latest.version, latest.schema_id))
check("the schema by id is the one registered",
      json.loads(sr.get_schema(id1).schema_str) == json.loads(v1))
check("lookup finds the subject's version",
      sr.lookup_schema(subject, Schema(v1, "AVRO")).version == 1)
check("the subject is listed", subject in sr.get_subjects())
check("an unknown subject is 40401", error_code(lambda: sr.get_latest_version(f"nope_{run}")) == 40401)
check("an unknown version is 40402", error_code(lambda: sr.get_version(subject, 99)) == 40402)
check("an unknown schema id is 40403", error_code(lambda: sr.get_schema(987654321)) == 40403)
check("an invalid schema is 42201", error_code(
    lambda: sr.register_schema(subject, Schema('{"type": "record", "name": "x"}', "AVRO"))) == 42201)
v2_ok = json.dumps({"type": "record", "name": "User", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
    {"name": "email", "type": ["null", "string"], "default": None}]})
v2_bad = json.dumps({"type": "record", "name": "User", "fields": [
    {"name": "id", "type": "int"}, {"name": "name", "type": "string"}, {"name": "age", "type": "int"}]})
check("a compatible evolution tests compatible", sr.test_compatibility(subject, Schema(v2_ok, "AVRO")) is True)
check("a new required field tests incompatible",
      sr.test_compatibility(subject, Schema(v2_bad, "AVRO")) is False)
check("registering the incompatible schema is 409",
      error_code(lambda: sr.register_schema(subject, Schema(v2_bad, "AVRO"))) == 409)
sr.set_compatibility(subject, "NONE")
check("the subject's level reads back", sr.get_compatibility(subject) == "NONE")
id_bad = sr.register_schema(subject, Schema(v2_bad, "AVRO"))
check("under NONE the same schema registers", id_bad != id1)
check("it is version 2", sr.get_versions(subject) == [1, 2], sr.get_versions(subject))
check("soft-deleting version 2 answers 2", sr.delete_version(subject, 2) == 2)
check("a soft-deleted version is gone from the list", sr.get_versions(subject) == [1])
check("deleting the subject for good before soft-deleting it is 40405",
      error_code(lambda: sr.delete_subject(subject, permanent=True)) == 40405)
check("soft-deleting the subject lists its live versions", sr.delete_subject(subject) == [1])
check("a soft-deleted subject is not listed", subject not in sr.get_subjects())
check("deleting it for good answers every version",
      sorted(sr.delete_subject(subject, permanent=True)) == [1, 2])

# ---- Confluent's Avro serializer writes, Weir reads --------------------------
topic = f"types_{run}"
types_schema = {
    "type": "record", "name": "Everything", "namespace": "check", "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": ["null", "long"], "default": None},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "Suit", "symbols": ["HEARTS", "SPADES"]}},
        {"name": "a", "type": {"type": "array", "items": "string"}},
        {"name": "m", "type": {"type": "map", "values": "long"}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "dt", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsu", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "r", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": "int"}, {"name": "y", "type": ["null", "string"], "default": None}]}},
    ]}
ser = AvroSerializer(sr, json.dumps(types_schema))
utc = datetime.timezone.utc
records = [
    {"b": True, "i": 7, "l": 9000000000, "f": 1.5, "d": 2.25, "s": "héllo", "by": b"\x00\xff",
     "e": "SPADES", "a": ["x", "y"], "m": {"k": 5}, "fx": b"abcd", "dec": decimal.Decimal("123.45"),
     "dt": datetime.date(2024, 2, 29), "tm": datetime.time(13, 14, 15, 123000),
     "ts": datetime.datetime(2024, 1, 31, 12, 0, 0, 250000, tzinfo=utc),
     "tsu": datetime.datetime(2024, 1, 31, 12, 0, 0, 123456, tzinfo=utc),
     "lts": datetime.datetime(2024, 1, 31, 8, 30, 0),
     "u": uuid.UUID("12345678-1234-5678-1234-567812345678"), "r": {"x": 1, "y": "in"}},
    {"b": False, "i": -1, "l": None, "f": 0.0, "d": -0.5, "s": "", "by": b"",
     "e": "HEARTS", "a": [], "m": {}, "fx": b"\x01\x02\x03\x04", "dec": decimal.Decimal("-0.01"),
     "dt": datetime.date(1970, 1, 1), "tm": datetime.time(0, 0, 0),
     "ts": datetime.datetime(1970, 1, 1, tzinfo=utc), "tsu": datetime.datetime(1970, 1, 1, tzinfo=utc),
     "lts": datetime.datetime(1999, 12, 31, 23, 59, 59),
     "u": uuid.UUID("00000000-0000-0000-0000-000000000000"), "r": {"x": 2, "y": None}},
]
for r in records:
    producer.produce(topic, key=b"k", value=ser(r, SerializationContext(topic, MessageField.VALUE)))
check("Confluent's producer wrote Avro records", producer.flush(30) == 0)
describe = wait_for("the topic becomes a table typed from its value subject",
                    lambda: [r for r in sql(f"DESCRIBE `{topic}`") if r[0] == "dec"])
columns = {r[0]: r[1] for r in sql(f"DESCRIBE `{topic}`")}
want_types = {
    "key": "BYTES", "b": "BOOLEAN", "i": "INT", "l": "BIGINT", "f": "FLOAT", "d": "DOUBLE",
    "s": "STRING", "by": "BYTES", "e": "STRING", "a": "ARRAY<STRING NOT NULL>",
    "m": "MAP<STRING, BIGINT NOT NULL>", "fx": "BINARY(4)", "dec": "DECIMAL(9, 2)", "dt": "DATE",
    "tm": "TIME(3)", "ts": "TIMESTAMP_LTZ(3)", "tsu": "TIMESTAMP_LTZ(6)", "lts": "TIMESTAMP(3)",
    "u": "STRING", "r": "ROW<`x` INT NOT NULL, `y` STRING>",
}
for c, t in want_types.items():
    check(f"column {c} is {t}", columns.get(c) == t, columns.get(c))
extended = sql(f"SHOW CREATE TABLE `{topic}`")[0][0]
check("the table names its format and schema id",
      "'value.format' = 'avro-registry'" in extended and "'value.schema-id'" in extended, extended)
ext = {r[0]: r[4] for r in sql(f"DESCRIBE EXTENDED `{topic}`")}
check("DESCRIBE EXTENDED shows each column's format and schema id",
      ext.get("key") == "KEY raw" and ext.get("b") == f"VALUE avro-registry, schema id {sr.get_latest_version(topic + '-value').schema_id}",
      ext)
rows = sql(bounded(topic))
check("Weir reads every record Confluent wrote", len(rows) == 2, rows)
names = list(want_types)
got = [dict(zip(names, r)) for r in rows]
want = [
    {"key": "x'6b'", "b": "TRUE", "i": "7", "l": "9000000000", "f": "1.5", "d": "2.25", "s": "héllo",
     "by": "x'00ff'", "e": "SPADES", "a": ["x", "y"], "m": [["k", "5"]], "fx": "x'61626364'",
     "dec": "123.45", "dt": "2024-02-29", "tm": "13:14:15.123", "ts": "2024-01-31 12:00:00.250",
     "tsu": "2024-01-31 12:00:00.123456", "lts": "2024-01-31 08:30:00.000",
     "u": "12345678-1234-5678-1234-567812345678", "r": ["1", "in"]},
    {"key": "x'6b'", "b": "FALSE", "i": "-1", "l": None, "f": "0.0", "d": "-0.5", "s": "", "by": "x''",
     "e": "HEARTS", "a": [], "m": [], "fx": "x'01020304'", "dec": "-0.01", "dt": "1970-01-01",
     "tm": "00:00:00.000", "ts": "1970-01-01 00:00:00.000", "tsu": "1970-01-01 00:00:00.000000",
     "lts": "1999-12-31 23:59:59.000", "u": "00000000-0000-0000-0000-000000000000", "r": ["2", None]},
]
for g, w in zip(got, want):
    for c in names:
        check(f"value of {c} (row {w['i']}) reads as Flink prints it", g[c] == w[c], f"got {g[c]!r}, want {w[c]!r}")

# ---- Weir writes Avro, Confluent's deserializer reads ------------------------
out = f"written_{run}"
sql(f"""CREATE TABLE `{out}` (id BIGINT NOT NULL, name STRING, price DECIMAL(10, 2), at TIMESTAMP_LTZ(3),
        tags ARRAY<STRING>, inner_row ROW<x INT, y STRING>, m MAP<STRING, BIGINT>, day DATE)
        WITH ('value.format' = 'avro-registry')""")
check("CREATE TABLE registers the value subject", f"{out}-value" in sr.get_subjects(), sr.get_subjects())
sql(f"""INSERT INTO `{out}` SELECT CAST(i AS BIGINT), s, CAST(dec AS DECIMAL(10, 2)), ts, a,
        r, m, dt
        FROM `{topic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */""", timeout=90)
deser = AvroDeserializer(sr)
read = consume(out, 2, lambda m: deser(m.value(), SerializationContext(out, MessageField.VALUE)))
check("Confluent's deserializer reads every record Weir wrote", len(read) == 2, read)
read.sort(key=lambda r: r["id"])
check("Weir's Avro records read back equal", read == [
    {"id": -1, "name": "", "price": decimal.Decimal("-0.01"), "at": datetime.datetime(1970, 1, 1, tzinfo=utc),
     "tags": [], "inner_row": {"x": 2, "y": None}, "m": {}, "day": datetime.date(1970, 1, 1)},
    {"id": 7, "name": "héllo", "price": decimal.Decimal("123.45"),
     "at": datetime.datetime(2024, 1, 31, 12, 0, 0, 250000, tzinfo=utc), "tags": ["x", "y"],
     "inner_row": {"x": 1, "y": "in"}, "m": {"k": 5}, "day": datetime.date(2024, 2, 29)},
], read)

# ---- key subjects type key columns -------------------------------------------
ktopic = f"keyed_{run}"
kser = AvroSerializer(sr, json.dumps({"type": "record", "name": "K", "fields": [
    {"name": "region", "type": "string"}, {"name": "shard", "type": "int"}]}))
vser = AvroSerializer(sr, v1)
for i in range(2):
    producer.produce(ktopic, key=kser({"region": "eu", "shard": i}, SerializationContext(ktopic, MessageField.KEY)),
                     value=vser({"id": i, "name": f"k{i}"}, SerializationContext(ktopic, MessageField.VALUE)))
stopic = f"skeyed_{run}"
sser = AvroSerializer(sr, '"string"')
producer.produce(stopic, key=sser("user-1", SerializationContext(stopic, MessageField.KEY)),
                 value=vser({"id": 1, "name": "s"}, SerializationContext(stopic, MessageField.VALUE)))
check("records with Avro keys were written", producer.flush(30) == 0)
# One DESCRIBE per try: the table can be typed between two of them.
kcols = wait_for("a record key subject types the key columns",
                 lambda: (lambda rows: [r[:2] for r in rows] if any(r[0] == "region" for r in rows)
                          else None)(sql(f"DESCRIBE `{ktopic}`")))
check("key columns come first, then the value's", kcols[:4] == [
    ["region", "STRING"], ["shard", "INT"], ["id", "INT"], ["name", "STRING"]], kcols)
krows = sql(f"SELECT region, shard, id, name FROM `{ktopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("Weir reads Avro keys and values", sorted(krows) == [["eu", "0", "0", "k0"], ["eu", "1", "1", "k1"]], krows)
wait_for("a primitive key subject types the key column",
         lambda: [r for r in sql(f"DESCRIBE `{stopic}`") if r[0] == "key" and r[1] == "STRING"])
srows = sql(f"SELECT key, name FROM `{stopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("Weir reads a plain Avro string key", srows == [["user-1", "s"]], srows)

# ---- JSON Schema both ways ---------------------------------------------------
jtopic = f"json_{run}"
jschema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order",
                      "type": "object", "properties": {
                          "id": {"type": "integer"}, "item": {"type": "string"},
                          "qty": {"oneOf": [{"type": "null"}, {"type": "number"}]},
                          "at": {"type": "string", "format": "date-time"}},
                      "required": ["id", "item"]})
jser = JSONSerializer(jschema, sr)
for i in range(3):
    producer.produce(jtopic, value=jser({"id": i, "item": f"i{i}", "qty": i * 1.5 if i else None,
                                         "at": f"2024-05-0{i + 1}T10:00:00Z"},
                                        SerializationContext(jtopic, MessageField.VALUE)))
check("Confluent's JSON serializer wrote records", producer.flush(30) == 0)
wait_for("the JSON Schema subject types its table",
         lambda: [r for r in sql(f"DESCRIBE `{jtopic}`") if r[0] == "qty"])
jcols = {r[0]: r[1] for r in sql(f"DESCRIBE `{jtopic}`")}
check("JSON Schema types map", (jcols.get("id"), jcols.get("item"), jcols.get("qty"), jcols.get("at")) ==
      ("BIGINT", "STRING", "DOUBLE", "TIMESTAMP_LTZ(3)"), jcols)
jrows = sql(f"SELECT id, item, qty, at FROM `{jtopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("Weir reads Confluent's JSON Schema records", jrows == [
    ["0", "i0", None, "2024-05-01 10:00:00.000"], ["1", "i1", "1.5", "2024-05-02 10:00:00.000"],
    ["2", "i2", "3.0", "2024-05-03 10:00:00.000"]], jrows)
jout = f"json_out_{run}"
sql(f"CREATE TABLE `{jout}` (id BIGINT NOT NULL, item STRING) WITH ('value.format' = 'json-registry')")
sql(f"INSERT INTO `{jout}` SELECT id, UPPER(item) FROM `{jtopic}` "
    "/*+ OPTIONS('scan.bounded.mode'='latest-offset') */", timeout=90)
jdeser = JSONDeserializer(None, schema_registry_client=sr)
jread = consume(jout, 3, lambda m: jdeser(m.value(), SerializationContext(jout, MessageField.VALUE)))
check("Confluent's JSON deserializer reads what Weir wrote (validated against the registered schema)",
      sorted(jread, key=lambda r: r["id"]) == [{"id": i, "item": f"I{i}"} for i in range(3)], jread)

# A record that is JSON but breaks its schema (a required field missing, a
# string where an integer belongs) is a bad record, as Confluent's own
# deserializer would refuse it; a valid one beside it is read.
vtopic = f"json_invalid_{run}"
jid = sr.register_schema(f"{vtopic}-value", Schema(jschema, "JSON"))
frame = b"\x00" + jid.to_bytes(4, "big")
producer.produce(vtopic, value=frame + json.dumps({"id": 1, "item": "ok"}).encode())
producer.produce(vtopic, value=frame + json.dumps({"id": 2}).encode())
producer.produce(vtopic, value=frame + json.dumps({"id": "three", "item": "x"}).encode())
producer.flush(30)
wait_for("the JSON topic with invalid records is typed",
         lambda: [r for r in sql(f"DESCRIBE `{vtopic}`") if r[0] == "qty"])
try:
    sql(f"SELECT id, item FROM `{vtopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
    failed = None
except RuntimeError as e:
    failed = str(e)
check("a JSON record that breaks its schema fails the statement, saying so",
      failed is not None and "does not match its JSON Schema" in failed, failed)
rows = sql(f"SELECT id, item FROM `{vtopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset', "
           "'error-handling.mode'='ignore') */")
check("with 'ignore' only the valid JSON record is read", rows == [["1", "ok"]], rows)

# ---- Protobuf: Confluent's serializer writes, Weir reads ---------------------
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402
from google.protobuf import timestamp_pb2, wrappers_pb2  # noqa: E402,F401 (their files join the pool)
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: E402

F = descriptor_pb2.FieldDescriptorProto
fdp = descriptor_pb2.FileDescriptorProto(
    name=f"check/order_{run}.proto", package=f"check{run}", syntax="proto3",
    dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"])
order = fdp.message_type.add(name="Order")
pkg = f".check{run}.Order"


def field(msg, name, number, typ, label=F.LABEL_OPTIONAL, type_name=None, **kw):
    f = msg.field.add(name=name, number=number, type=typ, label=label, json_name=name, **kw)
    if type_name:
        f.type_name = type_name
    return f


field(order, "id", 1, F.TYPE_INT64)
field(order, "item", 2, F.TYPE_STRING)
field(order, "price", 3, F.TYPE_DOUBLE)
field(order, "paid", 4, F.TYPE_BOOL)
field(order, "blob", 5, F.TYPE_BYTES)
status = order.enum_type.add(name="Status")
status.value.add(name="NEW", number=0)
status.value.add(name="SHIPPED", number=1)
field(order, "status", 6, F.TYPE_ENUM, type_name=f"{pkg}.Status")
field(order, "tags", 7, F.TYPE_STRING, label=F.LABEL_REPEATED)
entry = order.nested_type.add(name="CountsEntry")
entry.options.map_entry = True
field(entry, "key", 1, F.TYPE_STRING)
field(entry, "value", 2, F.TYPE_INT32)
field(order, "counts", 8, F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=f"{pkg}.CountsEntry")
line = order.nested_type.add(name="Line")
field(line, "qty", 1, F.TYPE_INT32)
field(line, "sku", 2, F.TYPE_STRING)
field(order, "line", 9, F.TYPE_MESSAGE, type_name=f"{pkg}.Line")
field(order, "at", 10, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
field(order, "note", 11, F.TYPE_MESSAGE, type_name=".google.protobuf.StringValue")
order.oneof_decl.add(name="_maybe")
field(order, "maybe", 12, F.TYPE_INT32, oneof_index=0, proto3_optional=True)
field(order, "small", 13, F.TYPE_UINT32)
field(order, "neg", 14, F.TYPE_SINT64)
pool = descriptor_pool.Default()
pool.Add(fdp)
Order = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"check{run}.Order"))
ptopic = f"proto_{run}"
pser = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})
full = Order(id=9000000000, item="widget", price=9.5, paid=True, blob=b"\x01\xfe", status=1,
             tags=["a", "b"], counts={"x": 3}, line=Order.Line(qty=2, sku="s-1"), maybe=0, small=4000000000,
             neg=-5)
full.at.FromDatetime(datetime.datetime(2024, 3, 1, 9, 30, 0, 123456))
full.note.value = "fragile"
empty = Order()
for m in (full, empty):
    producer.produce(ptopic, value=pser(m, SerializationContext(ptopic, MessageField.VALUE)))
check("Confluent's Protobuf serializer wrote records", producer.flush(30) == 0)
wait_for("the Protobuf subject types its table",
         lambda: [r for r in sql(f"DESCRIBE `{ptopic}`") if r[0] == "neg"])
pcols = {r[0]: (r[1], r[2]) for r in sql(f"DESCRIBE `{ptopic}`")}
want_proto = {
    "id": ("BIGINT", "FALSE"), "item": ("STRING", "FALSE"), "price": ("DOUBLE", "FALSE"),
    "paid": ("BOOLEAN", "FALSE"), "blob": ("BYTES", "FALSE"), "status": ("STRING", "FALSE"),
    "tags": ("ARRAY<STRING NOT NULL>", "FALSE"), "counts": ("MAP<STRING, INT NOT NULL>", "FALSE"),
    "line": ("ROW<`qty` INT NOT NULL, `sku` STRING NOT NULL>", "TRUE"),
    "at": ("TIMESTAMP_LTZ(9)", "TRUE"), "note": ("STRING", "TRUE"), "maybe": ("INT", "TRUE"),
    "small": ("BIGINT", "FALSE"), "neg": ("BIGINT", "FALSE"),
}
for c, t in want_proto.items():
    check(f"Protobuf field {c} is {t[0]} (nullable {t[1]})", pcols.get(c) == t, pcols.get(c))
prow = sql(f"SELECT {', '.join(want_proto)} FROM `{ptopic}` "
           "/*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("Weir reads the Protobuf records as Flink prints them", prow == [
    ["9000000000", "widget", "9.5", "TRUE", "x'01fe'", "SHIPPED", ["a", "b"], [["x", "3"]], ["2", "s-1"],
     "2024-03-01 09:30:00.123456000", "fragile", "0", "4000000000", "-5"],
    ["0", "", "0.0", "FALSE", "x''", "NEW", [], [], None, None, None, None, "0", "0"],
], prow)

# Scalar columns only take the direct path from the message into Arrow.
flat = sql(f"SELECT id, item, price, paid, blob, status, at, maybe, small, neg FROM `{ptopic}` "
           "/*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("scalar Protobuf columns read the same on the direct path", flat == [
    ["9000000000", "widget", "9.5", "TRUE", "x'01fe'", "SHIPPED", "2024-03-01 09:30:00.123456000", "0",
     "4000000000", "-5"],
    ["0", "", "0.0", "FALSE", "x''", "NEW", None, None, "0", "0"],
], flat)

# A message that imports another user file: Confluent's serializer registers
# the imported file as a subject of its own and references it.
mfdp = descriptor_pb2.FileDescriptorProto(name=f"check/money_{run}.proto", package=f"money{run}",
                                          syntax="proto3")
money = mfdp.message_type.add(name="Money")
field(money, "cents", 1, F.TYPE_INT64)
field(money, "currency", 2, F.TYPE_STRING)
pool.Add(mfdp)
ifdp = descriptor_pb2.FileDescriptorProto(name=f"check/invoice_{run}.proto", package=f"invoice{run}",
                                          syntax="proto3", dependency=[mfdp.name])
invoice = ifdp.message_type.add(name="Invoice")
field(invoice, "id", 1, F.TYPE_INT64)
field(invoice, "total", 2, F.TYPE_MESSAGE, type_name=f".money{run}.Money")
pool.Add(ifdp)
Invoice = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"invoice{run}.Invoice"))
itopic = f"invoice_{run}"
iser = ProtobufSerializer(Invoice, sr, {"use.deprecated.format": False})
inv = Invoice(id=1)
inv.total.cents = 1250
inv.total.currency = "EUR"
producer.produce(itopic, value=iser(inv, SerializationContext(itopic, MessageField.VALUE)))
producer.flush(30)
check("the imported file is a subject of its own, referenced",
      mfdp.name in sr.get_subjects()
      and sr.get_latest_version(f"{itopic}-value").schema.references, sr.get_subjects())
wait_for("a Protobuf schema with a reference types its table",
         lambda: [r for r in sql(f"DESCRIBE `{itopic}`") if r[0] == "total"])
irows = sql(f"SELECT id, total FROM `{itopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("Weir reads records whose schema imports another subject's", irows == [["1", ["1250", "EUR"]]], irows)

# An Avro schema that uses a type defined in another subject (a reference):
# Confluent's serializer resolves it; Weir's workers decode with it inlined.
from confluent_kafka.schema_registry import SchemaReference  # noqa: E402

ans = f"com.acme{run}"
addr = {"type": "record", "name": "Address", "namespace": ans, "fields": [
    {"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "string"], "default": None}]}
sr.register_schema(f"{ans}.Address", Schema(json.dumps(addr), "AVRO"))
cust = {"type": "record", "name": "Customer", "namespace": ans, "fields": [
    {"name": "id", "type": "long"}, {"name": "home", "type": "Address"},
    {"name": "work", "type": ["null", f"{ans}.Address"], "default": None}]}
ctopic = f"customer_{run}"
cser = AvroSerializer(sr, Schema(json.dumps(cust), "AVRO",
                                 [SchemaReference(f"{ans}.Address", f"{ans}.Address", 1)]))
for c in [{"id": 1, "home": {"city": "Oslo", "zip": None}, "work": {"city": "Bergen", "zip": "5003"}},
          {"id": 2, "home": {"city": "Lund", "zip": "22100"}, "work": None}]:
    producer.produce(ctopic, value=cser(c, SerializationContext(ctopic, MessageField.VALUE)))
producer.flush(30)
check("the Avro schema is registered with its reference",
      sr.get_latest_version(f"{ctopic}-value").schema.references)
wait_for("an Avro schema with a reference types its table",
         lambda: [r for r in sql(f"DESCRIBE `{ctopic}`") if r[0] == "work"])
crows = sql(f"SELECT id, home, work FROM `{ctopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
check("Weir reads Avro records whose schema uses another subject's type", crows == [
    ["1", ["Oslo", None], ["Bergen", "5003"]], ["2", ["Lund", "22100"], None]], crows)

# ---- Weir writes Protobuf, Confluent's deserializer reads ---------------------
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer  # noqa: E402

pout = f"proto_out_{run}"
sql(f"""CREATE TABLE `{pout}` (id BIGINT NOT NULL, item STRING, price DOUBLE, at TIMESTAMP_LTZ(9),
        tags ARRAY<STRING>, line ROW<qty INT, sku STRING>) WITH ('value.format' = 'proto-registry')""")
registered = sr.get_latest_version(f"{pout}-value").schema
check("CREATE TABLE registers a Protobuf schema", registered.schema_type == "PROTOBUF"
      and "message Row" in registered.schema_str, registered.schema_str)
sql(f"INSERT INTO `{pout}` SELECT id, item, price, at, tags, line FROM `{ptopic}` "
    "/*+ OPTIONS('scan.bounded.mode'='latest-offset') */", timeout=90)
# The message Weir registered, as a class Confluent's deserializer parses with.
rfdp = descriptor_pb2.FileDescriptorProto(
    name=f"check/row_{run}.proto", package=f"row{run}", syntax="proto3",
    dependency=["google/protobuf/timestamp.proto"])
row = rfdp.message_type.add(name="Row")
rline = row.nested_type.add(name="Line")
rline.oneof_decl.add(name="_qty")
field(rline, "qty", 1, F.TYPE_INT32, oneof_index=0, proto3_optional=True)
rline.oneof_decl.add(name="_sku")
field(rline, "sku", 2, F.TYPE_STRING, oneof_index=1, proto3_optional=True)
field(row, "id", 1, F.TYPE_INT64)
row.oneof_decl.add(name="_item")
field(row, "item", 2, F.TYPE_STRING, oneof_index=0, proto3_optional=True)
row.oneof_decl.add(name="_price")
field(row, "price", 3, F.TYPE_DOUBLE, oneof_index=1, proto3_optional=True)
field(row, "at", 4, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
field(row, "tags", 5, F.TYPE_STRING, label=F.LABEL_REPEATED)
field(row, "line", 6, F.TYPE_MESSAGE, type_name=f".row{run}.Row.Line")
pool.Add(rfdp)
Row = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"row{run}.Row"))
pdeser = ProtobufDeserializer(Row, {"use.deprecated.format": False})
pread = consume(pout, 2, lambda m: pdeser(m.value(), SerializationContext(pout, MessageField.VALUE)))
check("Confluent's Protobuf deserializer reads every record Weir wrote", len(pread) == 2, pread)
pread.sort(key=lambda r: r.id)
first, second = pread
check("Weir's Protobuf records read back equal",
      (second.id, second.item, second.price, second.at.ToDatetime(), list(second.tags), second.line.qty,
       second.line.sku) == (9000000000, "widget", 9.5, datetime.datetime(2024, 3, 1, 9, 30, 0, 123456),
                            ["a", "b"], 2, "s-1")
      and (first.id, first.item, first.price, list(first.tags), first.HasField("line"), first.HasField("at"))
      == (0, "", 0.0, [], False, False), pread)

# ---- one running statement across a schema evolution -------------------------
etopic = f"evolve_{run}"
ev1 = {"type": "record", "name": "Ev", "fields": [
    {"name": "id", "type": "int"}, {"name": "name", "type": "string"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}}]}
ev2 = {"type": "record", "name": "Ev", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"], "default": "A"}},
    {"name": "email", "type": ["null", "string"], "default": None}]}
s1 = AvroSerializer(sr, json.dumps(ev1))
for i in range(3):
    producer.produce(etopic, value=s1({"id": i, "name": f"v1-{i}", "kind": "B"},
                                      SerializationContext(etopic, MessageField.VALUE)))
producer.flush(30)
wait_for("the evolving topic is typed", lambda: [r for r in sql(f"DESCRIBE `{etopic}`") if r[0] == "kind"])
eout = f"evolve_out_{run}"
sql(f"CREATE TABLE `{eout}` (id BIGINT, name STRING, kind STRING) WITH ('value.format' = 'avro-registry')")
name = f"evolve-{run}"
created = subprocess.run([weir, "statement", "create", "--name", name, "--wait", "--sql",
                          f"INSERT INTO `{eout}` SELECT id, name, kind FROM `{etopic}`"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
check("the running statement starts", created.returncode == 0, created.stderr + created.stdout)
wait_for("the running statement copies the v1 records",
         lambda: len(sql(bounded(eout))) >= 3, timeout=60)
s2 = AvroSerializer(sr, json.dumps(ev2))
for i in range(3, 6):
    producer.produce(etopic, value=s2({"id": i, "name": f"v2-{i}",
                                       "kind": "C", "email": "e@x"},
                                      SerializationContext(etopic, MessageField.VALUE)))
producer.flush(30)
check("the evolved schema is version 2 of the subject", sr.get_versions(f"{etopic}-value") == [1, 2])
rows = wait_for("the same statement reads the v2 records without a restart",
                lambda: (lambda r: r if len(r) >= 6 else None)(sql(bounded(eout))), timeout=60)
rows = sorted(rows, key=lambda r: r[1])
check("v1 and v2 records both arrive, with the new enum symbol", rows == [
    ["0", "v1-0", "B"], ["1", "v1-1", "B"], ["2", "v1-2", "B"], ["3", "v2-3", "C"], ["4", "v2-4", "C"],
    ["5", "v2-5", "C"]], rows)
ev3 = {"type": "record", "name": "Ev", "fields": [{"name": "id", "type": "string"}]}
check("an incompatible v3 is refused with 409",
      error_code(lambda: sr.register_schema(f"{etopic}-value", Schema(json.dumps(ev3), "AVRO"))) == 409)
subprocess.run([weir, "statement", "delete", name], env={**os.environ, **env}, capture_output=True, timeout=60)

# ---- Weir writes registry keys, Confluent's deserializer reads them ----------
kout = f"keyed_out_{run}"
sql(f"""CREATE TABLE `{kout}` (region STRING NOT NULL, shard INT NOT NULL, n BIGINT)
        WITH ('key.format' = 'avro-registry', 'key.fields' = 'region;shard',
              'value.format' = 'avro-registry')""")
check("CREATE TABLE registers the key subject too", f"{kout}-key" in sr.get_subjects(), sr.get_subjects())
sql(f"INSERT INTO `{kout}` VALUES ('eu', 1, 10), ('us', 2, 20)")
kread = consume(kout, 2, lambda m: (deser(m.key(), SerializationContext(kout, MessageField.KEY)), deser(m.value(), SerializationContext(kout, MessageField.VALUE))))
kread.sort(key=lambda kv: kv[0]["shard"])
check("Confluent's deserializer reads the Avro keys Weir wrote", [k for k, _ in kread] == [
    {"region": "eu", "shard": 1}, {"region": "us", "shard": 2}], kread)
rows = sorted(sql(bounded(kout)))
check("Weir reads its own registry keys back", rows == [["eu", "1", "10"], ["us", "2", "20"]], rows)
# DROP TABLE leaves the subjects unless asked.
sql(f"DROP TABLE `{kout}`")
check("DROP TABLE leaves the subjects", f"{kout}-value" in sr.get_subjects(), sr.get_subjects())
gone = f"gone_{run}"
sql(f"CREATE TABLE `{gone}` (id BIGINT) WITH ('value.format' = 'avro-registry')")
dropped = subprocess.run([weir, "sql", "--property", "sql.drop-table.delete-subjects=true",
                          f"DROP TABLE `{gone}`"], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60)
check("DROP TABLE with 'sql.drop-table.delete-subjects' runs", dropped.returncode == 0,
      dropped.stderr + dropped.stdout)
check("... and deletes the subject", f"{gone}-value" not in sr.get_subjects(), sr.get_subjects())

# ---- upsert tables in a registry format: a tombstone deletes its key -------
utopic = f"upsert_{run}"
sql(f"""CREATE TABLE `{utopic}` (id BIGINT NOT NULL, name STRING, PRIMARY KEY (id) NOT ENFORCED)
        WITH ('changelog.mode' = 'upsert', 'key.format' = 'avro-registry',
              'value.format' = 'avro-registry')""")
ukser = AvroSerializer(sr, sr.get_latest_version(f"{utopic}-key").schema.schema_str)
uvser = AvroSerializer(sr, sr.get_latest_version(f"{utopic}-value").schema.schema_str)


def ukey(i):
    return ukser({"id": i}, SerializationContext(utopic, MessageField.KEY))


for i, name in [(1, "a"), (2, "b"), (1, "a2")]:
    producer.produce(utopic, key=ukey(i), value=uvser({"id": i, "name": name},
                                                       SerializationContext(utopic, MessageField.VALUE)))
producer.produce(utopic, key=ukey(2), value=None)
producer.flush(30)
out = subprocess.run([weir, "sql", "--output", "json", bounded(utopic)], env={**os.environ, **env},
                     capture_output=True, text=True, timeout=60)
state = {}
for line in out.stdout.splitlines():
    if line.startswith("{"):
        r = json.loads(line)
        if r["op"] in (0, 2):
            state[r["row"][0]] = r["row"]
        else:
            state.pop(r["row"][0], None)
check("an upsert table in avro-registry applies updates, and a tombstone deletes its key",
      sorted(state.values()) == [["1", "a2"]], out.stdout + out.stderr)

# ---- plain Avro (no registry) both ways, with fastavro -----------------------
import io  # noqa: E402
import fastavro  # noqa: E402
plain = f"plain_avro_{run}"
sql(f"CREATE TABLE `{plain}` (id BIGINT NOT NULL, name STRING, tags ARRAY<STRING>) WITH ('value.format' = 'avro')")
plain_schema = fastavro.parse_schema({"type": "record", "name": "Row", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": ["null", "string"]},
    {"name": "tags", "type": ["null", {"type": "array", "items": ["null", "string"]}]}]})
for rec in [{"id": 1, "name": "one", "tags": ["a"]}, {"id": 2, "name": None, "tags": None}]:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, plain_schema, rec)
    producer.produce(plain, value=buf.getvalue())
producer.flush(30)
rows = sorted(sql(bounded(plain)))
check("plain Avro written by fastavro reads as rows", rows == [["1", "one", ["a"]], ["2", None, None]], rows)
pout = f"plain_avro_out_{run}"
sql(f"CREATE TABLE `{pout}` (id BIGINT NOT NULL, name STRING, tags ARRAY<STRING>) WITH ('value.format' = 'avro')")
sql(f"INSERT INTO `{pout}` SELECT id + 10, name, tags FROM `{plain}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */")
pread = consume(pout, 2, lambda m: fastavro.schemaless_reader(io.BytesIO(m.value()), plain_schema))
pread.sort(key=lambda r: r["id"])
check("plain Avro written by Weir reads back in fastavro", pread == [
    {"id": 11, "name": "one", "tags": ["a"]}, {"id": 12, "name": None, "tags": None}], pread)

# ---- bad records follow the table's error policy -----------------------------
btopic = f"bad_{run}"
bser = AvroSerializer(sr, v1)
producer.produce(btopic, value=bser({"id": 1, "name": "good"}, SerializationContext(btopic, MessageField.VALUE)))
producer.produce(btopic, value=b"\x01\x00\x00\x00\x01junk")
producer.produce(btopic, value=b"\x00\x7f\x00\x00\x01\x02")
producer.produce(btopic, value=bser({"id": 2, "name": "also good"}, SerializationContext(btopic, MessageField.VALUE)))
producer.flush(30)
wait_for("the topic with bad records is typed", lambda: [r for r in sql(f"DESCRIBE `{btopic}`") if r[0] == "name"])
try:
    sql(bounded(btopic))
    failed = None
except RuntimeError as e:
    failed = str(e)
check("by default a bad record fails the statement, saying why",
      failed is not None and "magic byte" in failed, failed)
rows = sql(f"SELECT id, name FROM `{btopic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset', "
           "'error-handling.mode'='ignore') */")
check("with 'ignore' the good records are read and the bad skipped",
      rows == [["1", "good"], ["2", "also good"]], rows)

print(f"{passed} checks passed")
