//! What one tenant sends cannot take `weir dev` down: SQL that used to
//! abort the process or grow it without end, run against a real `weir dev`
//! process that must still answer afterwards, and a statement past its
//! memory limit that fails, naming what held the memory, and gives the
//! memory back.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::*;
use weir_api::{Client, ClientError, CreateStatementRequest, Credentials, Phase, StatementSpec};

fn client(dev: &Dev) -> Client {
    Client::new(
        &dev.env["WEIR_URL"],
        &dev.env["WEIR_ORG"],
        &dev.env["WEIR_ENV"],
        Some(Credentials {
            key: dev.env["WEIR_API_KEY"].clone(),
            secret: dev.env["WEIR_API_SECRET"].clone(),
        }),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn submit(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    name: &str,
    sql: &str,
    properties: &[(&str, &str)],
) -> Result<weir_api::Statement, ClientError> {
    rt.block_on(
        c.create_statement(&CreateStatementRequest {
            metadata: None,
            name: Some(name.to_string()),
            spec: StatementSpec {
                statement: sql.to_string(),
                properties: properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                ..Default::default()
            },
        }),
    )
}

/// Creates a table `<prefix>_<unique>` of `id BIGINT, amount DOUBLE` (the
/// columns `produce` writes) and returns its name.
fn new_table(rt: &tokio::runtime::Runtime, c: &Client, prefix: &str) -> String {
    let topic = unique(prefix);
    submit(
        rt,
        c,
        &format!("ddl-{prefix}"),
        &format!("CREATE TABLE {topic} (id BIGINT, amount DOUBLE)"),
        &[],
    )
    .unwrap();
    topic
}

/// The process is alive and its API answers.
fn still_answers(dev: &mut Dev, rt: &tokio::runtime::Runtime, c: &Client) {
    assert!(
        dev.child.try_wait().unwrap().is_none(),
        "weir dev is no longer running"
    );
    rt.block_on(c.list_statements(None))
        .expect("weir dev answers after a hostile statement");
}

/// A 400 whose message contains `want`, pointing at line 1.
fn refused(r: Result<weir_api::Statement, ClientError>, want: &str) {
    match r {
        Err(ClientError::Api { status, body }) => {
            assert_eq!(status.as_u16(), 400, "{body:?}");
            let e = &body.errors[0];
            assert!(e.detail.contains(want), "'{want}' not in: {}", e.detail);
            let source = e.source.as_ref().expect("the error points into the SQL");
            assert_eq!(source.line, Some(1), "{e:?}");
            assert!(source.column.is_some(), "{e:?}");
        }
        other => panic!("wanted a 400 containing '{want}', got {other:?}"),
    }
}

fn wait_for(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    name: &str,
    done: impl Fn(&weir_api::Statement) -> bool,
) -> weir_api::Statement {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = rt.block_on(c.get_statement(name)).unwrap();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: still {:?} ({})",
            s.status.phase,
            s.status.detail
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hostile_sql_is_refused_or_planned_and_weir_dev_keeps_answering() {
    let mut dev = Dev::start(&temp_dir());
    let rt = runtime();
    let c = client(&dev);

    // 20,000 terms used to overflow the stack and abort the process.
    let sum = format!("SELECT {}1", "1 + ".repeat(19_999));
    refused(submit(&rt, &c, "sum", &sum, &[]), "more than 1000 levels");
    still_answers(&mut dev, &rt, &c);
    let concat = format!("SELECT {}'a'", "'a' || ".repeat(2_999));
    refused(
        submit(&rt, &c, "concat", &concat, &[]),
        "more than 1000 levels",
    );
    still_answers(&mut dev, &rt, &c);
    let parens = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    refused(
        submit(&rt, &c, "parens", &parens, &[]),
        "more than 50 levels deep",
    );
    still_answers(&mut dev, &rt, &c);

    // Below the limit, a long chain plans and runs.
    let long = format!("SELECT {}1 AS n", "1 + ".repeat(899));
    submit(&rt, &c, "long", &long, &[]).unwrap();
    let s = wait_for(&rt, &c, "long", |s| s.status.phase.is_terminal());
    assert_eq!(s.status.phase, Phase::Completed, "{}", s.status.detail);
    let rows = rt.block_on(c.results("long", None)).unwrap().results.data;
    assert_eq!(rows[0].row, vec![serde_json::json!("900")]);

    // A HOP with 86.4 million windows per row grew the process by 250 MB
    // a second over five records; it is refused when planned.
    let topic = new_table(&rt, &c, "ev");
    produce(&topic, 0..5);
    refused(
        submit(
            &rt,
            &c,
            "hop",
            &format!(
                "SELECT id, window_start, COUNT(*) FROM TABLE(HOP(TABLE {topic}, \
                 DESCRIPTOR($rowtime), INTERVAL '0.001' SECOND, INTERVAL '1' DAY)) \
                 GROUP BY id, window_start, window_end"
            ),
            &[],
        ),
        "86400000 windows",
    );
    still_answers(&mut dev, &rt, &c);

    // A bad memory limit is a 400 too.
    match submit(
        &rt,
        &c,
        "badlimit",
        "SELECT 1",
        &[("sql.memory.limit", "lots")],
    ) {
        Err(e) => assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e:?}"),
        Ok(s) => panic!("a memory limit of 'lots' was taken: {s:?}"),
    }
    still_answers(&mut dev, &rt, &c);
}

/// Resident and peak memory of a process, in bytes (Linux).
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |field: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

#[test]
fn a_statement_past_its_memory_limit_fails_naming_the_operator_and_gives_the_memory_back() {
    // In process, so that the memory measured is the statement's host's
    // (a worker process that ran it stops once idle, and gives all back).
    let dev = Dev::start_with(&temp_dir(), &["--bootstrap", &broker(), "--in-process"]);
    let rt = runtime();
    let c = client(&dev);
    let topic = new_table(&rt, &c, "keys");
    // Every id is its own key of the aggregation, written to an upsert
    // table (a SELECT nobody reads would wait for its reader instead).
    for from in (0..400_000).step_by(50_000) {
        produce(&topic, from..from + 50_000);
    }
    let counts = unique("counts");
    submit(
        &rt,
        &c,
        "ddl2",
        &format!("CREATE TABLE {counts} (id BIGINT, n BIGINT, PRIMARY KEY (id) NOT ENFORCED)"),
        &[],
    )
    .unwrap();
    let group = format!("INSERT INTO {counts} SELECT id, COUNT(*) AS n FROM {topic} GROUP BY id");

    // Past the soft limit: DEGRADED, saying what holds the memory.
    submit(
        &rt,
        &c,
        "soft",
        &group,
        &[
            ("sql.memory.soft-limit", "1 mb"),
            ("sql.memory.limit", "2 gb"),
        ],
    )
    .unwrap();
    let s = wait_for(&rt, &c, "soft", |s| s.status.phase == Phase::Degraded);
    assert!(
        s.status.detail.contains("soft memory limit of 1.0 MiB")
            && s.status.detail.contains("stage 1 GroupAggregate holds"),
        "{}",
        s.status.detail
    );
    rt.block_on(c.delete_statement("soft")).unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let (before, _) = memory_of(dev.child.id());
    submit(&rt, &c, "hard", &group, &[("sql.memory.limit", "24 mb")]).unwrap();
    let s = wait_for(&rt, &c, "hard", |s| {
        s.status.phase.is_terminal() || s.status.phase == Phase::Failed
    });
    assert_eq!(s.status.phase, Phase::Failed, "{}", s.status.detail);
    for want in [
        "more than its memory limit of 24.0 MiB ('sql.memory.limit')",
        "stage 1 GroupAggregate holds",
    ] {
        assert!(
            s.status.detail.contains(want),
            "'{want}' not in: {}",
            s.status.detail
        );
    }
    let exceptions = rt.block_on(c.exceptions("hard")).unwrap();
    assert!(
        exceptions
            .data
            .iter()
            .any(|e| e.message.contains("sql.memory.limit")),
        "{exceptions:?}"
    );
    // The state is dropped with the statement, and the memory goes back.
    std::thread::sleep(Duration::from_secs(1));
    let (after, peak) = memory_of(dev.child.id());
    println!(
        "weir dev memory: {} MiB before the statement, {} MiB at its peak, {} MiB after it failed",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    // Allocators, the broker client and the store keep a little; the
    // statement's state (hundreds of MiB at the peak) must not stay.
    let grew = peak.saturating_sub(before);
    assert!(
        grew > 64 << 20,
        "the statement never grew the process: {} MiB",
        grew >> 20
    );
    assert!(
        after < before + (32 << 20).max(grew / 4),
        "the process kept {} MiB of the failed statement's {} MiB",
        after.saturating_sub(before) >> 20,
        grew >> 20
    );
}
