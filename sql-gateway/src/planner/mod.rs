//! From a parsed statement to a [`StreamingPlan`]: name resolution against
//! the catalog, type checking with DataFusion's logical planner, and the
//! translation of the logical plan into streaming operators.
//!
//! This module holds the entry points ([`analyze`], [`replan`],
//! [`Planner`]) and the translation of a logical plan node by node
//! (`convert`); by concern beside it: `source` (Kafka tables as
//! DataFusion sees them, computed columns, watermarks), `rewrite` (the
//! parsed statement adjusted to Flink's validator before planning),
//! `aggregate` (window, grouping-set and OVER aggregations) and `rank`
//! (Top-N and deduplication).

use std::any::Any;
use std::sync::Arc;

use arrow::array::{new_null_array, RecordBatch, RecordBatchOptions};
use arrow::compute::{can_cast_types, cast, concat};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DFSchema, DataFusionError, ScalarValue, TableReference};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::logical_expr::{
    AggregateUDF, Expr, ExprSchemable, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource,
    WindowUDF,
};
use datafusion::physical_expr::create_physical_expr;
use datafusion::sql::planner::{ContextProvider, ParserOptions, PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Ident, ObjectName, Query, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Statement, TableFactor,
};
use datafusion::sql::sqlparser::parser::Parser;
use weir_catalog::{ColumnKind, SqlType, TableDef, ROWTIME_COLUMN};

use crate::dialect::FlinkDialect;
use crate::error::SqlError;
use crate::functions::{datafusion_name, rewrite_flink_calls};
use crate::hints::TableHints;
use crate::metadata::CatalogContext;
use crate::parser::{parse, FlinkStatement};
use crate::plan::{
    JoinKind, OverFrame, PlanNode, RankOutput, SinkSpec, SourceSpec, StartupMode, StreamingPlan,
};

mod aggregate;
mod matching;
mod rank;
mod rewrite;
mod source;

pub(crate) use aggregate::reads_proctime_attribute;
use rank::*;
use rewrite::*;
use source::*;

/// What a statement turns into.
#[derive(Debug)]
pub enum Analysis {
    /// Done at once against the catalog (`execute_metadata`).
    Metadata(FlinkStatement),
    /// Runs on a worker. For `CREATE TABLE ... AS`, `create` is the table to
    /// create (in the current database) before the plan starts.
    Streaming {
        plan: Box<StreamingPlan>,
        sql_kind: &'static str,
        create: Option<TableDef>,
        if_not_exists: bool,
    },
    /// `EXPLAIN`: the plan's text.
    Explain(String),
}

/// The table an `INSERT INTO` writes, as named in the statement.
pub struct InsertTarget<'a> {
    pub table: &'a TableDef,
    /// `catalog.database.table`, for messages and `EXPLAIN`.
    pub qualified_name: &'a str,
    /// The explicit column list; empty means all writable columns in order.
    pub columns: &'a [String],
}

/// Plans statements. Holds DataFusion's function registry; cheap to share.
pub struct Planner {
    state: SessionState,
}

impl Default for Planner {
    fn default() -> Self {
        Planner::new()
    }
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Planner")
    }
}

/// Refuses a plan whose changelog the target table cannot store: updates
/// into an append-only table, or updates keyed differently from an upsert
/// table's primary key.
fn check_sink_changelog(
    input: &PlanNode,
    target: &TableDef,
    name: &str,
    write: &[&weir_catalog::ColumnSpec],
    mapping: &[Option<usize>],
    produced: &DFSchema,
) -> Result<(), SqlError> {
    let Some(origin) = input.update_source() else {
        return Ok(());
    };
    let key = input.upsert_key();
    let key_names = |k: &[usize]| {
        k.iter()
            .map(|i| {
                mapping.iter().position(|m| *m == Some(*i)).map_or_else(
                    || produced.field(*i).name().clone(),
                    |w| write[w].name.clone(),
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match target.changelog_mode() {
        "upsert" => {
            let pk: Option<Vec<usize>> = target
                .primary_key
                .iter()
                .map(|k| write.iter().position(|w| &w.name == k).and_then(|w| mapping[w]))
                .collect();
            if target.key_columns() != target.primary_key {
                return Err(SqlError::validation(
                    format!(
                        "INSERT INTO {name}: an upsert table's record key must be its primary key ({}), but it is ({}); drop DISTRIBUTED BY / 'key.fields' or make them the primary key",
                        target.primary_key.join(", "),
                        target.key_columns().join(", ")
                    ),
                    None,
                ));
            }
            match (key, pk) {
                (Some(k), Some(pk)) if k.iter().all(|c| pk.contains(c)) => Ok(()),
                (k, _) => Err(SqlError::validation(
                    format!(
                        "INSERT INTO {name}: the query's updates (from {origin}) are keyed by ({}) but the table's primary key is ({}); write the grouping columns into the primary key columns",
                        k.as_deref().map(key_names).unwrap_or_else(|| "unknown columns".into()),
                        target.primary_key.join(", ")
                    ),
                    None,
                )),
            }
        }
        // Every change is written, its kind in the `__op` header.
        "retract" => Ok(()),
        _ => Err(SqlError::validation(
            format!(
                "INSERT INTO {name}: {origin} produces updates (-U/+U/-D as results change), but {name} is append-only ('changelog.mode' = 'append'). Write into a table with PRIMARY KEY ({}) NOT ENFORCED, which is an upsert table, or aggregate over a window TVF (TUMBLE, HOP, CUMULATE), which emits each window once",
                key.as_deref().map(key_names).unwrap_or_else(|| "...".into())
            ),
            None,
        )),
    }
}

fn parser_options() -> ParserOptions {
    ParserOptions::new()
        .with_enable_ident_normalization(false)
        .with_parse_float_as_decimal(true)
        // Flink orders NULL before every value: ASC NULLS FIRST, DESC NULLS LAST.
        .with_default_null_ordering(datafusion::sql::planner::NullOrdering::NullsMin)
        .with_collect_spans(true)
}

/// Turns a DataFusion planning error into a user error with a position.
fn df_error(e: DataFusionError, sql: &str) -> SqlError {
    let position = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line, s.start.column));
    let message = clean_message(&e);
    let needle = quoted_name(&message);
    let err = if message.contains("not supported")
        || message.contains("not implemented")
        || message.contains("Unsupported")
    {
        SqlError::unsupported(message)
    } else {
        SqlError::validation(message, position)
    };
    err.locate_in(sql, needle.as_deref())
}

fn clean_message(e: &DataFusionError) -> String {
    let mut m = e.message().to_string();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest.to_string();
        }
    }
    m
}

