//! Planning SELECT and INSERT against a catalog: the plans' shapes, their
//! output schemas, and the errors users get.

use weir_sql_gateway::{
    analyze, Analysis, CatalogContext, JoinKind, PlanNode, Planner, SinkSpec, SqlError,
    StartupMode, StreamingPlan,
};

fn ctx() -> CatalogContext {
    CatalogContext::from_ddl(
        &Planner::new(),
        &[
            "CREATE TABLE orders (id BIGINT, who STRING, amount DOUBLE, \
             address ROW<city STRING, zip STRING>, tags ARRAY<STRING>, \
             big_amount AS amount * 100, \
             ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', \
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)",
            "CREATE TABLE sink (id BIGINT, who STRING, total DOUBLE)",
            "CREATE TABLE totals (id BIGINT, who STRING, total DOUBLE, \
             PRIMARY KEY (id) NOT ENFORCED)",
        ],
    )
    .unwrap()
}

fn plan(sql: &str) -> StreamingPlan {
    match analyze(&Planner::new(), sql, &ctx()).unwrap_or_else(|e| panic!("{sql}: {e}")) {
        Analysis::Streaming { plan, .. } => *plan,
        other => panic!("{sql}: {other:?}"),
    }
}

fn error(sql: &str) -> SqlError {
    analyze(&Planner::new(), sql, &ctx()).expect_err(sql)
}

fn sources(node: &PlanNode) -> Vec<&weir_sql_gateway::SourceSpec> {
    node.sources()
}

