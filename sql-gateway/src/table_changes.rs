//! Table definitions made from others: `CREATE TABLE ... LIKE source` (the
//! source's columns, key, distribution, watermark and options merged with
//! the statement's, under Flink's like options) and `ALTER TABLE ... ADD |
//! MODIFY | DROP | RENAME | RESET` (a table's definition changed in place).
//! Both are pure functions of definitions; the caller finds the source
//! table, resolves computed columns and stores the result.

use datafusion::sql::sqlparser::ast::ObjectName;
use weir_catalog::{ColumnKind, ColumnSpec, TableDef, TableOrigin};

use crate::error::SqlError;

/// How a `LIKE` option treats one feature of the source table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeMode {
    /// Taken; a clash with the statement's own is an error.
    Including,
    /// Left out.
    Excluding,
    /// Taken; the statement's own wins a clash.
    Overwriting,
}

/// A feature of the source table a `LIKE` option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeFeature {
    All,
    Constraints,
    /// `DISTRIBUTION` (also written `PARTITIONS`).
    Distribution,
    Generated,
    Options,
    Watermarks,
    Metadata,
}

/// `LIKE source (options)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LikeClause {
    pub source: ObjectName,
    pub options: Vec<(LikeMode, LikeFeature)>,
}

/// The mode of each feature: Flink's defaults (`INCLUDING ALL OVERWRITING
/// OPTIONS`), then the statement's options in order.
struct Modes {
    constraints: LikeMode,
    distribution: LikeMode,
    generated: LikeMode,
    options: LikeMode,
    watermarks: LikeMode,
    metadata: LikeMode,
}

impl Modes {
    fn of(options: &[(LikeMode, LikeFeature)]) -> Modes {
        let mut m = Modes {
            constraints: LikeMode::Including,
            distribution: LikeMode::Including,
            generated: LikeMode::Including,
            options: LikeMode::Overwriting,
            watermarks: LikeMode::Including,
            metadata: LikeMode::Including,
        };
        for (mode, feature) in options {
            let mode = *mode;
            match feature {
                LikeFeature::All => {
                    m = Modes {
                        constraints: mode,
                        distribution: mode,
                        generated: mode,
                        options: mode,
                        watermarks: mode,
                        metadata: mode,
                    }
                }
                LikeFeature::Constraints => m.constraints = mode,
                LikeFeature::Distribution => m.distribution = mode,
                LikeFeature::Generated => m.generated = mode,
                LikeFeature::Options => m.options = mode,
                LikeFeature::Watermarks => m.watermarks = mode,
                LikeFeature::Metadata => m.metadata = mode,
            }
        }
        m
    }
}

fn invalid(message: String) -> SqlError {
    SqlError::validation(message, None)
}