/// The first quoted name in a message, used to locate it in the SQL.
fn quoted_name(msg: &str) -> Option<String> {
    for q in ['\'', '"', '`'] {
        if let Some(i) = msg.find(q) {
            if let Some(j) = msg[i + 1..].find(q) {
                let name = &msg[i + 1..i + 1 + j];
                let last = name.rsplit('.').next().unwrap_or(name);
                return Some(last.trim_matches(|c| c == '`' || c == '"').to_string());
            }
        }
    }
    None
}

impl Planner {
    pub fn new() -> Planner {
        // DataFusion's batch rules, less two. The one that turns an inner
        // join whose other side only filters into a semi join: the same
        // rows in a batch, but a streaming semi join's changelog differs
        // from the join Flink runs (which keeps the join). And the one that
        // turns `COUNT(DISTINCT x) ... GROUP BY k` into two aggregations,
        // the inner one grouped by `k, x`: over a SESSION window that would
        // keep a session per `x` (a window aggregation's keys partition its
        // sessions); Weir's aggregates keep distinct values themselves, as
        // Flink's one distinct aggregation does.
        let rules = datafusion::optimizer::Optimizer::new()
            .rules
            .into_iter()
            .filter(|r| {
                r.name() != "eliminate_join"
                    && r.name() != "single_distinct_aggregation_to_group_by"
            })
            .collect();
        // An uncorrelated scalar subquery becomes a left join on TRUE, as
        // a correlated one becomes a keyed left join: a streaming plan has
        // no physical operator that runs the subquery once beforehand (its
        // value changes as its input does).
        let mut config = datafusion::prelude::SessionConfig::new();
        config
            .options_mut()
            .optimizer
            .enable_physical_uncorrelated_scalar_subquery = false;
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_optimizer_rules(rules)
            .with_analyzer_rules({
                // Flink's numeric types: SIGN's before type coercion casts
                // its argument, the decimal arithmetic's after it.
                let mut rules = datafusion::optimizer::Analyzer::new().rules;
                let coercion = rules
                    .iter()
                    .position(|r| r.name() == "type_coercion")
                    .unwrap_or(0);
                rules.insert(coercion, Arc::new(crate::numeric::FlinkSign));
                rules.push(Arc::new(crate::numeric::FlinkDecimalArithmetic));
                rules
            })
            .build();
        let bounded = crate::bounded::wrap(state.scalar_functions());
        let null_on_error = crate::flink_udfs::null_on_error_udfs(state.scalar_functions());
        for udf in crate::windows::marker_udfs()
            .into_iter()
            .chain([
                crate::watermark::udf(),
                crate::temporal::udf(),
                crate::proctime::udf(),
                crate::proctime::now_udf(),
                crate::unnest::udf(),
            ])
            .chain(crate::flink_udfs::udfs())
            .chain([
                crate::flink_text::udf(),
                crate::flink_udfs::tagged_cast(),
                crate::flink_udfs::text_timestamp(),
                crate::timezone::local_instant(),
            ])
            .chain(bounded)
            .chain(null_on_error)
        {
            datafusion::execution::FunctionRegistry::register_udf(&mut state, udf)
                .expect("registering the window markers");
        }
        for udaf in [
            crate::aggregates::avg(),
            crate::aggregates::sum(),
            crate::aggregates::first_value(),
            crate::aggregates::last_value(),
            crate::aggregates::listagg(),
            crate::aggregates::array_agg(),
            crate::aggregates::percentile(),
            crate::aggregates::collect(),
        ]
        .into_iter()
        .chain(crate::aggregates::stats())
        .chain(crate::aggregates::json_aggregates())
        {
            datafusion::execution::FunctionRegistry::register_udaf(&mut state, udaf)
                .expect("registering Flink's aggregates");
        }
        Planner { state }
    }

