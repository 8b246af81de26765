//! The streaming plan: what a worker runs for one statement.
//!
//! A plan is a tree of operators over Arrow batches, with DataFusion logical
//! expressions for filters and projections. It is rebuilt on the worker from
//! the statement's SQL and the catalog snapshot it was planned against, which
//! is what is stored and shipped; see `Planner::plan_query`.

use std::fmt::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchemaRef;
use datafusion::logical_expr::{Expr, SortExpr};
use weir_catalog::TableDef;

/// Where a Kafka source starts when the statement has no stored offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    Earliest,
    Latest,
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

/// A Kafka table read by the statement.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The table, with per-statement hint options merged in.
    pub table: TableDef,
    /// `catalog.database.table`, for messages.
    pub qualified_name: String,
    pub startup: StartupMode,
    /// Whether the source ends at the offsets it finds at start (a
    /// snapshot query, or `'scan.bounded.mode' = 'latest-offset'`).
    pub bounded: bool,
    /// Computed columns as planned expressions over the physical and
    /// metadata columns (in `table.read_schema()` order).
    pub computed: Vec<(String, Expr)>,
    /// The schema the source emits: `table.read_schema()`.
    pub schema: SchemaRef,
    /// The same schema with the table as qualifier.
    pub df_schema: DFSchemaRef,
    /// The physical (value) columns the statement reads, directly or through
    /// computed columns; `None` reads all. The decoder leaves the others
    /// NULL and does not build them, as Flink's projection push-down into
    /// the format does.
    pub read_columns: Option<Vec<String>>,
    /// The watermark expression over `schema` (`WATERMARK FOR c AS expr`,
    /// or `$rowtime` when the table declares none). The source tracks its
    /// maximum per partition; the statement's watermark is the minimum.
    pub watermark: Expr,
}

/// The shape of a window of Flink's window TVFs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    Tumble,
    Hop {
        slide_ms: i64,
    },
    Cumulate {
        step_ms: i64,
    },
    /// A session per grouping key: rows closer than `size_ms` (the gap)
    /// share one; it ends `size_ms` after its last row.
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub size_ms: i64,
    pub offset_ms: i64,
    /// The session time zone windows over a `TIMESTAMP_LTZ` are aligned in,
    /// as Flink aligns them (a day starts at local midnight); `None`: UTC.
    /// Window bounds stay instants (UTC milliseconds).
    pub zone: Option<WindowZone>,
    /// Over a processing-time attribute (`PROCTIME()`): rows go into the
    /// window of the moment they are processed, and a window fires when
    /// processing time passes its end, not the watermark.
    pub proctime: bool,
}

/// A time zone other than UTC: a fixed offset or an IANA zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowZone {
    /// Seconds east of UTC.
    Offset(i32),
    Named(chrono_tz::Tz),
}

impl WindowZone {
    /// The zone of a time attribute of type `t`: `Some` for a
    /// `TIMESTAMP_LTZ` in a zone other than UTC.
    pub fn of_type(t: &arrow::datatypes::DataType) -> Option<WindowZone> {
        match t {
            arrow::datatypes::DataType::Timestamp(_, Some(tz)) => WindowZone::parse(tz),
            _ => None,
        }
    }

    /// A zone as Arrow names it (`+08:00`, `Asia/Shanghai`); `None` for UTC
    /// or a zero offset.
    pub fn parse(name: &str) -> Option<WindowZone> {
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return (tz != chrono_tz::UTC && tz != chrono_tz::Etc::UTC)
                .then_some(WindowZone::Named(tz));
        }
        let (sign, rest) = match name.as_bytes().first()? {
            b'+' => (1, &name[1..]),
            b'-' => (-1, &name[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
        (secs != 0).then_some(WindowZone::Offset(secs))
    }

    /// How far the zone's wall clock is ahead of UTC at instant `utc_ms`.
    pub fn offset_ms(&self, utc_ms: i64) -> i64 {
        use chrono::{Offset, TimeZone};
        match self {
            WindowZone::Offset(s) => *s as i64 * 1000,
            WindowZone::Named(tz) => {
                let Some(t) = chrono::DateTime::from_timestamp_millis(utc_ms) else {
                    return 0;
                };
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc() as i64
                    * 1000
            }
        }
    }

    /// The instant at which the zone's wall clock shows `local_ms`: the
    /// earlier one when the clock shows it twice (a DST fall-back), and
    /// the one after the gap when it never does (a DST spring-forward).
    pub fn to_utc(&self, local_ms: i64) -> i64 {
        use chrono::TimeZone;
        match self {
            WindowZone::Offset(s) => local_ms - *s as i64 * 1000,
            WindowZone::Named(tz) => {
                let Some(t) = chrono::DateTime::from_timestamp_millis(local_ms) else {
                    return local_ms;
                };
                match tz.from_local_datetime(&t.naive_utc()) {
                    chrono::LocalResult::Single(d) | chrono::LocalResult::Ambiguous(d, _) => {
                        d.timestamp_millis()
                    }
                    // In a gap the clock jumps over: read it with the offset
                    // in force before the jump, as Java's ZonedDateTime does.
                    chrono::LocalResult::None => {
                        local_ms - self.offset_ms(local_ms - self.offset_ms(local_ms) - 86_400_000)
                    }
                }
            }
        }
    }
}

impl WindowSpec {
    /// The start of the last window of `step` that starts at or before `t`.
    fn aligned(&self, t: i64, step: i64) -> i64 {
        t - (t - self.offset_ms).rem_euclid(step)
    }

    /// The start of the tumbling window holding `t`.
    pub fn last_start(&self, t: i64) -> i64 {
        self.windows(t).first().map_or(t, |w| w.0)
    }

    /// Every `(start, end)` window holding `t`, earliest end first. For a
    /// session window, the row's own window `[t, t + gap)`, before it is
    /// merged with the sessions it touches. In a [`WindowZone`] the windows
    /// are aligned on its wall clock.
    pub fn windows(&self, t: i64) -> Vec<(i64, i64)> {
        match (self.zone, self.kind) {
            (
                Some(zone),
                WindowKind::Tumble | WindowKind::Hop { .. } | WindowKind::Cumulate { .. },
            ) => self
                .local_windows(t + zone.offset_ms(t))
                .into_iter()
                .map(|(s, e)| (zone.to_utc(s), zone.to_utc(e)))
                .collect(),
            _ => self.local_windows(t),
        }
    }

    /// [`WindowSpec::windows`] on one clock.
    fn local_windows(&self, t: i64) -> Vec<(i64, i64)> {
        match self.kind {
            WindowKind::Session => vec![(t, t + self.size_ms)],
            WindowKind::Tumble => {
                let s = self.aligned(t, self.size_ms);
                vec![(s, s + self.size_ms)]
            }
            WindowKind::Hop { slide_ms } => {
                let last = self.aligned(t, slide_ms);
                let mut out = vec![];
                let mut s = last - self.size_ms + slide_ms;
                while s <= last {
                    out.push((s, s + self.size_ms));
                    s += slide_ms;
                }
                out
            }
            WindowKind::Cumulate { step_ms } => {
                let s = self.aligned(t, self.size_ms);
                let first_end = self.aligned(t, step_ms) + step_ms;
                let mut out = vec![];
                let mut e = first_end;
                while e <= s + self.size_ms {
                    out.push((s, e));
                    e += step_ms;
                }
                out
            }
        }
    }
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            WindowKind::Tumble => write!(f, "TUMBLE(size={}ms", self.size_ms)?,
            WindowKind::Hop { slide_ms } => {
                write!(f, "HOP(slide={slide_ms}ms, size={}ms", self.size_ms)?
            }
            WindowKind::Cumulate { step_ms } => {
                write!(f, "CUMULATE(step={step_ms}ms, size={}ms", self.size_ms)?
            }
            WindowKind::Session => write!(f, "SESSION(gap={}ms", self.size_ms)?,
        }
        if self.offset_ms != 0 {
            write!(f, ", offset={}ms", self.offset_ms)?;
        }
        if self.proctime {
            write!(f, ", processing time")?;
        }
        match self.zone {
            Some(WindowZone::Named(tz)) => write!(f, ", aligned in {}", tz.name())?,
            Some(WindowZone::Offset(s)) => write!(
                f,
                ", aligned at UTC{}{:02}:{:02}",
                if s < 0 { '-' } else { '+' },
                s.abs() / 3600,
                s.abs() % 3600 / 60
            )?,
            None => {}
        }
        write!(f, ")")
    }
}

