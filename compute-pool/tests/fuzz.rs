//! A fuzzer of the SQL front end and the engine: generated and mutated
//! Flink SQL through the parser, the planner and, for what plans, a short
//! in-memory run over the case's own input records.
//!
//! Inputs come from four generators, none tuned to pass:
//! - mutations of the conformance corpus's statements (tokens deleted,
//!   repeated, swapped, replaced from a dictionary of Flink SQL, spans
//!   spliced in from other cases, wrapped in calls and casts, or repeated
//!   hundreds of times to make long and deep expressions);
//! - queries generated from a small grammar of Flink SQL over the case's
//!   tables (projections, filters, grouping, window TVFs, joins, OVER,
//!   subqueries, `LIMIT`);
//! - table definitions with generated columns, computed columns,
//!   watermarks and options, queried by the case's statement;
//! - the saved crashes of `tests/fuzz/regressions.yaml`, first.
//!
//! A crash is a panic anywhere (caught and reported with its input) or an
//! abort of the process (the input being tried is in
//! `$CARGO_TARGET_TMPDIR/fuzz-current.yaml`). Errors are not crashes: most
//! inputs are wrong SQL and must be refused with a message.
//!
//! `WEIR_FUZZ_SECONDS` (default 20) bounds the run, `WEIR_FUZZ_SEED` repeats
//! one; `infra/fuzz.sh [seconds]` runs it for longer. Every crash found
//! goes into `tests/fuzz/regressions.yaml` once fixed.

mod corpus;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_compute_pool::{run_in_memory, MemoryPoll};
use weir_sql_gateway::limits::on_planner_stack;
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner};

use corpus::{catalog, load_cases_of, polls};

/// splitmix64: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One seed: a case's tables, statement and input.
struct Seed {
    tables: Vec<String>,
    sql: String,
    input: Vec<corpus::Input>,
    polls: Vec<MemoryPoll>,
    /// `(table, [(column, type)])` of the case's catalog.
    schema: Vec<(String, Vec<(String, String)>)>,
}

/// One input tried: tables, the statement, and the records it reads (in
/// the conformance corpus's format).
#[derive(Debug, Clone, Deserialize, Serialize)]
struct Input {
    tables: Vec<String>,
    sql: String,
    #[serde(default)]
    input: Vec<corpus::Input>,
}

impl Input {
    /// The input as an entry of `regressions.yaml`.
    fn yaml(&self) -> String {
        serde_yaml::to_string(&[self]).expect("an input serializes")
    }
}

#[derive(Default)]
struct Tally {
    tried: u64,
    planned: u64,
    ran: u64,
    crashes: Vec<(Input, String)>,
    /// The input that took longest, and how long.
    slowest: Option<(Duration, Input)>,
}

/// Parses, plans and (for a streaming plan) runs `input` over `polls`; a
/// panic comes back as `Err`.
fn try_input(planner: &Planner, input: &Input, polls: &[MemoryPoll], tally: &mut Tally) {
    tally.tried += 1;
    let started = Instant::now();
    let outcome = on_planner_stack(|| {
        let ctx: CatalogContext = match catalog(&input.tables) {
            Ok(ctx) => ctx,
            Err(_) => return (false, false),
        };
        match analyze(planner, &input.sql, &ctx) {
            Ok(Analysis::Streaming { plan, .. }) => (true, run_in_memory(&plan, polls).is_ok()),
            Ok(_) => (true, false),
            Err(e) => {
                // Render the error as the API does; that must not panic
                // either.
                let (text, at) = (e.to_string(), e.position());
                if std::env::var_os("WEIR_FUZZ_VERBOSE").is_some() {
                    eprintln!("refused ({at:?}): {text}\n  {}", input.sql);
                }
                (false, false)
            }
        }
    });
    match outcome {
        Ok((planned, ran)) => {
            tally.planned += u64::from(planned);
            tally.ran += u64::from(ran);
        }
        Err(panic) => tally.crashes.push((input.clone(), panic)),
    }
    let took = started.elapsed();
    if tally.slowest.as_ref().is_none_or(|(t, _)| took > *t) {
        tally.slowest = Some((took, input.clone()));
    }
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "ORDER BY",
    "LIMIT",
    "JOIN",
    "LEFT JOIN",
    "FULL OUTER JOIN",
    "CROSS JOIN",
    "ON",
    "USING",
    "UNION ALL",
    "INTERSECT",
    "EXCEPT",
    "DISTINCT",
    "OVER",
    "PARTITION BY",
    "ROWS BETWEEN",
    "RANGE BETWEEN",
    "UNBOUNDED PRECEDING",
    "CURRENT ROW",
    "PRECEDING",
    "TABLE",
    "DESCRIPTOR",
    "TUMBLE",
    "HOP",
    "CUMULATE",
    "SESSION",
    "INTERVAL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AND",
    "OR",
    "NOT",
    "IN",
    "EXISTS",
    "IS NULL",
    "IS NOT NULL",
    "BETWEEN",
    "LIKE",
    "CAST",
    "TRY_CAST",
    "AS",
    "UNNEST",
    "LATERAL",
    "WITH",
    "VALUES",
    "FOR SYSTEM_TIME AS OF",
    "GROUPING SETS",
    "ROLLUP",
    "CUBE",
    "FILTER",
    "WITH ORDINALITY",
    "IS NOT DISTINCT FROM",
    "ESCAPE",
    "ASC",
    "DESC",
    "NULLS FIRST",
    "EXPLAIN",
    "INSERT INTO",
];

