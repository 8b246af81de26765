//! From a parsed statement to a [`StreamingPlan`]: name resolution against
//! the catalog, type checking with DataFusion's logical planner, and the
//! translation of the logical plan into streaming operators.

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

/// The physical columns behind the projected source columns `proj` and the
/// pushed-down `filters`, following computed columns to their inputs.
fn read_columns(spec: &SourceSpec, proj: &[usize], filters: &[Expr]) -> Vec<String> {
    let mut names: std::collections::BTreeSet<String> = proj
        .iter()
        .map(|i| spec.schema.field(*i).name().clone())
        .collect();
    for f in filters.iter().chain(std::iter::once(&spec.watermark)) {
        names.extend(f.column_refs().into_iter().map(|c| c.name.clone()));
    }
    for (name, expr) in &spec.computed {
        if names.contains(name) {
            names.extend(expr.column_refs().into_iter().map(|c| c.name.clone()));
        }
    }
    spec.table
        .columns
        .iter()
        .filter(|c| matches!(c.kind, ColumnKind::Physical) && names.contains(&c.name))
        .map(|c| c.name.clone())
        .collect()
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

/// A Kafka table as DataFusion's planner sees it.
#[derive(Debug)]
struct KafkaTableSource {
    def: TableDef,
    qualified_name: String,
    schema: SchemaRef,
    /// The session time zone, which computed columns are evaluated in.
    time_zone: String,
    /// The statement reads only what the topic holds when it starts.
    bounded: bool,
}

impl TableSource for KafkaTableSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

struct Provider<'a> {
    state: &'a SessionState,
    ctx: &'a CatalogContext,
    hints: &'a TableHints,
}

impl Provider<'_> {
    fn resolve(&self, name: &TableReference) -> Result<Arc<dyn TableSource>, DataFusionError> {
        let (catalog, db, table) = match name {
            TableReference::Bare { table } => (None, None, table.as_ref()),
            TableReference::Partial { schema, table } => {
                (None, Some(schema.as_ref()), table.as_ref())
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => (
                Some(catalog.as_ref()),
                Some(schema.as_ref()),
                table.as_ref(),
            ),
        };
        if db.is_some_and(|d| d.eq_ignore_ascii_case(crate::information_schema::SCHEMA)) {
            return crate::information_schema::table(table, self.ctx)
                .map(|batch| {
                    Arc::new(crate::information_schema::InfoSchemaSource { batch })
                        as Arc<dyn TableSource>
                })
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "INFORMATION_SCHEMA has no table '{table}'; it has TABLES, COLUMNS, SCHEMATA, CATALOGS, TABLE_OPTIONS and VIEWS"
                    ))
                });
        }
        let def = self
            .ctx
            .find_table(catalog, db, table)
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let mut def = def.clone();
        if let Some(h) = self.hints.get(table) {
            def.options.extend(h.clone());
        }
        Ok(Arc::new(KafkaTableSource {
            qualified_name: format!(
                "`{}`.`{}`.`{}`",
                self.ctx.catalog,
                db.unwrap_or(&self.ctx.database),
                def.name
            ),
            schema: Arc::new(weir_catalog::localize_schema(
                &def.read_schema(),
                &self.ctx.time_zone,
            )),
            def,
            time_zone: self.ctx.time_zone.clone(),
            bounded: self.ctx.bounded,
        }))
    }
}

impl ContextProvider for Provider<'_> {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion::common::Result<Arc<dyn TableSource>> {
        self.resolve(&name)
    }
    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }
    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.state
            .scalar_functions()
            .get(&datafusion_name(name))
            .cloned()
    }
    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.state
            .higher_order_functions()
            .get(&name.to_lowercase())
            .cloned()
    }
    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state
            .aggregate_functions()
            .get(&datafusion_name(name))
            .cloned()
    }
    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state
            .window_functions()
            .get(&name.to_lowercase())
            .cloned()
    }
    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }
    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        self.state
            .higher_order_functions()
            .keys()
            .cloned()
            .collect()
    }
    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }
    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}

/// `node` read by `scan` (its rows in `schema`), with the filters pushed
/// into the scan and the scan's projection applied on top.
fn filter_and_project(
    mut node: PlanNode,
    scan: &datafusion::logical_expr::TableScan,
    schema: datafusion::common::DFSchemaRef,
) -> PlanNode {
    if let Some(predicate) = scan.filters.iter().cloned().reduce(|a, b| a.and(b)) {
        node = PlanNode::Filter {
            input: Box::new(node),
            predicate,
            input_schema: schema.clone(),
        };
    }
    if let Some(proj) = &scan.projection {
        let exprs = proj
            .iter()
            .map(|i| {
                let (q, f) = schema.qualified_field(*i);
                Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()))
            })
            .collect();
        node = PlanNode::Project {
            input: Box::new(node),
            exprs,
            input_schema: schema,
        };
    }
    node
}

/// What the analyzer and optimizer do for a query, for a lone expression
/// (a computed column, a watermark): type coercion (`price * qty` of DOUBLE
/// and INT) and simplification (`arrow_cast` to `CAST`).
fn finish_lone_expr(e: Expr, df: &DFSchema) -> datafusion::common::Result<Expr> {
    use datafusion::common::tree_node::TreeNode;
    let e = e
        .rewrite(
            &mut datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter::new(df),
        )?
        .data;
    // No execution start time: `CURRENT_TIMESTAMP` stays per row.
    let ctx = datafusion::logical_expr::simplify::SimplifyContext::builder()
        .with_schema(Arc::new(df.clone()))
        .build();
    datafusion::optimizer::simplify_expressions::ExprSimplifier::new(ctx).simplify(e)
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

/// A `$name` outside backticks is a parameter placeholder to DataFusion,
/// which would silently be a NULL; Weir takes no parameters, and the usual
/// cause is Flink's system column written without its backticks.
fn refuse_placeholders(plan: &LogicalPlan, sql: &str) -> Result<(), SqlError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found: Option<String> = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Placeholder(p) = e {
                    found = Some(p.id.clone());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    match found {
        None => Ok(()),
        Some(id) => Err(SqlError::validation(
            format!("{id} is not a column: a name that starts with $ must be quoted, as in `{id}`"),
            None,
        )
        .locate_in(sql, Some(&id))),
    }
}

fn strip_alias(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::SubqueryAlias(a) => strip_alias(&a.input),
        other => other,
    }
}

