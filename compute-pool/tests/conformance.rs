//! The SQL conformance corpus: every case in `tests/sql/*.yaml`, run
//! in-process through the planner and the engine with in-memory sources and
//! sinks. Each case is its own test (`cargo nextest run --workspace -E
//! 'binary(conformance)' -- <file>::<case>`).
//!
//! A case:
//!
//! ```yaml
//! - name: filter keeps the matching rows      # unique within the file
//!   tables:                                    # DDL, run in order
//!     - CREATE TABLE orders (id BIGINT, amount DOUBLE)
//!   input:                                     # replayed in this order
//!     - {p: 0, ts: 1000, v: {id: 1, amount: 10}}   # t: table, when several
//!     - {p: 1, ts: 2000, raw: 'not json'}         # raw bytes of the value
//!     - {p: 0, at: 9000, v: {id: 3}}              # at: processing time (idleness)
//!     - {headers: [[__op, -D]], v: {id: 3}}       # record headers
//!   sql: SELECT id FROM orders WHERE amount > 50
//!   expect: ['+I[2]']                          # Flink's changelog print form
//!   order: any                                 # default: strict
//!   skipped: 1                                 # records skipped by the error policy
//!   late: 0                                    # records dropped as late by windows
//!   held: 0                                    # rows or groups held at the end
//!   properties: {sql.tables.scan.idle-timeout: 5 s, sql.local-time-zone: Asia/Shanghai}
//! ```
//!
//! Every case also runs a second time with its operator state checkpointed
//! (encoded as Arrow IPC) and restored into a freshly compiled plan after
//! every record; the changelog must be the same.
//!
//! or `error: <text the planning or running error must contain>` in place
//! of `expect` (a planning error is printed with `(at line L, column C)`).
//! Every record is its own poll; after each, the sources' watermarks
//! (maximum per partition of the table's partitions, minimum over them) are
//! passed on, each stage moving by the sources that feed it, so output
//! order follows the input as Flink's per-record watermarks would. Input is unbounded: windows the watermark has not
//! passed emit nothing at the end. Values are
//! printed with Arrow's display (`null` for NULL, timestamps as
//! `2024-01-01T00:00:01`), in Flink's `+I[a, b]` row form with the row's
//! kind (`+I`, `-U`, `+U`, `-D`).

mod corpus;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use libtest_mimic::{Arguments, Failed, Trial};
use weir_compute_pool::operators::changelog::kind_name;
use weir_compute_pool::{run_in_memory_with, Changes, MemoryOptions};
use weir_sql_gateway::{analyze, Analysis, Planner};

use corpus::{catalog, load_cases_of, polls, Case, Order};

/// What the trials asked for need loaded: nextest runs each test in a
/// process of its own (`conformance --exact <name>`), and parsing the whole
/// corpus (a thousand cases, their Flink runs and the function probes) in
/// each of them made the suite's time grow with the square of its size.
enum Needs {
    Everything,
    /// `<stem>::<case>` or `flink::<stem>::<case>`: one file's cases.
    File(String),
    /// `flink_functions::...`: the function probes.
    Functions,
}

fn needs(args: &Arguments) -> Needs {
    let (Some(name), true, false) = (&args.filter, args.exact, args.list) else {
        return Needs::Everything;
    };
    if name.starts_with("flink_functions::") {
        return Needs::Functions;
    }
    match name
        .strip_prefix("flink::")
        .unwrap_or(name)
        .split_once("::")
    {
        Some((stem, _)) => Needs::File(stem.to_string()),
        None => Needs::Everything,
    }
}

fn main() {
    let args = Arguments::from_args();
    let needs = needs(&args);
    let stem = match &needs {
        Needs::File(stem) => Some(stem.as_str()),
        _ => None,
    };
    let cases = match needs {
        Needs::Functions => vec![],
        _ => load_cases_of(stem),
    };
    let mut trials = vec![];
    let mut names = std::collections::HashSet::new();
    for (stem, case) in cases.clone() {
        assert!(
            names.insert((stem.clone(), case.name.clone())),
            "{stem}.yaml: two cases named '{}'",
            case.name
        );
        assert!(
            case.expect.is_some() != case.error.is_some(),
            "{stem}.yaml: case '{}' needs exactly one of `expect` and `error`",
            case.name
        );
        trials.push(Trial::test(format!("{stem}::{}", case.name), move || {
            run_case(&case)
        }));
    }
    if matches!(needs, Needs::Everything | Needs::Functions) {
        trials.extend(flink_functions());
    }
    trials.extend(flink_queries(&cases));
    libtest_mimic::run(&args, trials).exit();
}

