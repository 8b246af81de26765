//! `weir server --workers` with `weir worker` processes: statements run on
//! the workers, not the server; a killed worker's task moves to another,
//! restored from its stored offsets and checkpoint; a worker without the
//! server's credential, or reporting under a lease it lost, is refused.
//! Real processes, the test broker, SQLite and PostgreSQL.

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::*;
use support::*;

/// A copy and a keyed count run on worker A; A is killed (SIGKILL) while
/// B is up; both statements move to B within the lease timeout and, fed
/// more input, end with every record copied and every count right.
fn statements_move_to_another_worker_when_theirs_is_killed(database_url: &str) {
    let dir = temp_dir();
    let dev = server(&dir, database_url);
    let credential = dir.join("worker-credential");
    let (src, dst, counts) = (unique("src"), unique("dst"), unique("counts"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, k INT)"),
        format!("CREATE TABLE {dst} (id BIGINT, k INT)"),
        format!("CREATE TABLE {counts} (k INT, n BIGINT, PRIMARY KEY (k) NOT ENFORCED)"),
    ] {
        // DDL runs in the server: no worker needed.
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_to(&broker(), &src, 0..300);
    start_copy(&dev, &src, &dst);
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "count",
        "--sql",
        &format!("INSERT INTO {counts} SELECT k, COUNT(*) FROM {src} GROUP BY k"),
    ]);
    // No worker yet: the statements wait, saying why.
    std::thread::sleep(Duration::from_millis(500));
    let s = describe(&dev, "copy");
    assert_eq!(s["status"]["phase"], "PENDING", "{s}");
    assert!(
        s["status"]["detail"]
            .as_str()
            .unwrap()
            .contains("waiting for a worker of compute pool 'lfcp-dev'"),
        "{s}"
    );

    let a = Killed(worker(&dev, &credential));
    dev.wait_phase("copy", "RUNNING");
    dev.wait_phase("count", "RUNNING");
    assert_eq!(consume_ids(&dst, 300).len(), 300);
    dev.wait_checkpoints("count", 1);
    let b = Killed(worker(&dev, &credential));
    std::thread::sleep(Duration::from_millis(500));
    drop(a); // SIGKILL: no drain, no report.

    // The lease times out (2 s); the tasks restart on B.
    let on_b = format!("-{}", b.0.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let moved = ["copy", "count"].iter().all(|n| {
            let s = describe(&dev, n);
            s["status"]["phase"] == "RUNNING"
                && s["status"]["worker"]
                    .as_str()
                    .is_some_and(|w| w.ends_with(&on_b))
        });
        if moved {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the statements did not move to worker B: {} {}",
            describe(&dev, "copy"),
            describe(&dev, "count")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_to(&broker(), &src, 300..600);
    let mut ids = consume_ids(&dst, 600);
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        (0..600).collect::<Vec<_>>(),
        "every record, at least once"
    );
    // Every k counted 600 / 7 or so: the sum of the final counts is 600,
    // whatever was replayed (the count's state came from its checkpoint).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = support::upsert_table(&broker(), &counts);
        let total: i64 = rows.values().map(|v| v["n"].as_i64().unwrap()).sum();
        if total == 600 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counts sum to {total}, not 600: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Stop: the worker drains and reports; resume: a worker takes it again
    // from where it stopped.
    dev.ok(&["statement", "stop", "copy"]);
    dev.wait_phase("copy", "STOPPED");
    assert_eq!(describe(&dev, "copy")["status"]["worker"], Value::Null);
    dev.ok(&["statement", "resume", "copy"]);
    dev.wait_phase("copy", "RUNNING");
    produce_to(&broker(), &src, 600..700);
    let mut ids = consume_ids(&dst, 700);
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        (0..700).collect::<Vec<_>>(),
        "every record after a resume"
    );
    drop(b);
}

#[test]
fn statements_move_to_another_worker_when_theirs_is_killed_sqlite() {
    let dir = temp_dir();
    statements_move_to_another_worker_when_theirs_is_killed(&format!(
        "sqlite://{}",
        dir.join("weir.db").display()
    ));
}

#[test]
fn statements_move_to_another_worker_when_theirs_is_killed_postgres() {
    statements_move_to_another_worker_when_theirs_is_killed(&fresh_postgres());
}

/// A `SELECT` runs on a worker; its rows come back through the server.
#[test]
fn a_select_runs_on_a_worker_and_its_rows_reach_the_client() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let _w = Killed(worker(&dev, &dir.join("worker-credential")));
    let src = unique("src");
    dev.ok(&[
        "statement",
        "create",
        "--wait",
        "--sql",
        &format!("CREATE TABLE {src} (id BIGINT, k INT)"),
    ]);
    produce_to(&broker(), &src, 0..50);
    let out = dev.ok(&[
        "sql",
        &format!("SELECT id FROM {src} WHERE id >= 40 LIMIT 10"),
    ]);
    let mut got: Vec<i64> = out
        .lines()
        .filter_map(|l| l.rsplit('|').next()?.trim().parse().ok())
        .collect();
    got.sort();
    assert_eq!(got, (40..50).collect::<Vec<_>>(), "{out}");
}