    /// The name of the function a call of `name` resolves to, as the
    /// planner's function lookup resolves it (scalar, then aggregate, then
    /// window functions).
    fn canonical_function(&self, name: &str) -> Option<String> {
        let mapped = datafusion_name(name);
        let state = &self.state;
        if let Some(f) = state.scalar_functions().get(&mapped) {
            return Some(f.name().to_string());
        }
        if let Some(f) = state.aggregate_functions().get(&mapped) {
            return Some(f.name().to_string());
        }
        state
            .window_functions()
            .get(&name.to_lowercase())
            .map(|f| f.name().to_string())
    }

    /// The functions a statement can call, upper-cased and sorted: every
    /// scalar, aggregate and window function the planner knows, under
    /// Flink's names where they differ; not Weir's internal helpers.
    pub fn function_names(&self) -> Vec<String> {
        let state = &self.state;
        let mut names: std::collections::BTreeSet<String> = state
            .scalar_functions()
            .keys()
            .chain(state.aggregate_functions().keys())
            .chain(state.window_functions().keys())
            .map(|n| n.as_str())
            .chain(
                crate::functions::FLINK_FUNCTION_MAPPING
                    .iter()
                    .map(|(f, _)| *f),
            )
            .chain(crate::functions::REWRITTEN.iter().copied())
            .filter(|n| !n.starts_with("weir_") && !n.starts_with("__"))
            .map(str::to_uppercase)
            .collect();
        names.retain(|n| !n.is_empty());
        names.into_iter().collect()
    }

    /// Plans a query to a DataFusion logical plan.
    fn logical(
        &self,
        query: &Query,
        hints: &TableHints,
        ctx: &CatalogContext,
        sql: &str,
    ) -> Result<LogicalPlan, SqlError> {
        // What the user wrote is checked first, for the error's position;
        // again once views and rewrites have grown it.
        crate::limits::check_typing_cost(query)?;
        let mut query = query.clone();
        crate::views::expand(&mut query, ctx)?;
        crate::windows::rewrite_window_tvfs(&mut query)?;
        crate::unnest::rewrite_unnest(&mut query)?;
        crate::temporal::take_versions(&mut query, ctx)?;
        hide_rowtime(&mut query);
        uniquify_select_names(&mut query);
        crate::functions::current_database(&mut query, &ctx.database);
        rewrite_flink_calls(&mut query, &ctx.time_zone)?;
        tag_colliding_casts(&mut query);
        crate::functions::canonical_names(&mut query, |name| self.canonical_function(name));
        crate::limits::check_typing_cost(&query)?;
        let mut matches: Vec<(String, Arc<dyn TableSource>)> = vec![];
        for (i, factor) in crate::match_recognize::take_out(&mut query)
            .into_iter()
            .enumerate()
        {
            let source = self.plan_match(factor, hints, ctx, sql)?;
            matches.push((crate::match_recognize::source_name(i), Arc::new(source)));
        }
        let provider = Provider {
            state: &self.state,
            ctx,
            hints,
            matches: &matches,
        };
        let planner = SqlToRel::new_with_options(&provider, parser_options());
        let plan = planner
            .sql_statement_to_plan(Statement::Query(Box::new(query)))
            .map_err(|e| df_error(e, sql))?;
        let plan = int_literals(plan).map_err(|e| df_error(e, sql))?;
        let plan = float_over_decimal(plan).map_err(|e| df_error(e, sql))?;
        let plan = set_operations_all(plan).map_err(|e| df_error(e, sql))?;
        refuse_placeholders(&plan, sql)?;
        refuse_multi_column_distinct_counts(&plan, sql)?;
        refuse_unbounded_scalar_subqueries(&plan, sql)?;
        let plan = crate::unnest::decorrelate_all(plan)?;
        let plan = self.state.optimize(&plan).map_err(|e| df_error(e, sql))?;
        crate::timezone::localize_casts(plan).map_err(|e| df_error(e, sql))
    }

    /// Plans a `SELECT` whose rows go to the results.
    pub fn plan_select(
        &self,
        query: &Query,
        hints: &TableHints,
        ctx: &CatalogContext,
        sql: &str,
    ) -> Result<StreamingPlan, SqlError> {
        let logical = self.logical(query, hints, ctx, sql)?;
        let root = self.convert(&logical, true, sql)?;
        Ok(StreamingPlan {
            output_schema: Arc::new(logical.schema().as_arrow().clone()),
            root,
            sink: SinkSpec::Results,
            snapshot: ctx.snapshot,
        })
    }