const FUNCTIONS: &[&str] = &[
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "FIRST_VALUE",
    "LAST_VALUE",
    "LISTAGG",
    "ROW_NUMBER",
    "RANK",
    "DENSE_RANK",
    "CONCAT",
    "CONCAT_WS",
    "SUBSTRING",
    "UPPER",
    "LOWER",
    "TRIM",
    "CHAR_LENGTH",
    "REGEXP_EXTRACT",
    "REGEXP_REPLACE",
    "DATE_FORMAT",
    "FLOOR",
    "CEIL",
    "TO_TIMESTAMP",
    "TO_TIMESTAMP_LTZ",
    "CURRENT_WATERMARK",
    "PROCTIME",
    "CURRENT_TIMESTAMP",
    "JSON_VALUE",
    "SPLIT_INDEX",
    "REPEAT",
    "LPAD",
    "RPAD",
    "POWER",
    "SQRT",
    "LN",
    "ABS",
    "MOD",
    "IF",
    "IFNULL",
    "COALESCE",
    "NULLIF",
    "LOCATE",
    "INSTR",
    "EXTRACT",
    "GROUPING",
    "HASH_CODE",
    "MD5",
    "SHA256",
    "CARDINALITY",
    "ELEMENT",
    "ARRAY",
    "MAP",
    "ROW",
    "TUMBLE_START",
    "HOP_END",
    "SESSION_ROWTIME",
    "TIMESTAMPADD",
    "UNIX_TIMESTAMP",
    "FROM_UNIXTIME",
];

const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999999999999999999",
    "1e308",
    "-1e-308",
    "0.0000001",
    "''",
    "'x'",
    "'%'",
    "'\\'",
    "NULL",
    "TRUE",
    "FALSE",
    "INTERVAL '1' SECOND",
    "INTERVAL '0' SECOND",
    "INTERVAL '-1' DAY",
    "INTERVAL '0.001' SECOND",
    "INTERVAL '100000' DAY",
    "INTERVAL '1' MONTH",
    "TIMESTAMP '2024-01-01 00:00:00'",
    "DATE '2024-13-45'",
    "TIMESTAMP '9999-12-31 23:59:59.999'",
    "X'00ff'",
    "ARRAY[1, NULL]",
    "MAP['a', 1]",
    "'\u{1F600}'",
    "'a''b'",
    "1000000000",
];

const TYPES: &[&str] = &[
    "INT",
    "BIGINT",
    "TINYINT",
    "SMALLINT",
    "STRING",
    "VARCHAR(3)",
    "CHAR(1)",
    "DOUBLE",
    "FLOAT",
    "BOOLEAN",
    "DECIMAL(38, 18)",
    "DECIMAL(10, 2)",
    "DECIMAL(1, 0)",
    "TIMESTAMP(3)",
    "TIMESTAMP_LTZ(3)",
    "TIMESTAMP(9)",
    "DATE",
    "TIME",
    "BYTES",
    "ARRAY<INT>",
    "ARRAY<STRING>",
    "MAP<STRING, INT>",
    "ROW<a INT, b STRING>",
    "ARRAY<ROW<x INT>>",
    "MULTISET<INT>",
];