fn columns(p: &StreamingPlan) -> Vec<String> {
    p.output_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn an_expression_without_a_name_is_named_by_its_position_as_in_flink() {
    let p = plan("SELECT id, amount * 2, who AS w, UPPER(who) FROM orders");
    assert_eq!(columns(&p), ["id", "EXPR$1", "w", "EXPR$3"]);
    let p = plan("SELECT who, COUNT(*), SUM(amount) FROM orders GROUP BY who");
    assert_eq!(columns(&p), ["who", "EXPR$1", "EXPR$2"]);
    // A name given to another item is not taken.
    let p = plan("SELECT amount + 1, id AS `EXPR$0` FROM orders");
    assert_eq!(columns(&p)[1], "EXPR$0");
}

#[test]
fn nested_rewritten_calls_that_would_grow_without_bound_are_refused() {
    // Each GREATEST repeats its arguments once (the NULL test): 40 levels
    // would be 2^40 copies.
    let mut e = "amount".to_string();
    for _ in 0..40 {
        e = format!("GREATEST({e}, 1.0)");
    }
    // On the planner's stack, as the service plans.
    let err = on_planner_stack(&format!("SELECT {e} FROM orders")).expect_err("refused");
    assert!(err.to_string().contains("grows past 64 KiB"), "{err}");
    // A few levels plan.
    plan("SELECT GREATEST(GREATEST(GREATEST(amount, 1.0), 2.0), 3.0) FROM orders");
}

/// Plans `sql` on the planner's stack, as the service does, and says how
/// long it took.
fn timed(sql: &str) -> (Result<Analysis, SqlError>, std::time::Duration) {
    let start = std::time::Instant::now();
    let r = on_planner_stack(sql);
    (r, start.elapsed())
}

#[test]
fn calls_made_by_another_name_nest_without_doubling_their_names() {
    // `SIGN` is DataFusion's `signum`: a call by the other name used to be
    // wrapped in an alias holding its text, so 20 nested calls made a
    // name of 2^20 copies and took minutes to type.
    let sql = format!(
        "SELECT {}amount{} AS v FROM orders",
        "SIGN(".repeat(20),
        ")".repeat(20)
    );
    let (r, took) = timed(&sql);
    assert!(r.is_ok(), "{r:?}");
    println!("20 nested SIGN planned in {took:?}");
    let p = plan("SELECT SIGN(SIGN(id)), IFNULL(who, 'x'), CHAR_LENGTH(who) FROM orders");
    assert_eq!(columns(&p), ["EXPR$0", "EXPR$1", "EXPR$2"]);
    // So do they in a computed column and a watermark.
    let signs = |inner: &str| format!("{}{inner}{}", "SIGN(".repeat(16), ")".repeat(16));
    let ddl = format!(
        "CREATE TABLE signs (id BIGINT, ts TIMESTAMP(3), v AS {}, \
         WATERMARK FOR ts AS CASE WHEN {} > 0 THEN ts ELSE ts END)",
        signs("id"),
        signs("id")
    );
    let ctx = weir_sql_gateway::limits::on_planner_stack(|| {
        CatalogContext::from_ddl(&Planner::new(), &[ddl.as_str()])
    })
    .expect("no panic")
    .expect("16 nested SIGN in a computed column and a watermark");
    let r = weir_sql_gateway::limits::on_planner_stack(|| {
        analyze(&Planner::new(), "SELECT v FROM signs", &ctx)
    })
    .expect("no panic");
    let Ok(Analysis::Streaming { plan, .. }) = r else {
        panic!("{r:?}")
    };
    // The planned expressions hold one call per level, not a name doubled
    // at every level (2^16 copies).
    let source = &sources(&plan.root)[0];
    let planned = format!("{} {}", source.computed[0].1, source.watermark);
    assert!(planned.len() < 2_000, "{} bytes", planned.len());
}

#[test]
fn expressions_too_costly_to_type_are_refused_and_shallow_ones_plan() {
    // Every CASE over a call doubles DataFusion's typing work below it.
    let nest = |open: &str, close: &str, n: usize| {
        format!(
            "SELECT {}amount{} AS v FROM orders",
            open.repeat(n),
            close.repeat(n)
        )
    };
    for (open, close, refused_at) in [
        ("CASE WHEN id > 0 THEN ABS(", ") END", 14),
        ("COALESCE(ABS(", "), 1)", 8),
        ("CASE WHEN ABS(", ") BETWEEN 1 AND 2 THEN 1 ELSE 0 END", 14),
    ] {
        let e = on_planner_stack(&nest(open, close, refused_at)).expect_err("too costly");
        assert!(e.to_string().contains("typing it would take"), "{e}");
        assert_eq!(e.position(), Some((1, 8)), "{e}");
        assert!(on_planner_stack(&nest(open, close, 4)).is_ok(), "{open}");
    }
    // A computed column is typed the same way.
    let column = format!(
        "CREATE TABLE costly (id BIGINT, v AS {}id{})",
        "CASE WHEN id > 0 THEN ABS(".repeat(14),
        ") END".repeat(14)
    );
    let e = weir_sql_gateway::limits::on_planner_stack(|| {
        CatalogContext::from_ddl(&Planner::new(), &[column.as_str()])
    })
    .expect("no panic")
    .expect_err("too costly");
    assert!(e.to_string().contains("typing it would take"), "{e}");
    // A wide, flat statement is not costly however long.
    let wide = (0..3_000)
        .map(|i| format!("CASE WHEN id = {i} THEN ABS(amount) END AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (r, took) = timed(&format!("SELECT {wide} FROM orders"));
    assert!(r.is_ok(), "{:?}", r.err());
    println!("3,000 CASE columns planned in {took:?}");
    let list = (0..5_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    plan(&format!("SELECT id FROM orders WHERE ABS(id) IN ({list})"));
}

#[test]
fn rewritten_calls_nested_past_what_the_parser_takes_fail_fast() {
    // HOUR and TIMESTAMPADD are rewritten into several levels each: nine
    // of them once made a text the parser backtracked over for minutes.
    let mut e = "id".to_string();
    for _ in 0..12 {
        e = format!("HOUR(TIMESTAMPADD(SECOND, {e}, ts))");
    }
    let (r, took) = timed(&format!("SELECT {e} AS v FROM orders"));
    let err = r.expect_err("too deep");
    assert!(
        err.to_string().contains("nests function calls too deeply"),
        "{err}"
    );
    println!("refused in {took:?}");
    plan("SELECT HOUR(TIMESTAMPADD(SECOND, HOUR(TIMESTAMPADD(SECOND, id, ts)), ts)) FROM orders");
}

#[test]
fn select_star_hides_rowtime_and_naming_it_selects_it() {
    let p = plan("SELECT * FROM orders");
    assert_eq!(
        columns(&p),
        ["id", "who", "amount", "address", "tags", "big_amount", "ts"]
    );
    let p = plan("SELECT id, `$rowtime` FROM orders");
    assert_eq!(columns(&p), ["id", "$rowtime"]);
    assert!(matches!(p.sink, SinkSpec::Results));
    assert!(!p.is_bounded());
}

#[test]
fn the_source_decodes_only_the_columns_the_statement_reads() {
    let p = plan("SELECT UPPER(who) AS w FROM orders WHERE amount > 10");
    let s = sources(&p.root);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].read_columns.as_deref(),
        Some(&["who".to_string(), "amount".to_string()][..])
    );
    // A computed column pulls in what it is computed from.
    let p = plan("SELECT big_amount FROM orders");
    assert_eq!(
        sources(&p.root)[0].read_columns.as_deref(),
        Some(&["amount".to_string()][..])
    );
}

#[test]
fn expressions_of_the_walking_skeleton_plan() {
    let p = plan(
        "SELECT id, CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size, \
         CAST(amount AS INT) AS whole, amount * 2 + 1 AS calc, \
         address.city AS city, CHAR_LENGTH(who) AS n, tags[1] AS first_tag \
         FROM orders \
         WHERE who LIKE 'a%' AND id IN (1, 2, 3) AND address IS NOT NULL",
    );
    assert_eq!(
        columns(&p),
        ["id", "size", "whole", "calc", "city", "n", "first_tag"]
    );
}

#[test]
fn subqueries_union_all_values_and_limit() {
    let p = plan(
        "SELECT who FROM (SELECT who, amount FROM orders WHERE amount > 1) AS t WHERE amount < 5 \
         UNION ALL SELECT who FROM orders",
    );
    assert_eq!(sources(&p.root).len(), 2);
    let p = plan("SELECT x FROM (VALUES (1), (2)) AS t(x)");
    assert!(p.is_bounded());
    let p = plan("SELECT id FROM orders LIMIT 3");
    assert!(matches!(p.root, PlanNode::Limit { fetch: 3, .. }));
}

#[test]
fn hints_override_table_options_for_one_statement() {
    let p = plan("SELECT id FROM orders /*+ OPTIONS('scan.startup.mode'='latest-offset') */");
    assert!(matches!(sources(&p.root)[0].startup, StartupMode::Latest));
    let p = plan("SELECT id FROM orders");
    assert!(matches!(sources(&p.root)[0].startup, StartupMode::Earliest));
}

#[test]
fn insert_maps_and_checks_columns() {
    let p = plan("INSERT INTO sink SELECT id, who, amount * 2 FROM orders");
    assert!(matches!(p.sink, SinkSpec::Table { .. }));
    let e = error("INSERT INTO sink SELECT id, who FROM orders");
    assert!(e.to_string().contains("produces 2 columns"), "{e}");
    let e = error("INSERT INTO sink (id, nope) SELECT id, who FROM orders");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn unknown_names_and_unsupported_operators_are_errors_with_positions() {
    let e = error("SELECT id\nFROM nowhere");
    assert!(e.to_string().contains("nowhere"), "{e}");
    assert_eq!(e.position(), Some((2, 6)), "{e}");
    let e = error("SELECT id, idd FROM orders");
    assert!(e.to_string().contains("idd"), "{e}");
    assert_eq!(e.position(), Some((1, 12)), "{e}");
    let e = error("SELECT id, SUM(amount) OVER (PARTITION BY who ORDER BY id) FROM orders");
    assert!(
        e.to_string()
            .contains("OVER aggregation must be ORDER BY one time attribute"),
        "{e}"
    );
}

#[test]
fn joins_plan_with_their_changelog_and_upsert_key() {
    let p = plan("SELECT o.id, p.who FROM orders AS o JOIN orders AS p ON o.id = p.id");
    assert!(matches!(
        p.root,
        PlanNode::Project { ref input, .. } if matches!(**input, PlanNode::Join { kind: JoinKind::Inner, .. })
    ));
    assert!(
        p.root.is_append_only(),
        "an inner join of append-only inputs"
    );
    assert_eq!(sources(&p.root).len(), 2);
    let p = plan("SELECT o.id, p.who FROM orders AS o LEFT JOIN orders AS p ON o.id = p.id");
    assert!(!p.root.is_append_only(), "a left join retracts its padding");
    // Two aggregations joined on their keys: the left key keys the output.
    let p = plan(
        "SELECT a.who, a.n, b.s FROM (SELECT who, COUNT(*) AS n FROM orders GROUP BY who) a \
         JOIN (SELECT who, SUM(amount) AS s FROM orders GROUP BY who) b ON a.who = b.who",
    );
    assert_eq!(p.root.upsert_key(), Some(vec![0]));
    let text = explain(
        "EXPLAIN SELECT o.id, p.who FROM orders AS o FULL JOIN orders AS p ON o.id = p.id AND o.amount > p.amount",
    );
    let join = line(&text, "Join:");
    assert!(join.contains("FULL JOIN on=[o.id = p.id]"), "{join}");
    assert!(join.contains("filter=o.amount > p.amount"), "{join}");
    assert!(
        join.contains("changelog=[+I,-U,+U,-D] consumes=[append, append]"),
        "{join}"
    );
    assert!(
        join.contains("state=every row of both inputs by join key [o.id | p.id]"),
        "{join}"
    );
    assert_eq!(text.matches("KafkaSource").count(), 2, "{text}");
    // IN is a semi join: append-only over append-only inputs, left columns
    // only; NOT EXISTS an anti join, an update stream.
    let p = plan("SELECT id FROM orders WHERE id IN (SELECT id FROM orders WHERE amount > 1)");
    assert!(
        matches!(
            p.root,
            PlanNode::Join {
                kind: JoinKind::LeftSemi,
                ..
            }
        ),
        "{}",
        p.explain()
    );
    assert!(p.root.is_append_only());
    assert_eq!(columns(&p), ["id"]);
    let p = plan(
        "SELECT id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM orders p WHERE p.who = o.who AND p.id <> o.id)",
    );
    assert!(!p.root.is_append_only(), "{}", p.explain());
}

#[test]
fn updates_into_an_append_only_table_are_refused_naming_the_operator() {
    let e = error("INSERT INTO sink SELECT id, MAX(who), SUM(amount) FROM orders GROUP BY id");
    let msg = e.to_string();
    assert!(msg.contains("GROUP BY"), "{msg}");
    assert!(msg.contains("append-only"), "{msg}");
    assert!(msg.contains("PRIMARY KEY (id)"), "{msg}");
    let p = plan("SELECT who, COUNT(*) FROM orders GROUP BY who");
    assert!(!p.root.is_append_only());
    assert_eq!(p.root.upsert_key(), Some(vec![0]));
}

#[test]
fn explain_shows_each_operators_changelog_and_state() {
    let text = explain("EXPLAIN SELECT who, COUNT(*) FROM orders WHERE id > 1 GROUP BY who");
    assert!(
        text.contains("ResultsSink: consumes=[+I,-U,+U,-D]"),
        "{text}"
    );
    let agg = line(&text, "GroupAggregate");
    assert!(
        agg.contains("changelog=[+I,-U,+U,-D] consumes=append"),
        "{agg}"
    );
    assert!(
        agg.contains("state=accumulators, row count and last result per key [orders.who]"),
        "{agg}"
    );
    let filter = line(&text, "Filter");
    assert!(filter.contains("changelog=append"), "{filter}");
}

/// The line of an `EXPLAIN` text that holds `marker`.
fn line<'a>(text: &'a str, marker: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} in {text}"))
}

fn explain(sql: &str) -> String {
    match analyze(&Planner::new(), sql, &ctx()).unwrap() {
        Analysis::Explain(text) => text,
        other => panic!("{other:?}"),
    }
}

#[test]
fn explain_shows_top_n_and_deduplication_with_their_state() {
    let text = explain(
        "EXPLAIN SELECT who, amount, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY who ORDER BY amount DESC) AS rn FROM orders) WHERE rn <= 3",
    );
    let top = line(&text, "TopN:");
    assert!(top.contains("partition=[orders.who]"), "{top}");
    assert!(top.contains("n=3 output=rows with row number"), "{top}");
    assert!(
        top.contains("changelog=[+I,-U,+U,-D] consumes=append state=the top N rows per partition"),
        "{top}"
    );
    let p = plan("SELECT who, amount, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY who ORDER BY amount DESC) AS rn FROM orders) WHERE rn <= 3");
    assert_eq!(
        p.root.upsert_key(),
        Some(vec![0, 2]),
        "keyed by partition and rank"
    );

    let text = explain(
        "EXPLAIN SELECT id, who FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY `$rowtime` DESC) AS rn FROM orders) WHERE rn = 1",
    );
    let dedup = line(&text, "Deduplicate:");
    assert!(dedup.contains("n=1 output=last row"), "{dedup}");
    let p = plan("SELECT id, who FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY `$rowtime` DESC) AS rn FROM orders) WHERE rn = 1");
    assert_eq!(p.root.upsert_key(), Some(vec![0]), "keyed by the partition");
}

#[test]
fn explain_names_source_and_sink() {
    match analyze(
        &Planner::new(),
        "EXPLAIN INSERT INTO sink SELECT id, who, amount FROM orders WHERE id > 1",
        &ctx(),
    )
    .unwrap()
    {
        Analysis::Explain(text) => {
            assert!(text.contains("KafkaSink"), "{text}");
            assert!(text.contains("KafkaSource"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn explain_shows_a_session_window_and_its_state() {
    let text = explain(
        "EXPLAIN SELECT who, SESSION_END(ts, INTERVAL '30' SECOND), COUNT(*) FROM orders \
         GROUP BY who, SESSION(ts, INTERVAL '30' SECOND)",
    );
    let agg = line(&text, "WindowAggregate");
    assert!(agg.contains("window=SESSION(gap=30000ms)"), "{agg}");
    assert!(agg.contains("keys=[orders.who]"), "{agg}");
    assert!(
        agg.contains("state=accumulators per (key, session), sessions merged"),
        "{agg}"
    );
    assert!(agg.contains("changelog=append"), "{agg}");
}

fn created(sql: &str) -> weir_catalog::TableDef {
    match analyze(&Planner::new(), sql, &ctx()).unwrap_or_else(|e| panic!("{sql}: {e}")) {
        Analysis::Streaming {
            create: Some(def),
            sql_kind,
            ..
        } => {
            assert_eq!(sql_kind, "CREATE_TABLE_AS");
            def
        }
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn create_table_as_keys_an_updating_query_by_its_upsert_key() {
    let append = created("CREATE TABLE big AS SELECT id, who FROM orders WHERE amount > 10");
    assert!(append.primary_key.is_empty());
    assert_eq!(append.changelog_mode(), "append");
    let names: Vec<_> = append.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "who"]);

    let totals =
        created("CREATE TABLE totals AS SELECT who, SUM(amount) AS total FROM orders GROUP BY who");
    assert_eq!(totals.primary_key, ["who"]);
    assert_eq!(totals.changelog_mode(), "upsert");
    let who = totals.columns.iter().find(|c| c.name == "who").unwrap();
    assert!(!who.nullable, "a primary key column is NOT NULL");

    // A join of two aggregations has no upsert key: every change is kept.
    let joined = created(
        "CREATE TABLE joined AS SELECT a.who, a.n, b.m FROM \
         (SELECT who, COUNT(*) AS n FROM orders GROUP BY who) a JOIN \
         (SELECT who, MAX(amount) AS m FROM orders GROUP BY who) b ON a.n = b.m",
    );
    assert!(joined.primary_key.is_empty());
    assert_eq!(joined.changelog_mode(), "retract");
}

#[test]
fn explain_shows_grouping_sets_as_an_expand_under_one_aggregation() {
    let text = explain("EXPLAIN SELECT who, id, COUNT(*) FROM orders GROUP BY ROLLUP (who, id)");
    let expand = line(&text, "Expand:");
    assert!(
        expand.contains("every row 3 times, one per grouping set changelog=append"),
        "{expand}"
    );
    let agg = line(&text, "GroupAggregate");
    assert!(agg.contains("__grouping_id"), "keyed by the set too: {agg}");
    assert!(
        text.find("GroupAggregate") < text.find("Expand:"),
        "the aggregation is above the expand: {text}"
    );
}

#[test]
fn a_join_bounding_two_time_attributes_is_an_append_only_interval_join() {
    let sql = "SELECT a.id, b.amount FROM orders a LEFT JOIN orders b ON a.id = b.id \
               AND a.ts BETWEEN b.ts - INTERVAL '1' MINUTE AND b.ts + INTERVAL '10' SECOND";
    let text = explain(&format!("EXPLAIN {sql}"));
    let join = line(&text, "IntervalJoin:");
    assert!(
        join.contains("LEFT JOIN on=[a.id = b.id] bounds=-60000 <= a.ts - b.ts <= 10000 (ms)"),
        "{join}"
    );
    assert!(join.contains("changelog=append"), "{join}");
    assert!(plan(sql).root.is_append_only(), "padded rows are final");

    // The same bounds on a column without a watermark: a regular join.
    let text = explain(
        "EXPLAIN SELECT a.id FROM orders a JOIN orders b ON a.id = b.id \
         AND a.amount BETWEEN b.amount - 1 AND b.amount",
    );
    assert!(!text.contains("IntervalJoin"), "{text}");
    assert!(text.contains("Join: INNER JOIN"), "{text}");
}

#[test]
fn cross_join_unnest_is_a_stateless_unnest_of_the_rows_array() {
    let text =
        explain("EXPLAIN SELECT o.id, x.tag FROM orders o CROSS JOIN UNNEST(o.tags) AS x(tag)");
    let unnest = line(&text, "Unnest:");
    assert!(
        unnest.contains("drops rows without elements changelog=append state=none"),
        "{unnest}"
    );
    assert!(!text.contains("Join"), "no join state: {text}");
    let p = plan("SELECT o.id, x.tag FROM orders o LEFT JOIN UNNEST(o.tags) AS x(tag) ON TRUE");
    assert_eq!(columns(&p), ["id", "tag"]);
    assert!(p.root.is_append_only());
}

#[test]
fn row_number_over_a_windows_start_and_end_is_an_append_only_window_top_n() {
    let sql = "SELECT * FROM (SELECT who, amount, window_start, window_end, \
               ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY amount DESC) AS rn \
               FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) WHERE rn <= 3";
    let text = explain(&format!("EXPLAIN {sql}"));
    let top = line(&text, "WindowTopN:");
    assert!(
        top.contains("n=3 changelog=append consumes=append"),
        "{top}"
    );
    assert!(
        top.contains("state=the top N rows per window and partition until the watermark passes"),
        "{top}"
    );
    assert!(plan(sql).root.is_append_only());
}

#[test]
fn an_upsert_table_reads_as_an_update_stream_keyed_by_its_primary_key() {
    let ctx = CatalogContext::from_ddl(
        &Planner::new(),
        &["CREATE TABLE rates (cur STRING, rate DOUBLE, PRIMARY KEY (cur) NOT ENFORCED)"],
    )
    .unwrap();
    let Analysis::Explain(text) =
        analyze(&Planner::new(), "EXPLAIN SELECT rate FROM rates", &ctx).unwrap()
    else {
        panic!("an explanation")
    };
    let n = line(&text, "ChangelogNormalize:");
    assert!(
        n.contains(
            "key=[cur] changelog=[+I,-U,+U,-D] consumes=upsert state=last row per key [cur]"
        ),
        "{n}"
    );
    let Analysis::Streaming { plan, .. } =
        analyze(&Planner::new(), "SELECT rate FROM rates", &ctx).unwrap()
    else {
        panic!("a plan")
    };
    assert!(!plan.root.is_append_only());
    let read = plan.root.sources()[0].read_columns.clone().unwrap();
    assert!(
        read.contains(&"cur".to_string()),
        "the key is decoded: {read:?}"
    );
}

#[test]
fn a_join_on_equal_windows_frees_each_window_at_its_end() {
    let w = "(SELECT * FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)))";
    let sql = format!(
        "SELECT a.id FROM {w} a FULL JOIN {w} b ON a.id = b.id \
         AND a.window_start = b.window_start AND a.window_end = b.window_end"
    );
    let text = explain(&format!("EXPLAIN {sql}"));
    let join = line(&text, "IntervalJoin:");
    assert!(
        join.contains("bounds=0 <= a.window_end - b.window_end <= 0"),
        "{join}"
    );
    assert!(
        plan(&sql).root.is_append_only(),
        "padded once, at the window end"
    );
}

#[test]
fn an_over_aggregation_is_append_only_and_waits_for_the_watermark() {
    let text = explain(
        "EXPLAIN SELECT id, SUM(amount) OVER (PARTITION BY who ORDER BY ts \
         RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) FROM orders",
    );
    let over = line(&text, "OverAggregate:");
    assert!(over.contains("partition=[orders.who]"), "{over}");
    assert!(over.contains("frame=RANGE 3600000ms PRECEDING"), "{over}");
    assert!(over.contains("changelog=append"), "{over}");
    let e = error("SELECT LEAD(amount) OVER (ORDER BY ts) FROM orders");
    assert!(
        e.to_string()
            .contains("lead OVER (...) is not supported in a stream"),
        "{e}"
    );
}

#[test]
fn for_system_time_as_of_a_versioned_table_is_a_temporal_join() {
    let ctx = CatalogContext::from_ddl(
        &Planner::new(),
        &[
            "CREATE TABLE o (id INT, cur STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)",
            "CREATE TABLE rates (cur STRING, rate INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts, \
             PRIMARY KEY (cur) NOT ENFORCED)",
        ],
    )
    .unwrap();
    let sql = "SELECT o.id, r.rate FROM o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r \
               ON o.cur = r.cur";
    let Analysis::Explain(text) =
        analyze(&Planner::new(), &format!("EXPLAIN {sql}"), &ctx).unwrap()
    else {
        panic!("an explanation")
    };
    let join = line(&text, "TemporalJoin:");
    assert!(
        join.contains("LEFT JOIN on=[o.cur = r.cur] as_of=o.ts version=r.ts changelog=append"),
        "{join}"
    );
    assert!(text.contains("ChangelogNormalize"), "{text}");

    // AS OF a processing-time attribute: a lookup of the key's latest row,
    // which needs no watermark on either side.
    let ctx = CatalogContext::from_ddl(
        &Planner::new(),
        &[
            "CREATE TABLE o (id INT, cur STRING, p AS PROCTIME())",
            "CREATE TABLE rates (cur STRING, rate INT, PRIMARY KEY (cur) NOT ENFORCED)",
        ],
    )
    .unwrap();
    let sql = "EXPLAIN SELECT o.id, r.rate FROM o JOIN rates FOR SYSTEM_TIME AS OF o.p AS r \
               ON o.cur = r.cur";
    let Analysis::Explain(text) = analyze(&Planner::new(), sql, &ctx).unwrap() else {
        panic!("an explanation")
    };
    let join = line(&text, "TemporalJoin:");
    assert!(
        join.contains("as_of=o.p (processing time) changelog=append"),
        "{join}"
    );
    assert!(join.contains("state=each key's latest row"), "{join}");
}

#[test]
fn grouping_and_grouping_id_are_bigint_as_in_flink() {
    let p = plan(
        "SELECT who, GROUPING(who) AS g, GROUPING_ID(who, id) AS gid, COUNT(*) AS n \
         FROM orders GROUP BY ROLLUP (who, id)",
    );
    let schema = &p.output_schema;
    for name in ["g", "gid", "n"] {
        let field = schema.field_with_name(name).unwrap();
        assert_eq!(
            field.data_type(),
            &arrow::datatypes::DataType::Int64,
            "{name}: {field:?}"
        );
    }
}

/// Plans on the planner's own stack, as the control plane does.
fn on_planner_stack(sql: &str) -> Result<Analysis, SqlError> {
    let sql = sql.to_string();
    weir_sql_gateway::limits::on_planner_stack(move || analyze(&Planner::new(), &sql, &ctx()))
        .expect("planning does not panic")
}

#[test]
fn an_expression_deeper_than_the_limit_is_refused_where_it_starts() {
    for sql in [
        format!("SELECT {}1", "1 + ".repeat(19_999)),
        format!(
            "SELECT id FROM orders WHERE {}who = 'x'",
            "who = 'x' OR ".repeat(2_000)
        ),
        format!("SELECT {}'a' FROM orders", "'a' || ".repeat(2_999)),
    ] {
        let e = on_planner_stack(&sql).expect_err("too deep");
        assert!(e.to_string().contains("more than 1000 levels deep"), "{e}");
        assert_eq!(e.position().map(|p| p.0), Some(1), "{e}");
    }
    // A computed column is held to the same limit when it is planned.
    let deep = format!("CREATE TABLE t (a INT, b AS {}a)", "a + ".repeat(1_500));
    let e = weir_sql_gateway::limits::on_planner_stack(move || {
        CatalogContext::from_ddl(&Planner::new(), &[deep.as_str()]).map(|_| ())
    })
    .expect("planning does not panic")
    .expect_err("too deep");
    assert!(e.to_string().contains("more than 1000 levels deep"), "{e}");
}

#[test]
fn a_chain_of_a_hundred_thousand_operators_is_refused_before_it_is_a_tree() {
    // Parsed, it would be a tree 100,000 deep: walking or dropping it
    // overflowed the planner's stack and aborted the process.
    for (term, sql) in [
        ("1 + ", format!("SELECT {}1", "1 + ".repeat(100_000))),
        ("1 AND ", format!("SELECT {}1", "1 AND ".repeat(300_000))),
    ] {
        let e = on_planner_stack(&sql).expect_err("too many operators");
        assert!(e.to_string().contains("more than 20000 operators"), "{e}");
        // At the operator past the limit (columns count from 1).
        let col = "SELECT ".len() + 20_000 * term.len() + 2 + 1;
        assert_eq!(e.position(), Some((1, col as u64)), "{e}");
    }
    // Postfix and infix keywords chain as deep without any operator.
    for tail in [" IS NULL", "::INT", " LIKE 'a'", "[1]", " COLLATE x"] {
        let sql = format!("SELECT 1{}", tail.repeat(100_000));
        let e = on_planner_stack(&sql).expect_err("too many operators");
        assert!(
            e.to_string().contains("more than 20000 operators"),
            "{tail}: {e}"
        );
    }
}

#[test]
fn an_expression_just_under_the_limit_plans() {
    let sql = format!(
        "SELECT {}amount AS total FROM orders",
        "amount + ".repeat(900)
    );
    match on_planner_stack(&sql).unwrap() {
        Analysis::Streaming { plan, .. } => assert_eq!(columns(&plan), ["total"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hop_window_with_too_many_windows_per_row_is_refused_with_advice() {
    let e = error(
        "SELECT window_start, COUNT(*) FROM TABLE(HOP(TABLE orders, DESCRIPTOR(ts), \
         INTERVAL '0.001' SECOND, INTERVAL '1' DAY)) GROUP BY window_start, window_end",
    );
    let m = e.to_string();
    assert!(m.contains("86400000 windows"), "{m}");
    assert!(m.contains("at most 10000 per row"), "{m}");
    assert!(e.position().is_some(), "{m}");
    let e = error(
        "SELECT window_start, COUNT(*) FROM TABLE(CUMULATE(TABLE orders, DESCRIPTOR(ts), \
         INTERVAL '1' SECOND, INTERVAL '1' DAY)) GROUP BY window_start, window_end",
    );
    assert!(e.to_string().contains("86400 windows"), "{e}");
    // One day in one-minute slides is fine.
    plan(
        "SELECT window_start, COUNT(*) FROM TABLE(HOP(TABLE orders, DESCRIPTOR(ts), \
         INTERVAL '1' MINUTE, INTERVAL '1' DAY)) GROUP BY window_start, window_end",
    );
    // Without aggregation every window is a copy of the row.
    let e = error(
        "SELECT id, window_start FROM TABLE(HOP(TABLE orders, DESCRIPTOR(ts), \
         INTERVAL '1' MINUTE, INTERVAL '1' DAY))",
    );
    assert!(
        e.to_string().contains("copies a row at most 100 times"),
        "{e}"
    );
}

#[test]
fn a_memory_limit_property_is_read_or_refused() {
    use std::collections::BTreeMap;
    let props = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let l = weir_sql_gateway::memory_limit(&props(&[]), 1000).unwrap();
    assert_eq!((l.soft, l.hard), (800, 1000));
    let l = weir_sql_gateway::memory_limit(&props(&[("sql.memory.limit", "10 mb")]), 1000).unwrap();
    assert_eq!((l.soft, l.hard), (8 << 20, 10 << 20));
    for bad in [
        vec![("sql.memory.limit", "lots")],
        vec![("sql.memory.limit", "0")],
        vec![
            ("sql.memory.limit", "1 mb"),
            ("sql.memory.soft-limit", "2 mb"),
        ],
    ] {
        assert!(
            weir_sql_gateway::memory_limit(&props(&bad), 1000).is_err(),
            "{bad:?}"
        );
    }
    // Durations too large to count fail as bad values, not as overflow.
    assert_eq!(weir_sql_gateway::duration_ms("99999999999999999 d"), None);
}

#[test]
fn a_syntax_error_deep_inside_nested_calls_is_refused_without_backtracking_forever() {
    // sqlparser retries a failed nested call as a function call at every
    // level: 2^100 steps, unless the parse budget stops it.
    let sql = format!("SELECT {} x FROM orders", "CAST(amount + ".repeat(100));
    let e = on_planner_stack(&sql).expect_err("unclosed calls");
    assert!(
        e.to_string()
            .contains("inside deeply nested parentheses or calls"),
        "{e}"
    );
    // It points at the ninth call's parenthesis, past the depth it keeps.
    let ninth = "SELECT ".len() + 8 * "CAST(amount + ".len() + "CAST(".len();
    assert_eq!(e.position(), Some((1, ninth as u64)), "{e}");
    // A long statement does not buy a longer backtrack: the bound is per
    // token (with one per text, 50,000 columns before it took half a
    // minute).
    let sql = format!(
        "SELECT {}{} x FROM orders",
        "amount, ".repeat(50_000),
        "CAST(amount + ".repeat(60)
    );
    let (r, took) = timed(&sql);
    let e = r.expect_err("unclosed calls");
    assert!(e.to_string().contains("inside deeply nested"), "{e}");
    println!("refused after 50,000 columns in {took:?}");
    // A shallow one still gets the parser's own message.
    let e = error("SELECT CAST(CAST(amount + 1 FROM orders");
    assert!(e.to_string().contains("Expected"), "{e}");
}

#[test]
fn a_function_asked_for_a_gigabyte_string_plans_without_making_it() {
    // Constant folding would make the 2 GB string while planning; the
    // bounded REPEAT refuses, so the call is left for the statement to
    // fail on (a conformance case) and planning stays quick.
    let p = plan("SELECT REPEAT('x', 2000000000) AS s");
    assert!(p.explain().contains("repeat"), "{}", p.explain());
    plan("SELECT REPEAT(who, 3), LPAD(who, 10, '*'), RPAD(who, id, '-') FROM orders");
}

#[test]
fn a_statement_splits_into_stages_by_its_stateful_operators() {
    use weir_sql_gateway::stages::Shape;
    let shape = |sql: &str| Shape::of(&plan(sql));
    // No state: one stage of tasks sharing the partitions, a SELECT's
    // rows gathered from them.
    for sql in [
        "INSERT INTO sink SELECT id, who, amount FROM orders WHERE amount > 1",
        "SELECT id, who FROM orders WHERE amount > 1",
    ] {
        assert!(matches!(shape(sql), Shape::Stateless), "{sql}");
    }
    // One keyed operator: re-keyed by its key.
    match shape("INSERT INTO totals SELECT id, MAX(who), SUM(amount) FROM orders GROUP BY id") {
        Shape::Keyed {
            operator,
            left,
            right: None,
        } => {
            assert_eq!(operator, "GroupAggregate");
            assert_eq!(left.exprs.len(), 1);
            assert!(left.exprs[0].to_string().contains("id"), "{:?}", left.exprs);
        }
        other => panic!("{other:?}"),
    }
    // A join: each side by its half of the condition.
    match shape(
        "INSERT INTO sink SELECT a.id, a.who, b.amount FROM orders a JOIN orders b ON a.who = b.who",
    ) {
        Shape::Keyed {
            operator: "Join",
            left,
            right: Some(right),
        } => {
            assert!(left.exprs[0].to_string().contains("who"));
            assert!(right.exprs[0].to_string().contains("who"));
        }
        other => panic!("{other:?}"),
    }
    // Stacked on a common key: one keyed stage for all of them, split by
    // the columns of the bottom key every operator above keys by too.
    for (sql, bottom, key) in [
        (
            "INSERT INTO totals SELECT id, MAX(who), SUM(t) FROM (SELECT id, who, SUM(amount) AS t FROM orders GROUP BY id, who) GROUP BY id",
            "GroupAggregate",
            "id",
        ),
        (
            "INSERT INTO totals SELECT id, MAX(who), COUNT(*) FROM (SELECT id, who, amount, ROW_NUMBER() OVER (PARTITION BY id, who ORDER BY amount DESC) AS rn FROM orders) WHERE rn = 1 GROUP BY id",
            "TopN",
            "id",
        ),
        (
            "INSERT INTO totals SELECT id, who, t FROM (SELECT id, who, t, ROW_NUMBER() OVER (PARTITION BY id ORDER BY t DESC) AS rn FROM (SELECT id, who, SUM(amount) AS t FROM orders GROUP BY who, id)) WHERE rn = 1",
            "GroupAggregate",
            "id",
        ),
    ] {
        match shape(sql) {
            Shape::Keyed {
                operator,
                left,
                right: None,
            } => {
                assert_eq!(operator, bottom, "{sql}");
                let keys: Vec<String> = left.exprs.iter().map(|e| e.to_string()).collect();
                assert_eq!(keys.len(), 1, "{sql}: {keys:?}");
                assert!(keys[0].ends_with(key), "{sql}: {keys:?}");
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    // Every row in one place: one task, saying why.
    for (sql, why) in [
        (
            "SELECT id, SUM(amount) FROM orders GROUP BY id",
            "SELECT's changes are gathered",
        ),
        (
            "INSERT INTO totals SELECT 1, MAX(who), SUM(amount) FROM orders",
            "no grouping key",
        ),
        // Stacked on keys that share no column: by an aggregate's result,
        // over a join, a Top-N per window over a window aggregate.
        (
            "CREATE TABLE by_who AS SELECT w, COUNT(*) AS n FROM (SELECT id, MAX(who) AS w FROM orders GROUP BY id) GROUP BY w",
            "share no column",
        ),
        (
            "INSERT INTO totals SELECT a.id, MAX(a.who), SUM(b.amount) FROM orders a JOIN orders b ON a.who = b.who GROUP BY a.id",
            "stacked",
        ),
        (
            "INSERT INTO sink SELECT 1, who, n FROM (SELECT window_start, who, n, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC) AS rn FROM (SELECT window_start, window_end, who, CAST(COUNT(*) AS DOUBLE) AS n FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, who)) WHERE rn <= 3",
            "share no column",
        ),
    ] {
        match shape(sql) {
            Shape::Single(reason) => assert!(reason.contains(why), "{sql}: {reason}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[test]
fn explain_shows_the_stages_the_repartition_key_and_the_parallelism() {
    let sql = "EXPLAIN INSERT INTO totals SELECT id, MAX(who), SUM(amount) FROM orders GROUP BY id";
    let mut c = ctx();
    c.parallelism = Some(3);
    c.max_parallelism = Some(12);
    let Analysis::Explain(text) = analyze(&Planner::new(), sql, &c).unwrap() else {
        panic!("not an explain")
    };
    assert!(text.contains("Stages: 2"), "{text}");
    assert!(text.contains("Stage 1 (source): parallelism=3"), "{text}");
    assert!(text.contains("into 12 partitions"), "{text}");
    assert!(
        text.contains("Stage 2 (GroupAggregate, sink): parallelism=3"),
        "{text}"
    );
    let Analysis::Explain(text) = analyze(&Planner::new(), sql, &ctx()).unwrap() else {
        panic!("not an explain")
    };
    assert!(text.contains("set 'sql.parallelism'"), "{text}");
}

#[test]
fn parallelism_properties_are_checked() {
    use std::collections::BTreeMap;
    use weir_sql_gateway::stages::{max_parallelism, parallelism};
    let props = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    assert_eq!(parallelism(&BTreeMap::new()).unwrap(), None);
    assert_eq!(
        parallelism(&props("sql.parallelism", "4")).unwrap(),
        Some(4)
    );
    for bad in ["0", "-1", "257", "two", ""] {
        let e = parallelism(&props("sql.parallelism", bad)).unwrap_err();
        assert!(e.to_string().contains("from 1 to 256"), "{bad}: {e}");
    }
    assert_eq!(
        max_parallelism(&props("sql.max-parallelism", "64")).unwrap(),
        Some(64)
    );
    assert!(max_parallelism(&props("sql.max-parallelism", "5000")).is_err());
}

#[test]
fn a_statement_set_plans_its_inserts_as_one_statement_in_either_spelling() {
    let inserts = "INSERT INTO sink SELECT id, who, amount FROM orders WHERE amount > 10;\n\
                   INSERT INTO totals SELECT id, MAX(who), SUM(amount) FROM orders GROUP BY id;";
    for sql in [
        format!("EXECUTE STATEMENT SET BEGIN\n{inserts}\nEND;"),
        format!("execute statement set begin {inserts} end"),
        format!("BEGIN STATEMENT SET;\n{inserts}\nEND;"),
    ] {
        let p = plan(&sql);
        let SinkSpec::Tables(sinks) = &p.sink else {
            panic!("{sql}: {:?}", p.sink)
        };
        let names: Vec<&str> = sinks.iter().map(|s| s.table.name.as_str()).collect();
        assert_eq!(names, ["sink", "totals"]);
        // The tag, then each INSERT's columns in turn.
        assert_eq!(p.output_schema.fields().len(), 1 + 3 + 3);
        assert_eq!((sinks[0].first_column, sinks[1].first_column), (1, 4));
        let PlanNode::Union { inputs } = &p.root else {
            panic!("{:?}", p.root)
        };
        assert!(inputs[0].is_append_only() && !inputs[1].is_append_only());
        assert_eq!(sources(&p.root).len(), 2);
        let text = p.explain();
        assert!(text.starts_with("StatementSet: 2 INSERTs"), "{text}");
        assert!(
            text.contains("table=`default`.`cluster_0`.`totals`"),
            "{text}"
        );
        // Each INSERT's projection shows its own columns only.
        assert!(!text.contains("__weir_insert"), "{text}");
    }
    // One INSERT in a set is a plain INSERT.
    let p = plan(
        "EXECUTE STATEMENT SET BEGIN INSERT INTO sink SELECT id, who, amount FROM orders; END",
    );
    assert!(matches!(p.sink, SinkSpec::Table { .. }));
    // Each INSERT is checked as it would be alone.
    let e = error(&format!(
        "EXECUTE STATEMENT SET BEGIN {inserts}\nINSERT INTO sink SELECT id, MAX(who), SUM(amount) FROM orders GROUP BY id; END"
    ));
    assert!(e.to_string().contains("append-only"), "{e}");
}

#[test]
fn a_malformed_statement_set_is_refused_where_it_goes_wrong() {
    for (sql, says, line) in [
        (
            "EXECUTE STATEMENT SET BEGIN\nINSERT INTO sink SELECT id, who, amount FROM orders;\n",
            "has no END",
            None,
        ),
        ("EXECUTE STATEMENT SET BEGIN END", "the statement set is empty", None),
        (
            "BEGIN STATEMENT SET;\nSELECT * FROM orders;\nEND;",
            "INSERT INTO statements only",
            Some(2),
        ),
        (
            "EXECUTE STATEMENT SET BEGIN\nINSERT INTO sink SELECT id, who, amount FROM orders\nINSERT INTO sink SELECT id, who, amount FROM orders; END",
            "INSERT",
            Some(3),
        ),
        ("EXECUTE SOMETHING", "expected STATEMENT SET BEGIN", Some(1)),
        (
            &format!(
                "EXECUTE STATEMENT SET BEGIN\n{}END",
                "INSERT INTO sink SELECT id, who, amount FROM orders;\n".repeat(65)
            ),
            "at most 64 INSERTs",
            // The 65th INSERT, after the line of EXECUTE STATEMENT SET.
            Some(66),
        ),
    ] {
        let e = error(sql);
        assert!(e.to_string().contains(says), "{sql}: {e}");
        if let Some(line) = line {
            assert_eq!(e.position().map(|p| p.0), Some(line), "{sql}: {e}");
        }
    }
}

#[test]
fn a_statement_set_too_wide_to_plan_is_refused_with_the_limit() {
    let cols: Vec<String> = (0..1_100).map(|i| format!("c{i} INT")).collect();
    let planner = Planner::new();
    let ctx = CatalogContext::from_ddl(
        &planner,
        &[&format!("CREATE TABLE wide ({})", cols.join(", "))],
    )
    .unwrap();
    let sql = "EXECUTE STATEMENT SET BEGIN INSERT INTO wide SELECT * FROM wide; \
               INSERT INTO wide SELECT * FROM wide; END";
    let e = analyze(&planner, sql, &ctx).expect_err("too wide");
    assert!(e.to_string().contains("2200 columns in all"), "{e}");
}

/// `JSON_VALUE`'s and `JSON_QUERY`'s clauses written wrong are refused at
/// the line where they go wrong, never run as something else.
#[test]
fn a_malformed_json_function_clause_is_refused_where_it_goes_wrong() {
    for (sql, says) in [
        (
            "SELECT\nJSON_VALUE(who, '$.a' DEFAULT ON EMPTY) FROM orders",
            "Expected",
        ),
        (
            "SELECT\nJSON_VALUE(who, '$.a' DEFAULT 'x' ON NOTHING) FROM orders",
            "EMPTY or ERROR",
        ),
        (
            "SELECT\nJSON_VALUE(who, '$.a' NULL ON EMPTY extra) FROM orders",
            "Expected",
        ),
        (
            "SELECT\nJSON_QUERY(who, '$.a' WITH SOMETHING) FROM orders",
            "WRAPPER",
        ),
        (
            "SELECT\nJSON_QUERY(who, '$.a' DEFAULT 'x' ON EMPTY) FROM orders",
            "Expected",
        ),
    ] {
        let e = error(sql);
        assert!(e.to_string().contains(says), "{sql}: {e}");
        assert_eq!(e.position().map(|p| p.0), Some(2), "{sql}: {e}");
    }
    // Cut short: the error says what was expected at the end.
    let e = error("SELECT\nJSON_VALUE(who");
    assert!(e.to_string().contains("found: EOF"), "{e}");
}

/// An interval range whose text does not fit its fields is refused where
/// it is written, with the forms that fit.
#[test]
fn an_interval_range_that_does_not_fit_its_fields_is_refused_where_it_is() {
    for sql in [
        "SELECT id,\n  INTERVAL '1:30' YEAR TO MONTH FROM orders",
        "SELECT id,\n  INTERVAL '1 02:03' DAY TO SECOND FROM orders",
        "SELECT id,\n  INTERVAL 'x-1' YEAR TO MONTH FROM orders",
        "SELECT id,\n  INTERVAL '1:99999999999' HOUR TO MINUTE FROM orders",
    ] {
        let e = error(sql);
        assert!(
            e.to_string().contains("is not an interval from"),
            "{sql}: {e}"
        );
        assert_eq!(e.position(), Some((2, 12)), "{sql}: {e}");
    }
}

#[test]
fn show_functions_lists_what_a_statement_can_call_and_no_internal_helper() {
    let planner = Planner::new();
    let names = planner.function_names();
    for f in [
        "UPPER",
        "JSON_VALUE",
        "REGEXP_REPLACE",
        "COUNT",
        "LISTAGG",
        "ROW_NUMBER",
        "CHAR_LENGTH",
        "CURRENT_WATERMARK",
        "TIMESTAMPDIFF",
        "JSON_OBJECT",
        "JSON_ARRAYAGG",
        "PERCENTILE",
        "STDDEV_POP",
        "VARIANCE",
    ] {
        assert!(names.iter().any(|n| n == f), "{f} is not in {names:?}");
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("WEIR_") || n.starts_with("__")),
        "{names:?}"
    );
    // Each listed name plans as a call, which is what listing it promises;
    // checked for the scalar ones a one-argument call can reach.
    for f in ["UPPER", "LOWER", "ABS", "JSON_VALUE"] {
        let sql = match f {
            "JSON_VALUE" => "SELECT JSON_VALUE(who, '$.a') FROM orders".to_string(),
            "ABS" => "SELECT ABS(amount) FROM orders".to_string(),
            _ => format!("SELECT {f}(who) FROM orders"),
        };
        plan(&sql);
    }
}

#[test]
fn a_type_nested_past_the_limit_is_refused_in_a_table_and_in_a_cast() {
    // `ROW(a ROW(...))` has no operator to count: the type parser's own
    // bound stops it before its recursion does.
    let deep = |n: usize| format!("{}INT{}", "ROW(a ".repeat(n), ")".repeat(n));
    let ddl = format!("CREATE TABLE t (x {})", deep(100_000));
    let e = on_planner_stack(&ddl).expect_err("too deep");
    assert!(e.to_string().contains("more than 64 levels deep"), "{e}");
    let cast = format!("SELECT CAST(NULL AS {})", deep(100_000));
    let e = on_planner_stack(&cast).expect_err("too deep");
    assert!(e.to_string().contains("more than 64 levels deep"), "{e}");
    // Within the bound both are planned.
    let cast = format!("SELECT CAST(NULL AS {}) AS v", deep(10));
    on_planner_stack(&cast).expect("ten levels are planned");
}

#[test]
fn a_flink_function_weir_does_not_offer_is_refused_saying_so() {
    for (sql, says) in [
        (
            "SELECT BITMAP_BUILD_AGG(id) FROM orders",
            "BITMAP_BUILD_AGG is a Flink function Weir does not offer: Weir has no BITMAP type",
        ),
        (
            "SELECT TRY_PARSE_JSON(who) FROM orders",
            "TRY_PARSE_JSON is a Flink function Weir does not offer: Weir has no VARIANT type",
        ),
        (
            "SELECT ENCODE(who, 'EBCDIC') FROM orders",
            "ENCODE: the character set 'EBCDIC' is not one of US-ASCII",
        ),
        (
            "SELECT RAND(7) FROM orders",
            "RAND(seed, ...) is not supported",
        ),
        (
            "SELECT COUNT(DISTINCT id, who) FROM orders",
            "COUNT(DISTINCT a, b) over several columns is not supported",
        ),
    ] {
        let e = error(sql).to_string();
        assert!(e.contains(says), "{sql}: {e}");
    }
    // A column named like one is still a column.
    plan("SELECT who AS bitmap_build FROM orders");
}

#[test]
fn a_cast_to_a_huge_char_is_refused_rather_than_padded() {
    let e = error("SELECT CAST(who AS CHAR(2000000000)) FROM orders").to_string();
    assert!(
        e.contains("pads every value to 2000000000 characters"),
        "{e}"
    );
    // VARCHAR(n) only cuts, so any length plans.
    plan("SELECT CAST(who AS VARCHAR(2000000000)) FROM orders");
}

/// The Top-N of `sql` (the first one from the root).
fn top_n(node: &PlanNode) -> Option<&PlanNode> {
    match node {
        PlanNode::TopN { .. } => Some(node),
        other => other.inputs().into_iter().find_map(top_n),
    }
}

#[test]
fn a_top_n_over_an_aggregate_updates_in_place_only_where_flink_would() {
    let fast = |sql: &str| {
        top_n(&plan(sql).root)
            .expect(sql)
            .update_fast_key()
            .is_some()
    };
    let ranked = |order: &str, agg: &str| {
        format!(
            "SELECT * FROM (SELECT who, n, ROW_NUMBER() OVER (ORDER BY {order}) AS rn \
             FROM (SELECT who, {agg} AS n FROM orders GROUP BY who)) WHERE rn <= 3"
        )
    };
    // COUNT and MAX only grow, MIN only shrinks: a row only moves up.
    assert!(fast(&ranked("n DESC", "COUNT(*)")));
    assert!(fast(&ranked("n DESC, who", "MAX(amount)")));
    assert!(fast(&ranked("n", "MIN(amount)")));
    assert!(fast(
        "SELECT who, COUNT(*) AS n FROM orders GROUP BY who ORDER BY n DESC LIMIT 2"
    ));
    // A SUM may shrink, a COUNT ascending moves rows down: every row is
    // held and an update is a retraction and an insertion.
    assert!(!fast(&ranked("n DESC", "SUM(amount)")));
    assert!(!fast(&ranked("n", "COUNT(*)")));
    // A HAVING may drop an updated row; an append-only input needs none.
    assert!(!fast(
        "SELECT * FROM (SELECT who, n, ROW_NUMBER() OVER (ORDER BY n DESC) AS rn \
         FROM (SELECT who, COUNT(*) AS n FROM orders GROUP BY who HAVING COUNT(*) < 5)) WHERE rn <= 3"
    ));
    assert!(!fast("SELECT id FROM orders ORDER BY amount DESC LIMIT 2"));
}

#[test]
fn order_by_limit_zero_takes_no_row() {
    let p = plan("SELECT id FROM orders ORDER BY amount DESC LIMIT 0");
    assert!(top_n(&p.root).is_none(), "{:?}", p.root.name());
}

#[test]
fn an_interval_is_scaled_by_an_integer_and_never_divided() {
    let p = plan("SELECT ts + INTERVAL '1' MINUTE * id, 2 * INTERVAL '1' DAY FROM orders");
    assert_eq!(columns(&p), ["EXPR$0", "EXPR$1"]);
    let e = error("SELECT ts +\n  INTERVAL '10' SECOND / 4 FROM orders");
    assert!(e.to_string().contains("cannot be divided"), "{e}");
    assert_eq!(e.position().map(|(line, _)| line), Some(2), "{e}");
    let e = error("SELECT ts + INTERVAL '1' SECOND * amount FROM orders");
    assert!(
        e.to_string()
            .contains("multiplied by an integer (as in Flink), not by DOUBLE"),
        "{e}"
    );
}