    /// Plans `INSERT INTO target [(columns)] query`.
    pub fn plan_insert(
        &self,
        into: InsertTarget<'_>,
        query: &Query,
        hints: &TableHints,
        ctx: &CatalogContext,
        sql: &str,
    ) -> Result<StreamingPlan, SqlError> {
        let InsertTarget {
            table: target,
            qualified_name,
            columns,
        } = into;
        let logical = self.logical(query, hints, ctx, sql)?;
        let input_schema = logical.schema().clone();
        let write: Vec<_> = target.write_columns();
        let produced: Vec<&Field> = input_schema.fields().iter().map(|f| f.as_ref()).collect();
        // Which produced column feeds each target column (None: NULL).
        let mapping: Vec<Option<usize>> = if columns.is_empty() {
            if produced.len() != write.len() {
                return Err(SqlError::validation(
                    format!(
                        "INSERT INTO {qualified_name}: the query produces {} columns but the table takes {} ({}); list the target columns or change the SELECT",
                        produced.len(),
                        write.len(),
                        write.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    None,
                ));
            }
            (0..write.len()).map(Some).collect()
        } else {
            if columns.len() != produced.len() {
                return Err(SqlError::validation(
                    format!(
                        "INSERT INTO {qualified_name}: {} target columns listed but the query produces {}",
                        columns.len(),
                        produced.len()
                    ),
                    None,
                ));
            }
            for c in columns {
                if !write.iter().any(|w| &w.name == c) {
                    return Err(SqlError::validation(
                        format!(
                            "INSERT INTO {qualified_name}: the table has no writable column '{c}'"
                        ),
                        None,
                    )
                    .locate_in(sql, Some(c)));
                }
            }
            write
                .iter()
                .map(|w| columns.iter().position(|c| c == &w.name))
                .collect()
        };
        let mut exprs = Vec::with_capacity(write.len());
        for (w, m) in write.iter().zip(&mapping) {
            let to = w.data_type.to_arrow();
            match m {
                Some(i) => {
                    let (q, f) = input_schema.qualified_field(*i);
                    if !can_cast_types(f.data_type(), &to) {
                        return Err(SqlError::validation(
                            format!(
                                "INSERT INTO {qualified_name}: column '{}' is {} but the query gives '{}' of type {}; add a CAST",
                                w.name,
                                w.data_type,
                                f.name(),
                                SqlType::from_arrow(f.data_type()).map(|t| t.to_string()).unwrap_or_else(|_| f.data_type().to_string())
                            ),
                            None,
                        ));
                    }
                    let c = Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
                    // A TIMESTAMP_LTZ into a TIMESTAMP, DATE or STRING column
                    // reads the session zone's wall clock, as a CAST does.
                    let e = if f.data_type() == &to {
                        c
                    } else {
                        c.cast_to(&to, &input_schema)
                            .and_then(|e| crate::timezone::localize_expr_casts(e, &input_schema))
                            .map_err(|e| df_error(e, sql))?
                    };
                    exprs.push(e.alias(&w.name));
                }
                None if w.nullable => exprs.push(Expr::Literal(datafusion::common::ScalarValue::try_from(&to).map_err(|e| df_error(e, sql))?, None).alias(&w.name)),
                None => {
                    return Err(SqlError::validation(
                        format!("INSERT INTO {qualified_name}: column '{}' is NOT NULL and is not in the column list", w.name),
                        None,
                    ))
                }
            }
        }
        let input = self.convert(&logical, false, sql)?;
        check_sink_changelog(
            &input,
            target,
            qualified_name,
            &write,
            &mapping,
            &input_schema,
        )?;
        let output_schema = Arc::new(Schema::new(
            write
                .iter()
                .map(|w| Field::new(&w.name, w.data_type.to_arrow(), true))
                .collect::<Vec<_>>(),
        ));
        Ok(StreamingPlan {
            root: PlanNode::Project {
                input: Box::new(input),
                exprs,
                input_schema,
            },
            sink: SinkSpec::Table {
                table: Box::new(target.clone()),
                qualified_name: qualified_name.to_string(),
            },
            output_schema,
            snapshot: ctx.snapshot,
        })
    }

    /// Translates a logical plan into streaming operators.
    fn convert(&self, plan: &LogicalPlan, top: bool, sql: &str) -> Result<PlanNode, SqlError> {
        Ok(match plan {
            LogicalPlan::Projection(p) => {
                let input = match rank_filter(&p.input) {
                    // The row number is output only if the projection reads it.
                    Some(r) => {
                        let read = p
                            .expr
                            .iter()
                            .any(|e| e.column_refs().iter().any(|c| c.name == r.row_number));
                        self.top_n(r, read, sql)?
                    }
                    None => self.convert(&p.input, false, sql)?,
                };
                if let Some(expanded) = self.expand_windows(p, &input, sql)? {
                    let (input, exprs, input_schema) = expanded;
                    crate::windows::refuse_unaggregated(&exprs)?;
                    return Ok(PlanNode::Project {
                        input: Box::new(input),
                        exprs,
                        input_schema,
                    });
                }
                crate::windows::refuse_unaggregated(&p.expr)?;
                PlanNode::Project {
                    input: Box::new(input),
                    exprs: p.expr.clone(),
                    input_schema: p.input.schema().clone(),
                }
            }
            LogicalPlan::Filter(f) => match rank_filter(plan) {
                Some(r) => self.top_n(r, true, sql)?,
                None => PlanNode::Filter {
                    input: Box::new(self.convert(&f.input, false, sql)?),
                    predicate: f.predicate.clone(),
                    input_schema: f.input.schema().clone(),
                },
            },
            LogicalPlan::SubqueryAlias(a) => self.convert(&a.input, top, sql)?,
            LogicalPlan::Union(u) => PlanNode::Union {
                inputs: u
                    .inputs
                    .iter()
                    .map(|i| self.convert(i, false, sql))
                    .collect::<Result<_, _>>()?,
            },
            LogicalPlan::TableScan(scan)
                if (scan.source.as_ref() as &dyn Any)
                    .downcast_ref::<crate::information_schema::InfoSchemaSource>()
                    .is_some() =>
            {
                let src = (scan.source.as_ref() as &dyn Any)
                    .downcast_ref::<crate::information_schema::InfoSchemaSource>()
                    .expect("checked above");
                let full = DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &src.batch.schema(),
                )
                .map_err(|e| df_error(e, sql))?;
                let full = Arc::new(full);
                let node = PlanNode::Values {
                    batch: src.batch.clone(),
                };
                filter_and_project(node, scan, full)
            }
            LogicalPlan::TableScan(scan)
                if (scan.source.as_ref() as &dyn Any)
                    .downcast_ref::<matching::MatchSource>()
                    .is_some() =>
            {
                let src = (scan.source.as_ref() as &dyn Any)
                    .downcast_ref::<matching::MatchSource>()
                    .expect("checked above");
                let full =
                    DFSchema::try_from_qualified_schema(scan.table_name.clone(), &src.schema)
                        .map_err(|e| df_error(e, sql))?;
                filter_and_project(src.node.clone(), scan, Arc::new(full))
            }
            LogicalPlan::TableScan(scan) => {
                let src = (scan.source.as_ref() as &dyn Any)
                    .downcast_ref::<KafkaTableSource>()
                    .expect("every table source is a Kafka table");
                let mut spec = self.source(src, &scan.table_name)?;
                // Any decoded format carries a changelog (a raw value is
                // bytes, with no row to key or retract).
                let decoded = spec.table.value_format() != "raw";
                let spec_retract = spec.table.changelog_mode() == "retract" && decoded;
                let upsert = spec.table.changelog_mode() == "upsert"
                    && !spec.table.primary_key.is_empty()
                    && decoded;
                if let Some(proj) = &scan.projection {
                    let mut read = read_columns(&spec, proj, &scan.filters);
                    if upsert {
                        // The normalizer keys the rows by the primary key.
                        for k in &spec.table.primary_key {
                            if !read.contains(k) {
                                read.push(k.clone());
                            }
                        }
                    }
                    spec.read_columns = Some(read);
                }
                let source_schema = spec.df_schema.clone();
                let keys = spec
                    .table
                    .primary_key
                    .iter()
                    .map(|k| spec.schema.index_of(k))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SqlError::validation(e.to_string(), None))?;
                let mut node = PlanNode::Source(spec);
                let retract = spec_retract;
                if upsert || retract {
                    node = PlanNode::ChangelogNormalize {
                        input: Box::new(node),
                        keys: if retract { vec![] } else { keys },
                        retract,
                        schema: source_schema.clone(),
                    };
                }
                filter_and_project(node, scan, source_schema)
            }
            LogicalPlan::Values(v) => PlanNode::Values {
                batch: self.values_batch(v.schema.inner(), &v.values, sql)?,
            },
            LogicalPlan::EmptyRelation(e) => {
                let rows = usize::from(e.produce_one_row);
                PlanNode::Values {
                    batch: RecordBatch::try_new_with_options(
                        Arc::new(e.schema.as_arrow().clone()),
                        e.schema
                            .fields()
                            .iter()
                            .map(|f| new_null_array(f.data_type(), rows))
                            .collect(),
                        &RecordBatchOptions::new().with_row_count(Some(rows)),
                    )
                    .map_err(|e| SqlError::validation(e.to_string(), None))?,
                }
            }
            // ORDER BY ... LIMIT n: a Top-N over the whole stream (the
            // optimizer put the LIMIT into the sort as its fetch).
            LogicalPlan::Limit(l) if matches!(l.input.as_ref(), LogicalPlan::Sort(s) if s.fetch.is_some()) =>
            {
                if !matches!(
                    l.get_skip_type(),
                    Ok(datafusion::logical_expr::SkipType::Literal(0))
                ) {
                    return Err(SqlError::unsupported(
                        "ORDER BY ... LIMIT with an OFFSET over a stream; drop the OFFSET",
                    ));
                }
                return self.convert(&l.input, top, sql);
            }
            LogicalPlan::Limit(l) if top => {
                let fetch = match l.get_fetch_type() {
                    Ok(datafusion::logical_expr::FetchType::Literal(Some(n))) => n,
                    _ => return Err(SqlError::unsupported("LIMIT takes a constant row count")),
                };
                let skip = match l.get_skip_type() {
                    Ok(datafusion::logical_expr::SkipType::Literal(n)) => n,
                    _ => 0,
                };
                if skip > 0 {
                    return Err(SqlError::unsupported("OFFSET is not supported on streams"));
                }
                let input = self.convert(&l.input, false, sql)?;
                if let Some(origin) = input.update_source() {
                    return Err(SqlError::unsupported(format!(
                        "LIMIT over an update stream (from {origin}) is not supported; drop the LIMIT or aggregate over a window TVF"
                    )));
                }
                PlanNode::Limit {
                    input: Box::new(input),
                    fetch,
                }
            }
            LogicalPlan::Sort(sort) => match sort.fetch {
                Some(limit) => self.sort_limit(sort, limit, sql)?,
                None => self.temporal_sort(sort, sql)?,
            },
            LogicalPlan::Aggregate(agg) => match self.window_aggregate(agg, sql)? {
                Some(node) => node,
                None if matches!(agg.group_expr.as_slice(), [Expr::GroupingSet(_)]) => {
                    self.grouping_sets(agg, sql)?
                }
                None => PlanNode::GroupAggregate {
                    input: Box::new(self.convert(&agg.input, false, sql)?),
                    input_schema: agg.input.schema().clone(),
                    keys: agg.group_expr.clone(),
                    aggs: agg.aggr_expr.clone(),
                    output_schema: agg.schema.clone(),
                },
            },
            LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
                // SELECT DISTINCT: a group aggregation on every column with
                // no aggregate (emits a row when its key first appears).
                PlanNode::GroupAggregate {
                    input: Box::new(self.convert(input, false, sql)?),
                    input_schema: input.schema().clone(),
                    keys: input
                        .schema()
                        .columns()
                        .into_iter()
                        .map(Expr::Column)
                        .collect(),
                    aggs: vec![],
                    output_schema: input.schema().clone(),
                }
            }
            LogicalPlan::Window(w) => self.over_aggregate(w, sql)?,
            LogicalPlan::Unnest(u) => {
                if u.options.recursions.iter().any(|r| r.depth > 1)
                    || !u.struct_type_columns.is_empty()
                    || u.schema.fields().len() != u.input.schema().fields().len()
                {
                    return Err(SqlError::unsupported(
                        "UNNEST of ROWs into columns, or of nested arrays at more than one level, is not supported yet",
                    ));
                }
                let lists = u.list_type_columns.iter().map(|(i, _)| *i).collect();
                PlanNode::Unnest {
                    input: Box::new(self.convert(&u.input, false, sql)?),
                    lists,
                    null_handling: u.options.null_handling,
                    output_schema: u.schema.clone(),
                }
            }
            LogicalPlan::Join(j) => {
                use datafusion::common::{JoinType, NullEquality};
                let kind = match j.join_type {
                    JoinType::Inner => JoinKind::Inner,
                    JoinType::Left => JoinKind::Left,
                    JoinType::Right => JoinKind::Right,
                    JoinType::Full => JoinKind::Full,
                    JoinType::LeftSemi => JoinKind::LeftSemi,
                    JoinType::LeftAnti if j.null_aware => {
                        return self.convert(&LogicalPlan::Join(null_aware_anti_join(j)?), top, sql)
                    }
                    JoinType::LeftAnti => JoinKind::LeftAnti,
                    other => {
                        return Err(SqlError::unsupported(format!(
                            "Weir does not run {other} joins yet (they come from IN, EXISTS and NOT IN subqueries); write the subquery as a JOIN"
                        )))
                    }
                };
                let left = self.convert(&j.left, false, sql)?;
                let right = self.convert(&j.right, false, sql)?;
                let (left, right) = match crate::temporal::temporal_join(j, left, right, kind)? {
                    Ok(temporal) => return Ok(temporal),
                    Err(inputs) => inputs,
                };
                let interval = crate::interval::interval_bounds(j, &left, &right);
                PlanNode::Join {
                    left: Box::new(left),
                    right: Box::new(right),
                    interval,
                    left_schema: j.left.schema().clone(),
                    right_schema: j.right.schema().clone(),
                    kind,
                    on: j.on.clone(),
                    filter: j.filter.clone(),
                    null_equal: j.null_equality == NullEquality::NullEqualsNull,
                    output_schema: j.schema.clone(),
                }
            }
            other => {
                let what = match other {
                    LogicalPlan::Aggregate(_) => "aggregation (GROUP BY, COUNT, SUM, ...)",
                    LogicalPlan::Distinct(_) => "DISTINCT",
                    LogicalPlan::Limit(_) => "LIMIT inside a subquery",
                    LogicalPlan::Unnest(_) => "UNNEST",
                    _ => "this operator",
                };
                return Err(SqlError::unsupported(format!(
                    "Weir does not run {what} yet (plan node: {})",
                    other.display_indent_schema()
                )));
            }
        })
    }

    fn values_batch(
        &self,
        schema: &Schema,
        rows: &[Vec<Expr>],
        sql: &str,
    ) -> Result<RecordBatch, SqlError> {
        let empty = DFSchema::empty();
        let one = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )
        .expect("an empty one-row batch");
        let mut columns = vec![];
        for (j, field) in schema.fields().iter().enumerate() {
            let mut parts = vec![];
            for row in rows {
                let phys = create_physical_expr(
                    &row[j],
                    &empty,
                    self.state.execution_props(),
                    &Default::default(),
                )
                .map_err(|e| df_error(e, sql))?;
                let arr = phys
                    .evaluate(&one)
                    .and_then(|v| v.into_array(1))
                    .map_err(|e| df_error(e, sql))?;
                let arr = cast(&arr, field.data_type())
                    .map_err(|e| SqlError::validation(e.to_string(), None))?;
                parts.push(arr);
            }
            let refs: Vec<_> = parts.iter().map(|a| a.as_ref()).collect();
            columns.push(concat(&refs).map_err(|e| SqlError::validation(e.to_string(), None))?);
        }
        let schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new_with_options(
            schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .map_err(|e| SqlError::validation(e.to_string(), None))
    }

    pub fn execution_props(&self) -> &datafusion::execution::context::ExecutionProps {
        self.state.execution_props()
    }
}