const OPERATORS: &[&str] = &[
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    ",",
    "(",
    ")",
    ".",
    "[",
    "]",
    ";",
    "?",
    "::",
    "'",
    "\"",
    "`",
    "/*+ OPTIONS('x'='y') */",
    "--",
    "\n",
];

/// Splits SQL into tokens: words, numbers, quoted strings and identifiers,
/// single punctuation, and runs of white space (kept, so that joining the
/// tokens gives the text back).
fn tokens(sql: &str) -> Vec<String> {
    let mut out = vec![];
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let mut end = start + c.len_utf8();
        let more = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                    end: &mut usize,
                    keep: &dyn Fn(char) -> bool| {
            while let Some(&(i, n)) = chars.peek() {
                if !keep(n) {
                    break;
                }
                *end = i + n.len_utf8();
                chars.next();
            }
        };
        if c.is_alphanumeric() || c == '_' || c == '$' {
            more(&mut chars, &mut end, &|n| {
                n.is_alphanumeric() || n == '_' || n == '$' || n == '.'
            });
        } else if c.is_whitespace() {
            more(&mut chars, &mut end, &|n| n.is_whitespace());
        } else if c == '\'' || c == '`' || c == '"' {
            for (i, n) in chars.by_ref() {
                end = i + n.len_utf8();
                if n == c {
                    break;
                }
            }
        }
        out.push(sql[start..end].to_string());
    }
    out
}

fn dictionary_token(rng: &mut Rng, seed: &Seed) -> String {
    match rng.below(5) {
        0 => rng.pick(KEYWORDS).to_string(),
        1 => format!("{}(", rng.pick(FUNCTIONS)),
        2 => rng.pick(LITERALS).to_string(),
        3 => rng.pick(OPERATORS).to_string(),
        _ => column_or_table(rng, seed),
    }
}

fn column_or_table(rng: &mut Rng, seed: &Seed) -> String {
    if seed.schema.is_empty() || rng.chance(10) {
        return rng
            .pick(&["$rowtime", "window_start", "window_end", "nope", "`a b`"])
            .to_string();
    }
    let (t, cols) = rng.pick(&seed.schema);
    if cols.is_empty() || rng.chance(20) {
        t.clone()
    } else {
        rng.pick(cols).0.clone()
    }
}

/// A mutation of `seed`'s statement: one to four token edits, each
/// keeping the text under ~200 KB.
fn mutate(rng: &mut Rng, seed: &Seed, seeds: &[Seed]) -> String {
    let mut toks = tokens(&seed.sql);
    for _ in 0..1 + rng.below(4) {
        if toks.is_empty() {
            toks.push(dictionary_token(rng, seed));
        }
        let i = rng.below(toks.len());
        match rng.below(9) {
            0 => {
                toks.remove(i);
            }
            1 => {
                let t = toks[i].clone();
                toks.insert(i, t);
            }
            2 => toks[i] = dictionary_token(rng, seed),
            3 => toks.insert(i, format!(" {} ", dictionary_token(rng, seed))),
            4 => {
                let j = rng.below(toks.len());
                toks.swap(i, j);
            }
            5 => {
                // A span of another case spliced in.
                let other = tokens(&rng.pick(seeds).sql);
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(12)).min(other.len());
                    let end = (i + rng.below(6)).min(toks.len());
                    toks.splice(i..end, other[a..b].iter().cloned());
                }
            }
            6 => {
                // A span wrapped in a call, a cast or parentheses.
                let end = (i + 1 + rng.below(5)).min(toks.len());
                let (open, close) = match rng.below(3) {
                    0 => (format!("{}(", rng.pick(FUNCTIONS)), ")".to_string()),
                    1 => ("CAST(".to_string(), format!(" AS {})", rng.pick(TYPES))),
                    _ => ("(".to_string(), ")".to_string()),
                };
                toks.insert(end, close);
                toks.insert(i, open);
            }
            7 => {
                // A long chain: a span repeated up to 3,000 times (long
                // and deep expressions).
                let end = (i + 1 + rng.below(4)).min(toks.len());
                let span: String = toks[i..end].concat();
                let times = *rng.pick(&[2, 10, 100, 1_000, 3_000]);
                if span.len() * times < 200_000 {
                    let op = rng.pick(&[" + ", " || ", " AND ", ", ", " OR ", " * "]);
                    let chain = vec![span; times].join(op);
                    toks.splice(i..end, [chain]);
                }
            }
            _ => {
                // Nesting: the span inside many parentheses or calls.
                let end = (i + 1 + rng.below(3)).min(toks.len());
                let depth = *rng.pick(&[5, 40, 60, 200]);
                let f = if rng.chance(50) { "ABS(" } else { "(" };
                toks.insert(end, ")".repeat(depth));
                toks.insert(i, f.repeat(depth));
            }
        }
    }
    toks.concat()
}