/// A filter over a lone `ROW_NUMBER()` window (directly or through a
/// projection): a Top-N.
struct RankFilter<'a> {
    filter: &'a datafusion::logical_expr::Filter,
    /// A projection between the filter and the window.
    middle: Option<&'a datafusion::logical_expr::Projection>,
    window: &'a datafusion::logical_expr::Window,
    params: datafusion::logical_expr::expr::WindowFunctionParams,
    /// The row number's column.
    row_number: String,
}

fn rank_filter(plan: &LogicalPlan) -> Option<RankFilter<'_>> {
    let LogicalPlan::Filter(filter) = strip_alias(plan) else {
        return None;
    };
    let (middle, window) = match strip_alias(&filter.input) {
        LogicalPlan::Window(w) => (None, w),
        LogicalPlan::Projection(p) => match strip_alias(&p.input) {
            LogicalPlan::Window(w) => (Some(p), w),
            _ => return None,
        },
        _ => return None,
    };
    let [e] = window.window_expr.as_slice() else {
        return None;
    };
    match e.clone().unalias_nested().data {
        Expr::WindowFunction(wf) if wf.fun.name() == "row_number" => Some(RankFilter {
            filter,
            middle,
            window,
            params: wf.params,
            row_number: window
                .schema
                .field(window.schema.fields().len() - 1)
                .name()
                .clone(),
        }),
        _ => None,
    }
}

enum RankBound {
    AtMost(u64),
    /// `rn >= 1` or `rn > 0`: always true.
    AtLeastOne,
    /// `rn >= n` (n > 1) or `rn > n - 1`: the start of a rank range.
    AtLeast(u64),
    /// `rn = n` (n > 1): a range of one rank.
    Exactly(u64),
}

/// A bound on the row number column `rn`: `rn <= n`, `rn < n`, `rn = n`,
/// `rn >= n`, `rn > n` (either way round; `BETWEEN` arrives as two).
fn rank_bound(e: &Expr, rn: &str) -> Option<RankBound> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let value = |e: &Expr| match e {
        Expr::Literal(v, _) => v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
            datafusion::common::ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        }),
        _ => None,
    };
    let is_rn = |e: &Expr| matches!(e, Expr::Column(c) if c.name == rn);
    let (op, n) = if is_rn(left) {
        (*op, value(right)?)
    } else if is_rn(right) {
        (op.swap()?, value(left)?)
    } else {
        return None;
    };
    let at_most = |n: i64| Some(RankBound::AtMost(n.max(0) as u64));
    match op {
        Operator::LtEq => at_most(n),
        Operator::Lt => at_most(n - 1),
        Operator::Eq if n <= 1 => at_most(n),
        Operator::Eq => Some(RankBound::Exactly(n as u64)),
        Operator::GtEq if n <= 1 => Some(RankBound::AtLeastOne),
        Operator::Gt if n <= 0 => Some(RankBound::AtLeastOne),
        Operator::GtEq => Some(RankBound::AtLeast(n as u64)),
        Operator::Gt => Some(RankBound::AtLeast(n as u64 + 1)),
        _ => None,
    }
}

/// Whether a window's time attribute `time` (over `input`, whose schema is
/// `schema`) is processing time: it calls `PROCTIME()`, or it is a column
/// a projection or a table's computed column defines with it.
pub(crate) fn reads_proctime_attribute(time: &Expr, input: &PlanNode, schema: &DFSchema) -> bool {
    if crate::proctime::reads_proctime(time) {
        return true;
    }
    let Expr::Column(c) = time else {
        return false;
    };
    let Some(origin) = schema
        .index_of_column(c)
        .ok()
        .and_then(|i| input.column_origin(i))
    else {
        return false;
    };
    match origin {
        crate::plan::ColumnOrigin::Computed(e) => crate::proctime::reads_proctime(e),
        crate::plan::ColumnOrigin::Node(PlanNode::Source(spec), i) => {
            let name = spec.schema.field(i).name();
            spec.computed
                .iter()
                .any(|(n, e)| n == name && crate::proctime::reads_proctime(e))
        }
        crate::plan::ColumnOrigin::Node(..) => false,
    }
}

/// The grouping sets of `agg` (one `GroupingSet` expression) as the
/// projections of an `Expand` over `input`: every input column, then key
/// `m` (`values[m]`: its index among the grouping set's distinct
/// expressions and its value over `input`) or NULL where the set leaves it
/// out, then the set's id as DataFusion numbers it (which `GROUPING()`
/// reads). Also the expanded schema, and the aggregation's keys in it
/// (`__weir_grouping_key_<m>`..., the id).
#[allow(clippy::type_complexity)]
fn grouping_set_expand(
    agg: &datafusion::logical_expr::Aggregate,
    values: &[(usize, Expr)],
    input: &Arc<LogicalPlan>,
    sql: &str,
) -> Result<(Vec<Vec<Expr>>, datafusion::common::DFSchemaRef, Vec<Expr>), SqlError> {
    use datafusion::common::Column;
    use datafusion::logical_expr::{lit, Aggregate, GroupingSet, Projection};
    let [Expr::GroupingSet(gs)] = agg.group_expr.as_slice() else {
        unreachable!("called for one grouping set expression")
    };
    let distinct: Vec<Expr> = gs.distinct_expr().into_iter().cloned().collect();
    let sets: Vec<Vec<Expr>> = match gs {
        GroupingSet::GroupingSets(sets) => sets.clone(),
        GroupingSet::Rollup(e) => (0..=e.len()).rev().map(|i| e[..i].to_vec()).collect(),
        GroupingSet::Cube(e) => (0..1u64 << e.len())
            .map(|mask| {
                e.iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << (e.len() - 1 - i)) == 0)
                    .map(|(_, x)| x.clone())
                    .collect()
            })
            .collect(),
    };
    let input_schema = input.schema();
    let id_field = agg
        .schema
        .field_with_unqualified_name(Aggregate::INTERNAL_GROUPING_ID)
        .map_err(|e| df_error(e, sql))?;
    let n = distinct.len();
    let mut seen: std::collections::HashMap<u64, u64> = Default::default();
    let mut projections = vec![];
    for set in &sets {
        // Bit n-1-j set: key j is left out (DataFusion's layout, which
        // GROUPING() reads); repeated sets get an ordinal above the mask.
        let mask = distinct
            .iter()
            .enumerate()
            .filter(|(_, k)| !set.contains(k))
            .fold(0u64, |m, (j, _)| m | 1 << (n - 1 - j));
        let ordinal = seen.entry(mask).or_default();
        let id = mask | *ordinal << n;
        *ordinal += 1;
        let mut exprs: Vec<Expr> = input_schema
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        for (m, (j, value)) in values.iter().enumerate() {
            let v = if set.contains(&distinct[*j]) {
                value.clone()
            } else {
                let t = value.get_type(input_schema).map_err(|e| df_error(e, sql))?;
                lit(ScalarValue::try_from(&t).map_err(|e| df_error(e, sql))?)
            };
            exprs.push(v.alias(format!("__weir_grouping_key_{m}")));
        }
        let id = ScalarValue::UInt64(Some(id))
            .cast_to(id_field.data_type())
            .map_err(|e| df_error(e, sql))?;
        exprs.push(lit(id).alias(Aggregate::INTERNAL_GROUPING_ID));
        projections.push(exprs);
    }
    let expanded = Projection::try_new(projections[0].clone(), input.clone())
        .map_err(|e| df_error(e, sql))?
        .schema;
    let keys = (0..values.len())
        .map(|m| Expr::Column(Column::from_name(format!("__weir_grouping_key_{m}"))))
        .chain([Expr::Column(Column::from_name(
            Aggregate::INTERNAL_GROUPING_ID,
        ))])
        .collect();
    Ok((projections, expanded, keys))
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