/// Parses and plans one statement against a catalog snapshot.
pub fn analyze(planner: &Planner, sql: &str, ctx: &CatalogContext) -> Result<Analysis, SqlError> {
    let parsed = parse(sql)?;
    analyze_statement(planner, parsed.statement, &parsed.hints, ctx, sql)
}

fn analyze_statement(
    planner: &Planner,
    statement: FlinkStatement,
    hints: &TableHints,
    ctx: &CatalogContext,
    sql: &str,
) -> Result<Analysis, SqlError> {
    match statement {
        FlinkStatement::Query(q) => Ok(Analysis::Streaming {
            plan: Box::new(planner.plan_select(&q, hints, ctx, sql)?),
            sql_kind: "SELECT",
            create: None,
            if_not_exists: false,
        }),
        FlinkStatement::Insert {
            table,
            columns,
            query,
        } => {
            let (db, def) = ctx
                .resolve_object(&table)
                .map_err(|e| e.locate_in(sql, table.0.last().map(|p| p.to_string()).as_deref()))?;
            if def.view.is_some() {
                return Err(SqlError::validation(
                    format!("'{}' is a view; INSERT INTO takes a table", def.name),
                    None,
                )
                .locate_in(sql, table.0.last().map(|p| p.to_string()).as_deref()));
            }
            let qualified = format!("`{}`.`{}`.`{}`", ctx.catalog, db, def.name);
            let def = def.clone();
            Ok(Analysis::Streaming {
                plan: Box::new(planner.plan_insert(
                    InsertTarget {
                        table: &def,
                        qualified_name: &qualified,
                        columns: &columns,
                    },
                    &query,
                    hints,
                    ctx,
                    sql,
                )?),
                sql_kind: "INSERT_INTO",
                create: None,
                if_not_exists: false,
            })
        }
        FlinkStatement::CreateTable {
            def,
            as_query: Some(query),
            if_not_exists,
            ..
        } => {
            let mut def = planner.table_for_query(def, &query, hints, ctx, sql)?;
            planner.resolve_computed(&mut def)?;
            // An updating query makes an upsert table keyed as its updates
            // are, or a retract table when they have no key, unless the
            // statement says how the table is keyed.
            if def.primary_key.is_empty() && def.option("changelog.mode").is_none() {
                let select = planner.plan_select(&query, hints, ctx, sql)?;
                if !select.root.is_append_only() {
                    match select.root.upsert_key() {
                        Some(key) => {
                            def.primary_key = key
                                .iter()
                                .map(|i| select.output_schema.field(*i).name().clone())
                                .collect();
                            for c in def.columns.iter_mut() {
                                if def.primary_key.contains(&c.name) {
                                    c.nullable = false;
                                }
                            }
                        }
                        // Updates without a key: every change is written.
                        None => {
                            def.options
                                .insert("changelog.mode".into(), "retract".into());
                        }
                    }
                }
            }
            let qualified = format!("`{}`.`{}`.`{}`", ctx.catalog, ctx.database, def.name);
            let plan = planner.plan_insert(
                InsertTarget {
                    table: &def,
                    qualified_name: &qualified,
                    columns: &[],
                },
                &query,
                hints,
                ctx,
                sql,
            )?;
            Ok(Analysis::Streaming {
                plan: Box::new(plan),
                sql_kind: "CREATE_TABLE_AS",
                create: Some(def),
                if_not_exists,
            })
        }
        FlinkStatement::StatementSet(inserts) => {
            let mut plans = Vec::with_capacity(inserts.len());
            for insert in inserts {
                if let Analysis::Streaming { plan, .. } =
                    analyze_statement(planner, insert, hints, ctx, sql)?
                {
                    plans.push(*plan);
                }
            }
            Ok(Analysis::Streaming {
                plan: Box::new(statement_set(plans)?),
                sql_kind: "EXECUTE_STATEMENT_SET",
                create: None,
                if_not_exists: false,
            })
        }
        FlinkStatement::Explain(inner) => {
            match analyze_statement(planner, *inner, hints, ctx, sql)? {
                Analysis::Streaming { plan, .. } => Ok(Analysis::Explain(format!(
                    "{}{}",
                    plan.explain(),
                    crate::stages::explain_stages(&plan, ctx)
                ))),
                Analysis::Metadata(s) => Ok(Analysis::Explain(format!("{s:?}"))),
                Analysis::Explain(t) => Ok(Analysis::Explain(t)),
            }
        }
        other => Ok(Analysis::Metadata(other)),
    }
}