/// A query from a small grammar of Flink SQL over `seed`'s tables.
fn generate(rng: &mut Rng, seed: &Seed) -> String {
    if seed.schema.is_empty() {
        return format!("SELECT {}", expr(rng, &[], 3, false));
    }
    let (table, cols) = rng.pick(&seed.schema).clone();
    let mut names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
    names.push("$rowtime".into());
    if rng.chance(5) {
        // Sometimes a name that is not there.
        names.push(column_or_table(rng, seed));
    }
    let time = cols
        .iter()
        .find(|(_, t)| t.starts_with("TIMESTAMP"))
        .map(|(c, _)| c.clone())
        .unwrap_or_else(|| "$rowtime".to_string());
    let iv = |rng: &mut Rng| {
        format!(
            "INTERVAL '{}' {}",
            rng.pick(&["1", "2", "10", "0", "-5", "0.5", "3600"]),
            rng.pick(&["SECOND", "MINUTE", "HOUR", "DAY", "MILLISECOND"])
        )
    };
    let from = match rng.below(7) {
        0 => format!(
            "TABLE(TUMBLE(TABLE {table}, DESCRIPTOR({time}), {}))",
            iv(rng)
        ),
        1 => format!(
            "TABLE(HOP(TABLE {table}, DESCRIPTOR({time}), {}, {}))",
            iv(rng),
            iv(rng)
        ),
        2 => format!(
            "TABLE(CUMULATE(TABLE {table}, DESCRIPTOR({time}), {}, {}))",
            iv(rng),
            iv(rng)
        ),
        3 => {
            let (other, ocols) = rng.pick(&seed.schema).clone();
            let a = cols.first().map_or("x".into(), |c| c.0.clone());
            let b = ocols.first().map_or("y".into(), |c| c.0.clone());
            if rng.chance(15) {
                format!("{table} AS l CROSS JOIN {other} AS r")
            } else {
                format!(
                    "{table} AS l {} {other} AS r ON l.{a} = r.{b}{}",
                    rng.pick(&["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"]),
                    if rng.chance(30) {
                        format!(" AND {}", expr(rng, &names, 2, false))
                    } else {
                        String::new()
                    }
                )
            }
        }
        4 => format!(
            "(SELECT * FROM {table} WHERE {}) AS s",
            expr(rng, &names, 2, false)
        ),
        _ => table.clone(),
    };
    let windowed = from.starts_with("TABLE(");
    let grouped = windowed || rng.chance(40);
    let mut select = vec![];
    let mut keys = vec![];
    if windowed {
        keys.push("window_start".to_string());
        keys.push("window_end".to_string());
    }
    if grouped && rng.chance(60) && !cols.is_empty() {
        keys.push(rng.pick(&cols).0.clone());
    }
    select.extend(keys.iter().cloned());
    for _ in 0..1 + rng.below(3) {
        let depth = 1 + rng.below(4);
        select.push(expr(rng, &names, depth, grouped));
    }
    if rng.chance(15) {
        select.push(format!(
            "ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {time})",
            rng.pick(&names)
        ));
    }
    let mut sql = format!(
        "SELECT {}{} FROM {from}",
        if rng.chance(10) { "DISTINCT " } else { "" },
        select.join(", ")
    );
    if rng.chance(50) {
        let _ = write!(sql, " WHERE {}", expr(rng, &names, 3, false));
    }
    if grouped && !keys.is_empty() {
        let _ = write!(sql, " GROUP BY {}", keys.join(", "));
        if rng.chance(20) {
            let _ = write!(sql, " HAVING {}", expr(rng, &names, 2, true));
        }
    }
    if rng.chance(10) {
        let _ = write!(sql, " LIMIT {}", rng.pick(&["0", "1", "3", "100"]));
    }
    if rng.chance(10) {
        sql = format!(
            "SELECT * FROM ({sql}) AS q WHERE {}",
            expr(rng, &keys, 2, false)
        );
    }
    sql
}