/// `own` (the statement's definition) merged with `source` as `CREATE
/// TABLE own LIKE source (options)` says, as Flink merges them: the
/// source's physical columns always, its computed (`GENERATED`) and
/// metadata columns, primary key (`CONSTRAINTS`), distribution, watermark
/// and options as the options say; the statement's columns after the
/// source's. The new table keeps its own name and topic.
pub fn merge_like(
    own: &TableDef,
    source: &TableDef,
    options: &[(LikeMode, LikeFeature)],
) -> Result<TableDef, SqlError> {
    if source.view.is_some() {
        return Err(invalid(format!(
            "'{}' is a view: CREATE TABLE ... LIKE copies a table's definition",
            source.name
        )));
    }
    let modes = Modes::of(options);
    let mut def = own.clone();
    let mut columns: Vec<ColumnSpec> = vec![];
    for c in &source.columns {
        let mode = match c.kind {
            ColumnKind::Physical => LikeMode::Including,
            ColumnKind::Computed { .. } => modes.generated,
            ColumnKind::Metadata { .. } => modes.metadata,
        };
        if mode != LikeMode::Excluding {
            columns.push(c.clone());
        }
    }
    for c in &own.columns {
        match columns.iter().position(|b| b.name == c.name) {
            None => columns.push(c.clone()),
            Some(i) => {
                let base = &columns[i];
                let mode = match base.kind {
                    ColumnKind::Physical => LikeMode::Including,
                    ColumnKind::Computed { .. } => modes.generated,
                    ColumnKind::Metadata { .. } => modes.metadata,
                };
                let overwritable = mode == LikeMode::Overwriting
                    && !matches!(c.kind, ColumnKind::Physical)
                    && std::mem::discriminant(&c.kind) == std::mem::discriminant(&base.kind);
                if !overwritable {
                    return Err(invalid(format!(
                        "a column named '{}' already exists in the base table '{}'; name it differently{}",
                        c.name,
                        source.name,
                        match base.kind {
                            ColumnKind::Physical => String::new(),
                            ColumnKind::Computed { .. } =>
                                " or say OVERWRITING GENERATED (or EXCLUDING GENERATED)".into(),
                            ColumnKind::Metadata { .. } =>
                                " or say OVERWRITING METADATA (or EXCLUDING METADATA)".into(),
                        }
                    )));
                }
                columns[i] = c.clone();
            }
        }
    }
    def.columns = columns;

    if modes.constraints == LikeMode::Including && !source.primary_key.is_empty() {
        if !own.primary_key.is_empty() {
            return Err(invalid(format!(
                "the base table '{}' already has a primary key; say EXCLUDING CONSTRAINTS to declare another",
                source.name
            )));
        }
        def.primary_key = source.primary_key.clone();
    }
    if modes.distribution == LikeMode::Including {
        if let Some(d) = &source.distribution {
            if own.distribution.is_some() {
                return Err(invalid(format!(
                    "the base table '{}' already has a distribution; say EXCLUDING DISTRIBUTION to declare another",
                    source.name
                )));
            }
            def.distribution = Some(d.clone());
        }
    }
    match (modes.watermarks, &source.watermark, &own.watermark) {
        (LikeMode::Excluding, _, _) | (_, None, _) => {}
        (LikeMode::Including, Some(_), Some(w)) => {
            return Err(invalid(format!(
                "the base table '{}' already has a watermark, and this statement declares one for '{}'; say OVERWRITING WATERMARKS or EXCLUDING WATERMARKS",
                source.name, w.column
            )))
        }
        (_, Some(w), None) => def.watermark = Some(w.clone()),
        (LikeMode::Overwriting, Some(_), Some(_)) => {}
    }
    match modes.options {
        LikeMode::Excluding => {}
        mode => {
            let mut options = source.options.clone();
            for (k, v) in &own.options {
                if mode == LikeMode::Including && options.get(k).is_some_and(|b| b != v) {
                    return Err(invalid(format!(
                        "the base table '{}' already has the option '{k}' = '{}'; say OVERWRITING OPTIONS or EXCLUDING OPTIONS",
                        source.name, options[k]
                    )));
                }
                options.insert(k.clone(), v.clone());
            }
            def.options = options;
        }
    }
    // The key and distribution name the merged columns.
    if modes.constraints == LikeMode::Excluding {
        def.primary_key = own.primary_key.clone();
    }
    def.origin = TableOrigin::Managed;
    def.view = None;
    crate::parser::validate_table(&def)?;
    Ok(def)
}

/// Where `ALTER TABLE ... ADD | MODIFY` puts a column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnPosition {
    First,
    After(String),
}

/// What `ALTER TABLE ... DROP` drops.
#[derive(Debug, Clone, PartialEq)]
pub enum DropTarget {
    Columns(Vec<String>),
    PrimaryKey,
    Watermark,
    Distribution,
}

/// A change `ALTER TABLE` makes, other than `SET (...)`.
#[derive(Debug, Clone, PartialEq)]
pub enum AlterChange {
    /// New columns, a primary key or a watermark (in `elements`); each
    /// column last unless `positions` says `FIRST` or `AFTER c`.
    Add {
        elements: TableDef,
        positions: Vec<(String, ColumnPosition)>,
    },
    /// New definitions of existing columns, the key or the watermark.
    Modify {
        elements: TableDef,
        positions: Vec<(String, ColumnPosition)>,
    },
    Drop(DropTarget),
    RenameColumn {
        from: String,
        to: String,
    },
    /// Options back to their defaults.
    Reset(Vec<String>),
}