/// What Apache Flink 2.3 emitted for a case of `tests/sql/<file>.yaml`
/// (`infra/flink/queries.py` writes `<file>.flink.json`).
#[derive(serde::Deserialize, Clone, Debug)]
struct FlinkRun {
    /// Why Flink could not run the case as written.
    #[serde(default)]
    skipped: Option<String>,
    /// Flink refused the statement.
    #[serde(default)]
    error: Option<String>,
    /// The changelog: row kind and each column cast to STRING.
    #[serde(default)]
    rows: Vec<(String, Vec<Option<String>>)>,
    /// `changelog`, or `final` when several sources interleave as Flink
    /// read them, so that only the final result compares.
    #[serde(default)]
    compare: String,
}

type FlinkRow = (String, Vec<Option<String>>);

/// Every case of `cases` Flink ran, compared with what Flink emitted:
/// `flink::<file>::<case>`.
fn flink_queries(cases: &[(String, Case)]) -> Vec<Trial> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut trials = vec![];
    let mut stems: Vec<String> = cases.iter().map(|(s, _)| s.clone()).collect();
    stems.dedup();
    for stem in stems {
        let path = dir.join(format!("{stem}.flink.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let runs: std::collections::HashMap<String, FlinkRun> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (_, case) in cases.iter().filter(|(s, _)| *s == stem) {
            let Some(run) = runs.get(&case.name).cloned() else {
                panic!(
                    "{stem}.yaml: case '{}' has no run of Flink: python3 infra/flink/queries.py {stem}",
                    case.name
                );
            };
            if run.skipped.is_some() {
                continue;
            }
            let case = case.clone();
            trials.push(Trial::test(
                format!("flink::{stem}::{}", case.name),
                move || {
                    let mismatch = flink_mismatch(&case, &run);
                    match (&case.flink, mismatch) {
                        (None, None) | (Some(_), Some(_)) => Ok(()),
                        (None, Some(why)) => Err(why.into()),
                        (Some(mark), None) => Err(format!(
                            "now matches Flink: remove its `flink: {mark}` mark"
                        )
                        .into()),
                    }
                },
            ));
        }
    }
    trials
}

/// How Weir's run of `case` differs from Flink's, if it does.
fn flink_mismatch(case: &Case, flink: &FlinkRun) -> Option<String> {
    let weir = run_plain(case);
    match (&flink.error, weir) {
        (Some(_), Err(_)) => None,
        (Some(f), Ok(rows)) => Some(format!("Flink refuses it ({f}); Weir emits {rows:?}")),
        (None, Err(e)) => Some(format!(
            "Weir refuses it ({e}); Flink emits {:?}",
            flink.rows
        )),
        (None, Ok(mut got)) => {
            let mut want = flink.rows.clone();
            if flink.compare == "final" {
                got = materialize(got);
                want = materialize(want);
            } else if case.order == Order::Any {
                got.sort();
                want.sort();
            }
            (got != want).then(|| {
                format!(
                    "Weir's {} differs from Flink's\n  flink: {want:?}\n  weir:  {got:?}",
                    if flink.compare == "final" {
                        "final result"
                    } else {
                        "changelog"
                    }
                )
            })
        }
    }
}

/// The rows a changelog leaves, sorted.
fn materialize(changes: Vec<FlinkRow>) -> Vec<FlinkRow> {
    let mut rows: Vec<Vec<Option<String>>> = vec![];
    for (kind, row) in changes {
        match kind.as_str() {
            "+I" | "+U" => rows.push(row),
            _ => {
                if let Some(i) = rows.iter().position(|r| *r == row) {
                    rows.remove(i);
                }
            }
        }
    }
    let mut out: Vec<FlinkRow> = rows.into_iter().map(|r| ("+I".to_string(), r)).collect();
    out.sort();
    out
}