/// A worker whose credential is not the server's is refused and exits
/// saying so; one that reports for a task it holds no lease on gets 409.
#[test]
fn workers_without_the_credential_or_the_lease_are_refused() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let wrong = dir.join("wrong-credential");
    std::fs::write(&wrong, "wkc-not-the-one").unwrap();
    let out = Command::new(WEIR)
        .args(["worker", "--pool", "lfcp-dev"])
        .args(["--control-plane", &dev.env["WEIR_URL"]])
        .arg("--credential-file")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused this worker's credential"), "{err}");

    let credential = std::fs::read_to_string(dir.join("worker-credential")).unwrap();
    let url = dev.env["WEIR_URL"]
        .trim_start_matches("http://")
        .to_string();
    let report =
        r#"{"worker_id":"wkr-nobody","epoch":7,"kind":"offsets","topic":"t","offsets":[[0,10]]}"#;
    let (status, body) = post(
        &url,
        "/internal/v1/tasks/some-task/offsets",
        &credential,
        report,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("does not hold task"), "{body}");
    let (status, _) = post(
        &url,
        "/internal/v1/workers",
        "wkc-wrong",
        r#"{"pool":"lfcp-dev","slots":1,"name":"x"}"#,
    );
    assert_eq!(status, 401);
    // Malformed and deep bodies are a 400; a huge one is refused (a 413,
    // or the connection closed on the unread rest); the server answers on.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for body in ["{not json", deep.as_str()] {
        let (status, _) = post(&url, "/internal/v1/workers", &credential, body);
        assert_eq!(status, 400, "for a {}-byte body", body.len());
    }
    let huge = format!(
        r#"{{"pool":"{}","slots":1,"name":"x"}}"#,
        "p".repeat(70 << 20)
    );
    let (status, _) = post(&url, "/internal/v1/workers", &credential, &huge);
    assert!(status == 413 || status == 0, "{status}");
    // A registered worker that reports for a task it was never leased.
    let (status, body) = post(
        &url,
        "/internal/v1/workers",
        &credential,
        r#"{"pool":"lfcp-dev","slots":1,"name":"x"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["worker_id"]
        .as_str()
        .unwrap()
        .to_string();
    let report = format!(r#"{{"worker_id":"{id}","epoch":1,"kind":"exception","message":"x"}}"#);
    let (status, _) = post(
        &url,
        "/internal/v1/tasks/some-task/exception",
        &credential,
        &report,
    );
    assert_eq!(status, 409);
}

/// A bare HTTP/1.1 POST: the status and the body.
fn post(addr: &str, path: &str, credential: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    // A server that refuses before reading all may close on the rest: the
    // status is then what was read, 0 if nothing.
    let _ = write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        credential.trim(),
        body.len()
    );
    let mut raw = vec![];
    let _ = s.read_to_end(&mut raw);
    let out = String::from_utf8_lossy(&raw).to_string();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (status, body)
}

/// `weir worker` processes whose parent is `pid`.
fn worker_children(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    for d in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = d.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        let is_worker = cmdline.split(|b| *b == 0).nth(1) == Some(&b"worker"[..]);
        if ppid == Some(pid) && is_worker {
            out.push(child);
        }
    }
    out
}