/// An expression over the columns `names`, up to `depth` deep.
fn expr(rng: &mut Rng, names: &[String], depth: usize, aggregate: bool) -> String {
    if depth == 0 || rng.chance(25) {
        return if rng.chance(60) && !names.is_empty() {
            rng.pick(names).clone()
        } else {
            rng.pick(LITERALS).to_string()
        };
    }
    let sub = |rng: &mut Rng| expr(rng, names, depth - 1, false);
    match rng.below(8) {
        0 | 1 => format!(
            "{} {} {}",
            sub(rng),
            rng.pick(&["+", "-", "*", "/", "%", "||", "=", "<>", "<", ">=", "AND", "OR"]),
            sub(rng)
        ),
        2 if aggregate => format!(
            "{}({})",
            rng.pick(&[
                "COUNT",
                "SUM",
                "MIN",
                "MAX",
                "AVG",
                "LISTAGG",
                "FIRST_VALUE"
            ]),
            sub(rng)
        ),
        2 | 3 => format!("{}({})", rng.pick(FUNCTIONS), sub(rng)),
        4 => format!("CAST({} AS {})", sub(rng), rng.pick(TYPES)),
        5 => format!(
            "CASE WHEN {} THEN {} ELSE {} END",
            sub(rng),
            sub(rng),
            sub(rng)
        ),
        6 => format!("{} IS NULL", sub(rng)),
        _ => format!("{} IN ({}, {})", sub(rng), sub(rng), sub(rng)),
    }
}

/// A table definition with generated columns and options, and `seed`'s
/// other tables.
fn generate_tables(rng: &mut Rng, seed: &Seed) -> Vec<String> {
    let mut tables = seed.tables.clone();
    let i = rng.below(tables.len().max(1));
    let name = seed
        .schema
        .get(i)
        .map(|s| s.0.clone())
        .unwrap_or_else(|| "t".into());
    let mut cols: Vec<String> = vec![];
    let n = 1 + rng.below(5);
    for c in 0..n {
        cols.push(format!("c{c} {}", rng.pick(TYPES)));
    }
    if rng.chance(30) {
        let names: Vec<String> = (0..n).map(|c| format!("c{c}")).collect();
        cols.push(format!("k AS {}", expr(rng, &names, 2, false)));
    }
    if rng.chance(30) {
        cols.push("ts TIMESTAMP(3)".into());
        cols.push(format!(
            "WATERMARK FOR ts AS ts - INTERVAL '{}' SECOND",
            rng.pick(&["0", "5", "-1", "999999999"])
        ));
    }
    if rng.chance(20) {
        cols.push("PRIMARY KEY (c0) NOT ENFORCED".into());
    }
    if rng.chance(10) {
        cols.push("h MAP<STRING, BYTES> METADATA FROM 'headers'".into());
    }
    let options = [
        (
            "changelog.mode",
            &["append", "upsert", "retract", "nope"][..],
        ),
        (
            "scan.startup.mode",
            &["earliest-offset", "latest-offset", "timestamp", ""],
        ),
        (
            "scan.startup.timestamp-millis",
            &["0", "-1", "x", "99999999999999999999"],
        ),
        ("key.format", &["json", "raw", "avro", ""]),
        (
            "value.format",
            &[
                "json",
                "raw",
                "avro-registry",
                "avro",
                "json-registry",
                "proto-registry",
            ],
        ),
        ("error-handling.mode", &["fail", "ignore", "log", "x"]),
        ("late-handling.mode", &["filter", "pass-through", "?"]),
        ("kafka.partitions", &["1", "0", "-3", "100000", "x"]),
        (
            "sink.delivery-guarantee",
            &["exactly-once", "at-least-once", "none"],
        ),
    ];
    let mut with = vec![];
    for _ in 0..rng.below(4) {
        let (k, vs) = rng.pick(&options);
        with.push(format!("'{k}' = '{}'", rng.pick(vs)));
    }
    let ddl = format!(
        "CREATE TABLE {name} ({}){}",
        cols.join(", "),
        if with.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", with.join(", "))
        }
    );
    if i < tables.len() {
        tables[i] = ddl;
    } else {
        tables.push(ddl);
    }
    tables
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let trial = libtest_mimic::Trial::test(
        "generated_and_mutated_sql_never_crashes_the_planner_or_the_engine",
        fuzz,
    );
    libtest_mimic::run(&args, vec![trial]).exit();
}