/// A case run once by Weir, its rows as Flink casts them to STRING.
fn run_plain(case: &Case) -> Result<Vec<FlinkRow>, String> {
    let mut ctx = catalog(&case.tables).map_err(|e| format!("{e:?}"))?;
    ctx.time_zone =
        weir_sql_gateway::local_time_zone(&case.properties).map_err(|e| e.to_string())?;
    let plan = match analyze(&Planner::new(), &case.sql, &ctx).map_err(|e| e.to_string())? {
        Analysis::Streaming { plan, .. } => plan,
        other => return Err(format!("not a streaming statement: {other:?}")),
    };
    let polls = polls(&case.input, &ctx).map_err(|e| format!("{e:?}"))?;
    let out =
        run_in_memory_with(&plan, &polls, &MemoryOptions::default()).map_err(|e| e.to_string())?;
    let mut rows = vec![];
    for c in &out.batches {
        let b = &c.batch;
        let cols = b
            .columns()
            .iter()
            .map(|col| {
                weir_compute_pool::connector::wire::column(col)
                    .map(|v| v.iter().map(|x| flink_string(x, col.data_type())).collect())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<Vec<Option<String>>>, String>>()?;
        for r in 0..b.num_rows() {
            rows.push((
                kind_name(c.op(r)).to_string(),
                cols.iter().map(|c| c[r].clone()).collect(),
            ));
        }
    }
    Ok(rows)
}

/// A value of Weir's results API as Flink's `CAST(x AS STRING)` writes
/// it: scalars are the same text; an array is `[a, b]`, a row `(a, b)`, a
/// map `{k=v}`.
fn flink_string(v: &serde_json::Value, t: &arrow::datatypes::DataType) -> Option<String> {
    use arrow::datatypes::DataType as D;
    let inner = |v: &serde_json::Value, t: &D| flink_string(v, t).unwrap_or_else(|| "NULL".into());
    match (v, t) {
        (serde_json::Value::Null, _) => None,
        (serde_json::Value::String(s), _) => Some(s.clone()),
        (
            serde_json::Value::Array(items),
            D::List(f) | D::LargeList(f) | D::FixedSizeList(f, _),
        ) => Some(format!(
            "[{}]",
            items
                .iter()
                .map(|i| inner(i, f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (serde_json::Value::Array(items), D::Struct(fields)) => Some(format!(
            "({})",
            items
                .iter()
                .zip(fields.iter())
                .map(|(i, f)| inner(i, f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (serde_json::Value::Array(entries), D::Map(f, _)) => {
            let D::Struct(kv) = f.data_type() else {
                return Some(v.to_string());
            };
            Some(format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|e| match e {
                        serde_json::Value::Array(p) if p.len() == 2 => format!(
                            "{}={}",
                            inner(&p[0], kv[0].data_type()),
                            inner(&p[1], kv[1].data_type())
                        ),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        (other, _) => Some(other.to_string()),
    }
}

/// One expression of `tests/flink/functions.sql` with what Apache Flink
/// 2.3 answered for it (`infra/flink/functions.py` writes them).
#[derive(serde::Deserialize, Clone)]
struct FlinkAnswer {
    family: String,
    expr: String,
    #[serde(default)]
    line: usize,
    /// `CAST(expr AS STRING)`; `None`: NULL.
    #[serde(default)]
    value: Option<String>,
    /// `TYPEOF(expr)`.
    #[serde(default)]
    r#type: Option<String>,
    /// Flink refused the expression.
    #[serde(default)]
    error: Option<String>,
    /// Weir differs on purpose: not compared.
    #[serde(default)]
    differs: Option<String>,
    /// Weir does not match Flink yet: checked to still differ.
    #[serde(default)]
    gap: Option<String>,
}

/// The function corpus: each expression as its own test,
/// `flink_functions::<family>::L<line>`.
fn flink_functions() -> Vec<Trial> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flink/functions.flink.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let answers: Vec<FlinkAnswer> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The marks and line numbers are read from the corpus itself, so that
    // marking a case needs no new run of Flink.
    let corpus = std::fs::read_to_string(path.with_file_name("functions.sql")).unwrap();
    let mut marks = std::collections::HashMap::new();
    for (n, line) in corpus.lines().enumerate() {
        if line.starts_with("--") || line.starts_with("# ") || line.trim().is_empty() {
            continue;
        }
        let (expr, mark) = match line.split_once("-- ") {
            Some((e, m)) => (e.trim(), Some(m.trim())),
            None => (line.trim(), None),
        };
        marks.insert(expr.to_string(), (n + 1, mark.map(str::to_string)));
    }
    let exprs: std::collections::HashSet<&str> = answers.iter().map(|a| a.expr.as_str()).collect();
    for e in marks.keys() {
        assert!(
            exprs.contains(e.as_str()),
            "`{e}` of functions.sql has no answer from Flink: run python3 infra/flink/functions.py"
        );
    }
    answers
        .into_iter()
        .map(|mut a| {
            let (line, mark) = marks.get(&a.expr).cloned().unwrap_or_default();
            a.line = line;
            match mark.as_deref().and_then(|m| m.split_once(':')) {
                Some(("differs", why)) => a.differs = Some(why.trim().to_string()),
                Some(("gap", why)) => a.gap = Some(why.trim().to_string()),
                _ => {}
            }
            let name = format!(
                "flink_functions::{}::L{}",
                a.family.replace(' ', "_"),
                a.line
            );
            Trial::test(name, move || {
                let got = weir_answer(&a.expr);
                if a.differs.is_some() {
                    return Ok(());
                }
                let mismatch = compare(&a, &got);
                match (&a.gap, mismatch) {
                    (None, None) => Ok(()),
                    (None, Some(why)) => Err(format!("`{}`: {why}", a.expr).into()),
                    (Some(_), Some(_)) => Ok(()),
                    (Some(gap), None) => Err(format!(
                        "`{}` now matches Flink: remove its `-- gap: {gap}` mark",
                        a.expr
                    )
                    .into()),
                }
            })
        })
        .collect()
}

/// Weir's text and type of `SELECT expr`, or its error.
fn weir_answer(expr: &str) -> Result<(Option<String>, String), String> {
    let ctx = catalog(&[]).map_err(|e| format!("{e:?}"))?;
    let plan = match analyze(&Planner::new(), &format!("SELECT {expr} AS v"), &ctx)
        .map_err(|e| e.to_string())?
    {
        Analysis::Streaming { plan, .. } => plan,
        other => return Err(format!("not a query: {other:?}")),
    };
    let ty = weir_catalog::SqlType::from_arrow(plan.output_schema.field(0).data_type())
        .map(|t| t.to_string())
        .map_err(|e| e.to_string())?;
    let out =
        run_in_memory_with(&plan, &[], &MemoryOptions::default()).map_err(|e| e.to_string())?;
    let mut values = vec![];
    for c in &out.batches {
        let col = c.batch.column(0);
        let wire = weir_compute_pool::connector::wire::column(col).map_err(|e| e.to_string())?;
        values.extend(wire.iter().map(|v| flink_string(v, col.data_type())));
    }
    match values.as_slice() {
        [one] => Ok((one.clone(), ty)),
        many => Err(format!("{} rows", many.len())),
    }
}

/// A type as compared with Flink's: without nullability (`NOT NULL`
/// inside an `ARRAY`, `MAP` or `ROW` says where Arrow's kernels allow a
/// NULL, which is not what Flink's type inference says), with the string
/// and byte types Weir names one way (a literal is `CHAR(n)` in Flink,
/// `STRING` in Weir).
fn flink_type(t: &str) -> String {
    let mut out = t.replace(" NOT NULL", "");
    for (sized, plain) in [
        ("VARCHAR(", "STRING"),
        ("CHAR(", "STRING"),
        ("VARBINARY(", "BYTES"),
        ("BINARY(", "BYTES"),
    ] {
        while let Some(at) = out.find(sized) {
            let Some(len) = out[at..].find(')') else {
                break;
            };
            out.replace_range(at..at + len + 1, plain);
        }
    }
    out
}

/// Why Weir's answer is not Flink's, if it is not.
fn compare(a: &FlinkAnswer, got: &Result<(Option<String>, String), String>) -> Option<String> {
    match (&a.error, got) {
        (Some(_), Err(_)) => None,
        (Some(e), Ok((v, _))) => Some(format!("Flink refuses it ({e}); Weir answers {v:?}")),
        (None, Err(e)) => Some(format!("Weir refuses it: {e}; Flink answers {:?}", a.value)),
        (None, Ok((v, t))) => {
            let want_t = flink_type(a.r#type.as_deref().unwrap_or_default());
            if *v != a.value {
                Some(format!("value {v:?}, Flink's {:?}", a.value))
            } else if flink_type(t) != want_t {
                Some(format!("type {t}, Flink's {want_t}"))
            } else {
                None
            }
        }
    }
}

fn rows(batches: &[Changes]) -> Result<Vec<String>, Failed> {
    let options = FormatOptions::default().with_null("null");
    let mut out = vec![];
    for c in batches {
        let b = &c.batch;
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
            out.push(format!("{}[{}]", kind_name(c.op(r)), cells.join(", ")));
        }
    }
    Ok(out)
}

fn run_case(case: &Case) -> Result<(), Failed> {
    let ctx = match (catalog(&case.tables), &case.error) {
        (Ok(mut ctx), _) => {
            match weir_sql_gateway::local_time_zone(&case.properties) {
                Ok(tz) => ctx.time_zone = tz,
                Err(e)
                    if case
                        .error
                        .as_ref()
                        .is_some_and(|w| e.to_string().contains(w)) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e.to_string().into()),
            }
            ctx
        }
        // A case may expect its DDL to be refused.
        (Err(e), Some(want)) if format!("{e:?}").contains(want.as_str()) => return Ok(()),
        (Err(e), _) => return Err(e),
    };
    let outcome = analyze(&Planner::new(), &case.sql, &ctx)
        .map_err(|e| match e.position() {
            Some((line, column)) => format!("{e} (at line {line}, column {column})"),
            None => e.to_string(),
        })
        .and_then(|a| match a {
            Analysis::Streaming { plan, .. } => Ok(plan),
            other => Err(format!("not a streaming statement: {other:?}")),
        })
        .and_then(|plan| {
            let polls = polls(&case.input, &ctx).map_err(|e| format!("{e:?}"))?;
            let idle =
                weir_sql_gateway::idle_timeout_ms(&case.properties).map_err(|e| e.to_string())?;
            let ttl =
                weir_sql_gateway::state_ttl_ms(&case.properties).map_err(|e| e.to_string())?;
            let run = |restore_every_poll| {
                run_in_memory_with(
                    &plan,
                    &polls,
                    &MemoryOptions {
                        idle_timeout_ms: idle,
                        state_ttl_ms: ttl,
                        restore_every_poll,
                    },
                )
                .map_err(|e| e.to_string())
            };
            let out = run(false)?;
            // The same run, its state checkpointed and restored into a new
            // plan after every record, must give the same changelog.
            let restored = run(true)?;
            let (a, b) = (
                rows(&out.batches).map_err(|e| format!("{e:?}"))?,
                rows(&restored.batches).map_err(|e| format!("{e:?}"))?,
            );
            if a != b || out.late != restored.late {
                return Err(format!(
                    "restoring from a checkpoint after every record changes the output\n  uninterrupted: {a:#?}\n  restored:      {b:#?}"
                ));
            }
            Ok(out)
        });
    // Messages may span lines; the corpus matches them on one.
    let outcome = outcome.map_err(|e| e.split_whitespace().collect::<Vec<_>>().join(" "));
    match (&case.error, outcome) {
        (Some(want), Err(got)) if got.contains(want.as_str()) => Ok(()),
        (Some(want), Err(got)) => {
            Err(format!("wanted an error containing '{want}', got: {got}").into())
        }
        (Some(want), Ok(out)) => Err(format!(
            "wanted an error containing '{want}', got rows {:?}",
            rows(&out.batches)?
        )
        .into()),
        (None, Err(got)) => Err(got.into()),
        (None, Ok(out)) => {
            let mut got = rows(&out.batches)?;
            let mut want = case.expect.clone().unwrap_or_default();
            if case.order == Order::Any {
                got.sort();
                want.sort();
            }
            if got != want {
                return Err(
                    format!("changelog differs\n  want: {want:#?}\n  got:  {got:#?}").into(),
                );
            }
            if out.late != case.late {
                return Err(format!("{} late record(s), wanted {}", out.late, case.late).into());
            }
            if let Some(held) = case.held.filter(|h| *h != out.state_groups) {
                return Err(
                    format!("{} row(s) held at the end, wanted {held}", out.state_groups).into(),
                );
            }
            if out.skipped != case.skipped {
                return Err(
                    format!("skipped {} record(s), wanted {}", out.skipped, case.skipped).into(),
                );
            }
            Ok(())
        }
    }
}
