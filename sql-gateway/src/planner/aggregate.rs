//! Windowed, grouping-set and OVER aggregations.

use super::*;

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
pub(super) fn grouping_set_expand(
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

impl Planner {
    /// A projection that reads the columns of a `HOP` or `CUMULATE` window
    /// TVF without aggregating: as in Flink, each row comes out once per
    /// window it is in. The input is expanded (an `Expand` with one
    /// projection per window a row can be in, less the windows a
    /// `CUMULATE` row is not in), and the projection reads the window
    /// columns from the expanded rows. `None` when it reads none.
    #[allow(clippy::type_complexity)]
    pub(super) fn expand_windows(
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

    /// `agg(...) OVER (PARTITION BY ... ORDER BY time frame)`, as Flink
    /// runs it: every aggregate over one window, ordered by one time
    /// attribute ascending, the frame ending at the current row.
    pub(super) fn over_aggregate(
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
                // LAG: Flink's aggregate over the rows so far.
                WindowFunctionDefinition::WindowUDF(u) if u.name() == "lag" => {
                    let f = &params.window_frame;
                    if f.units != WindowFrameUnits::Range
                        || !f.start_bound.is_unbounded()
                        || !matches!(f.end_bound, WindowFrameBound::CurrentRow)
                    {
                        return unsupported(
                            "LAG takes no frame (ROWS or RANGE BETWEEN ...): it reads the rows before the current one in the window's order; drop the frame".into(),
                        );
                    }
                    WindowFunctionDefinition::AggregateUDF(crate::aggregates::lag())
                }
                other => other,
            };
            let WindowFunctionDefinition::AggregateUDF(udaf) = fun else {
                return unsupported(format!(
                    "{fun} OVER (...) is not supported in a stream (nor in Flink's streaming mode): an OVER window runs aggregate functions (SUM, COUNT, MIN, MAX, AVG, STDDEV_POP, ARRAY_AGG, ...) and LAG; ROW_NUMBER(), RANK() and DENSE_RANK() OVER (PARTITION BY ... ORDER BY ...) run as a Top-N, kept to their first rows by a WHERE rn <= N around them (a Top-N per window takes ROW_NUMBER() only, as Flink's)"
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

    /// `ORDER BY time [ASC], ...` over a stream, as Flink runs it: the
    /// first key must be a time attribute, ascending; rows come out as the
    /// watermark passes their time, rows of one time ordered by the rest.
    pub(super) fn temporal_sort(
        &self,
        sort: &datafusion::logical_expr::Sort,
        sql: &str,
    ) -> Result<PlanNode, SqlError> {
        let input = self.convert(&sort.input, false, sql)?;
        let schema = sort.input.schema();
        let refuse = || {
            Err(SqlError::unsupported(
                "a stream can only be sorted by a time attribute first, ascending \
                 (ORDER BY the table's watermarked column or $rowtime, then any columns): \
                 rows come out in that order as the watermark passes them",
            ))
        };
        let Some((first, peers)) = sort.expr.split_first() else {
            return refuse();
        };
        let attribute = match &first.expr {
            Expr::Column(c) => schema
                .index_of_column(c)
                .is_ok_and(|i| crate::interval::time_attribute(&input, i)),
            _ => false,
        };
        if !first.asc || !attribute {
            return refuse();
        }
        if reads_proctime_attribute(&first.expr, &input, schema) {
            return Err(SqlError::unsupported(
                "ORDER BY a processing-time attribute; order by the table's event-time (watermarked) column",
            ));
        }
        if let Some(origin) = input.update_source() {
            return Err(SqlError::unsupported(format!(
                "ORDER BY over the update stream of {origin}; Flink sorts append-only input only"
            )));
        }
        Ok(PlanNode::Sort {
            input: Box::new(input),
            input_schema: schema.clone(),
            time: first.expr.clone(),
            peers: peers.to_vec(),
        })
    }

    /// `ORDER BY ... LIMIT n` over a stream, as Flink runs it: a Top-N
    /// of the whole stream, rows entering (`+I`) and leaving (`-D`) the
    /// first `n`.
    pub(super) fn sort_limit(
        &self,
        sort: &datafusion::logical_expr::Sort,
        limit: usize,
        sql: &str,
    ) -> Result<PlanNode, SqlError> {
        let input = self.convert(&sort.input, false, sql)?;
        let input_schema = sort.input.schema().clone();
        // A Top-N's output is its input's columns and a rank column, which
        // a projection drops again.
        let rank = datafusion::common::DFSchema::from_unqualified_fields(
            vec![Field::new("__weir_rank", DataType::UInt64, true)].into(),
            Default::default(),
        )
        .and_then(|r| input_schema.join(&r))
        .map_err(|e| df_error(e, sql))?;
        let exprs = input_schema
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let output_schema = Arc::new(rank);
        Ok(PlanNode::Project {
            input: Box::new(PlanNode::TopN {
                input: Box::new(input),
                input_schema,
                partition_by: vec![],
                order_by: sort.expr.clone(),
                limit,
                rank: crate::plan::RankOutput::Rows,
                window_end: None,
                output_schema: output_schema.clone(),
            }),
            exprs,
            input_schema: output_schema,
        })
    }

    /// `GROUP BY GROUPING SETS | ROLLUP | CUBE`, as Flink plans it: an
    /// `Expand` emits each row once per grouping set, with NULL for the keys
    /// the set leaves out and the set's id, and one group aggregation keyed
    /// by every key and the id aggregates them all.
    pub(super) fn grouping_sets(
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
    pub(super) fn window_aggregate(
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
            // As in Flink, a GROUP BY that does not name both bounds is not
            // a window aggregation: the window TVF assigns each row its
            // window(s), and a group aggregation updates its result with
            // every row. A SESSION window has no such standalone form.
            if window.window.kind == crate::plan::WindowKind::Session {
                return Err(SqlError::validation(
                    "an aggregation over a SESSION window must GROUP BY both window_start and window_end",
                    None,
                ));
            }
            return Ok(None);
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
}