/// Whether `text` (an expression's SQL) names `column` as a whole word.
fn mentions(text: &str, column: &str) -> bool {
    crate::error::find_word(text, column).is_some() || text.contains(&format!("`{column}`"))
}

/// The columns and watermark expressions of `def` that read `column`, for
/// messages; empty when none do.
fn readers(def: &TableDef, column: &str) -> Vec<String> {
    let mut out = vec![];
    for c in &def.columns {
        if let ColumnKind::Computed { expr } = &c.kind {
            if c.name != column && mentions(expr, column) {
                out.push(format!("computed column '{}'", c.name));
            }
        }
    }
    if let Some(w) = &def.watermark {
        if w.column == column || mentions(&w.expr, column) {
            out.push("the watermark".into());
        }
    }
    if def.primary_key.iter().any(|k| k == column) {
        out.push("the primary key".into());
    }
    if def
        .distribution
        .as_ref()
        .is_some_and(|d| d.columns.iter().any(|k| k == column))
    {
        out.push("the distribution".into());
    }
    out
}

/// A physical column of a table whose records a schema registry types
/// changes with the subject's schema, not with `ALTER TABLE`.
fn refuse_physical_on_registry(def: &TableDef, column: &ColumnSpec) -> Result<(), SqlError> {
    let registry = weir_catalog::registry::FORMATS;
    let typed_by_registry = registry.contains(&def.value_format())
        || registry.contains(&def.option("key.format").unwrap_or("raw"));
    if typed_by_registry && matches!(column.kind, ColumnKind::Physical) {
        return Err(invalid(format!(
            "'{}' is a physical column of a table typed by its schema registry subject; evolve the subject's schema (the table follows it), or add a computed or metadata column",
            column.name
        )));
    }
    Ok(())
}

fn place(
    columns: &mut Vec<ColumnSpec>,
    col: ColumnSpec,
    at: Option<&ColumnPosition>,
) -> Result<(), SqlError> {
    match at {
        None => columns.push(col),
        Some(ColumnPosition::First) => columns.insert(0, col),
        Some(ColumnPosition::After(a)) => {
            let i = columns.iter().position(|c| &c.name == a).ok_or_else(|| {
                invalid(format!(
                    "AFTER '{a}': the table has no column '{a}' to put '{}' after",
                    col.name
                ))
            })?;
            columns.insert(i + 1, col);
        }
    }
    Ok(())
}