/// The kind of a regular join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// `EXISTS` / `IN`: the left rows with at least one match; output is
    /// the left input's columns.
    LeftSemi,
    /// `NOT EXISTS`: the left rows without a match.
    LeftAnti,
}

impl JoinKind {
    /// A semi or anti join: only the left input's columns come out.
    pub fn is_semi(self) -> bool {
        matches!(self, JoinKind::LeftSemi | JoinKind::LeftAnti)
    }

    /// Whether the left input's unmatched rows are emitted, padded with NULLs.
    pub fn left_outer(self) -> bool {
        matches!(self, JoinKind::Left | JoinKind::Full)
    }

    /// Whether the right input's unmatched rows are emitted.
    pub fn right_outer(self) -> bool {
        matches!(self, JoinKind::Right | JoinKind::Full)
    }

    pub fn sql(self) -> &'static str {
        match self {
            JoinKind::Inner => "INNER JOIN",
            JoinKind::Left => "LEFT JOIN",
            JoinKind::Right => "RIGHT JOIN",
            JoinKind::Full => "FULL JOIN",
            JoinKind::LeftSemi => "SEMI JOIN",
            JoinKind::LeftAnti => "ANTI JOIN",
        }
    }
}

/// The time bounds of an interval join: `lower_ms <= left_time -
/// right_time <= upper_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalBounds {
    /// Over the left input's schema.
    pub left_time: Expr,
    /// Over the right input's schema.
    pub right_time: Expr,
    pub lower_ms: i64,
    pub upper_ms: i64,
    /// A window join (the times are window ends): its rows are emitted when
    /// the watermark reaches their window's end, as Flink's window join
    /// emits them, not when they meet.
    pub window: bool,
}

/// The frame of an OVER aggregation, ending at the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW` (`None`: unbounded).
    Rows(Option<u64>),
    /// `RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW`, in
    /// milliseconds (`None`: unbounded); rows with the current row's time
    /// are its peers and in its frame.
    Range(Option<i64>),
}

impl std::fmt::Display for OverFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverFrame::Rows(None) => write!(f, "ROWS UNBOUNDED PRECEDING"),
            OverFrame::Rows(Some(n)) => write!(f, "ROWS {n} PRECEDING"),
            OverFrame::Range(None) => write!(f, "RANGE UNBOUNDED PRECEDING"),
            OverFrame::Range(Some(ms)) => write!(f, "RANGE {ms}ms PRECEDING"),
        }
    }
}

/// A column of a window aggregate's output that comes from its grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupColumn {
    WindowStart,
    WindowEnd,
    WindowTime,
    /// The n-th grouping key.
    Key(usize),
}

