//! The state the operators report (`state_size`, `state_bytes`, behind the
//! statement metrics of the same names) follows the keys they hold; and how
//! a join's inputs are wired to it.

use weir_compute_pool::compile;
use weir_compute_pool::connector::decode::{RawRecord, SourceDecoder};
use weir_compute_pool::{BranchSource, CompiledPlan, StatefulOp, Target};
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner};

fn compiled(sql: &str) -> CompiledPlan {
    let planner = Planner::new();
    let ctx = CatalogContext::from_ddl(
        &planner,
        &["CREATE TABLE t (k BIGINT, x DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)"],
    )
    .unwrap();
    match analyze(&planner, sql, &ctx).unwrap() {
        Analysis::Streaming { plan, .. } => compile(&plan).unwrap(),
        _ => unreachable!(),
    }
}

/// JSON values as the records of one partition, in order.
fn records(values: &[String]) -> Vec<RawRecord<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| RawRecord {
            headers: &[],
            key: None,
            value: Some(v.as_bytes()),
            partition: 0,
            offset: i as i64,
            timestamp_ms: 0,
        })
        .collect()
}

/// Feeds one record per key for keys `0..keys` (all in the first minute)
/// to every branch and returns (groups held, bytes held).
fn feed(sql: &str, keys: i64) -> (usize, usize) {
    let mut c = compiled(sql);
    let values: Vec<String> = (0..keys)
        .map(|k| {
            format!(
                r#"{{"k":{k},"x":1.5,"ts":"2024-01-01 00:00:{:02}"}}"#,
                k % 60
            )
        })
        .collect();
    let raw = records(&values);
    for branch in &c.branches {
        let BranchSource::Kafka(spec) = &branch.source else {
            unreachable!()
        };
        let (batch, _) = SourceDecoder::new(spec).unwrap().decode(&raw).unwrap();
        let b = branch.process(batch.unwrap(), None).unwrap().unwrap();
        c.stages.process(branch.target, b).unwrap();
    }
    (c.stages.state_size().1, c.stages.state_bytes())
}

#[test]
fn group_state_bytes_grow_with_the_keys_held() {
    let sql = "SELECT k, COUNT(*), SUM(x) FROM t GROUP BY k";
    let (g10, b10) = feed(sql, 10);
    let (g1000, b1000) = feed(sql, 1000);
    assert_eq!((g10, g1000), (10, 1000));
    assert!(b10 > 0);
    // Per-key state dominates: 100 times the keys, at least 50 times the
    // bytes, and each key costs more than its 8-byte key alone.
    assert!(
        b1000 > 50 * b10,
        "{b10} bytes for 10 keys, {b1000} for 1000"
    );
    assert!(b1000 / 1000 > 8, "{} bytes per key", b1000 / 1000);
}

#[test]
fn window_state_bytes_grow_with_the_keys_held() {
    let sql = "SELECT window_start, k, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end, k";
    let (g10, b10) = feed(sql, 10);
    let (g1000, b1000) = feed(sql, 1000);
    assert_eq!((g10, g1000), (10, 1000));
    assert!(
        b1000 > 20 * b10,
        "{b10} bytes for 10 keys, {b1000} for 1000"
    );
}

#[test]
fn join_state_bytes_grow_with_the_rows_held() {
    // A self-join: each record reaches both inputs, and each input holds it.
    let sql = "SELECT a.k, b.x FROM t AS a JOIN t AS b ON a.k = b.k";
    let (r10, b10) = feed(sql, 10);
    let (r1000, b1000) = feed(sql, 1000);
    assert_eq!((r10, r1000), (20, 2000));
    assert!(
        b1000 > 50 * b10,
        "{b10} bytes for 10 rows a side, {b1000} for 1000"
    );
    // A row holds its key and the whole input row (k, x, ts, $rowtime).
    assert!(b1000 / 2000 > 8 + 8 + 8, "{} bytes per row", b1000 / 2000);
}

#[test]
fn a_self_join_reads_its_topic_once_for_both_inputs() {
    let c = compiled("SELECT a.k, b.x FROM t AS a JOIN t AS b ON a.k = b.k");
    // One reader feeds both inputs, at one position.
    assert_eq!(c.readers, vec![0, 0]);
    assert_eq!(c.position_keys(), vec!["t".to_string(), "t".to_string()]);

    let targets: Vec<_> = c.branches.iter().map(|b| b.target).collect();
    assert_eq!(
        targets,
        vec![
            Target::Stage {
                index: 0,
                right: false
            },
            Target::Stage {
                index: 0,
                right: true
            }
        ]
    );
    assert_eq!(c.stages.stages[0].target, Target::Root);
    // A group aggregation over the join: the join is below, fed first.
    let c = compiled("SELECT a.k, COUNT(*) FROM t AS a JOIN t AS b ON a.k = b.k GROUP BY a.k");
    assert!(matches!(c.stages.stages[0].op, StatefulOp::Join(_)));
    assert_eq!(
        c.stages.stages[0].target,
        Target::Stage {
            index: 1,
            right: false
        }
    );
    assert_eq!(c.stages.stages[1].target, Target::Root);
}

/// A pattern whose conditions keep every row in play (each row starts a
/// partial match that every later row continues) stops with the reason
/// once one partition holds 5,000 partial matches, rather than growing
/// (quadratically) until memory runs out; the rows it holds before that
/// count in `state_bytes`, which the statement's memory limit watches.
#[test]
fn match_recognize_stops_a_pattern_that_keeps_every_row_in_play() {
    let sql = "SELECT * FROM t MATCH_RECOGNIZE (ORDER BY ts MEASURES COUNT(A.k) AS n \
               PATTERN (A+ B) DEFINE A AS A.x > 0, B AS B.x < 0)";
    let mut c = compiled(sql);
    let n = 5_050;
    let values: Vec<String> = (0..n)
        .map(|k| format!(r#"{{"k":{k},"x":1.5,"ts":"2024-01-01 00:00:00"}}"#))
        .collect();
    let raw = records(&values);
    let branch = &c.branches[0];
    let BranchSource::Kafka(spec) = &branch.source else {
        unreachable!()
    };
    let (batch, _) = SourceDecoder::new(spec).unwrap().decode(&raw).unwrap();
    let b = branch.process(batch.unwrap(), None).unwrap().unwrap();
    let target = branch.target;
    c.stages.process(target, b).unwrap();
    let held = c.stages.state_bytes();
    assert!(held > n as usize * 10, "the waiting rows count: {held}");
    let err = c.stages.advance(i64::MAX - 1).unwrap_err().to_string();
    assert!(
        err.contains("more than 5000 partial matches") && err.contains("WITHIN"),
        "{err}"
    );
}