/// Names repeated in a select list get a number, as Flink's validator
/// gives them (`SELECT a, a` is `a, a0`), where DataFusion refuses them:
/// a repeated column or alias is aliased `<name><n>`, the first `n` from 0
/// that no other item is named.
fn uniquify_select_names(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, VisitMut, VisitorMut};
    struct Names;
    impl VisitorMut for Names {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
            fn set_expr(s: &mut SetExpr) {
                match s {
                    SetExpr::Select(select) => uniquify(&mut select.projection),
                    SetExpr::SetOperation { left, right, .. } => {
                        set_expr(left);
                        set_expr(right);
                    }
                    _ => {}
                }
            }
            set_expr(&mut q.body);
            std::ops::ControlFlow::Continue(())
        }
    }
    fn name(item: &SelectItem) -> Option<String> {
        match item {
            SelectItem::UnnamedExpr(SqlExpr::Identifier(i)) => Some(i.value.clone()),
            SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(p)) => {
                p.last().map(|i| i.value.clone())
            }
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        }
    }
    fn uniquify(items: &mut [SelectItem]) {
        let names: Vec<Option<String>> = items.iter().map(name).collect();
        let mut taken: std::collections::HashSet<String> =
            names.iter().flatten().cloned().collect();
        let mut seen = std::collections::HashSet::new();
        for (item, n) in items.iter_mut().zip(names) {
            let Some(n) = n else { continue };
            if seen.insert(n.clone()) {
                continue;
            }
            let fresh = (0..)
                .map(|i| format!("{n}{i}"))
                .find(|f| !taken.contains(f))
                .expect("a free name");
            taken.insert(fresh.clone());
            let expr = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => unreachable!("named items are expressions"),
            };
            *item = SelectItem::ExprWithAlias {
                expr,
                alias: Ident::new(fresh),
            };
        }
    }
    let _ = query.visit(&mut Names);
}

/// `SELECT *` over a table leaves out `$rowtime`: Flink's system column is
/// only there when named. Over several relations (a join), `*` becomes one
/// `q.*` per relation, so that each table's `$rowtime` can be left out by
/// its qualifier.
fn hide_rowtime(query: &mut Query) {
    /// The name a relation's columns are qualified with, and whether it is
    /// a table (which has `$rowtime`).
    fn qualifier(t: &TableFactor) -> Option<(ObjectName, bool)> {
        match t {
            TableFactor::Table { name, alias, .. } => Some((
                alias
                    .as_ref()
                    .map_or_else(|| name.clone(), |a| ObjectName::from(vec![a.name.clone()])),
                true,
            )),
            TableFactor::Derived { alias: Some(a), .. }
            | TableFactor::UNNEST { alias: Some(a), .. } => {
                Some((ObjectName::from(vec![a.name.clone()]), false))
            }
            _ => None,
        }
    }
    fn last(n: &ObjectName) -> Option<String> {
        n.0.last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.clone())
    }
    fn set_expr(s: &mut SetExpr) {
        match s {
            SetExpr::Select(select) => {
                for t in &mut select.from {
                    if let TableFactor::Derived { subquery, .. } = &mut t.relation {
                        hide_rowtime(subquery);
                    }
                    for j in &mut t.joins {
                        if let TableFactor::Derived { subquery, .. } = &mut j.relation {
                            hide_rowtime(subquery);
                        }
                    }
                }
                let relations: Vec<&TableFactor> = select
                    .from
                    .iter()
                    .flat_map(|t| {
                        std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation))
                    })
                    .collect();
                let Some(quals) = relations
                    .iter()
                    .map(|r| qualifier(r))
                    .collect::<Option<Vec<_>>>()
                else {
                    return;
                };
                if quals.len() > 1 {
                    let items = std::mem::take(&mut select.projection);
                    for item in items {
                        match item {
                            SelectItem::Wildcard(o) if o == Default::default() => {
                                for (q, _) in &quals {
                                    select.projection.push(SelectItem::QualifiedWildcard(
                                        SelectItemQualifiedWildcardKind::ObjectName(q.clone()),
                                        Default::default(),
                                    ));
                                }
                            }
                            other => select.projection.push(other),
                        }
                    }
                }
                let tables: Vec<String> = quals
                    .iter()
                    .filter(|(_, table)| *table)
                    .filter_map(|(q, _)| last(q))
                    .collect();
                for item in &mut select.projection {
                    let opts = match item {
                        SelectItem::Wildcard(o) if quals.len() == 1 && quals[0].1 => o,
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(q),
                            o,
                        ) if last(q).is_some_and(|q| tables.contains(&q)) => o,
                        _ => continue,
                    };
                    let rowtime = ObjectName::from(vec![Ident::with_quote('`', ROWTIME_COLUMN)]);
                    opts.opt_exclude = Some(match opts.opt_exclude.take() {
                        None => ExcludeSelectItem::Single(rowtime),
                        Some(ExcludeSelectItem::Single(o)) => {
                            ExcludeSelectItem::Multiple(vec![o, rowtime])
                        }
                        Some(ExcludeSelectItem::Multiple(mut v)) => {
                            v.push(rowtime);
                            ExcludeSelectItem::Multiple(v)
                        }
                    });
                }
            }
            SetExpr::Query(q) => hide_rowtime(q),
            SetExpr::SetOperation { left, right, .. } => {
                set_expr(left);
                set_expr(right);
            }
            _ => {}
        }
    }
    set_expr(&mut query.body);
}