/// `def` changed as `ALTER TABLE` says, checked as `CREATE TABLE` checks a
/// table. Computed columns' types are resolved by the caller.
pub fn alter(def: &TableDef, change: &AlterChange) -> Result<TableDef, SqlError> {
    if def.view.is_some() {
        return Err(invalid(format!(
            "'{}' is a view; drop it and create it again to change it",
            def.name
        )));
    }
    let mut out = def.clone();
    match change {
        AlterChange::Add {
            elements,
            positions,
        } => {
            for c in &elements.columns {
                if out.columns.iter().any(|e| e.name == c.name) {
                    return Err(invalid(format!(
                        "column '{}' already exists in '{}'; use ALTER TABLE ... MODIFY to change it",
                        c.name, def.name
                    )));
                }
                refuse_physical_on_registry(def, c)?;
                let at = positions.iter().find(|(n, _)| n == &c.name).map(|(_, p)| p);
                place(&mut out.columns, c.clone(), at)?;
            }
            if !elements.primary_key.is_empty() {
                if !out.primary_key.is_empty() {
                    return Err(invalid(format!(
                        "'{}' already has a primary key ({}); use ALTER TABLE ... MODIFY PRIMARY KEY",
                        def.name,
                        out.primary_key.join(", ")
                    )));
                }
                out.primary_key = elements.primary_key.clone();
            }
            if let Some(w) = &elements.watermark {
                if out.watermark.is_some() {
                    return Err(invalid(format!(
                        "'{}' already has a watermark; use ALTER TABLE ... MODIFY WATERMARK",
                        def.name
                    )));
                }
                out.watermark = Some(w.clone());
            }
        }
        AlterChange::Modify {
            elements,
            positions,
        } => {
            for c in &elements.columns {
                let Some(i) = out.columns.iter().position(|e| e.name == c.name) else {
                    return Err(invalid(format!(
                        "'{}' has no column '{}' to modify; use ALTER TABLE ... ADD",
                        def.name, c.name
                    )));
                };
                refuse_physical_on_registry(def, &out.columns[i])?;
                refuse_physical_on_registry(def, c)?;
                match positions.iter().find(|(n, _)| n == &c.name).map(|(_, p)| p) {
                    None => out.columns[i] = c.clone(),
                    at => {
                        out.columns.remove(i);
                        place(&mut out.columns, c.clone(), at)?;
                    }
                }
            }
            if !elements.primary_key.is_empty() {
                if out.primary_key.is_empty() {
                    return Err(invalid(format!(
                        "'{}' has no primary key to modify; use ALTER TABLE ... ADD PRIMARY KEY",
                        def.name
                    )));
                }
                out.primary_key = elements.primary_key.clone();
            }
            if let Some(w) = &elements.watermark {
                if out.watermark.is_none() {
                    return Err(invalid(format!(
                        "'{}' has no watermark to modify; use ALTER TABLE ... ADD WATERMARK",
                        def.name
                    )));
                }
                out.watermark = Some(w.clone());
            }
        }
        AlterChange::Drop(DropTarget::Columns(names)) => {
            for n in names {
                let Some(i) = out.columns.iter().position(|c| &c.name == n) else {
                    return Err(invalid(format!("'{}' has no column '{n}'", def.name)));
                };
                refuse_physical_on_registry(def, &out.columns[i])?;
                out.columns.remove(i);
            }
            for n in names {
                let by = readers(&out, n);
                if !by.is_empty() {
                    return Err(invalid(format!(
                        "column '{n}' cannot be dropped: {} reads it; drop or change that first",
                        by.join(" and ")
                    )));
                }
            }
            if out.columns.is_empty() {
                return Err(invalid(format!(
                    "'{}' would have no columns left; drop the table instead",
                    def.name
                )));
            }
        }
        AlterChange::Drop(DropTarget::PrimaryKey) => {
            if out.primary_key.is_empty() {
                return Err(invalid(format!(
                    "'{}' has no primary key to drop",
                    def.name
                )));
            }
            out.primary_key.clear();
        }
        AlterChange::Drop(DropTarget::Watermark) => {
            if out.watermark.take().is_none() {
                return Err(invalid(format!("'{}' has no watermark to drop", def.name)));
            }
        }
        AlterChange::Drop(DropTarget::Distribution) => {
            if out.distribution.take().is_none() {
                return Err(invalid(format!(
                    "'{}' has no distribution to drop",
                    def.name
                )));
            }
        }
        AlterChange::RenameColumn { from, to } => {
            if out.columns.iter().any(|c| &c.name == to) {
                return Err(invalid(format!(
                    "'{}' already has a column '{to}'",
                    def.name
                )));
            }
            let Some(i) = out.columns.iter().position(|c| &c.name == from) else {
                return Err(invalid(format!("'{}' has no column '{from}'", def.name)));
            };
            refuse_physical_on_registry(def, &out.columns[i])?;
            let exprs: Vec<String> = out
                .columns
                .iter()
                .filter_map(|c| match &c.kind {
                    ColumnKind::Computed { expr } if mentions(expr, from) => {
                        Some(format!("computed column '{}'", c.name))
                    }
                    _ => None,
                })
                .chain(
                    out.watermark
                        .as_ref()
                        .filter(|w| mentions(&w.expr, from))
                        .map(|_| "the watermark expression".to_string()),
                )
                .collect();
            if !exprs.is_empty() {
                return Err(invalid(format!(
                    "column '{from}' cannot be renamed: {} reads it by name; change that first",
                    exprs.join(" and ")
                )));
            }
            out.columns[i].name = to.clone();
            for k in out.primary_key.iter_mut().filter(|k| *k == from) {
                *k = to.clone();
            }
            if let Some(d) = &mut out.distribution {
                for k in d.columns.iter_mut().filter(|k| *k == from) {
                    *k = to.clone();
                }
            }
            if let Some(w) = &mut out.watermark {
                if &w.column == from {
                    w.column = to.clone();
                }
            }
        }
        AlterChange::Reset(keys) => {
            for k in keys {
                out.options.remove(k);
            }
        }
    }
    if out.origin == TableOrigin::Discovered {
        out.origin = TableOrigin::Managed;
    }
    crate::parser::validate_table(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{parse, FlinkStatement};

    fn table(sql: &str) -> TableDef {
        match parse(sql).unwrap().statement {
            FlinkStatement::CreateTable { def, .. } => def,
            other => panic!("not a CREATE TABLE: {other:?}"),
        }
    }

    fn like(sql: &str, source: &TableDef) -> Result<TableDef, SqlError> {
        match parse(sql).unwrap().statement {
            FlinkStatement::CreateTable {
                def, like: Some(l), ..
            } => merge_like(&def, source, &l.options),
            other => panic!("not a CREATE TABLE LIKE: {other:?}"),
        }
    }

    fn altered(def: &TableDef, sql: &str) -> Result<TableDef, SqlError> {
        match parse(sql).unwrap().statement {
            FlinkStatement::AlterTable { change, .. } => alter(def, &change),
            other => panic!("not an ALTER TABLE: {other:?}"),
        }
    }

    fn names(def: &TableDef) -> Vec<&str> {
        def.columns.iter().map(|c| c.name.as_str()).collect()
    }

    fn base() -> TableDef {
        table(
            "CREATE TABLE orders (id BIGINT, amount INT, ts TIMESTAMP(3), \
             doubled AS amount * 2, part INT METADATA FROM 'partition' VIRTUAL, \
             PRIMARY KEY (id) NOT ENFORCED, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
             DISTRIBUTED BY HASH(id) INTO 3 BUCKETS WITH ('value.format' = 'json', 'scan.startup.mode' = 'latest-offset')",
        )
    }

    #[test]
    fn like_takes_everything_by_default_and_the_statements_options_win() {
        let def = like(
            "CREATE TABLE copy (note STRING) WITH ('scan.startup.mode' = 'earliest-offset') LIKE orders",
            &base(),
        )
        .unwrap();
        assert_eq!(def.name, "copy");
        assert_eq!(def.topic, "copy");
        assert_eq!(
            names(&def),
            ["id", "amount", "ts", "doubled", "part", "note"]
        );
        assert_eq!(def.primary_key, ["id"]);
        assert_eq!(def.watermark.as_ref().unwrap().column, "ts");
        assert_eq!(def.distribution.as_ref().unwrap().buckets, Some(3));
        assert_eq!(def.options["scan.startup.mode"], "earliest-offset");
        assert_eq!(def.options["value.format"], "json");
    }

    #[test]
    fn like_options_leave_out_what_they_exclude() {
        let def = like("CREATE TABLE copy LIKE orders (EXCLUDING ALL)", &base()).unwrap();
        assert_eq!(names(&def), ["id", "amount", "ts"]);
        assert!(def.primary_key.is_empty() && def.watermark.is_none());
        assert!(def.distribution.is_none() && def.options.is_empty());
        let def = like(
            "CREATE TABLE copy (WATERMARK FOR ts AS ts) LIKE orders (EXCLUDING GENERATED, OVERWRITING WATERMARKS, EXCLUDING OPTIONS)",
            &base(),
        )
        .unwrap();
        assert_eq!(names(&def), ["id", "amount", "ts", "part"]);
        assert_eq!(def.watermark.as_ref().unwrap().expr, "ts");
        assert!(def.options.is_empty());
    }

    #[test]
    fn like_clashes_are_errors_that_name_the_option_to_use() {
        let clash = |sql: &str| like(sql, &base()).unwrap_err().to_string();
        assert!(clash("CREATE TABLE c (amount INT) LIKE orders").contains("already exists"));
        assert!(clash("CREATE TABLE c (doubled AS amount * 3) LIKE orders")
            .contains("OVERWRITING GENERATED"));
        assert!(clash("CREATE TABLE c (WATERMARK FOR ts AS ts) LIKE orders")
            .contains("OVERWRITING WATERMARKS"));
        assert!(
            clash("CREATE TABLE c (PRIMARY KEY (amount) NOT ENFORCED) LIKE orders")
                .contains("EXCLUDING CONSTRAINTS")
        );
        assert!(clash(
            "CREATE TABLE c WITH ('value.format' = 'avro') LIKE orders (INCLUDING OPTIONS)"
        )
        .contains("OVERWRITING OPTIONS"));
        let def = like(
            "CREATE TABLE c (doubled AS amount * 3) LIKE orders (OVERWRITING GENERATED)",
            &base(),
        )
        .unwrap();
        assert_eq!(names(&def), ["id", "amount", "ts", "doubled", "part"]);
        assert!(
            matches!(&def.columns[3].kind, ColumnKind::Computed { expr } if expr == "amount * 3")
        );
        assert!(parse("CREATE TABLE c LIKE orders (OVERWRITING ALL)").is_err());
        assert!(parse("CREATE TABLE c LIKE orders AS SELECT 1").is_err());
    }

    #[test]
    fn alter_adds_modifies_and_drops_columns_keys_and_watermarks() {
        let t = base();
        let t = altered(
            &t,
            "ALTER TABLE orders ADD (note STRING FIRST, cents AS amount * 100 AFTER amount)",
        )
        .unwrap();
        assert_eq!(
            names(&t),
            ["note", "id", "amount", "cents", "ts", "doubled", "part"]
        );
        let t = altered(&t, "ALTER TABLE orders MODIFY amount BIGINT NOT NULL").unwrap();
        assert!(!t.columns[2].nullable);
        let t = altered(
            &t,
            "ALTER TABLE orders MODIFY WATERMARK FOR ts AS ts - INTERVAL '5' SECOND",
        )
        .unwrap();
        assert!(t.watermark.as_ref().unwrap().expr.contains('5'));
        let t = altered(&t, "ALTER TABLE orders DROP WATERMARK").unwrap();
        assert!(t.watermark.is_none());
        let t = altered(&t, "ALTER TABLE orders DROP (note, part)").unwrap();
        assert_eq!(names(&t), ["id", "amount", "cents", "ts", "doubled"]);
        let t = altered(&t, "ALTER TABLE orders RENAME ts TO event_time").unwrap();
        assert_eq!(names(&t)[3], "event_time");
        let t = altered(
            &t,
            "ALTER TABLE orders ADD WATERMARK FOR event_time AS event_time",
        )
        .unwrap();
        assert_eq!(t.watermark.as_ref().unwrap().column, "event_time");
        let t = altered(&t, "ALTER TABLE orders RESET ('scan.startup.mode')").unwrap();
        assert!(!t.options.contains_key("scan.startup.mode"));
        let t = altered(&t, "ALTER TABLE orders DROP PRIMARY KEY").unwrap();
        assert!(t.primary_key.is_empty());
    }

    #[test]
    fn alter_refuses_what_would_break_the_table() {
        let t = base();
        let refused = |sql: &str| altered(&t, sql).unwrap_err().to_string();
        assert!(refused("ALTER TABLE orders ADD amount INT").contains("use ALTER TABLE ... MODIFY"));
        assert!(refused("ALTER TABLE orders MODIFY nope INT").contains("use ALTER TABLE ... ADD"));
        assert!(refused("ALTER TABLE orders DROP amount").contains("computed column 'doubled'"));
        assert!(refused("ALTER TABLE orders DROP ts").contains("the watermark"));
        assert!(refused("ALTER TABLE orders DROP id").contains("the primary key"));
        assert!(
            refused("ALTER TABLE orders ADD WATERMARK FOR ts AS ts").contains("MODIFY WATERMARK")
        );
        assert!(refused("ALTER TABLE orders RENAME amount TO amt").contains("reads it by name"));
        assert!(refused("ALTER TABLE orders ADD x INT AFTER nope").contains("no column 'nope'"));
        assert!(refused("ALTER TABLE orders MODIFY ts STRING").contains("TIMESTAMP(3)"));
        let registry = table("CREATE TABLE r (id BIGINT) WITH ('value.format' = 'avro-registry')");
        let err = altered(&registry, "ALTER TABLE r ADD extra INT")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema registry"), "{err}");
        altered(
            &registry,
            "ALTER TABLE r ADD ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'",
        )
        .unwrap();
        assert!(parse("ALTER TABLE orders FLY")
            .unwrap_err()
            .to_string()
            .contains("expected SET, RESET, ADD"));
    }
}
