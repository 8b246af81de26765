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
use datafusion::logical_expr::Expr;
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
    /// `UNION ALL`: every input's rows, in arrival order.
    Union {
        inputs: Vec<PlanNode>,
    },
    /// Stops after `fetch` rows (only at the top of a `SELECT`).
    Limit {
        input: Box<PlanNode>,
        fetch: usize,
    },
}

impl PlanNode {
    /// Whether every source of this subtree ends.
    pub fn is_bounded(&self) -> bool {
        match self {
            PlanNode::Source(_) => false,
            PlanNode::Values { .. } => true,
            PlanNode::Limit { .. } => true,
            PlanNode::Filter { input, .. } | PlanNode::Project { input, .. } => input.is_bounded(),
            PlanNode::Union { inputs } => inputs.iter().all(PlanNode::is_bounded),
        }
    }

    pub fn sources(&self) -> Vec<&SourceSpec> {
        match self {
            PlanNode::Source(s) => vec![s],
            PlanNode::Values { .. } => vec![],
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Limit { input, .. } => input.sources(),
            PlanNode::Union { inputs } => inputs.iter().flat_map(|i| i.sources()).collect(),
        }
    }

    fn explain_into(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        let _ = match self {
            PlanNode::Source(s) => writeln!(
                out,
                "{pad}KafkaSource: table={} topic={} format={} startup={:?} changelog=append state=none",
                s.qualified_name,
                s.table.topic,
                s.table.value_format(),
                s.startup
            ),
            PlanNode::Values { batch } => {
                writeln!(out, "{pad}Values: rows={} changelog=append state=none", batch.num_rows())
            }
            PlanNode::Filter { predicate, .. } => {
                writeln!(out, "{pad}Filter: {predicate} changelog=append state=none")
            }
            PlanNode::Project { exprs, .. } => writeln!(
                out,
                "{pad}Project: {} changelog=append state=none",
                exprs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::Union { .. } => writeln!(out, "{pad}UnionAll: changelog=append state=none"),
            PlanNode::Limit { fetch, .. } => {
                writeln!(out, "{pad}Limit: fetch={fetch} changelog=append state=count")
            }
        };
        match self {
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Limit { input, .. } => input.explain_into(depth + 1, out),
            PlanNode::Union { inputs } => {
                for i in inputs {
                    i.explain_into(depth + 1, out)
                }
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
}

/// A checked, runnable statement.
#[derive(Debug, Clone)]
pub struct StreamingPlan {
    pub root: PlanNode,
    pub sink: SinkSpec,
    /// The schema of the rows the root emits.
    pub output_schema: SchemaRef,
}

impl StreamingPlan {
    pub fn is_bounded(&self) -> bool {
        self.root.is_bounded()
    }

    /// The `EXPLAIN` text: one operator a line, sink first.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        match &self.sink {
            SinkSpec::Table {
                qualified_name,
                table,
            } => {
                let _ = writeln!(
                    out,
                    "KafkaSink: table={qualified_name} topic={} format={} key=[{}] consumes=append",
                    table.topic,
                    table.value_format(),
                    table.key_columns().join(", ")
                );
            }
            SinkSpec::Results => {
                let _ = writeln!(out, "ResultsSink: consumes=append");
            }
        }
        self.root.explain_into(1, &mut out);
        out
    }
}