/// The `INSERT`s of a statement set as one plan: the union of their
/// queries, each widened to every `INSERT`'s columns behind a tag that says
/// whose row it is (see [`SinkSpec::Tables`]). One `INSERT` stays a plain
/// `INSERT`.
fn statement_set(mut plans: Vec<StreamingPlan>) -> Result<StreamingPlan, SqlError> {
    if plans.len() == 1 {
        return Ok(plans.remove(0));
    }
    let widths: Vec<&SchemaRef> = plans.iter().map(|p| &p.output_schema).collect();
    let columns: usize = widths.iter().map(|s| s.fields().len()).sum();
    if columns > crate::limits::MAX_STATEMENT_SET_COLUMNS {
        return Err(SqlError::validation(
            format!(
                "the statement set's tables have {columns} columns in all, more than the {} a statement set writes; split it into several statement sets",
                crate::limits::MAX_STATEMENT_SET_COLUMNS
            ),
            None,
        ));
    }
    let mut fields = vec![Field::new(SET_TAG, DataType::Int32, true)];
    let mut sinks = Vec::with_capacity(plans.len());
    for (i, p) in plans.iter().enumerate() {
        let SinkSpec::Table {
            table,
            qualified_name,
        } = &p.sink
        else {
            return Err(SqlError::validation(
                "a statement set holds INSERT INTO statements only",
                None,
            ));
        };
        sinks.push(crate::plan::SetSink {
            table: table.clone(),
            qualified_name: qualified_name.clone(),
            first_column: fields.len(),
            schema: p.output_schema.clone(),
        });
        fields.extend(
            p.output_schema
                .fields()
                .iter()
                .map(|f| Field::new(set_column(i, f.name()), f.data_type().clone(), true)),
        );
    }
    let snapshot = plans[0].snapshot;
    let mut inputs = Vec::with_capacity(plans.len());
    for (i, p) in plans.iter().enumerate() {
        let PlanNode::Project {
            input,
            exprs,
            input_schema,
        } = &p.root
        else {
            return Err(SqlError::validation(
                "an INSERT of the statement set has no projection onto its table",
                None,
            ));
        };
        let mut wide = vec![Expr::Literal(ScalarValue::Int32(Some(i as i32)), None).alias(SET_TAG)];
        for (j, schema) in widths.iter().enumerate() {
            for (k, f) in schema.fields().iter().enumerate() {
                let name = set_column(j, f.name());
                wide.push(if i == j {
                    exprs[k].clone().unalias().alias(name)
                } else {
                    Expr::Literal(
                        ScalarValue::try_from(f.data_type())
                            .map_err(|e| SqlError::validation(e.to_string(), None))?,
                        None,
                    )
                    .alias(name)
                });
            }
        }
        inputs.push(PlanNode::Project {
            input: input.clone(),
            exprs: wide,
            input_schema: input_schema.clone(),
        });
    }
    Ok(StreamingPlan {
        root: PlanNode::Union { inputs },
        sink: SinkSpec::Tables(sinks),
        output_schema: Arc::new(Schema::new(fields)),
        snapshot,
    })
}

