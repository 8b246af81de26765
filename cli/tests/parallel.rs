//! Statements with `'sql.parallelism'` on `weir server --workers` and two
//! `weir worker` processes: a keyed aggregation and a join over 8-partition
//! topics run as a source stage and a keyed stage behind a repartition
//! topic, spread over both workers, and produce exactly the rows of the
//! same statement run as one task; a rescale 1 → 2 → 1 under load and the
//! loss of a worker leave the result as an undisturbed run's; aggregations
//! stacked on a common key run at parallelism 2 as one task does; a bounded
//! `SELECT` at parallelism 2 answers every row once and completes; a
//! parallelism out of range or beyond the pool is a 400. Real processes,
//! the test broker, SQLite and PostgreSQL.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::*;
use support::*;

/// An upsert table's rows, by key, as JSON text.
fn table(topic: &str) -> BTreeMap<Vec<u8>, String> {
    support::upsert_table(&broker(), topic)
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

/// Waits until `a` and `b` hold the same rows, `rows` of them.
fn wait_equal(a: &str, b: &str, rows: usize) {
    wait_equal_when(a, b, rows, |_| true)
}

/// [`wait_equal`], once `ready` holds for `b`'s rows too.
fn wait_equal_when(a: &str, b: &str, rows: usize, ready: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ta, tb) = (table(a), table(b));
        if ta.len() == rows && ta == tb && ready(b) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{a} ({} rows) and {b} ({} rows) differ: {:?}",
            ta.len(),
            tb.len(),
            ta.iter()
                .filter(|(k, v)| tb.get(*k) != Some(*v))
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn create(dev: &Dev, name: &str, sql: &str, props: &[&str]) {
    let mut args = vec!["statement", "create", "--name", name, "--sql", sql];
    for p in props {
        args.extend(["--property", p]);
    }
    dev.ok(&args);
}

/// The workers running a statement's tasks, and its stages' parallelism.
fn placement(dev: &Dev, name: &str) -> (BTreeSet<String>, Vec<u64>) {
    let s = describe(dev, name);
    let stages = s["status"]["stages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let workers = stages
        .iter()
        .flat_map(|st| st["tasks"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["worker"].as_str().map(str::to_string))
        .collect();
    let p = stages
        .iter()
        .map(|st| st["parallelism"].as_u64().unwrap())
        .collect();
    (workers, p)
}

fn keyed_aggregation_and_join_at_p2_equal_p1(database_url: &str) {
    let dir = temp_dir();
    let dev = server(&dir, database_url);
    let credential = dir.join("worker-credential");
    let _a = Killed(worker_with_slots(&dev, &credential, 3));
    let _b = Killed(worker_with_slots(&dev, &credential, 3));
    let (src, other) = (unique("src"), unique("other"));
    let (agg1, agg2, j1, j2) = (unique("agg1"), unique("agg2"), unique("j1"), unique("j2"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {other} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {agg1} (amount INT, n BIGINT, s BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
        format!("CREATE TABLE {agg2} (amount INT, n BIGINT, s BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
        format!("CREATE TABLE {j1} (id BIGINT, a INT, b INT, PRIMARY KEY (id) NOT ENFORCED)"),
        format!("CREATE TABLE {j2} (id BIGINT, a INT, b INT, PRIMARY KEY (id) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_records(&broker(), &src, 0..3000, Some(8));
    produce_records(&broker(), &other, 1500..4000, Some(8));
    let agg = |dst: &str| {
        format!("INSERT INTO {dst} SELECT amount, COUNT(*), SUM(id) FROM {src} GROUP BY amount")
    };
    // Output committed every second where the broker has transactions.
    let every = "execution.checkpointing.interval=1 s";
    create(&dev, "agg-p1", &agg(&agg1), &[every]);
    create(&dev, "agg-p2", &agg(&agg2), &["sql.parallelism=2", every]);
    wait_equal(&agg1, &agg2, 100);
    let (workers, p) = placement(&dev, "agg-p2");
    assert_eq!(p, vec![2, 2], "{}", describe(&dev, "agg-p2"));
    assert_eq!(
        workers.len(),
        2,
        "the tasks run on both workers: {workers:?}"
    );
    // More input reaches both the same way.
    produce_records(&broker(), &src, 3000..4000, Some(8));
    let counted = |t: &str| -> i64 {
        support::upsert_table(&broker(), t)
            .values()
            .map(|v| v["n"].as_i64().unwrap())
            .sum()
    };
    wait_equal_when(&agg1, &agg2, 100, |t| counted(t) == 4000);
    dev.ok(&["statement", "delete", "agg-p1"]);
    dev.ok(&["statement", "delete", "agg-p2"]);

    let join = |dst: &str| {
        format!(
            "INSERT INTO {dst} SELECT s.id, s.amount, o.amount * 2 FROM {src} s JOIN {other} o ON s.id = o.id"
        )
    };
    create(&dev, "join-p1", &join(&j1), &[every]);
    create(&dev, "join-p2", &join(&j2), &["sql.parallelism=2", every]);
    // ids 1500..4000 meet.
    wait_equal(&j1, &j2, 2500);
    assert_eq!(placement(&dev, "join-p2").1, vec![2, 2]);
}

#[test]
fn a_keyed_aggregation_and_a_join_at_parallelism_2_equal_one_task_sqlite() {
    let dir = temp_dir();
    keyed_aggregation_and_join_at_p2_equal_p1(&format!(
        "sqlite://{}",
        dir.join("weir.db").display()
    ));
}

#[test]
fn a_keyed_aggregation_and_a_join_at_parallelism_2_equal_one_task_postgres() {
    keyed_aggregation_and_join_at_p2_equal_p1(&fresh_postgres());
}

/// Waits until `n` of `dst` sums to `total`.
fn wait_total(dst: &str, total: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = support::upsert_table(&broker(), dst);
        let sum: i64 = rows.values().map(|v| v["n"].as_i64().unwrap()).sum();
        if sum == total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the counts sum to {sum}, not {total}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A running keyed count rescaled 1 → 2 → 1 while input keeps arriving
/// counts every record once: each rescale drains and checkpoints the
/// tasks, and the new ones restore the partitions they own.
#[test]
fn a_stateful_statement_rescaled_under_load_loses_and_doubles_nothing() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let credential = dir.join("worker-credential");
    let _a = Killed(worker_with_slots(&dev, &credential, 2));
    let _b = Killed(worker_with_slots(&dev, &credential, 2));
    let (src, counts) = (unique("src"), unique("counts"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {counts} (amount INT, n BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    create(
        &dev,
        "count",
        &format!("INSERT INTO {counts} SELECT amount, COUNT(*) FROM {src} GROUP BY amount"),
        &["sql.parallelism=1", "execution.checkpointing.interval=1 s"],
    );
    dev.wait_phase("count", "RUNNING");
    let feeder = Feeder::start(&src, 0, Duration::from_millis(100), Some(8));
    std::thread::sleep(Duration::from_secs(2));
    let timed = |p: &str| {
        let t = Instant::now();
        dev.ok(&["statement", "rescale", "count", "--parallelism", p]);
        dev.wait_phase("count", "RUNNING");
        t.elapsed()
    };
    let up = timed("2");
    assert_eq!(placement(&dev, "count").1, vec![2, 2]);
    std::thread::sleep(Duration::from_secs(2));
    let down = timed("1");
    assert_eq!(placement(&dev, "count").1, vec![1, 1]);
    eprintln!("rescale 1 -> 2 took {up:?}, 2 -> 1 took {down:?}");
    let total = feeder.finish_after_restart();
    wait_total(&counts, total);
}

/// A worker running tasks of a parallel aggregation is killed: its tasks
/// move to the other worker and the result equals a run that was never
/// disturbed. Where the broker has transactions (noida-db) it is equal,
/// counts included: each task's output commits with its input offsets, so
/// the killed tasks' uncommitted work is aborted and done once again. On a
/// broker without (at-least-once), records read twice change neither a
/// maximum nor a minimum, and the count is at least the true one.
#[test]
fn a_parallel_statement_survives_the_loss_of_a_worker() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let credential = dir.join("worker-credential");
    let a = Killed(worker_with_slots(&dev, &credential, 4));
    let (src, d1, d2) = (unique("src"), unique("d1"), unique("d2"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {d1} (amount INT, low BIGINT, top BIGINT, n BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
        format!("CREATE TABLE {d2} (amount INT, low BIGINT, top BIGINT, n BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    let sql = |dst: &str| {
        format!("INSERT INTO {dst} SELECT amount, MIN(id), MAX(id), COUNT(*) FROM {src} GROUP BY amount")
    };
    create(
        &dev,
        "minmax",
        &sql(&d2),
        &["sql.parallelism=2", "execution.checkpointing.interval=1 s"],
    );
    produce_records(&broker(), &src, 0..2000, Some(8));
    dev.wait_phase("minmax", "RUNNING");
    dev.wait_checkpoints("minmax", 1);
    // Room for the moved tasks and the reference statement.
    let b = Killed(worker_with_slots(&dev, &credential, 5));
    // Input keeps arriving across the loss, so the killed tasks die with
    // work read, written and not yet committed.
    let feeder = Feeder::start(&src, 2000, Duration::from_millis(100), Some(8));
    std::thread::sleep(Duration::from_millis(500));
    let killed = format!("-{}", a.0.id());
    drop(a); // SIGKILL
    let on_b = format!("-{}", b.0.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (workers, _) = placement(&dev, "minmax");
        if workers.len() == 1 && workers.iter().all(|w| w.ends_with(&on_b)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tasks did not move off {killed}: {}",
            describe(&dev, "minmax")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    feeder.finish_after_restart();
    // The same statement as one task, never disturbed.
    create(
        &dev,
        "reference",
        &sql(&d1),
        &["execution.checkpointing.interval=1 s"],
    );
    let without_count = |t: &str| -> BTreeMap<Vec<u8>, (i64, i64, i64)> {
        support::upsert_table(&broker(), t)
            .into_iter()
            .map(|(k, v)| {
                let f = |c: &str| v[c].as_i64().unwrap();
                (k, (f("low"), f("top"), f("n")))
            })
            .collect()
    };
    let exact = std::env::var("WEIR_TEST_EXACTLY_ONCE").as_deref() == Ok("1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (want, got) = (without_count(&d1), without_count(&d2));
        let same = want.len() == 100
            && want.iter().all(|(k, (lo, hi, n))| {
                got.get(k).is_some_and(|(glo, ghi, gn)| {
                    glo == lo && ghi == hi && if exact { gn == n } else { gn >= n }
                })
            });
        if same {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the loss of a worker the result differs from an undisturbed run's: {} rows, {} rows, first differences {:?}; {}",
            want.len(),
            got.len(),
            want.iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .map(|(k, v)| (v, got.get(k)))
                .take(5)
                .collect::<Vec<_>>(),
            describe(&dev, "minmax")["status"]
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let s = describe(&dev, "minmax");
    assert_eq!(s["status"]["phase"], "RUNNING", "{s}");
    // It says which guarantee it gave: exactly-once where the broker has
    // transactions.
    assert_eq!(exactly_once(&dev, "minmax"), exact);
}

/// `'sql.parallelism'` below 1, above 256, or needing more tasks than the
/// pool's max_cfu is a 400 at create and at rescale; a statement started
/// as one task cannot be split later.
#[test]
fn a_parallelism_out_of_range_or_beyond_the_pool_is_refused() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let src = unique("src");
    let counts = unique("counts");
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {counts} (amount INT, n BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    let sql = format!("INSERT INTO {counts} SELECT amount, COUNT(*) FROM {src} GROUP BY amount");
    let refused = |props: &[&str], needle: &str| {
        let mut args = vec!["statement", "create", "--sql", sql.as_str()];
        for p in props {
            args.extend(["--property", p]);
        }
        let out = dev.weir(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{props:?} was accepted");
        assert!(err.contains("400") || err.contains(needle), "{err}");
        assert!(err.contains(needle), "{props:?}: {err}");
    };
    refused(&["sql.parallelism=0"], "whole number from 1 to 256");
    refused(&["sql.parallelism=257"], "whole number from 1 to 256");
    refused(&["sql.parallelism=two"], "whole number from 1 to 256");
    // 6 source tasks and 6 keyed tasks: 12 CFU, the dev pool has 10.
    refused(&["sql.parallelism=6"], "max_cfu is 10");
    // EXPLAIN says how it would run.
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "explain",
        "--wait",
        "--property",
        "sql.parallelism=2",
        "--sql",
        &format!("EXPLAIN {sql}"),
    ]);
    let text = dev.ok(&["statement", "results", "explain"]);
    assert!(text.contains("Stages: 2"), "{text}");
    assert!(text.contains("repartition topic hashed by"), "{text}");
    // A statement started as one task is not split later.
    create(&dev, "one", &sql, &[]);
    let out = dev.weir(&["statement", "rescale", "one", "--parallelism", "2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be split"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    create(&dev, "two", &sql, &["sql.parallelism=1"]);
    let out = dev.weir(&["statement", "rescale", "two", "--parallelism", "6"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_cfu is 10"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = describe(&dev, "two");
    assert_eq!(s["spec"]["properties"]["sql.parallelism"], "1");
}

#[test]
fn a_select_at_parallelism_2_reads_every_partition_once_and_completes() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let credential = dir.join("worker-credential");
    let _a = Killed(worker_with_slots(&dev, &credential, 1));
    let _b = Killed(worker_with_slots(&dev, &credential, 1));
    let src = unique("src");
    dev.ok(&[
        "statement",
        "create",
        "--wait",
        "--sql",
        &format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
    ]);
    // All into partition 0, which the first task reads: the second task,
    // whose partitions are empty, ends long before it.
    produce_records(&broker(), &src, 0..20000, Some(1));
    create(
        &dev,
        "sel",
        &format!("SELECT id, amount FROM {src} WHERE MOD(id, 3) = 0"),
        &[
            "sql.parallelism=2",
            "sql.tables.scan.bounded.mode=latest-offset",
        ],
    );
    // Read as they come: the results end when both tasks have, with every
    // row once.
    let out = dev.ok(&[
        "statement",
        "results",
        "sel",
        "--follow",
        "--output",
        "json",
    ]);
    let mut ids: Vec<i64> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            // A BIGINT is a JSON string, as in Confluent's results.
            v["row"][0].as_str().unwrap().parse().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (0..20000).filter(|i| i % 3 == 0).collect::<Vec<_>>());
    dev.wait_phase("sel", "COMPLETED");
    assert_eq!(
        placement(&dev, "sel").1,
        vec![2],
        "{}",
        describe(&dev, "sel")
    );
    // A SELECT is not rescaled: run again, it would show rows twice.
    let out = dev.weir(&["statement", "rescale", "sel", "--parallelism", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a SELECT"), "{err}");
}

#[test]
fn stacked_aggregations_on_a_common_key_at_parallelism_2_equal_one_task() {
    let dir = temp_dir();
    let dev = server(&dir, &format!("sqlite://{}", dir.join("weir.db").display()));
    let credential = dir.join("worker-credential");
    let _a = Killed(worker_with_slots(&dev, &credential, 3));
    let _b = Killed(worker_with_slots(&dev, &credential, 3));
    let (src, one, two) = (unique("src"), unique("one"), unique("two"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {one} (amount INT, n BIGINT, s BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
        format!("CREATE TABLE {two} (amount INT, n BIGINT, s BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_records(&broker(), &src, 0..3000, Some(8));
    // A GROUP BY over a GROUP BY whose key holds the upper one's: the
    // inner sums change as rows arrive, so the outer one takes back and
    // adds again, all in the keyed stage.
    let sql = |dst: &str| {
        format!(
            "INSERT INTO {dst} SELECT amount, COUNT(*), SUM(s) FROM \
             (SELECT amount, MOD(id, 7) AS m, SUM(id) AS s FROM {src} GROUP BY amount, MOD(id, 7)) \
             GROUP BY amount"
        )
    };
    let every = "execution.checkpointing.interval=1 s";
    create(&dev, "one", &sql(&one), &[every]);
    create(&dev, "two", &sql(&two), &["sql.parallelism=2", every]);
    // Each amount a has the 30 ids a + 100k, in all 7 residues, summing to
    // 30a + 43,500.
    let done = |t: &str| {
        table(t).values().all(|v| {
            let v: Value = serde_json::from_str(v).unwrap();
            let a = v["amount"].as_i64().unwrap();
            v["n"] == 7 && v["s"] == 30 * a + 43_500
        })
    };
    wait_equal_when(&one, &two, 100, done);
    let (workers, p) = placement(&dev, "two");
    assert_eq!(p, vec![2, 2], "{}", describe(&dev, "two"));
    assert_eq!(workers.len(), 2, "{workers:?}");
    // Both operators run behind one repartition topic, keyed by amount.
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "explain",
        "--wait",
        "--property",
        "sql.parallelism=2",
        "--sql",
        &format!("EXPLAIN {}", sql(&two)),
    ]);
    let text = dev.ok(&["statement", "results", "explain"]);
    assert!(text.contains("Stages: 2"), "{text}");
    assert!(
        text.contains("GroupAggregate → GroupAggregate, sink"),
        "{text}"
    );
}

/// A statement that ran as one task with `'sql.parallelism'` set (as
/// stacked operators did before they were split into stages) keeps
/// running as one task after a restart: its state is in that task's
/// checkpoints, and splitting it would start the keyed stage empty.
#[test]
fn a_keyed_statement_that_ran_as_one_task_stays_one_with_its_state() {
    let dir = temp_dir();
    let db = dir.join("weir.db");
    let dev = server(&dir, &format!("sqlite://{}", db.display()));
    let credential = dir.join("worker-credential");
    let _a = Killed(worker_with_slots(&dev, &credential, 4));
    let (src, dst) = (unique("src"), unique("dst"));
    for sql in [
        format!("CREATE TABLE {src} (id BIGINT, amount INT) WITH ('kafka.partitions' = '8')"),
        format!("CREATE TABLE {dst} (amount INT, n BIGINT, s BIGINT, PRIMARY KEY (amount) NOT ENFORCED)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_records(&broker(), &src, 0..3000, Some(8));
    let sql = format!(
        "INSERT INTO {dst} SELECT amount, COUNT(*), SUM(s) FROM \
         (SELECT amount, MOD(id, 7) AS m, SUM(id) AS s FROM {src} GROUP BY amount, MOD(id, 7)) \
         GROUP BY amount"
    );
    create(&dev, "old", &sql, &["execution.checkpointing.interval=1 s"]);
    // For amount a, the ids a + 100k (k < ids / 100) sum to
    // (ids / 100) * a + 100 * k(k-1)/2.
    let summed = |ids: i64| {
        let k = ids / 100;
        move |t: &str| {
            let rows = support::upsert_table(&broker(), t);
            rows.len() == 100
                && rows.values().all(|v| {
                    let a = v["amount"].as_i64().unwrap();
                    v["n"] == 7 && v["s"] == k * a + 100 * k * (k - 1) / 2
                })
        }
    };
    let wait = |ready: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(&dst) {
            assert!(Instant::now() < deadline, "{:?}", table(&dst));
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    wait(&summed(3000));
    // As an earlier version left it: the property set, one task run.
    dev.ok(&["statement", "stop", "old"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "UPDATE statements SET spec = json_set(spec, '$.properties.\"sql.parallelism\"', '2') WHERE name = 'old'",
        )
        .execute(&pool)
        .await
        .unwrap();
    });
    dev.ok(&["statement", "resume", "old"]);
    dev.wait_phase("old", "RUNNING");
    produce_records(&broker(), &src, 3000..4000, Some(8));
    wait(&summed(4000));
    let s = describe(&dev, "old");
    assert_eq!(s["spec"]["properties"]["sql.parallelism"], "2", "{s}");
    assert_eq!(s["status"]["scaling"]["mode"], "FIXED", "{s}");
    assert!(
        s["status"]["scaling"]["detail"]
            .as_str()
            .unwrap()
            .contains("started as one task"),
        "{s}"
    );
    let out = dev.weir(&["statement", "rescale", "old", "--parallelism", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be rescaled"), "{err}");
}