fn wait_workers(pid: u32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while worker_children(pid).len() != n {
        assert!(
            Instant::now() < deadline,
            "weir dev has {} worker processes, not {n}",
            worker_children(pid).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `weir dev`: no worker process until a statement needs a
/// slot; then one `weir worker` child runs it; none once it stops.
#[test]
fn weir_dev_starts_worker_processes_as_statements_need_them() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let pid = dev.child.id();
    let (src, dst) = (unique("src"), unique("dst"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, k INT)"),
        format!("CREATE TABLE {dst} (id BIGINT, k INT)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    assert_eq!(worker_children(pid).len(), 0, "DDL needs no worker");
    produce_to(&broker(), &src, 0..100);
    start_copy(&dev, &src, &dst);
    dev.wait_phase("copy", "RUNNING");
    wait_workers(pid, 1);
    let w = worker_children(pid)[0];
    let s = describe(&dev, "copy");
    assert!(
        s["status"]["worker"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!("-{w}"))),
        "{s}"
    );
    assert_eq!(consume_ids(&dst, 100).len(), 100);
    dev.ok(&["statement", "stop", "copy"]);
    dev.wait_phase("copy", "STOPPED");
    wait_workers(pid, 0);
    dev.interrupt();
}

/// The server crashes (SIGKILL) under a running statement and comes back
/// on its address: the worker, cut off, stops its task after the lease
/// timeout and registers again; the server resumes the statement on it
/// from its stored offsets, and no record is lost.
#[test]
fn a_running_statement_survives_a_crash_of_the_server() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.join("weir.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let dev = server_on(&dir, &db, &listen);
    let _w = Killed(worker(&dev, &dir.join("worker-credential")));
    let (src, dst) = (unique("src"), unique("dst"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, k INT)"),
        format!("CREATE TABLE {dst} (id BIGINT, k INT)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_to(&broker(), &src, 0..200);
    start_copy(&dev, &src, &dst);
    dev.wait_phase("copy", "RUNNING");
    assert_eq!(consume_ids(&dst, 200).len(), 200);
    dev.kill();

    let dev = server_on(&dir, &db, &listen);
    let deadline = Instant::now() + Duration::from_secs(40);
    while describe(&dev, "copy")["status"]["worker"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the worker never took the statement again: {}",
            describe(&dev, "copy")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_to(&broker(), &src, 200..400);
    let mut ids = consume_ids(&dst, 400);
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        (0..400).collect::<Vec<_>>(),
        "every record, at least once"
    );
}

/// Metering under faults: mid-run, the worker of a one-task statement is
/// killed (SIGKILL) and later the server crashes and comes back. Usage
/// then holds at most one row per minute, each of one CFU (the task's one
/// slot: the dead worker's lease ends before the task is leased again, and
/// a minute both servers record stays one row), and every whole minute the
/// statement ran in is there.
#[test]
fn metering_bills_each_minute_once_through_a_killed_worker_and_a_server_crash() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.join("weir.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let dev = server_on(&dir, &db, &listen);
    let credential = dir.join("worker-credential");
    let a = Killed(worker(&dev, &credential));
    let (src, dst) = (unique("src"), unique("dst"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, k INT)"),
        format!("CREATE TABLE {dst} (id BIGINT, k INT)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    let minute = |t: chrono::DateTime<chrono::Utc>| t.timestamp() / 60;
    let before_start = chrono::Utc::now();
    start_copy(&dev, &src, &dst);
    dev.wait_phase("copy", "RUNNING");
    let running = chrono::Utc::now();
    produce_to(&broker(), &src, 0..100);
    assert_eq!(consume_ids(&dst, 100).len(), 100);

    let b = Killed(worker(&dev, &credential));
    let on_b = format!("-{}", b.0.id());
    drop(a); // SIGKILL
    let deadline = Instant::now() + Duration::from_secs(20);
    while !describe(&dev, "copy")["status"]["worker"]
        .as_str()
        .is_some_and(|w| w.ends_with(&on_b))
    {
        assert!(
            Instant::now() < deadline,
            "the statement did not move: {}",
            describe(&dev, "copy")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    dev.kill();
    let dev = server_on(&dir, &db, &listen);
    let deadline = Instant::now() + Duration::from_secs(40);
    while describe(&dev, "copy")["status"]["worker"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the worker never took the statement again: {}",
            describe(&dev, "copy")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_to(&broker(), &src, 100..200);
    let mut ids = consume_ids(&dst, 200);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let still_running = chrono::Utc::now();
    dev.ok(&["statement", "delete", "copy"]);
    let after_end = chrono::Utc::now();

    let start = format!(
        "{}:00Z",
        &before_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)[..16]
    );
    let end = (after_end + chrono::Duration::minutes(1)).to_rfc3339();
    let u = dev.json(&[
        "usage",
        "--start",
        &start,
        "--end",
        &end,
        "--granularity",
        "MINUTE",
        "--statement",
        "copy",
    ]);
    let rows = u["data"].as_array().expect("usage rows").clone();
    let mut minutes = std::collections::BTreeSet::new();
    for r in &rows {
        assert_eq!(r["cfu_minutes"], 1, "one task, one CFU in each minute: {u}");
        let at = chrono::DateTime::parse_from_rfc3339(r["start"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert!(minutes.insert(minute(at)), "a minute billed twice: {u}");
        assert!(
            (minute(before_start)..=minute(after_end)).contains(&minute(at)),
            "a minute billed outside the run: {u}"
        );
    }
    assert!(!rows.is_empty(), "{u}");
    // Every minute wholly inside the run is billed (its ends may fall
    // between two samples of the meter).
    for m in minute(running) + 1..minute(still_running) {
        assert!(minutes.contains(&m), "minute {m} not billed: {u}");
    }
    assert_eq!(u["total_cfu_minutes"], rows.len(), "{u}");
    drop(b);
}