/// The tag column of a statement set's rows: which `INSERT` a row is for.
const SET_TAG: &str = "__weir_insert";

/// Column `name` of a statement set's `INSERT` `i`, in the set's wide rows.
fn set_column(i: usize, name: &str) -> String {
    format!("__weir_insert{i}_{name}")
}

/// Builds the streaming plan of a stored statement again (on a worker, or
/// after a restart).
pub fn replan(
    planner: &Planner,
    sql: &str,
    ctx: &CatalogContext,
) -> Result<StreamingPlan, SqlError> {
    match analyze(planner, sql, ctx)? {
        Analysis::Streaming { plan, .. } => Ok(*plan),
        _ => Err(SqlError::validation(
            "the statement has no streaming plan",
            None,
        )),
    }
}

/// `x NOT IN (SELECT y ...)` as Flink plans it: an anti join whose match is
/// `(x = y) IS NOT FALSE`, so that a NULL on either side matches (one NULL
/// in the subquery keeps every row out, and a NULL `x` stays out once the
/// subquery has a row) while an empty subquery keeps every row. The pair
/// DataFusion put first in `on` is the `IN` one; the rest (a correlated
/// subquery's equalities) stay equi-join keys.
fn null_aware_anti_join(
    j: &datafusion::logical_expr::Join,
) -> Result<datafusion::logical_expr::Join, SqlError> {
    use datafusion::logical_expr::utils::conjunction;
    let Some((l, r)) = j.on.first() else {
        return Err(SqlError::unsupported(
            "NOT IN over a subquery without a column to compare; write NOT EXISTS",
        ));
    };
    let matches = Expr::IsNotFalse(Box::new(l.clone().eq(r.clone())));
    let mut j = j.clone();
    j.on.remove(0);
    j.filter = conjunction(std::iter::once(matches).chain(j.filter.take()));
    j.null_aware = false;
    Ok(j)
}