impl Planner {
    pub fn new() -> Planner {
        // DataFusion's batch rules, less the one that turns an inner join
        // whose other side only filters into a semi join: the same rows in
        // a batch, but a streaming semi join's changelog differs from the
        // join Flink runs (which keeps the join).
        let rules = datafusion::optimizer::Optimizer::new()
            .rules
            .into_iter()
            .filter(|r| r.name() != "eliminate_join")
            .collect();
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_optimizer_rules(rules)
            .build();
        let bounded = crate::bounded::wrap(state.scalar_functions());
        for udf in crate::windows::marker_udfs()
            .into_iter()
            .chain([
                crate::watermark::udf(),
                crate::temporal::udf(),
                crate::proctime::udf(),
                crate::unnest::udf(),
            ])
            .chain(bounded)
        {
            datafusion::execution::FunctionRegistry::register_udf(&mut state, udf)
                .expect("registering the window markers");
        }
        for udaf in [
            crate::aggregates::avg(),
            crate::aggregates::first_value(),
            crate::aggregates::last_value(),
            crate::aggregates::listagg(),
        ] {
            datafusion::execution::FunctionRegistry::register_udaf(&mut state, udaf)
                .expect("registering Flink's aggregates");
        }
        Planner { state }
    }

    /// Plans a query to a DataFusion logical plan.
    fn logical(
        &self,
        query: &Query,
        hints: &TableHints,
        ctx: &CatalogContext,
        sql: &str,
    ) -> Result<LogicalPlan, SqlError> {
        let mut query = query.clone();
        crate::views::expand(&mut query, ctx)?;
        crate::windows::rewrite_window_tvfs(&mut query)?;
        crate::unnest::rewrite_unnest(&mut query)?;
        crate::temporal::take_versions(&mut query, ctx)?;
        hide_rowtime(&mut query);
        uniquify_select_names(&mut query);
        rewrite_flink_calls(&mut query, &ctx.time_zone)?;
        let provider = Provider {
            state: &self.state,
            ctx,
            hints,
        };
        let planner = SqlToRel::new_with_options(&provider, parser_options());
        let plan = planner
            .sql_statement_to_plan(Statement::Query(Box::new(query)))
            .map_err(|e| df_error(e, sql))?;
        refuse_placeholders(&plan, sql)?;
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

    /// The table `CREATE TABLE name AS query` creates: the query's columns.
    pub fn table_for_query(
        &self,
        mut def: TableDef,
        query: &Query,
        hints: &TableHints,
        ctx: &CatalogContext,
        sql: &str,
    ) -> Result<TableDef, SqlError> {
        let logical = self.logical(query, hints, ctx, sql)?;
        let mut cols = vec![];
        for f in logical.schema().fields() {
            if def.columns.iter().any(|c| &c.name == f.name()) {
                continue;
            }
            cols.push(weir_catalog::ColumnSpec {
                name: f.name().clone(),
                data_type: SqlType::from_arrow(f.data_type()).map_err(SqlError::Catalog)?,
                nullable: f.is_nullable(),
                kind: ColumnKind::Physical,
                comment: None,
            });
        }
        cols.extend(def.columns);
        def.columns = cols;
        Ok(def)
    }

    /// Gives the computed columns of a new table their types, checking that
    /// their expressions refer to columns of the table.
    pub fn resolve_computed(&self, def: &mut TableDef) -> Result<(), SqlError> {
        let base = Arc::new(def.computed_input_schema());
        let exprs = self.computed_exprs(def, &base, weir_catalog::DEFAULT_TIME_ZONE)?;
        let df = DFSchema::try_from(base.as_ref().clone()).map_err(|e| df_error(e, ""))?;
        for (name, e) in exprs {
            let (_, field) = e.to_field(&df).map_err(|e| df_error(e, ""))?;
            let (dt, nullable) = (field.data_type().clone(), field.is_nullable());
            let col = def
                .columns
                .iter_mut()
                .find(|c| c.name == name)
                .expect("computed column");
            col.data_type = SqlType::from_arrow(&dt).map_err(SqlError::Catalog)?;
            col.nullable = nullable;
        }
        // The watermark must plan too (and be a timestamp) before the
        // table is stored.
        if let Some(w) = &def.watermark {
            let col = def
                .columns
                .iter()
                .find(|c| c.name == w.column)
                .expect("checked by the parser");
            if !matches!(
                col.data_type,
                SqlType::Timestamp { .. } | SqlType::TimestampLtz { .. }
            ) {
                return Err(SqlError::validation(
                    format!(
                        "WATERMARK FOR '{}': the column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                        w.column, col.data_type
                    ),
                    None,
                ));
            }
            self.watermark_expr(def, &def.read_schema())?;
        }
        Ok(())
    }

    /// The computed columns of `def` planned over `base` in time zone `tz`.
    fn computed_exprs(
        &self,
        def: &TableDef,
        base: &SchemaRef,
        tz: &str,
    ) -> Result<Vec<(String, Expr)>, SqlError> {
        let df = DFSchema::try_from(base.as_ref().clone()).map_err(|e| df_error(e, ""))?;
        let empty = CatalogContext::empty();
        let hints = TableHints::new();
        let provider = Provider {
            state: &self.state,
            ctx: &empty,
            hints: &hints,
        };
        let planner = SqlToRel::new_with_options(&provider, parser_options());
        let mut out = vec![];
        for c in &def.columns {
            if let ColumnKind::Computed { expr } = &c.kind {
                let _budget = crate::dialect::ParseBudget::new(expr);
                let mut ast = Parser::new(&FlinkDialect)
                    .try_with_sql(expr)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| {
                        SqlError::parse(format!("computed column '{}': {e}", c.name), None)
                    })?;
                crate::limits::check_depth(&ast)?;
                rewrite_flink_calls(&mut ast, tz)?;
                let e = planner
                    .sql_to_expr(ast, &df, &mut PlannerContext::new())
                    .and_then(|e| finish_lone_expr(e, &df))
                    .and_then(|e| crate::timezone::localize_expr_casts(e, &df))
                    .map_err(|e| {
                        SqlError::validation(
                            format!("computed column '{}': {}", c.name, clean_message(&e)),
                            None,
                        )
                    })?;
                out.push((c.name.clone(), e));
            }
        }
        Ok(out)
    }