#[derive(Debug, Clone)]
pub enum PlanNode {
    Source(SourceSpec),
    /// Constant rows (`VALUES`, `SELECT 1`).
    Values {
        batch: RecordBatch,
    },
    Filter {
        input: Box<PlanNode>,
        predicate: Expr,
        input_schema: DFSchemaRef,
    },
    Project {
        input: Box<PlanNode>,
        exprs: Vec<Expr>,
        input_schema: DFSchemaRef,
    },
    /// Every input row once per projection, each over `input_schema` with
    /// the same output columns: Flink's `Expand`, under a grouping-sets
    /// aggregation (the input's columns, each set's keys with NULL for the
    /// keys it leaves out, and the set's grouping id).
    Expand {
        input: Box<PlanNode>,
        projections: Vec<Vec<Expr>>,
        input_schema: DFSchemaRef,
    },
    /// `UNNEST`: each input row once per element of its arrays (zipped,
    /// the shorter padded with NULLs), each array column replaced in place
    /// by its element.
    Unnest {
        input: Box<PlanNode>,
        /// The input columns that are arrays to unnest.
        lists: Vec<usize>,
        /// What a row whose arrays are all NULL or empty becomes.
        null_handling: datafusion::common::NullHandling,
        output_schema: DFSchemaRef,
    },
    /// An upsert table read as an update stream, right above its source:
    /// the last row per primary key, turning records and tombstones into
    /// `+I`, `-U`/`+U` and `-D` (Flink's `ChangelogNormalize`).
    ChangelogNormalize {
        input: Box<PlanNode>,
        /// The primary key's columns in the source's schema.
        keys: Vec<usize>,
        /// A retract table instead: each record's kind is in its `__op`
        /// header, passed on as is (no state, no key).
        retract: bool,
        /// The source's schema (also the output's).
        schema: DFSchemaRef,
    },
    /// `UNION ALL`: every input's rows, in arrival order.
    Union {
        inputs: Vec<PlanNode>,
    },
    /// `GROUP BY window_start, window_end, keys...` over a window TVF: keeps
    /// one set of accumulators per open window and key, and emits each
    /// window once, when the watermark passes its end (append-only).
    WindowAggregate {
        input: Box<PlanNode>,
        input_schema: DFSchemaRef,
        window: WindowSpec,
        /// The time attribute, over `input_schema`.
        time: Expr,
        /// Grouping keys besides the window, over `input_schema`.
        keys: Vec<Expr>,
        /// The output's grouping columns, in order.
        layout: Vec<GroupColumn>,
        /// Aggregate function calls over `input_schema`, in output order
        /// after the grouping columns.
        aggs: Vec<Expr>,
        output_schema: DFSchemaRef,
    },
    /// `GROUP BY keys` without a window: accumulators per key, emitting an
    /// update stream (`+I`, `-U`/`+U`, `-D`). Output: keys, then aggregates.
    GroupAggregate {
        input: Box<PlanNode>,
        input_schema: DFSchemaRef,
        /// Grouping keys over `input_schema`.
        keys: Vec<Expr>,
        /// Aggregate function calls over `input_schema`.
        aggs: Vec<Expr>,
        output_schema: DFSchemaRef,
    },
    /// A regular join: every row of each input is kept in state by its
    /// equi-join key, and each change on one side is joined with the rows
    /// the other side holds. Output: the left input's columns, then the
    /// right's.
    Join {
        left: Box<PlanNode>,
        right: Box<PlanNode>,
        left_schema: DFSchemaRef,
        right_schema: DFSchemaRef,
        kind: JoinKind,
        /// Equi-join keys: (over `left_schema`, over `right_schema`).
        on: Vec<(Expr, Expr)>,
        /// The rest of the condition, over `output_schema`.
        filter: Option<Expr>,
        /// `IS NOT DISTINCT FROM` keys: NULL matches NULL.
        null_equal: bool,
        /// An interval join: the condition bounds one input's time
        /// attribute by the other's, so a row is held only until the
        /// watermark passes the last time a match could arrive, and an
        /// outer side emits its NULL-padded row then (append-only output).
        interval: Option<IntervalBounds>,
        output_schema: DFSchemaRef,
    },
    /// `JOIN versioned FOR SYSTEM_TIME AS OF l.time`: each left row, once
    /// the watermark passes its time, joined with the version of the right
    /// row (by the equi-join key) valid at that time; append-only. Output:
    /// the left input's columns, then the right's. `AS OF` a processing
    /// time attribute, each left row is joined when it arrives with the
    /// right row its key has then.
    TemporalJoin {
        left: Box<PlanNode>,
        right: Box<PlanNode>,
        left_schema: DFSchemaRef,
        right_schema: DFSchemaRef,
        /// Inner or left.
        kind: JoinKind,
        on: Vec<(Expr, Expr)>,
        /// The left time attribute, over `left_schema`.
        left_time: Expr,
        /// The versioned table's time attribute, over `right_schema` (a
        /// NULL literal when it has none and the join is on processing time).
        right_time: Expr,
        /// `AS OF` a processing-time attribute: each left row is joined at
        /// once with its key's latest row, as a lookup join.
        proctime: bool,
        output_schema: DFSchemaRef,
    },
    /// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` kept to the
    /// first `limit` rows of each partition: Flink's Top-N, or its
    /// deduplication. Output: the input's columns, then the row number
    /// (NULL unless `rank` is [`RankOutput::RowNumbers`]: nothing above
    /// reads it).
    TopN {
        input: Box<PlanNode>,
        input_schema: DFSchemaRef,
        /// Over `input_schema`.
        partition_by: Vec<Expr>,
        /// Over `input_schema`; never empty.
        order_by: Vec<SortExpr>,
        limit: usize,
        rank: RankOutput,
        /// A window Top-N (the partition holds a window's start and end):
        /// the window end column, over `input_schema`. Each window's top N
        /// is emitted once, append-only, when the watermark passes its end.
        window_end: Option<Expr>,
        output_schema: DFSchemaRef,
    },
    /// `agg(...) OVER (PARTITION BY ... ORDER BY time frame)`: each row
    /// with its frame's aggregates, once the watermark passes its time,
    /// in time order (append-only). Output: the input's columns, then the
    /// aggregates.
    OverAggregate {
        input: Box<PlanNode>,
        input_schema: DFSchemaRef,
        partition_by: Vec<Expr>,
        /// The time attribute it is ordered by, over `input_schema`.
        time: Expr,
        frame: OverFrame,
        /// Aggregate function calls over `input_schema`.
        aggs: Vec<Expr>,
        output_schema: DFSchemaRef,
    },
    /// `ORDER BY time ASC, ...` over a stream: each row once the watermark
    /// passes its time, in time order; rows of one time ordered by `peers`
    /// (append-only; a late row is dropped).
    Sort {
        input: Box<PlanNode>,
        input_schema: DFSchemaRef,
        /// The time attribute, over `input_schema`.
        time: Expr,
        /// The rest of the ORDER BY, over `input_schema`.
        peers: Vec<SortExpr>,
    },
    /// `MATCH_RECOGNIZE`: a row pattern matched per partition in time
    /// order, one row per match (append-only).
    MatchRecognize {
        input: Box<PlanNode>,
        input_schema: DFSchemaRef,
        spec: Box<MatchSpec>,
        output_schema: DFSchemaRef,
    },
    /// Stops after `fetch` rows (only at the top of a `SELECT`).
    Limit {
        input: Box<PlanNode>,
        fetch: usize,
    },
}

