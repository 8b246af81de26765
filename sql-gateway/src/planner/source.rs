//! Sources as the planner sees them: Kafka tables for DataFusion's
//! catalog, the columns a scan reads, computed columns and watermarks.

use super::*;

/// The physical columns behind the projected source columns `proj` and the
/// pushed-down `filters`, following computed columns to their inputs.
pub(super) fn read_columns(spec: &SourceSpec, proj: &[usize], filters: &[Expr]) -> Vec<String> {
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

/// A Kafka table as DataFusion's planner sees it.
#[derive(Debug)]
pub(super) struct KafkaTableSource {
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

pub(super) struct Provider<'a> {
    pub(super) state: &'a SessionState,
    pub(super) ctx: &'a CatalogContext,
    pub(super) hints: &'a TableHints,
    /// The statement's planned `MATCH_RECOGNIZE`s, by the name each was
    /// left under ([`crate::match_recognize::take_out`]).
    pub(super) matches: &'a [(String, Arc<dyn TableSource>)],
}

impl Provider<'_> {
    fn resolve(&self, name: &TableReference) -> Result<Arc<dyn TableSource>, DataFusionError> {
        if let TableReference::Bare { table } = name {
            if let Some((_, m)) = self.matches.iter().find(|(n, _)| n == table.as_ref()) {
                return Ok(m.clone());
            }
        }
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
                        "INFORMATION_SCHEMA has no table '{table}'; it has TABLES, COLUMNS, SCHEMATA, CATALOGS, TABLE_OPTIONS, TABLE_CONSTRAINTS, KEY_COLUMN_USAGE and VIEWS"
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
pub(super) fn filter_and_project(
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
pub(super) fn finish_lone_expr(e: Expr, df: &DFSchema) -> datafusion::common::Result<Expr> {
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

impl Planner {
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
    pub(super) fn computed_exprs(
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
            matches: &[],
        };
        let planner = SqlToRel::new_with_options(&provider, parser_options());
        let mut out = vec![];
        for c in &def.columns {
            if let ColumnKind::Computed { expr } = &c.kind {
                let _budget = crate::dialect::ParseBudget::start();
                let mut ast = Parser::new(&FlinkDialect)
                    .try_with_sql(expr)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| {
                        SqlError::parse(format!("computed column '{}': {e}", c.name), None)
                    })?;
                crate::limits::check_depth(&ast)?;
                crate::limits::check_typing_cost(&ast)?;
                rewrite_flink_calls(&mut ast, tz)?;
                crate::functions::canonical_names(&mut ast, |n| self.canonical_function(n));
                let e = planner
                    .sql_to_expr(ast, &df, &mut PlannerContext::new())
                    .and_then(|e| narrow_int_literals(e).map(|t| t.data))
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

    pub(super) fn source(
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
    pub(super) fn watermark_expr(
        &self,
        def: &TableDef,
        schema: &SchemaRef,
    ) -> Result<Expr, SqlError> {
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
            matches: &[],
        };
        let planner = SqlToRel::new_with_options(&provider, parser_options());
        let _budget = crate::dialect::ParseBudget::start();
        let mut ast = Parser::new(&FlinkDialect)
            .try_with_sql(&w.expr)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| SqlError::parse(format!("WATERMARK of {}: {e}", def.name), None))?;
        crate::limits::check_depth(&ast)?;
        crate::limits::check_typing_cost(&ast)?;
        rewrite_flink_calls(&mut ast, weir_catalog::DEFAULT_TIME_ZONE)?;
        crate::functions::canonical_names(&mut ast, |n| self.canonical_function(n));
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
}