fn fuzz() -> Result<(), libtest_mimic::Failed> {
    let seconds: u64 = std::env::var("WEIR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed_value: u64 = std::env::var("WEIR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    // Panics are caught and reported with their input; the default hook
    // would print each one's backtrace as well.
    if std::env::var_os("WEIR_FUZZ_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let current = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-current.yaml");
    let planner = Planner::new();
    let mut tally = Tally::default();

    // Every crash found so far, first.
    let regressions_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions.yaml");
    let regressions: Vec<Input> = serde_yaml::from_str(
        &std::fs::read_to_string(&regressions_file).expect("tests/fuzz/regressions.yaml"),
    )
    .expect("regressions.yaml is a list of {tables, sql}");
    for input in &regressions {
        let _ = std::fs::write(&current, input.yaml());
        let polls = catalog(&input.tables)
            .and_then(|ctx| polls(&input.input, &ctx))
            .unwrap_or_default();
        try_input(&planner, input, &polls, &mut tally);
    }
    let regression_crashes = tally.crashes.len();

    let seeds: Vec<Seed> = load_cases_of(None)
        .into_iter()
        .filter_map(|(_, case)| {
            let ctx = catalog(&case.tables).ok()?;
            let polls = polls(&case.input, &ctx).ok()?;
            let schema = ctx
                .tables
                .iter()
                .map(|(_, d)| {
                    (
                        d.name.clone(),
                        d.columns
                            .iter()
                            .map(|c| (c.name.clone(), c.data_type.to_string()))
                            .collect(),
                    )
                })
                .collect();
            Some(Seed {
                tables: case.tables,
                sql: case.sql,
                input: case.input,
                polls,
                schema,
            })
        })
        .collect();
    assert!(!seeds.is_empty(), "the conformance corpus gave no seeds");

    let mut rng = Rng(seed_value);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut last_report = start;
    while Instant::now() < deadline {
        let seed = &seeds[rng.below(seeds.len())];
        let (tables, sql) = match rng.below(10) {
            0..=4 => (seed.tables.clone(), mutate(&mut rng, seed, &seeds)),
            5..=7 => (seed.tables.clone(), generate(&mut rng, seed)),
            _ => (generate_tables(&mut rng, seed), seed.sql.clone()),
        };
        let input = Input {
            tables,
            sql,
            input: seed.input.clone(),
        };
        let _ = std::fs::write(&current, input.yaml());
        try_input(&planner, &input, &seed.polls, &mut tally);
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "fuzz: {} inputs, {} crashes after {:.0} s",
                tally.tried,
                tally.crashes.len(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let _ = std::fs::remove_file(&current);
    let _ = std::panic::take_hook();
    println!(
        "fuzz: {} inputs ({} regression cases) in {:.1} s, seed {seed_value}: {} planned, {} ran, {} crashed",
        tally.tried,
        regressions.len(),
        start.elapsed().as_secs_f64(),
        tally.planned,
        tally.ran,
        tally.crashes.len()
    );
    if let Some((took, input)) = &tally.slowest {
        let sql: String = input.sql.chars().take(300).collect();
        println!("fuzz: the slowest input took {took:?}: {sql}");
    }
    if tally.crashes.is_empty() {
        return Ok(());
    }
    let mut report = String::new();
    for (i, (input, panic)) in tally.crashes.iter().enumerate() {
        let from = if i < regression_crashes {
            "a saved regression case"
        } else {
            "new"
        };
        let _ = write!(report, "\ncrash ({from}): {panic}\n{}", input.yaml());
    }
    Err(format!(
        "{report}\nthe inputs above crash Weir; fix each and add it to tests/fuzz/regressions.yaml"
    )
    .into())
}