/// One element of a `MATCH_RECOGNIZE` pattern: a variable and how many
/// consecutive rows it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternTerm {
    /// Index into [`MatchSpec::symbols`].
    pub symbol: usize,
    pub min: u32,
    /// `None`: unbounded.
    pub max: Option<u32>,
    /// Greedy (the default) takes a row whenever the variable's condition
    /// holds; reluctant (`+?`, `*?`, `??`, `{n,m}?`) moves on as soon as
    /// it may.
    pub greedy: bool,
}

/// A value a `DEFINE` or `MEASURES` expression reads from the match: each
/// is a column of [`MatchSpec::nav_schema`].
#[derive(Debug, Clone)]
pub enum MatchNav {
    /// A column of a row of the match: among the rows of `symbol` (all
    /// rows when `None`), the `offset`-th from the last (`LAST`, and a
    /// plain `A.col`) or from the first (`FIRST`). While a row is being
    /// classified, it is the last row of the match.
    Row {
        symbol: Option<usize>,
        column: usize,
        first: bool,
        offset: u32,
    },
    /// `PREV(col, n)`: the row `n` before the last row of the match.
    Prev { column: usize, offset: u32 },
    /// An aggregate (over the input schema) of the rows of `symbol` (all
    /// rows when `None`).
    Aggregate { symbol: Option<usize>, call: Expr },
    /// `MATCH_ROWTIME()`: the time of the match's last row.
    MatchRowtime,
}

/// `AFTER MATCH SKIP ...`: where the next match may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchSkip {
    PastLastRow,
    ToNextRow,
    ToFirst(usize),
    ToLast(usize),
}

/// What `MATCH_RECOGNIZE` matches and emits.
#[derive(Debug, Clone)]
pub struct MatchSpec {
    /// Columns of the input (each emitted first, under its name).
    pub partition_by: Vec<Expr>,
    /// The time attribute rows are ordered by, over the input.
    pub time: Expr,
    pub pattern: Vec<PatternTerm>,
    pub symbols: Vec<String>,
    pub navs: Vec<MatchNav>,
    /// One column per [`MatchNav`], `__nav<i>`.
    pub nav_schema: DFSchemaRef,
    /// Each symbol's condition over `nav_schema`; `None` is always true.
    pub defines: Vec<Option<Expr>>,
    /// The measures over `nav_schema`, in output order.
    pub measures: Vec<Expr>,
    pub skip: MatchSkip,
    /// `WITHIN INTERVAL ...`: a match must end within this many
    /// milliseconds of its first row.
    pub within_ms: Option<i64>,
}

impl std::fmt::Display for MatchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pattern: Vec<String> = self
            .pattern
            .iter()
            .map(|t| {
                let q = match (t.min, t.max) {
                    (1, Some(1)) => String::new(),
                    (0, None) => "*".into(),
                    (1, None) => "+".into(),
                    (0, Some(1)) => "?".into(),
                    (n, Some(m)) if n == m => format!("{{{n}}}"),
                    (n, None) => format!("{{{n},}}"),
                    (n, Some(m)) => format!("{{{n},{m}}}"),
                };
                let lazy = if t.greedy || q.is_empty() { "" } else { "?" };
                format!("{}{q}{lazy}", self.symbols[t.symbol])
            })
            .collect();
        write!(
            f,
            "partition=[{}] order=[{}] pattern=({}) skip={:?}{}",
            self.partition_by
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.time,
            pattern.join(" "),
            self.skip,
            self.within_ms
                .map(|w| format!(" within={w}ms"))
                .unwrap_or_default()
        )
    }
}

/// What a Top-N emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankOutput {
    /// Rows entering (`+I`) and leaving (`-D`) the top N.
    Rows,
    /// The row number is read above: `-U`/`+U` for every rank that changes.
    RowNumbers,
    /// `ROW_NUMBER() ... = 1` ordered by a time attribute: one row per
    /// partition, `-U`/`+U` when it is replaced. `keep_last`: `DESC`.
    Deduplicate { keep_last: bool },
    /// `ROW_NUMBER() ... = 1` ordered by an event-time attribute,
    /// ascending: each partition's earliest row, inserted once when the
    /// watermark reaches its time (Flink's
    /// `RowTimeDeduplicateKeepFirstRowFunction`); later rows of the
    /// partition and rows behind the watermark are dropped.
    FirstOnWatermark,
}

/// How a column of an update stream moves when its row is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Monotonicity {
    Constant,
    Increasing,
    Decreasing,
}