    fn source(
        &self,
        src: &KafkaTableSource,
        qualifier: &TableReference,
    ) -> Result<SourceSpec, SqlError> {
        let def = &src.def;
        let startup = match def.option("scan.startup.mode") {
            Some("latest-offset") => StartupMode::Latest,
            Some("timestamp") => StartupMode::Timestamp(
                def.option("scan.startup.timestamp-millis")
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| SqlError::validation(format!("table {}: 'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'", src.qualified_name), None))?,
            ),
            _ => StartupMode::Earliest,
        };
        let bounded = src.bounded
            || match def.option("scan.bounded.mode") {
                None | Some("unbounded") => false,
                Some("latest-offset") => true,
                Some(other) => {
                    return Err(SqlError::validation(
                        format!(
                            "table {}: 'scan.bounded.mode' = '{other}' is not supported; use 'latest-offset' or 'unbounded'",
                            src.qualified_name
                        ),
                        None,
                    ))
                }
            };
        // Computed columns are evaluated over the non-computed columns, in
        // the session time zone, as the statement reads them.
        let base = Arc::new(weir_catalog::localize_schema(
            &def.computed_input_schema(),
            &src.time_zone,
        ));
        let computed = self.computed_exprs(def, &base, &src.time_zone)?;
        let df_schema = DFSchema::try_from_qualified_schema(qualifier.clone(), &src.schema)
            .map_err(|e| df_error(e, ""))?;
        let watermark = self.watermark_expr(def, &src.schema)?;
        Ok(SourceSpec {
            table: def.clone(),
            qualified_name: src.qualified_name.clone(),
            startup,
            bounded,
            computed,
            schema: src.schema.clone(),
            df_schema: Arc::new(df_schema),
            read_columns: None,
            watermark,
        })
    }

    /// `WATERMARK FOR c AS expr` planned over the table's read schema, or
    /// `$rowtime` (no delay) for a table that declares none.
    fn watermark_expr(&self, def: &TableDef, schema: &SchemaRef) -> Result<Expr, SqlError> {
        let Some(w) = &def.watermark else {
            return Ok(Expr::Column(datafusion::common::Column::from_name(
                ROWTIME_COLUMN,
            )));
        };
        let df = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| df_error(e, ""))?;
        let empty = CatalogContext::empty();
        let hints = TableHints::new();
        let provider = Provider {
            state: &self.state,
            ctx: &empty,
            hints: &hints,
        };
        let planner = SqlToRel::new_with_options(&provider, parser_options());
        let _budget = crate::dialect::ParseBudget::new(&w.expr);
        let mut ast = Parser::new(&FlinkDialect)
            .try_with_sql(&w.expr)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| SqlError::parse(format!("WATERMARK of {}: {e}", def.name), None))?;
        crate::limits::check_depth(&ast)?;
        rewrite_flink_calls(&mut ast, weir_catalog::DEFAULT_TIME_ZONE)?;
        let e = planner
            .sql_to_expr(ast, &df, &mut PlannerContext::new())
            .and_then(|e| finish_lone_expr(e, &df))
            .map_err(|e| {
                SqlError::validation(
                    format!("WATERMARK of {}: {}", def.name, clean_message(&e)),
                    None,
                )
            })?;
        match e.get_type(&df) {
            Ok(DataType::Timestamp(..)) => Ok(e),
            Ok(other) => Err(SqlError::validation(
                format!(
                    "WATERMARK of {}: the expression must be a TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {other}",
                    def.name
                ),
                None,
            )),
            Err(err) => Err(df_error(err, "")),
        }
    }

    /// A projection that reads the columns of a `HOP` or `CUMULATE` window
    /// TVF without aggregating: as in Flink, each row comes out once per
    /// window it is in. The input is expanded (an `Expand` with one
    /// projection per window a row can be in, less the windows a
    /// `CUMULATE` row is not in), and the projection reads the window
    /// columns from the expanded rows. `None` when it reads none.
    #[allow(clippy::type_complexity)]
    fn expand_windows(
        &self,
        p: &datafusion::logical_expr::Projection,
        input: &PlanNode,
        sql: &str,
    ) -> Result<Option<(PlanNode, Vec<Expr>, datafusion::common::DFSchemaRef)>, SqlError> {
        use crate::windows::{as_marker, nth_call, windows_per_row, Bound};
        use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
        let mut found: Option<crate::windows::Marker> = None;
        let mut mixed = false;
        for e in &p.expr {
            let _ = e.apply(|x| {
                if let Some(m) = as_marker(x).filter(|m| windows_per_row(&m.window).is_some()) {
                    match &found {
                        Some(f) if f.window != m.window || f.time != m.time => mixed = true,
                        Some(_) => {}
                        None => found = Some(m),
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        let Some(marker) = found else {
            return Ok(None);
        };
        if mixed {
            return Err(SqlError::unsupported(
                "two different HOP or CUMULATE windows in one SELECT; window each in its own subquery",
            ));
        }
        let per_row = windows_per_row(&marker.window).expect("a HOP or CUMULATE window");
        if per_row > crate::limits::MAX_EXPANDED_WINDOWS_PER_ROW {
            return Err(SqlError::validation(
                format!(
                    "a HOP or CUMULATE window used without aggregation copies every row into each \
                     of its windows, here {per_row}; Weir copies a row at most {} times. Aggregate \
                     the windows (GROUP BY window_start, window_end), or use a longer slide",
                    crate::limits::MAX_EXPANDED_WINDOWS_PER_ROW
                ),
                None,
            ));
        }
        let names = [
            (Bound::Start, "__weir_window_start"),
            (Bound::End, "__weir_window_end"),
            (Bound::Time, "__weir_window_time"),
        ];
        let columns: Vec<Expr> = p
            .input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let projections: Vec<Vec<Expr>> = (0..per_row)
            .map(|i| {
                let mut exprs = columns.clone();
                for (bound, name) in names {
                    let m = crate::windows::Marker {
                        bound,
                        ..marker.clone()
                    };
                    exprs.push(nth_call(&m, i).alias(name));
                }
                exprs
            })
            .collect();
        let expanded =
            datafusion::logical_expr::Projection::try_new(projections[0].clone(), p.input.clone())
                .map_err(|e| df_error(e, sql))?
                .schema;
        let column = |name: &str| Expr::Column(datafusion::common::Column::from_name(name));
        let exprs = p
            .expr
            .iter()
            .map(|e| {
                e.clone()
                    .transform_up(|x| match as_marker(&x) {
                        Some(m) if m.window == marker.window && m.time == marker.time => {
                            let name = names
                                .iter()
                                .find(|(b, _)| *b == m.bound)
                                .expect("a bound")
                                .1;
                            Ok(Transformed::yes(column(name)))
                        }
                        _ => Ok(Transformed::no(x)),
                    })
                    .map(|t| t.data)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| df_error(e, sql))?;
        let node = PlanNode::Filter {
            // A CUMULATE row is in fewer windows the later it comes.
            predicate: column("__weir_window_start").is_not_null(),
            input: Box::new(PlanNode::Expand {
                input: Box::new(input.clone()),
                projections,
                input_schema: p.input.schema().clone(),
            }),
            input_schema: expanded.clone(),
        };
        Ok(Some((node, exprs, expanded)))
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
            LogicalPlan::TableScan(scan) => {
                let src = (scan.source.as_ref() as &dyn Any)
                    .downcast_ref::<KafkaTableSource>()
                    .expect("every table source is a Kafka table");
                let mut spec = self.source(src, &scan.table_name)?;
                let spec_retract =
                    spec.table.changelog_mode() == "retract" && spec.table.value_format() == "json";
                let upsert = spec.table.changelog_mode() == "upsert"
                    && !spec.table.primary_key.is_empty()
                    && spec.table.value_format() == "json";
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
                    LogicalPlan::Sort(_) => {
                        "ORDER BY (streams can only be ordered by a time attribute)"
                    }
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

    /// A filter on a `ROW_NUMBER()` as a Top-N; `row_number`: something
    /// above reads the row number.
    fn top_n(&self, r: RankFilter<'_>, row_number: bool, sql: &str) -> Result<PlanNode, SqlError> {
        use datafusion::logical_expr::utils::{conjunction, split_conjunction};
        let RankFilter {
            filter: f,
            middle,
            window: w,
            params,
            row_number: rn,
        } = r;
        let mut limit: Option<u64> = None;
        // The first rank of a range (`rn BETWEEN 3 AND 5`).
        let mut first: u64 = 1;
        let mut rest = vec![];
        let mut at_most = |n: u64| limit = Some(limit.map_or(n, |l: u64| l.min(n)));
        for c in split_conjunction(&f.predicate) {
            match rank_bound(c, &rn) {
                Some(RankBound::AtMost(n)) => at_most(n),
                Some(RankBound::AtLeastOne) => {}
                Some(RankBound::AtLeast(n)) => first = first.max(n),
                Some(RankBound::Exactly(n)) => {
                    first = first.max(n);
                    at_most(n);
                }
                None if c.column_refs().iter().any(|col| col.name == rn) => {
                    return Err(SqlError::unsupported(format!(
                        "the condition {c} on ROW_NUMBER(): Weir keeps a range of ranks per partition, with rn <= N, rn < N, rn = N, rn >= M or rn BETWEEN M AND N"
                    )))
                }
                None => rest.push(c.clone()),
            }
        }
        let limit = limit.ok_or_else(|| {
            SqlError::unsupported(
                "ROW_NUMBER() without an upper bound on it: a streaming query keeps the first rows of each partition (WHERE rn <= N)",
            )
        })?;
        if limit == 0 || first > limit {
            return Err(SqlError::validation(
                "the condition on ROW_NUMBER() keeps no row (row numbers start at 1)",
                None,
            ));
        }
        // A range that does not start at 1: Top-N keeps the first `limit`
        // ranks with their row numbers, and a filter above keeps ranks from
        // `first` on; each change of a rank is a -U/+U pair of that rank,
        // so the filter keeps the changelog whole.
        let row_number = row_number || first > 1;
        if first > 1 {
            let schema = f.input.schema();
            let column = schema
                .columns()
                .into_iter()
                .find(|c| c.name == rn)
                .ok_or_else(|| SqlError::unsupported("a rank range on a hidden row number"))?;
            let at = ScalarValue::Int64(Some(first as i64))
                .cast_to(
                    &datafusion::common::ExprSchema::data_type(schema.as_ref(), &column)
                        .map_err(|e| df_error(e, sql))?
                        .clone(),
                )
                .map_err(|e| df_error(e, sql))?;
            rest.push(Expr::Column(column).gt_eq(Expr::Literal(at, None)));
        }
        if params.order_by.is_empty() {
            return Err(SqlError::validation(
                "ROW_NUMBER() OVER needs ORDER BY to say which rows come first",
                None,
            ));
        }
        let input = self.convert(&w.input, false, sql)?;
        // Flink plans ROW_NUMBER() = 1 ordered by a time attribute as a
        // deduplication (keep-first for ASC, keep-last for DESC).
        let by_time = match params.order_by.as_slice() {
            [o] => matches!(
                o.expr.get_type(w.input.schema()),
                Ok(DataType::Timestamp(..))
            ),
            _ => false,
        };
        let rank = if row_number {
            RankOutput::RowNumbers
        } else if limit == 1 && by_time && input.is_append_only() {
            RankOutput::Deduplicate {
                keep_last: !params.order_by[0].asc,
            }
        } else {
            RankOutput::Rows
        };
        // A window Top-N partitions by a window's start and end.
        let bound_of = |e: &Expr| match e.clone().unalias_nested().data {
            Expr::Column(c) => w
                .input
                .schema()
                .index_of_column(&c)
                .ok()
                .and_then(|i| crate::windows::window_column(&input, i)),
            _ => None,
        };
        let bounds: Vec<_> = params.partition_by.iter().map(bound_of).collect();
        let window_end = match (
            bounds
                .iter()
                .position(|b| *b == Some(crate::windows::Bound::Start)),
            bounds
                .iter()
                .position(|b| *b == Some(crate::windows::Bound::End)),
        ) {
            (Some(_), Some(end)) if input.is_append_only() => {
                Some(params.partition_by[end].clone())
            }
            _ => None,
        };
        let mut node = PlanNode::TopN {
            window_end,
            input: Box::new(input),
            input_schema: w.input.schema().clone(),
            partition_by: params.partition_by,
            order_by: params.order_by,
            limit: limit as usize,
            rank,
            output_schema: w.schema.clone(),
        };
        if let Some(p) = middle {
            node = PlanNode::Project {
                input: Box::new(node),
                exprs: p.expr.clone(),
                input_schema: w.schema.clone(),
            };
        }
        if let Some(predicate) = conjunction(rest) {
            node = PlanNode::Filter {
                input: Box::new(node),
                predicate,
                input_schema: f.input.schema().clone(),
            };
        }
        Ok(node)
    }

    /// `agg(...) OVER (PARTITION BY ... ORDER BY time frame)`, as Flink
    /// runs it: every aggregate over one window, ordered by one time
    /// attribute ascending, the frame ending at the current row.
    fn over_aggregate(
        &self,
        w: &datafusion::logical_expr::Window,
        sql: &str,
    ) -> Result<PlanNode, SqlError> {
        use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
        use datafusion::logical_expr::{
            WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
        };
        let unsupported = |why: String| Err(SqlError::unsupported(why));
        let mut window = None;
        let mut aggs = vec![];
        for e in &w.window_expr {
            let Expr::WindowFunction(f) = e.clone().unalias_nested().data else {
                return unsupported(format!("the OVER expression {e}"));
            };
            let WindowFunction { fun, params } = *f;
            // DataFusion always plans FIRST_VALUE and LAST_VALUE OVER as its
            // window functions (which keep NULLs); Flink runs its aggregates.
            let fun = match fun {
                WindowFunctionDefinition::WindowUDF(u) if u.name() == "first_value" => {
                    WindowFunctionDefinition::AggregateUDF(crate::aggregates::first_value())
                }
                WindowFunctionDefinition::WindowUDF(u) if u.name() == "last_value" => {
                    WindowFunctionDefinition::AggregateUDF(crate::aggregates::last_value())
                }
                other => other,
            };
            let WindowFunctionDefinition::AggregateUDF(udaf) = fun else {
                return unsupported(format!(
                    "{fun} OVER (...) is not supported: streams run aggregate functions over a window (SUM, COUNT, MIN, MAX, AVG, ...), and ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) kept to its first rows by a WHERE rn <= N around it (Top-N)"
                ));
            };
            let spec = (
                params.partition_by.clone(),
                params.order_by.clone(),
                params.window_frame.clone(),
            );
            match &window {
                Some(first) if *first != spec => {
                    return unsupported(
                        "OVER aggregates with one PARTITION BY and ORDER BY but different frames are not supported yet; give them one frame, or compute each frame in its own subquery".into(),
                    )
                }
                _ => window = Some(spec),
            }
            aggs.push(Expr::AggregateFunction(AggregateFunction::new_udf(
                udaf,
                params.args,
                params.distinct,
                params.filter,
                vec![],
                params.null_treatment,
            )));
        }
        let Some((partition_by, order_by, frame)) = window else {
            return unsupported("an OVER window without functions".into());
        };
        let time = match order_by.as_slice() {
            [o] if o.asc && matches!(o.expr.get_type(w.input.schema()), Ok(DataType::Timestamp(..))) => {
                o.expr.clone()
            }
            _ => {
                return unsupported(
                    "OVER aggregation must be ORDER BY one time attribute, ascending (the table's watermarked column or $rowtime)".into(),
                )
            }
        };
        if frame.end_bound != WindowFrameBound::CurrentRow {
            return unsupported("an OVER frame must end at the CURRENT ROW".into());
        }
        let frame = match (&frame.units, &frame.start_bound) {
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) if v.is_null() => {
                OverFrame::Rows(None)
            }
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => {
                OverFrame::Rows(Some(match v {
                    ScalarValue::UInt64(Some(n)) => *n,
                    other => return unsupported(format!("ROWS {other} PRECEDING")),
                }))
            }
            (WindowFrameUnits::Rows, WindowFrameBound::CurrentRow) => OverFrame::Rows(Some(0)),
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) if v.is_null() => {
                OverFrame::Range(None)
            }
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => {
                OverFrame::Range(Some(match v {
                    ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
                        i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000
                    }
                    ScalarValue::IntervalDayTime(Some(i)) => {
                        i.days as i64 * 86_400_000 + i.milliseconds as i64
                    }
                    other => {
                        return unsupported(format!(
                            "RANGE {other} PRECEDING: give the range as an INTERVAL of days or less"
                        ))
                    }
                }))
            }
            (WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => OverFrame::Range(Some(0)),
            (units, start) => {
                return unsupported(format!(
                    "the OVER frame {units} BETWEEN {start} AND CURRENT ROW"
                ))
            }
        };
        let input = self.convert(&w.input, false, sql)?;
        if let Some(origin) = input.update_source() {
            return unsupported(format!(
                "OVER aggregation over the update stream of {origin}; Flink runs it over append-only input"
            ));
        }
        Ok(PlanNode::OverAggregate {
            input: Box::new(input),
            input_schema: w.input.schema().clone(),
            partition_by,
            time,
            frame,
            aggs,
            output_schema: w.schema.clone(),
        })
    }

    /// `GROUP BY GROUPING SETS | ROLLUP | CUBE`, as Flink plans it: an
    /// `Expand` emits each row once per grouping set, with NULL for the keys
    /// the set leaves out and the set's id, and one group aggregation keyed
    /// by every key and the id aggregates them all.
    fn grouping_sets(
        &self,
        agg: &datafusion::logical_expr::Aggregate,
        sql: &str,
    ) -> Result<PlanNode, SqlError> {
        let [Expr::GroupingSet(gs)] = agg.group_expr.as_slice() else {
            unreachable!("called for one grouping set expression")
        };
        let distinct: Vec<Expr> = gs.distinct_expr().into_iter().cloned().collect();
        let values: Vec<(usize, Expr)> = distinct.iter().cloned().enumerate().collect();
        let input_schema = agg.input.schema();
        let (projections, expanded, keys) = grouping_set_expand(agg, &values, &agg.input, sql)?;
        Ok(PlanNode::GroupAggregate {
            input: Box::new(PlanNode::Expand {
                input: Box::new(self.convert(&agg.input, false, sql)?),
                projections,
                input_schema: input_schema.clone(),
            }),
            input_schema: expanded,
            keys,
            aggs: agg.aggr_expr.clone(),
            output_schema: agg.schema.clone(),
        })
    }

    /// `GROUP BY window_start, window_end, ...` over a window TVF; `None`
    /// when the aggregation is not windowed.
    fn window_aggregate(
        &self,
        agg: &datafusion::logical_expr::Aggregate,
        sql: &str,
    ) -> Result<Option<PlanNode>, SqlError> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        let grouping_sets = matches!(agg.group_expr.as_slice(), [Expr::GroupingSet(_)]);
        let group_exprs =
            datafusion::logical_expr::utils::grouping_set_to_exprlist(&agg.group_expr)
                .map_err(|e| df_error(e, sql))?;
        // Down to the projection that computes the window columns, keeping
        // the filters met on the way.
        let mut node = agg.input.as_ref();
        let mut filters = vec![];
        // A derived table's alias renames the projection's columns.
        let mut aliases = vec![];
        let proj = loop {
            match node {
                LogicalPlan::SubqueryAlias(a) => {
                    aliases.push(a.schema.clone());
                    node = &a.input
                }
                LogicalPlan::Filter(f) => {
                    filters.push(f.predicate.clone());
                    node = &f.input;
                }
                LogicalPlan::Projection(p) => break p,
                _ => return Ok(None),
            }
        };
        let defs: std::collections::HashMap<datafusion::common::Column, Expr> =
            std::iter::once(&proj.schema)
                .chain(&aliases)
                .flat_map(|schema| {
                    schema
                        .columns()
                        .into_iter()
                        .zip(proj.expr.iter().map(|e| e.clone().unalias_nested().data))
                })
                .collect();
        let inline = |e: &Expr| -> Result<Expr, SqlError> {
            e.clone()
                .transform_up(|x| match &x {
                    Expr::Column(c) => match defs.get(c) {
                        Some(d) => Ok(Transformed::yes(d.clone())),
                        None => Ok(Transformed::no(x)),
                    },
                    _ => Ok(Transformed::no(x)),
                })
                .map(|t| t.data)
                .map_err(|e| df_error(e, sql))
        };
        let mut window: Option<crate::windows::Marker> = None;
        let mut keys = vec![];
        let mut layout = vec![];
        for g in group_exprs {
            let e = inline(g)?;
            match crate::windows::as_marker(&e) {
                Some(m) => {
                    if let Some(w) = &window {
                        if w.window != m.window || w.time != m.time {
                            return Err(SqlError::unsupported(
                                "GROUP BY over two different windows",
                            ));
                        }
                    }
                    layout.push(match m.bound {
                        crate::windows::Bound::Start => crate::plan::GroupColumn::WindowStart,
                        crate::windows::Bound::End => crate::plan::GroupColumn::WindowEnd,
                        crate::windows::Bound::Time => crate::plan::GroupColumn::WindowTime,
                    });
                    window = Some(m);
                }
                None => {
                    layout.push(crate::plan::GroupColumn::Key(keys.len()));
                    keys.push(e);
                }
            }
        }
        let Some(window) = window else {
            return Ok(None);
        };
        if grouping_sets && window.window.kind == crate::plan::WindowKind::Session {
            return Err(SqlError::unsupported(
                "GROUPING SETS, ROLLUP and CUBE over a SESSION window are not supported; \
                 aggregate each grouping in its own statement",
            ));
        }
        if !(layout.contains(&crate::plan::GroupColumn::WindowStart)
            && layout.contains(&crate::plan::GroupColumn::WindowEnd))
        {
            return Err(SqlError::validation(
                "a window aggregation must GROUP BY both window_start and window_end",
                None,
            ));
        }
        let crate::windows::Marker {
            window,
            time,
            partition_by,
            ..
        } = window;
        // Sessions are kept per grouping key, as Flink's session window
        // operator keeps them, so a partition column must be one.
        if let Some(p) = partition_by.iter().find(|p| !keys.contains(p)) {
            return Err(SqlError::validation(
                format!(
                    "the SESSION window is partitioned by {p}, which the GROUP BY does not name; \
                     group by every PARTITION BY column"
                ),
                None,
            ));
        }
        let aggs = agg
            .aggr_expr
            .iter()
            .map(&inline)
            .collect::<Result<Vec<_>, _>>()?;
        let mut input = self.convert(&proj.input, false, sql)?;
        if let Some(origin) = input.update_source() {
            return Err(SqlError::unsupported(format!(
                "a window aggregation cannot consume the update stream of {origin}; window the input before aggregating it"
            )));
        }
        let input_schema = proj.input.schema().clone();
        for f in filters {
            input = PlanNode::Filter {
                input: Box::new(input),
                predicate: inline(&f)?,
                input_schema: input_schema.clone(),
            };
        }
        // GROUPING SETS over a window, as Flink plans them: every set keeps
        // the window, an Expand emits each row once per set (NULL for the
        // keys it leaves out, and the set's id), and one window aggregation
        // keyed by every key and the id aggregates them all.
        let (input, input_schema, keys, layout) = if grouping_sets {
            let [Expr::GroupingSet(gs)] = agg.group_expr.as_slice() else {
                unreachable!("checked above")
            };
            let windowed = |e: &Expr| inline(e).map(|e| crate::windows::as_marker(&e).is_some());
            let sets_keep_window = match gs {
                datafusion::logical_expr::GroupingSet::GroupingSets(sets) => sets
                    .iter()
                    .map(|set| Ok(set.iter().filter(|e| windowed(e).unwrap_or(false)).count() >= 2))
                    .collect::<Result<Vec<bool>, SqlError>>()?
                    .into_iter()
                    .all(|b| b),
                // ROLLUP and CUBE leave keys out; the window must be outside them.
                datafusion::logical_expr::GroupingSet::Rollup(e)
                | datafusion::logical_expr::GroupingSet::Cube(e) => {
                    !e.iter().any(|x| windowed(x).unwrap_or(false))
                }
            };
            if !sets_keep_window {
                return Err(SqlError::validation(
                    "every grouping set of a window aggregation must keep window_start and window_end; \
                     write GROUP BY window_start, window_end, GROUPING SETS (...)",
                    None,
                ));
            }
            let distinct: Vec<Expr> = gs.distinct_expr().into_iter().cloned().collect();
            let mut values = vec![];
            for (j, d) in distinct.iter().enumerate() {
                if !windowed(d)? {
                    values.push((j, inline(d)?));
                }
            }
            let (projections, expanded, mut keys) =
                grouping_set_expand(agg, &values, &proj.input, sql)?;
            // The aggregation's keys are the expanded columns now.
            keys.truncate(values.len() + 1);
            let mut layout = layout;
            layout.push(crate::plan::GroupColumn::Key(values.len()));
            let node = PlanNode::Expand {
                input: Box::new(input),
                projections,
                input_schema: input_schema.clone(),
            };
            (node, expanded, keys, layout)
        } else {
            (input, input_schema, keys, layout)
        };
        // Windows over a TIMESTAMP_LTZ align on the session zone's clock;
        // windows over PROCTIME() fire by processing time.
        let proctime = reads_proctime_attribute(&time, &input, &input_schema);
        let window = crate::plan::WindowSpec {
            zone: time
                .get_type(&input_schema)
                .ok()
                .and_then(|t| crate::plan::WindowZone::of_type(&t)),
            proctime,
            ..window
        };
        Ok(Some(PlanNode::WindowAggregate {
            input: Box::new(input),
            input_schema,
            window,
            time,
            keys,
            layout,
            aggs,
            output_schema: agg.schema.clone(),
        }))
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
        FlinkStatement::Explain(inner) => {
            match analyze_statement(planner, *inner, hints, ctx, sql)? {
                Analysis::Streaming { plan, .. } => Ok(Analysis::Explain(plan.explain())),
                Analysis::Metadata(s) => Ok(Analysis::Explain(format!("{s:?}"))),
                Analysis::Explain(t) => Ok(Analysis::Explain(t)),
            }
        }
        other => Ok(Analysis::Metadata(other)),
    }
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
