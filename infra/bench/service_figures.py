#!/usr/bin/env python3
"""Service figures of a running-from-scratch `weir dev`, printed, not asserted:
submit -> RUNNING latency, memory per idle running SELECT, and how long
expressions near the depth limit take to plan (or be refused).

    python3 infra/bench/service_figures.py target/release/weir 127.0.0.1:9092

The second argument is a Kafka bootstrap (`weir dev --bootstrap`). Uses only
the standard library; starts its own `weir dev` in a temporary folder.
"""
import json, os, subprocess, sys, time, urllib.request, base64, statistics
weir = sys.argv[1]; boot = sys.argv[2]
import tempfile
d = tempfile.mkdtemp(prefix="weir-figures-")
p = subprocess.Popen([weir, "dev", "--port", "0", "--data-dir", d, "--bootstrap", boot], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
env = {}
for line in p.stdout:
    if line.startswith("export "):
        for kv in line[7:].split():
            k, v = kv.split("=", 1); env[k] = v
        break
url = f"{env['WEIR_URL']}/sql/v1/organizations/{env['WEIR_ORG']}/environments/{env['WEIR_ENV']}/statements"
auth = "Basic " + base64.b64encode(f"{env['WEIR_API_KEY']}:{env['WEIR_API_SECRET']}".encode()).decode()
def call(method, u, body=None):
    req = urllib.request.Request(u, method=method, data=json.dumps(body).encode() if body else None, headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r: return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b"null")
def rss_of(pid):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith("VmRSS:"): return int(l.split()[1]) * 1024
    except OSError:
        return 0
    return 0
def workers():
    """`weir worker` children of `weir dev`: where statements run."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        try:
            ppid = int(open(f"/proc/{d}/stat").read().rsplit(") ", 1)[1].split()[1])
            argv = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if ppid == p.pid and argv[1:2] == [b"worker"]: out.append(int(d))
    return out
def rss():
    """`weir dev` and its workers, not its broker."""
    return rss_of(p.pid) + sum(rss_of(w) for w in workers())
topic = f"m{int(time.time())}"
call("POST", url, {"name": "ddl", "spec": {"statement": f"CREATE TABLE {topic} (id BIGINT, amount DOUBLE)"}})
time.sleep(1)
# The dev pool's max_cfu is 10 (one statement = one CFU): stay under it.
N = 8
lat = []
before = rss()
for i in range(N):
    t = time.time()
    s, r = call("POST", url, {"name": f"s{i}", "spec": {"statement": f"SELECT id FROM {topic} WHERE amount > 1"}})
    while r["status"]["phase"] not in ("RUNNING", "FAILED", "COMPLETED"):
        s, r = call("GET", f"{url}/s{i}")
    lat.append(time.time() - t)
time.sleep(3)
after = rss()
print(f"submit -> RUNNING: p50 {statistics.median(lat)*1000:.1f} ms, max {max(lat)*1000:.1f} ms over {len(lat)}")
print(f"idle running SELECT: {(after-before)/N/1048576:.2f} MiB each, its worker process included ({before>>20} -> {after>>20} MiB for {N})")
for n in (500, 900, 1001, 19999):
    sql = "SELECT " + "amount + " * n + "amount FROM " + topic
    t = time.time(); s, r = call("POST", url, {"name": f"deep{n}", "spec": {"statement": sql}})
    print(f"{n+1}-term sum: {s} in {(time.time()-t)*1000:.0f} ms")
sql = "SELECT " + "CAST(amount + " * 100 + " x FROM " + topic
t = time.time(); s, r = call("POST", url, {"name": "casts", "spec": {"statement": sql}}); print(f"100 unclosed CASTs: {s} in {(time.time()-t)*1000:.0f} ms")
p.terminate(); p.wait()