/// Where an output column of a plan comes from, followed down through the
/// filters and projections that pass it on unchanged.
pub(crate) enum ColumnOrigin<'a> {
    /// Column `idx` of `node`'s output; `node` is neither a filter nor a
    /// projection passing the column on.
    Node(&'a PlanNode, usize),
    /// A projection computes it with this expression.
    Computed(&'a Expr),
}

impl PlanNode {
    /// Where output column `idx` comes from.
    pub(crate) fn column_origin(&self, idx: usize) -> Option<ColumnOrigin<'_>> {
        match self {
            PlanNode::Filter { input, .. } => input.column_origin(idx),
            PlanNode::Project {
                input,
                exprs,
                input_schema,
            } => {
                let mut e = exprs.get(idx)?;
                while let Expr::Alias(a) = e {
                    e = &a.expr;
                }
                match e {
                    Expr::Column(c) => input.column_origin(input_schema.index_of_column(c).ok()?),
                    computed => Some(ColumnOrigin::Computed(computed)),
                }
            }
            _ => Some(ColumnOrigin::Node(self, idx)),
        }
    }

    /// The node's inputs, left first.
    pub fn inputs(&self) -> Vec<&PlanNode> {
        match self {
            PlanNode::Source(_) | PlanNode::Values { .. } => vec![],
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Expand { input, .. }
            | PlanNode::Unnest { input, .. }
            | PlanNode::OverAggregate { input, .. }
            | PlanNode::Sort { input, .. }
            | PlanNode::MatchRecognize { input, .. }
            | PlanNode::ChangelogNormalize { input, .. }
            | PlanNode::WindowAggregate { input, .. }
            | PlanNode::GroupAggregate { input, .. }
            | PlanNode::TopN { input, .. }
            | PlanNode::Limit { input, .. } => vec![input],
            PlanNode::Union { inputs } => inputs.iter().collect(),
            PlanNode::Join { left, right, .. } | PlanNode::TemporalJoin { left, right, .. } => {
                vec![left, right]
            }
        }
    }

    /// Whether the node keeps state (the runtime makes it a stage).
    pub fn is_stateful(&self) -> bool {
        matches!(
            self,
            PlanNode::OverAggregate { .. }
                | PlanNode::Sort { .. }
                | PlanNode::MatchRecognize { .. }
                | PlanNode::ChangelogNormalize { .. }
                | PlanNode::WindowAggregate { .. }
                | PlanNode::GroupAggregate { .. }
                | PlanNode::TopN { .. }
                | PlanNode::Join { .. }
                | PlanNode::TemporalJoin { .. }
        )
    }

    /// The operator's name, as `EXPLAIN` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            PlanNode::Source(_) => "KafkaSource",
            PlanNode::Values { .. } => "Values",
            PlanNode::Filter { .. } => "Filter",
            PlanNode::Project { .. } => "Project",
            PlanNode::Expand { .. } => "Expand",
            PlanNode::Unnest { .. } => "Unnest",
            PlanNode::OverAggregate { .. } => "OverAggregate",
            PlanNode::Sort { .. } => "Sort",
            PlanNode::MatchRecognize { .. } => "MatchRecognize",
            PlanNode::ChangelogNormalize { .. } => "ChangelogNormalize",
            PlanNode::WindowAggregate { .. } => "WindowAggregate",
            PlanNode::GroupAggregate { .. } => "GroupAggregate",
            PlanNode::TopN { .. } => "TopN",
            PlanNode::Join { .. } => "Join",
            PlanNode::TemporalJoin { .. } => "TemporalJoin",
            PlanNode::Union { .. } => "Union",
            PlanNode::Limit { .. } => "Limit",
        }
    }

    /// Whether every source of this subtree ends.
    pub fn is_bounded(&self) -> bool {
        match self {
            PlanNode::Source(s) => s.bounded,
            PlanNode::Values { .. } | PlanNode::Limit { .. } => true,
            other => other.inputs().iter().all(|i| i.is_bounded()),
        }
    }

    pub fn sources(&self) -> Vec<&SourceSpec> {
        match self {
            PlanNode::Source(s) => vec![s],
            other => other.inputs().iter().flat_map(|i| i.sources()).collect(),
        }
    }

    /// Whether the subtree only inserts rows (`false`: it emits updates).
    pub fn is_append_only(&self) -> bool {
        match self {
            PlanNode::Source(_) | PlanNode::Values { .. } => true,
            PlanNode::WindowAggregate { .. } => true,
            PlanNode::TopN {
                window_end: Some(_),
                input,
                ..
            }
            | PlanNode::TopN {
                rank: RankOutput::FirstOnWatermark,
                input,
                ..
            } => input.is_append_only(),
            PlanNode::GroupAggregate { .. }
            | PlanNode::TopN { .. }
            | PlanNode::ChangelogNormalize { .. } => false,
            PlanNode::TemporalJoin { left, .. } => left.is_append_only(),
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Expand { input, .. }
            | PlanNode::Unnest { input, .. }
            | PlanNode::OverAggregate { input, .. }
            | PlanNode::Sort { input, .. }
            | PlanNode::Limit { input, .. } => input.is_append_only(),
            PlanNode::MatchRecognize { .. } => true,
            PlanNode::Union { inputs } => inputs.iter().all(PlanNode::is_append_only),
            // An outer join retracts its NULL-padded rows when a match
            // arrives; an inner join only passes its inputs' updates on.
            PlanNode::Join {
                kind,
                left,
                right,
                interval,
                ..
            } => {
                // A semi join of append-only inputs only ever adds rows; an
                // anti join retracts a row when its first match arrives.
                (matches!(kind, JoinKind::Inner | JoinKind::LeftSemi) || interval.is_some())
                    && left.is_append_only()
                    && right.is_append_only()
            }
        }
    }

    /// For a Top-N over an update stream that Flink's planner runs with
    /// its update-fast strategy (`UpdatableTopNFunction`), the input
    /// columns that key its rows: the input has a unique key that holds
    /// the `PARTITION BY` columns, and every `ORDER BY` column can only
    /// move a row up when it is updated (a `GROUP BY` key, `COUNT` or
    /// `MAX` descending, `MIN` ascending, of an aggregation over an
    /// append-only input). Such a Top-N takes each update as the new row
    /// of its key (its `-U` is not needed) and holds only the top N.
    pub fn update_fast_key(&self) -> Option<Vec<usize>> {
        let PlanNode::TopN {
            input,
            input_schema,
            partition_by,
            order_by,
            rank: RankOutput::Rows | RankOutput::RowNumbers,
            window_end: None,
            ..
        } = self
        else {
            return None;
        };
        if input.is_append_only() {
            return None;
        }
        let column = |e: &Expr| match e.clone().unalias_nested().data {
            Expr::Column(c) => input_schema.index_of_column(&c).ok(),
            _ => None,
        };
        let key = input.upsert_key()?;
        if !partition_by
            .iter()
            .all(|p| column(p).is_some_and(|i| key.contains(&i)))
        {
            return None;
        }
        let monotonic = order_by.iter().all(|o| {
            matches!(
                (column(&o.expr).and_then(|i| input.monotonicity(i)), o.asc),
                (Some(Monotonicity::Constant), _)
                    | (Some(Monotonicity::Increasing), false)
                    | (Some(Monotonicity::Decreasing), true)
            )
        });
        monotonic.then_some(key)
    }

    /// How output column `idx` moves when its row is updated, as Flink's
    /// planner infers it (`FlinkRelMdModifiedMonotonicity`), for the
    /// columns of an aggregation over an append-only input passed on by
    /// projections; `None`: not known to be monotonic. A filter between
    /// (a `HAVING`) may drop an updated row, so it is not looked through.
    fn monotonicity(&self, idx: usize) -> Option<Monotonicity> {
        match self {
            PlanNode::Project {
                input,
                exprs,
                input_schema,
            } => match exprs.get(idx)?.clone().unalias_nested().data {
                Expr::Column(c) => input.monotonicity(input_schema.index_of_column(&c).ok()?),
                _ => None,
            },
            PlanNode::GroupAggregate {
                keys, aggs, input, ..
            } => {
                if idx < keys.len() {
                    return Some(Monotonicity::Constant);
                }
                if !input.is_append_only() {
                    return None;
                }
                let Expr::AggregateFunction(f) =
                    aggs.get(idx - keys.len())?.clone().unalias_nested().data
                else {
                    return None;
                };
                match f.func.name() {
                    "count" | "max" => Some(Monotonicity::Increasing),
                    "min" => Some(Monotonicity::Decreasing),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The output columns that key this subtree's updates (each key has at
    /// most one current row), when it emits updates and they are known.
    pub fn upsert_key(&self) -> Option<Vec<usize>> {
        match self {
            PlanNode::ChangelogNormalize {
                keys,
                retract: false,
                ..
            } => Some(keys.clone()),
            PlanNode::GroupAggregate { keys, .. } => Some((0..keys.len()).collect()),
            // One current row per partition and rank: the partition columns
            // and the row number, or the partition columns alone for a top 1.
            PlanNode::TopN {
                partition_by,
                input_schema,
                limit,
                rank,
                output_schema,
                ..
            } => {
                let mut key = partition_by
                    .iter()
                    .map(|p| match p.clone().unalias_nested().data {
                        Expr::Column(c) => input_schema.index_of_column(&c).ok(),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                match rank {
                    RankOutput::RowNumbers => key.push(output_schema.fields().len() - 1),
                    _ if *limit == 1 => {}
                    _ => return None,
                }
                Some(key)
            }
            PlanNode::Filter { input, .. } | PlanNode::Limit { input, .. } => input.upsert_key(),
            PlanNode::Project {
                input,
                exprs,
                input_schema,
            } => {
                let inner = input.upsert_key()?;
                inner
                    .iter()
                    .map(|k| {
                        let (q, f) = input_schema.qualified_field(*k);
                        let col = datafusion::common::Column::new(q.cloned(), f.name());
                        exprs.iter().position(|e| {
                            matches!(e.clone().unalias_nested().data, Expr::Column(c) if c == col)
                        })
                    })
                    .collect()
            }
            PlanNode::Join {
                left,
                right,
                left_schema,
                right_schema,
                on,
                ..
            } => {
                // Each output row pairs one current left row with one current
                // right row: both inputs' keys together key it, and the left
                // key alone when the join keys cover the right input's key.
                let lk = left.upsert_key()?;
                let rk = right.upsert_key()?;
                let width = left_schema.fields().len();
                let covered = rk.iter().all(|k| {
                    on.iter().any(|(_, r)| {
                        matches!(r.clone().unalias_nested().data, Expr::Column(c) if right_schema.index_of_column(&c).ok() == Some(*k))
                    })
                });
                let mut key = lk;
                if !covered {
                    key.extend(rk.iter().map(|k| k + width));
                }
                Some(key)
            }
            _ => None,
        }
    }

    /// The first operator (from the root down) that makes the stream an
    /// update stream, described for an error message.
    pub fn update_source(&self) -> Option<String> {
        match self {
            PlanNode::GroupAggregate { keys, .. } => Some(if keys.is_empty() {
                "an aggregation without GROUP BY".to_string()
            } else {
                format!(
                    "GROUP BY {}",
                    keys.iter()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
            PlanNode::TopN {
                window_end: Some(_),
                input,
                ..
            }
            | PlanNode::TopN {
                rank: RankOutput::FirstOnWatermark,
                input,
                ..
            } => input.update_source(),
            PlanNode::TopN {
                partition_by,
                order_by,
                limit,
                rank,
                ..
            } => Some(format!(
                "the {} ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {}) <= {limit}, which {}",
                if matches!(rank, RankOutput::Deduplicate { .. } | RankOutput::FirstOnWatermark) {
                    "deduplication"
                } else {
                    "Top-N"
                },
                partition_by
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                order_by
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                match rank {
                    RankOutput::Rows => "deletes the rows that leave the top N",
                    RankOutput::RowNumbers => "updates the rows whose rank changes",
                    RankOutput::Deduplicate { .. } | RankOutput::FirstOnWatermark =>
                        "updates a key's row when another replaces it",
                }
            )),
            PlanNode::ChangelogNormalize {
                input,
                retract: true,
                ..
            } => Some(format!(
                "the retract table {}, read as the update stream its __op headers describe",
                input
                    .sources()
                    .first()
                    .map_or("", |s| s.qualified_name.as_str())
            )),
            PlanNode::ChangelogNormalize { input, .. } => match input.as_ref() {
                PlanNode::Source(s) => Some(format!(
                    "the upsert table {}, read as an update stream keyed by its primary key ({})",
                    s.qualified_name,
                    s.table.primary_key.join(", ")
                )),
                _ => Some("an upsert table, read as an update stream".to_string()),
            },
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Expand { input, .. }
            | PlanNode::Unnest { input, .. }
            | PlanNode::OverAggregate { input, .. }
            | PlanNode::Sort { input, .. }
            | PlanNode::Limit { input, .. } => input.update_source(),
            PlanNode::MatchRecognize { .. } => None,
            PlanNode::Union { inputs } => inputs.iter().find_map(PlanNode::update_source),
            PlanNode::TemporalJoin { left, .. } => left.update_source(),
            PlanNode::Join {
                kind,
                left,
                right,
                interval,
                ..
            } if matches!(kind, JoinKind::Inner | JoinKind::LeftSemi) || interval.is_some() => {
                left.update_source().or_else(|| right.update_source())
            }
            PlanNode::Join {
                kind: JoinKind::LeftAnti,
                on,
                ..
            } => Some(format!(
                "the NOT EXISTS (anti join) on {}, which retracts a row when its first match arrives",
                on.iter()
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            )),
            PlanNode::Join { kind, on, .. } => Some(format!(
                "the {} on {}, which retracts its NULL-padded rows when a match arrives",
                kind.sql(),
                if on.is_empty() {
                    "its condition".to_string()
                } else {
                    on.iter()
                        .map(|(l, r)| format!("{l} = {r}"))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                }
            )),
            _ => None,
        }
    }

    fn changelog(&self) -> &'static str {
        if self.is_append_only() {
            "append"
        } else {
            "[+I,-U,+U,-D]"
        }
    }

    fn explain_into(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        let mode = self.changelog();
        let _ = match self {
            PlanNode::Source(s) => writeln!(
                out,
                "{pad}KafkaSource: table={} topic={} format={} startup={:?} watermark={} changelog=append state=watermark per partition",
                s.qualified_name,
                s.table.topic,
                s.table.value_format(),
                s.startup,
                s.watermark
            ),
            PlanNode::Values { batch } => {
                writeln!(out, "{pad}Values: rows={} changelog=append state=none", batch.num_rows())
            }
            PlanNode::Filter { predicate, .. } => {
                writeln!(out, "{pad}Filter: {predicate} changelog={mode} state=none")
            }
            PlanNode::Project { exprs, .. } => writeln!(
                out,
                "{pad}Project: {} changelog={mode} state=none",
                exprs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::Expand { projections, .. } => writeln!(
                out,
                "{pad}Expand: every row {} times, one per grouping set changelog={mode} state=none",
                projections.len()
            ),
            PlanNode::Unnest {
                lists,
                null_handling,
                output_schema,
                ..
            } => writeln!(
                out,
                "{pad}Unnest: [{}] {} changelog={mode} state=none",
                lists
                    .iter()
                    .map(|i| output_schema.field(*i).name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                match null_handling {
                    datafusion::common::NullHandling::Drop => "drops rows without elements",
                    _ => "keeps rows without elements, with NULL",
                }
            ),
            PlanNode::ChangelogNormalize { retract: true, .. } => writeln!(
                out,
                "{pad}ReadChangelog: kinds from the __op header changelog={mode} consumes=retract state=none"
            ),
            PlanNode::ChangelogNormalize { keys, schema, .. } => {
                let key = keys
                    .iter()
                    .map(|k| schema.field(*k).name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(
                    out,
                    "{pad}ChangelogNormalize: key=[{key}] changelog={mode} consumes=upsert state=last row per key [{key}]"
                )
            }
            PlanNode::MatchRecognize { spec, .. } => writeln!(
                out,
                "{pad}MatchRecognize: {spec} measures={} changelog={mode} state=rows until the watermark passes their time, and the rows of each partial match per partition",
                spec.measures.len()
            ),
            PlanNode::OverAggregate {
                partition_by,
                time,
                frame,
                aggs,
                ..
            } => writeln!(
                out,
                "{pad}OverAggregate: partition=[{}] order=[{time}] frame={frame} aggs=[{}] changelog={mode} state=rows until the watermark passes their time, and the frame's rows (or running accumulators) per partition",
                partition_by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                aggs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
            ),
            PlanNode::TemporalJoin {
                kind,
                on,
                left_time,
                proctime: true,
                ..
            } => writeln!(
                out,
                "{pad}TemporalJoin: {} on=[{}] as_of={left_time} (processing time) changelog={mode} consumes=[append, [+I,-U,+U,-D]] state=each key's latest row of the right input",
                kind.sql(),
                on.iter().map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>().join(", "),
            ),
            PlanNode::TemporalJoin {
                kind,
                on,
                left_time,
                right_time,
                ..
            } => writeln!(
                out,
                "{pad}TemporalJoin: {} on=[{}] as_of={left_time} version={right_time} changelog={mode} consumes=[append, [+I,-U,+U,-D]] state=left rows until the watermark passes their time, and each key's versions from the last one the watermark passed",
                kind.sql(),
                on.iter().map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>().join(", "),
            ),
            PlanNode::Union { .. } => writeln!(out, "{pad}UnionAll: changelog={mode} state=none"),
            PlanNode::Limit { fetch, .. } => {
                writeln!(out, "{pad}Limit: fetch={fetch} changelog={mode} state=count")
            }
            PlanNode::Sort { time, peers, .. } => writeln!(
                out,
                "{pad}Sort: order=[{time}{}] changelog={mode} state=rows until the watermark passes their time",
                peers.iter().map(|p| format!(", {p}")).collect::<String>()
            ),
            PlanNode::GroupAggregate { keys, aggs, input, .. } => writeln!(
                out,
                "{pad}GroupAggregate: keys=[{}] aggs=[{}] changelog={mode} consumes={} state=accumulators, row count and last result per key [{}]",
                keys.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                aggs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                input.changelog(),
                keys.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::WindowAggregate {
                window,
                time,
                keys,
                aggs,
                ..
            } => writeln!(
                out,
                "{pad}WindowAggregate: window={window} time={time} keys=[{}] aggs=[{}] changelog=append state=accumulators per {} until the watermark passes the window end",
                keys.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                aggs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                if window.kind == WindowKind::Session {
                    "(key, session), sessions merged when a row bridges them,"
                } else {
                    "(window, key)"
                }
            ),
            PlanNode::TopN {
                partition_by,
                order_by,
                limit,
                rank,
                window_end: Some(end),
                ..
            } => writeln!(
                out,
                "{pad}{}: partition=[{}] order=[{}] n={limit} changelog={mode} consumes=append state=the top N rows per window and partition until the watermark passes {end}",
                if matches!(rank, RankOutput::Deduplicate { .. }) { "WindowDeduplicate" } else { "WindowTopN" },
                partition_by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                order_by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
            ),
            PlanNode::TopN {
                partition_by,
                order_by,
                limit,
                rank,
                input,
                ..
            } => writeln!(
                out,
                "{pad}{}: partition=[{}] order=[{}] n={limit} output={} changelog={mode} consumes={} state={} per partition [{}]",
                if matches!(rank, RankOutput::Deduplicate { .. } | RankOutput::FirstOnWatermark) { "Deduplicate" } else { "TopN" },
                partition_by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                order_by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
                match rank {
                    RankOutput::Rows => "rows",
                    RankOutput::RowNumbers => "rows with row number",
                    RankOutput::Deduplicate { keep_last: true } => "last row",
                    RankOutput::Deduplicate { keep_last: false } => "first row",
                    RankOutput::FirstOnWatermark => "first row once the watermark reaches it",
                },
                input.changelog(),
                if input.is_append_only() {
                    "the top N rows"
                } else if self.update_fast_key().is_some() {
                    "the top N rows, each updated in place by the input's key (its sort value only moves it up)"
                } else {
                    "every row"
                },
                partition_by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::Join {
                kind,
                on,
                filter,
                interval: Some(i),
                ..
            } => writeln!(
                out,
                "{pad}IntervalJoin: {} on=[{}] bounds={} <= {} - {} <= {} (ms){} changelog={mode} consumes=[append, append] state=each input's rows by join key until the watermark passes their last possible match",
                kind.sql(),
                on.iter().map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>().join(", "),
                i.lower_ms,
                i.left_time,
                i.right_time,
                i.upper_ms,
                filter.as_ref().map(|f| format!(" filter={f}")).unwrap_or_default(),
            ),
            PlanNode::Join {
                kind,
                on,
                filter,
                left,
                right,
                ..
            } => writeln!(
                out,
                "{pad}Join: {} on=[{}]{} changelog={mode} consumes=[{}, {}] state=every row of both inputs by join key [{}]",
                kind.sql(),
                on.iter().map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>().join(", "),
                filter.as_ref().map(|f| format!(" filter={f}")).unwrap_or_default(),
                left.changelog(),
                right.changelog(),
                on.iter().map(|(l, r)| format!("{l} | {r}")).collect::<Vec<_>>().join(", ")
            ),
        };
        match self {
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Expand { input, .. }
            | PlanNode::Unnest { input, .. }
            | PlanNode::OverAggregate { input, .. }
            | PlanNode::Sort { input, .. }
            | PlanNode::MatchRecognize { input, .. }
            | PlanNode::ChangelogNormalize { input, .. }
            | PlanNode::WindowAggregate { input, .. }
            | PlanNode::GroupAggregate { input, .. }
            | PlanNode::TopN { input, .. }
            | PlanNode::Limit { input, .. } => input.explain_into(depth + 1, out),
            PlanNode::Union { inputs } => {
                for i in inputs {
                    i.explain_into(depth + 1, out)
                }
            }
            PlanNode::Join { left, right, .. } | PlanNode::TemporalJoin { left, right, .. } => {
                left.explain_into(depth + 1, out);
                right.explain_into(depth + 1, out);
            }
            _ => {}
        }
    }
}

/// Where the statement's rows go.
#[derive(Debug, Clone)]
pub enum SinkSpec {
    /// `INSERT INTO` a Kafka table; the root produces `table.write_columns()`.
    Table {
        table: Box<TableDef>,
        qualified_name: String,
    },
    /// A `SELECT`: rows go to the statement's results.
    Results,
    /// `EXECUTE STATEMENT SET`: several `INSERT`s run as one statement,
    /// sharing its sources. The root emits a tag column first (the index
    /// of the `INSERT` a row belongs to, `INT`), then every `INSERT`'s
    /// columns in turn; a row carries values in its own `INSERT`'s columns
    /// only (the others are NULL).
    Tables(Vec<SetSink>),
}

/// One `INSERT` of a statement set.
#[derive(Debug, Clone)]
pub struct SetSink {
    pub table: Box<TableDef>,
    pub qualified_name: String,
    /// The root's column where this `INSERT`'s columns start.
    pub first_column: usize,
    /// This `INSERT`'s columns: `table.write_columns()`.
    pub schema: SchemaRef,
}

impl SinkSpec {
    /// The tables the statement writes, with their qualified names.
    pub fn tables(&self) -> Vec<(&TableDef, &str)> {
        match self {
            SinkSpec::Table {
                table,
                qualified_name,
            } => vec![(table.as_ref(), qualified_name.as_str())],
            SinkSpec::Results => vec![],
            SinkSpec::Tables(sinks) => sinks
                .iter()
                .map(|s| (s.table.as_ref(), s.qualified_name.as_str()))
                .collect(),
        }
    }

    /// The tables the statement writes, to change in place (a worker
    /// fills in their registry subjects' schemas).
    pub fn tables_mut(&mut self) -> Vec<&mut TableDef> {
        match self {
            SinkSpec::Table { table, .. } => vec![table.as_mut()],
            SinkSpec::Results => vec![],
            SinkSpec::Tables(sinks) => sinks.iter_mut().map(|s| s.table.as_mut()).collect(),
        }
    }
}

/// A statement set's branch as `EXPLAIN` shows it: its projection onto its
/// own table's columns, without the tag and the other tables' NULLs.
fn own_columns(branch: &PlanNode, sink: &SetSink) -> Option<PlanNode> {
    let PlanNode::Project {
        input,
        exprs,
        input_schema,
    } = branch
    else {
        return None;
    };
    let n = sink.schema.fields().len();
    let exprs = exprs
        .get(sink.first_column..sink.first_column + n)?
        .iter()
        .zip(sink.schema.fields())
        .map(|(e, f)| e.clone().unalias().alias(f.name()))
        .collect();
    Some(PlanNode::Project {
        input: input.clone(),
        exprs,
        input_schema: input_schema.clone(),
    })
}

/// A checked, runnable statement.
#[derive(Debug, Clone)]
pub struct StreamingPlan {
    pub root: PlanNode,
    pub sink: SinkSpec,
    /// The schema of the rows the root emits.
    pub output_schema: SchemaRef,
    /// A snapshot query: bounded, with batch semantics at its end.
    pub snapshot: bool,
}

impl StreamingPlan {
    pub fn is_bounded(&self) -> bool {
        self.root.is_bounded()
    }

    /// The `EXPLAIN` text: one operator a line, sink first.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        match &self.sink {
            SinkSpec::Results => {
                let _ = writeln!(out, "ResultsSink: consumes={}", self.root.changelog());
            }
            SinkSpec::Table { .. } => {}
            SinkSpec::Tables(_) => {
                let _ = writeln!(
                    out,
                    "StatementSet: {} INSERTs, each source read once",
                    self.sink.tables().len()
                );
            }
        }
        let sinks = self.sink.tables();
        for (i, (table, qualified_name)) in sinks.iter().enumerate() {
            // A statement set's INSERT writes the rows of its branch of
            // the root's union.
            let own;
            let (node, pad, depth) = match (&self.root, &self.sink) {
                (PlanNode::Union { inputs }, SinkSpec::Tables(sinks)) => {
                    own = own_columns(&inputs[i], &sinks[i]);
                    (own.as_ref().unwrap_or(&inputs[i]), "  ", 2)
                }
                (root, _) => (root, "", 1),
            };
            let _ = writeln!(
                out,
                "{pad}KafkaSink: table={qualified_name} topic={} format={} key=[{}] changelog.mode={} consumes={}",
                table.topic,
                table.value_format(),
                table.key_columns().join(", "),
                table.changelog_mode(),
                node.changelog(),
            );
            node.explain_into(depth, &mut out);
        }
        if sinks.is_empty() {
            self.root.explain_into(1, &mut out);
        }
        out
    }
}
