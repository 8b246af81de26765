//! Metadata statements, done at once against the catalog: `SHOW`,
//! `DESCRIBE`, `CREATE TABLE`, `DROP TABLE`, `ALTER TABLE`, `SET`, `USE`.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::ObjectName;
use serde_json::{json, Value};
use weir_api::{ColumnDescriptor, ResultSchema};
use weir_catalog::registry::{Part, SchemaRegistry};
use weir_catalog::{
    CatalogError, ClusterRecord, ColumnKind, KafkaAdmin, SqlType, Store, TableDef, TableOrigin,
};

use crate::error::SqlError;
use crate::hints::TableHints;
use crate::parser::{FlinkStatement, ShowKind};
use crate::planner::Planner;
use crate::properties::{CURRENT_CATALOG, CURRENT_DATABASE};

/// What a statement can see of the catalog: the environment it runs in, its
/// Kafka clusters and their tables. Loaded once per statement.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CatalogContext {
    pub org: String,
    pub env_id: String,
    /// The SQL catalog name (the environment's name).
    pub catalog: String,
    /// The current SQL database (a Kafka cluster's name).
    pub database: String,
    pub clusters: Vec<ClusterRecord>,
    pub environments: Vec<String>,
    /// `(database, table)` for every table of every cluster of the environment.
    pub tables: Vec<(String, TableDef)>,
    /// The statement's `'sql.local-time-zone'` (an Arrow time zone name):
    /// `TIMESTAMP_LTZ` values are shown, cast and taken apart in it, and
    /// windows over them are aligned in it.
    pub time_zone: String,
    /// Whether every Kafka source ends at the offsets it finds at start
    /// (`'sql.snapshot.mode' = 'now'` or `'sql.tables.scan.bounded.mode' =
    /// 'latest-offset'`): the statement then completes.
    pub bounded: bool,
    /// `'sql.snapshot.mode' = 'now'`: the statement also has batch
    /// semantics where they differ (a global aggregate over no rows is one
    /// row).
    pub snapshot: bool,
    /// `'sql.parallelism'` and `'sql.max-parallelism'` (see
    /// [`crate::stages`]), for `EXPLAIN`.
    #[serde(default)]
    pub parallelism: Option<u32>,
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    /// `DROP TABLE` soft-deletes the table's key and value subjects too
    /// ([`crate::properties::DROP_DELETES_SUBJECTS`]).
    pub drop_subjects: bool,
}

impl CatalogContext {
    pub(crate) fn empty() -> CatalogContext {
        CatalogContext {
            org: String::new(),
            env_id: String::new(),
            catalog: String::new(),
            database: String::new(),
            clusters: vec![],
            environments: vec![],
            tables: vec![],
            time_zone: weir_catalog::DEFAULT_TIME_ZONE.into(),
            bounded: false,
            snapshot: false,
            parallelism: None,
            max_parallelism: None,
            drop_subjects: false,
        }
    }

    /// A catalog of one Kafka cluster, `cluster_0`, holding `tables`, in
    /// environment `default` of organization `org`: for planning and running
    /// statements in-process (tests, benchmarks) without a store.
    pub fn in_memory(tables: Vec<TableDef>) -> CatalogContext {
        CatalogContext {
            org: "org".into(),
            env_id: "env".into(),
            catalog: "default".into(),
            database: "cluster_0".into(),
            clusters: vec![ClusterRecord {
                id: "c".into(),
                name: "cluster_0".into(),
                bootstrap: String::new(),
                sasl: None,
            }],
            environments: vec!["default".into()],
            tables: tables
                .into_iter()
                .map(|t| ("cluster_0".to_string(), t))
                .collect(),
            time_zone: weir_catalog::DEFAULT_TIME_ZONE.into(),
            bounded: false,
            snapshot: false,
            parallelism: None,
            max_parallelism: None,
            drop_subjects: false,
        }
    }

    /// [`CatalogContext::in_memory`] with the tables these `CREATE TABLE`
    /// statements declare (each on the topic of its name), computed columns
    /// resolved as `CREATE TABLE` does.
    pub fn from_ddl(planner: &crate::Planner, ddl: &[&str]) -> Result<CatalogContext, SqlError> {
        let mut tables = Vec::with_capacity(ddl.len());
        for d in ddl {
            let mut def = match crate::parse(d)?.statement {
                crate::FlinkStatement::CreateTable {
                    def, like: None, ..
                } => def,
                crate::FlinkStatement::CreateTable {
                    def,
                    like: Some(like),
                    ..
                } => {
                    let source = object_parts(&like.source).pop().unwrap_or_default();
                    let source = tables
                        .iter()
                        .find(|t: &&TableDef| t.name == source)
                        .ok_or_else(|| {
                            SqlError::validation(format!("LIKE: no table '{source}'"), None)
                        })?;
                    crate::table_changes::merge_like(&def, source, &like.options)?
                }
                crate::FlinkStatement::AlterTable { name, change, .. } => {
                    let target = object_parts(&name).pop().unwrap_or_default();
                    let i = tables
                        .iter()
                        .position(|t| t.name == target)
                        .ok_or_else(|| {
                            SqlError::validation(format!("ALTER TABLE: no table '{target}'"), None)
                        })?;
                    let mut def = crate::table_changes::alter(&tables[i], &change)?;
                    planner.resolve_computed(&mut def)?;
                    tables[i] = def;
                    continue;
                }
                _ => {
                    return Err(SqlError::validation(
                        format!("not a CREATE TABLE or ALTER TABLE: {d}"),
                        None,
                    ))
                }
            };
            planner.resolve_computed(&mut def)?;
            tables.push(def);
        }
        Ok(CatalogContext::in_memory(tables))
    }

    /// Loads the catalog of `org`/`env`, with the current database from
    /// `sql.current-database` (by name or id; default: the first cluster).
    pub async fn load(
        store: &Store,
        org: &str,
        env: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<CatalogContext, SqlError> {
        let env_rec =
            store
                .get_environment(org, env)
                .await?
                .ok_or_else(|| CatalogError::NotFound {
                    what: "environment",
                    name: env.to_string(),
                })?;
        if let Some(c) = properties.get(CURRENT_CATALOG) {
            if c != &env_rec.name && c != &env_rec.id {
                return Err(SqlError::validation(
                    format!("catalog '{c}' is not this statement's environment '{}'; statements run in the environment of their URL", env_rec.name),
                    None,
                ));
            }
        }
        let clusters = store.list_clusters(org, &env_rec.id).await?;
        let database =
            match properties.get(CURRENT_DATABASE) {
                Some(d) => clusters
                    .iter()
                    .find(|c| &c.name == d || &c.id == d)
                    .map(|c| c.name.clone())
                    .ok_or_else(|| {
                        SqlError::validation(
                            format!(
                            "database '{d}' does not exist in catalog '{}'; known databases: {}",
                            env_rec.name,
                            clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                            None,
                        )
                    })?,
                None => clusters.first().map(|c| c.name.clone()).unwrap_or_default(),
            };
        let mut tables = vec![];
        for c in &clusters {
            for t in store.list_tables(org, &env_rec.id, &c.id).await? {
                tables.push((c.name.clone(), t));
            }
        }
        let environments = store
            .list_environments(org)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect();
        Ok(CatalogContext {
            org: org.to_string(),
            env_id: env_rec.id,
            catalog: env_rec.name,
            database,
            clusters,
            environments,
            tables,
            time_zone: local_time_zone(properties)?,
            bounded: bounded_scans(properties)?,
            snapshot: properties
                .get(crate::properties::SNAPSHOT_MODE)
                .is_some_and(|v| v.eq_ignore_ascii_case("now")),
            parallelism: crate::stages::parallelism(properties)?,
            max_parallelism: crate::stages::max_parallelism(properties)?,
            drop_subjects: drop_subjects(properties)?,
        })
    }

    pub fn cluster(&self, database: &str) -> Option<&ClusterRecord> {
        self.clusters
            .iter()
            .find(|c| c.name == database || c.id == database)
    }

    pub fn current_cluster(&self) -> Result<&ClusterRecord, SqlError> {
        self.cluster(&self.database).ok_or_else(|| {
            SqlError::validation(
                "no current database: set 'sql.current-database' to a Kafka cluster",
                None,
            )
        })
    }

    /// The one Kafka cluster a streaming plan reads and writes: the
    /// cluster of its tables (the current database's when it names none).
    /// Tables of two clusters in one statement are refused: its tasks
    /// have one connection.
    pub fn plan_cluster(
        &self,
        plan: &crate::plan::StreamingPlan,
    ) -> Result<&ClusterRecord, SqlError> {
        let mut names: Vec<&str> = plan
            .root
            .sources()
            .iter()
            .map(|s| s.qualified_name.as_str())
            .collect();
        names.extend(plan.sink.tables().into_iter().map(|(_, name)| name));
        let mut found: Option<&ClusterRecord> = None;
        for name in names {
            let db = database_of(name).unwrap_or(&self.database);
            let Some(c) = self.cluster(db) else {
                continue;
            };
            match found {
                Some(f) if f.id != c.id => {
                    return Err(SqlError::validation(
                        format!(
                            "a statement reads and writes one Kafka cluster; `{}` and `{}` are different clusters",
                            f.name, c.name
                        ),
                        None,
                    ))
                }
                _ => found = Some(c),
            }
        }
        match found {
            Some(c) => Ok(c),
            None => self.current_cluster(),
        }
    }

    /// Finds a table by its possibly qualified name.
    pub fn find_table(
        &self,
        catalog: Option<&str>,
        db: Option<&str>,
        table: &str,
    ) -> Result<&TableDef, SqlError> {
        if let Some(c) = catalog {
            if c != self.catalog && c != self.env_id {
                return Err(SqlError::validation(
                    format!("catalog '{c}' does not exist or is not this statement's environment"),
                    None,
                ));
            }
        }
        let db = db.unwrap_or(&self.database);
        let db_name = self.cluster(db).map(|c| c.name.as_str()).unwrap_or(db);
        self.tables
            .iter()
            .find(|(d, t)| d == db_name && t.name == table)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                SqlError::validation(
                    format!("table '{table}' does not exist in `{}`.`{db_name}`; SHOW TABLES lists the tables", self.catalog),
                    None,
                )
            })
    }

    /// Resolves an AST name to (database, table).
    pub fn resolve_object(&self, name: &ObjectName) -> Result<(String, &TableDef), SqlError> {
        let parts = object_parts(name);
        let (catalog, db, table) = match parts.as_slice() {
            [t] => (None, None, t.as_str()),
            [d, t] => (None, Some(d.as_str()), t.as_str()),
            [c, d, t] => (Some(c.as_str()), Some(d.as_str()), t.as_str()),
            _ => {
                return Err(SqlError::validation(
                    format!("'{name}' is not a table name"),
                    None,
                ))
            }
        };
        let def = self.find_table(catalog, db, table)?;
        let db = db
            .map(|d| {
                self.cluster(d)
                    .map(|c| c.name.clone())
                    .unwrap_or(d.to_string())
            })
            .unwrap_or(self.database.clone());
        Ok((db, def))
    }
}

pub(crate) fn object_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| p.to_string())
        })
        .collect()
}

/// The rows a metadata statement returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<(String, SqlType, bool)>,
    pub rows: Vec<Vec<Value>>,
}

impl ResultSet {
    fn strings(names: &[&str], rows: Vec<Vec<Value>>) -> ResultSet {
        ResultSet {
            columns: names
                .iter()
                .map(|n| (n.to_string(), SqlType::String, true))
                .collect(),
            rows,
        }
    }

    pub fn schema(&self) -> ResultSchema {
        ResultSchema {
            columns: self
                .columns
                .iter()
                .map(|(n, t, nullable)| ColumnDescriptor {
                    name: n.clone(),
                    type_: t.descriptor(*nullable),
                })
                .collect(),
        }
    }
}

fn one_column(name: &str, values: impl IntoIterator<Item = String>) -> ResultSet {
    ResultSet::strings(
        &[name],
        values.into_iter().map(|v| vec![json!(v)]).collect(),
    )
}

/// Milliseconds of a Flink duration like `'7 d'`, `'12 h'`, `'30 min'`,
/// `'5 s'`, `'500 ms'` or plain milliseconds.
pub fn duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult = match unit.trim().to_lowercase().as_str() {
        "" | "ms" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// How long an idle source partition holds the watermark back, from
/// `'sql.tables.scan.idle-timeout'`: 5 s unless set, `None` when set to `'0'`.
/// Flink's own default is off; a service whose tables have many partitions
/// and bursty producers is better served by windows that close on time.
pub fn idle_timeout_ms(properties: &BTreeMap<String, String>) -> Result<Option<i64>, SqlError> {
    let key = crate::properties::IDLE_TIMEOUT;
    match properties.get(key) {
        None => Ok(Some(5_000)),
        Some(v) => match duration_ms(v) {
            Some(0) => Ok(None),
            Some(ms) => Ok(Some(ms)),
            None => Err(SqlError::validation(
                format!("property '{key}' = '{v}' is not a duration like '5 s' or '500 ms'"),
                None,
            )),
        },
    }
}

/// Whether the statement's Kafka sources end at the offsets they find when
/// it starts: `'sql.snapshot.mode' = 'now'` (a snapshot query, as the
/// managed service's clients ask for point-in-time results) or
/// `'sql.tables.scan.bounded.mode' = 'latest-offset'`.
/// [`crate::properties::DROP_DELETES_SUBJECTS`]: `'true'` or `'false'`.
pub fn drop_subjects(properties: &BTreeMap<String, String>) -> Result<bool, SqlError> {
    let key = crate::properties::DROP_DELETES_SUBJECTS;
    match properties.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(SqlError::validation(
            format!("'{key}' = '{v}' is not valid; use 'true' or 'false'"),
            None,
        )),
    }
}

pub fn bounded_scans(properties: &BTreeMap<String, String>) -> Result<bool, SqlError> {
    let snapshot = crate::properties::SNAPSHOT_MODE;
    let bounded = crate::properties::SCAN_BOUNDED_MODE;
    let a = match properties.get(snapshot).map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "now" => true,
        Some(v) if v == "off" || v.is_empty() => false,
        Some(v) => {
            return Err(SqlError::validation(
                format!("property '{snapshot}' = '{v}' is not supported; use 'now' (a snapshot query that completes) or leave it unset"),
                None,
            ))
        }
    };
    let b = match properties.get(bounded).map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "latest-offset" => true,
        Some(v) if v == "unbounded" => false,
        Some(v) => {
            return Err(SqlError::validation(
                format!(
                "property '{bounded}' = '{v}' is not supported; use 'latest-offset' or 'unbounded'"
            ),
                None,
            ))
        }
    };
    Ok(a || b)
}

/// `'sql.local-time-zone'` as Arrow names the zone: `UTC` unless set.
pub fn local_time_zone(properties: &BTreeMap<String, String>) -> Result<String, SqlError> {
    match properties.get(crate::properties::LOCAL_TIME_ZONE) {
        None => Ok(weir_catalog::DEFAULT_TIME_ZONE.into()),
        Some(v) => weir_catalog::parse_time_zone(v).map_err(|e| {
            SqlError::validation(
                format!("property '{}': {e}", crate::properties::LOCAL_TIME_ZONE),
                None,
            )
        }),
    }
}

/// `'sql.state-ttl'` (or Flink's `'table.exec.state.ttl'`) in milliseconds:
/// `None` (keep state forever) unless set, and when set to `'0'`.
pub fn state_ttl_ms(properties: &BTreeMap<String, String>) -> Result<Option<i64>, SqlError> {
    let keys = [
        crate::properties::STATE_TTL,
        crate::properties::FLINK_STATE_TTL,
    ];
    let Some((key, v)) = keys
        .iter()
        .find_map(|k| properties.get(*k).map(|v| (*k, v)))
    else {
        return Ok(None);
    };
    match duration_ms(v) {
        Some(0) => Ok(None),
        Some(ms) => Ok(Some(ms)),
        None => Err(SqlError::validation(
            format!("property '{key}' = '{v}' is not a duration like '1 h' or '30 min'"),
            None,
        )),
    }
}

/// A statement's memory limit from `'sql.memory.limit'` (or `default`
/// bytes) and `'sql.memory.soft-limit'` (or 80% of the limit).
pub fn memory_limit(
    properties: &BTreeMap<String, String>,
    default: u64,
) -> Result<crate::limits::MemoryLimit, SqlError> {
    let read = |key: &str| -> Result<Option<u64>, SqlError> {
        match properties.get(key) {
            None => Ok(None),
            Some(v) => match crate::limits::memory_bytes(v) {
                Some(b) if b > 0 => Ok(Some(b)),
                _ => Err(SqlError::validation(
                    format!(
                        "property '{key}' = '{v}' is not a memory size like '512 mb' or '2 gb'"
                    ),
                    None,
                )),
            },
        }
    };
    let hard = read(crate::properties::MEMORY_LIMIT)?.unwrap_or(default);
    let soft = read(crate::properties::MEMORY_SOFT_LIMIT)?.unwrap_or(hard / 10 * 8);
    if soft > hard {
        return Err(SqlError::validation(
            format!(
                "property '{}' ({soft} bytes) is above '{}' ({hard} bytes); the soft limit must not exceed the limit",
                crate::properties::MEMORY_SOFT_LIMIT,
                crate::properties::MEMORY_LIMIT
            ),
            None,
        ));
    }
    Ok(crate::limits::MemoryLimit { soft, hard })
}

/// How often a stateful statement checkpoints, from
/// `'execution.checkpointing.interval'`: 10 s unless set.
pub fn checkpoint_interval_ms(properties: &BTreeMap<String, String>) -> Result<i64, SqlError> {
    let key = crate::properties::CHECKPOINT_INTERVAL;
    match properties.get(key) {
        None => Ok(10_000),
        Some(v) => match duration_ms(v) {
            Some(ms) if ms > 0 => Ok(ms),
            _ => Err(SqlError::validation(
                format!(
                    "property '{key}' = '{v}' is not a positive duration like '10 s' or '500 ms'"
                ),
                None,
            )),
        },
    }
}

/// Runs a metadata statement. `properties` are the statement's properties;
/// `SET` and `USE` return the new values as rows.
pub async fn execute_metadata(
    planner: &Planner,
    statement: &FlinkStatement,
    ctx: &CatalogContext,
    store: &Store,
    properties: &BTreeMap<String, String>,
) -> Result<ResultSet, SqlError> {
    match statement {
        FlinkStatement::Show(kind) => Ok(match kind {
            ShowKind::Catalogs => one_column("catalog name", ctx.environments.clone()),
            ShowKind::Databases => {
                one_column("database name", ctx.clusters.iter().map(|c| c.name.clone()))
            }
            ShowKind::Tables => one_column(
                "table name",
                ctx.tables
                    .iter()
                    .filter(|(d, _)| d == &ctx.database)
                    .map(|(_, t)| t.name.clone()),
            ),
            ShowKind::Views => one_column(
                "view name",
                ctx.tables
                    .iter()
                    .filter(|(d, t)| d == &ctx.database && t.view.is_some())
                    .map(|(_, t)| t.name.clone()),
            ),
            ShowKind::Functions => one_column("function name", planner.function_names()),
            ShowKind::CurrentCatalog => one_column("current catalog name", [ctx.catalog.clone()]),
            ShowKind::CurrentDatabase => {
                one_column("current database name", [ctx.database.clone()])
            }
            ShowKind::CreateTable(name) => {
                let (db, def) = ctx.resolve_object(name)?;
                one_column(
                    "SHOW CREATE TABLE",
                    [def.create_statement(&ctx.catalog, &db)],
                )
            }
        }),
        FlinkStatement::Describe { table, extended } => {
            let (_, def) = ctx.resolve_object(table)?;
            let mut rows: Vec<Vec<Value>> = def
                .columns
                .iter()
                .map(|c| {
                    let key = if def.primary_key.contains(&c.name) {
                        json!("PRI")
                    } else {
                        Value::Null
                    };
                    let extras = match &c.kind {
                        // EXTENDED says where a column is stored and in
                        // which format (with its registry schema's id).
                        ColumnKind::Physical if *extended && def.view.is_none() => {
                            let in_key = def.origin == TableOrigin::Discovered
                                && def.key_columns().contains(&c.name);
                            json!(if in_key {
                                format!("KEY {}", def.option("key.format").unwrap_or("raw"))
                            } else {
                                match def.option("value.schema-id") {
                                    Some(id) => {
                                        format!("VALUE {}, schema id {id}", def.value_format())
                                    }
                                    None => format!("VALUE {}", def.value_format()),
                                }
                            })
                        }
                        ColumnKind::Physical => Value::Null,
                        ColumnKind::Computed { expr } => json!(format!("AS {expr}")),
                        ColumnKind::Metadata { key, virtual_ } => json!(format!(
                            "METADATA FROM '{key}'{}",
                            if *virtual_ { " VIRTUAL" } else { "" }
                        )),
                    };
                    let wm = def
                        .watermark
                        .as_ref()
                        .filter(|w| w.column == c.name)
                        .map(|w| json!(w.expr.clone()))
                        .unwrap_or(Value::Null);
                    vec![
                        json!(c.name),
                        json!(c.data_type.to_string()),
                        flink_bool(c.nullable),
                        key,
                        extras,
                        wm,
                    ]
                })
                .collect();
            // A view has no Kafka record, so no $rowtime.
            if (*extended || def.watermark.is_none()) && def.view.is_none() {
                rows.push(vec![
                    json!(weir_catalog::ROWTIME_COLUMN),
                    json!("TIMESTAMP_LTZ(3)"),
                    flink_bool(false),
                    Value::Null,
                    json!("METADATA VIRTUAL, SYSTEM"),
                    if def.watermark.is_none() {
                        json!("SOURCE_WATERMARK()")
                    } else {
                        Value::Null
                    },
                ]);
            }
            Ok(ResultSet {
                columns: vec![
                    ("name".into(), SqlType::String, false),
                    ("type".into(), SqlType::String, false),
                    ("null".into(), SqlType::Boolean, false),
                    ("key".into(), SqlType::String, true),
                    ("extras".into(), SqlType::String, true),
                    ("watermark".into(), SqlType::String, true),
                ],
                rows,
            })
        }
        FlinkStatement::UseCatalog(c) => {
            if c != &ctx.catalog && c != &ctx.env_id {
                return Err(SqlError::validation(
                    format!("catalog '{c}' does not exist or is not this statement's environment"),
                    None,
                ));
            }
            Ok(ResultSet::strings(
                &["key", "value"],
                vec![vec![json!(CURRENT_CATALOG), json!(c)]],
            ))
        }
        FlinkStatement::UseDatabase(d) => {
            let cluster = ctx.cluster(d).ok_or_else(|| {
                SqlError::validation(
                    format!("database '{d}' does not exist in catalog '{}'", ctx.catalog),
                    None,
                )
            })?;
            Ok(ResultSet::strings(
                &["key", "value"],
                vec![vec![json!(CURRENT_DATABASE), json!(cluster.name)]],
            ))
        }
        FlinkStatement::Set(Some((k, v))) => {
            // A property Weir reads is checked when it is set, not when a
            // statement first uses it.
            let one: BTreeMap<String, String> = [(k.clone(), v.clone())].into();
            local_time_zone(&one)?;
            Ok(ResultSet::strings(
                &["key", "value"],
                vec![vec![json!(k), json!(v)]],
            ))
        }
        FlinkStatement::Set(None) => Ok(ResultSet::strings(
            &["key", "value"],
            properties
                .iter()
                .map(|(k, v)| vec![json!(k), json!(v)])
                .collect(),
        )),
        FlinkStatement::Reset(k) => Ok(ResultSet::strings(
            &["key"],
            k.iter().map(|k| vec![json!(k)]).collect(),
        )),
        FlinkStatement::CreateTable {
            name,
            if_not_exists,
            def,
            as_query: None,
            like,
        } => {
            let parts = object_parts(name);
            let db = if parts.len() >= 2 {
                parts[parts.len() - 2].clone()
            } else {
                ctx.database.clone()
            };
            let cluster = ctx.cluster(&db).ok_or_else(|| {
                SqlError::validation(format!("database '{db}' does not exist"), None)
            })?;
            let mut def = match like {
                None => def.clone(),
                Some(like) => {
                    let (_, source) = ctx.resolve_object(&like.source)?;
                    crate::table_changes::merge_like(def, source, &like.options)?
                }
            };
            planner.resolve_computed(&mut def)?;
            create_table(store, ctx, cluster, &def, *if_not_exists).await?;
            Ok(one_column("result", ["OK".to_string()]))
        }
        FlinkStatement::CreateView {
            name,
            if_not_exists,
            or_replace,
            query,
        } => {
            let parts = object_parts(name);
            let db = if parts.len() >= 2 {
                parts[parts.len() - 2].clone()
            } else {
                ctx.database.clone()
            };
            let cluster = ctx.cluster(&db).ok_or_else(|| {
                SqlError::validation(format!("database '{db}' does not exist"), None)
            })?;
            let view_name = parts.last().cloned().unwrap_or_default();
            // Planned now: a view that does not plan is refused, and its
            // columns are known to DESCRIBE and INFORMATION_SCHEMA.
            let text = query.to_string();
            let plan = planner.plan_select(query, &TableHints::new(), ctx, &text)?;
            let columns = plan
                .output_schema
                .fields()
                .iter()
                .map(|f| {
                    Ok(weir_catalog::ColumnSpec {
                        name: f.name().clone(),
                        data_type: SqlType::from_arrow(f.data_type())?,
                        nullable: f.is_nullable(),
                        kind: ColumnKind::Physical,
                        comment: None,
                    })
                })
                .collect::<Result<Vec<_>, CatalogError>>()?;
            let def = TableDef::view(&view_name, &text, columns);
            let existing = ctx
                .tables
                .iter()
                .find(|(d, t)| d == &cluster.name && t.name == view_name)
                .map(|(_, t)| t);
            match existing {
                Some(t) if t.view.is_none() => {
                    return Err(SqlError::conflict(format!(
                        "'{view_name}' is a table in `{}`.`{}`; a view needs a name of its own",
                        ctx.catalog, cluster.name
                    )))
                }
                Some(_) if *or_replace => {
                    store
                        .replace_table(&ctx.org, &ctx.env_id, &cluster.id, &def)
                        .await?
                }
                Some(_) if *if_not_exists => {}
                Some(_) => {
                    return Err(SqlError::conflict(format!(
                        "view '{view_name}' already exists in `{}`.`{}`; use CREATE OR REPLACE VIEW, or DROP VIEW first",
                        ctx.catalog, cluster.name
                    )))
                }
                None => {
                    store
                        .create_table(&ctx.org, &ctx.env_id, &cluster.id, &def)
                        .await?
                }
            }
            Ok(one_column("result", ["OK".to_string()]))
        }
        FlinkStatement::DropView { name, if_exists } => {
            let Some((db, def)) = to_drop(ctx, name, *if_exists, true)? else {
                return Ok(one_column("result", ["OK".to_string()]));
            };
            let cluster = ctx.cluster(&db).expect("resolved database exists");
            store
                .delete_table(&ctx.org, &ctx.env_id, &cluster.id, &def.name)
                .await?;
            Ok(one_column("result", ["OK".to_string()]))
        }
        FlinkStatement::DropTable { name, if_exists } => {
            let Some((db, def)) = to_drop(ctx, name, *if_exists, false)? else {
                return Ok(one_column("result", ["OK".to_string()]));
            };
            let cluster = ctx.cluster(&db).expect("resolved database exists");
            KafkaAdmin::new(&cluster.connection())?
                .delete_topic(&def.topic)
                .await?;
            store
                .delete_table(&ctx.org, &ctx.env_id, &cluster.id, &def.name)
                .await?;
            // The subjects stay for other clients unless the statement
            // asks for them to go (soft-deleted, as the registry's own
            // DELETE does).
            if ctx.drop_subjects {
                let registry = SchemaRegistry::of(store, &ctx.org, &ctx.env_id).await?;
                for part in [Part::Key, Part::Value] {
                    if weir_catalog::registry::FORMATS.contains(&part.format(def)) {
                        registry.delete_subject(&part.subject(def)).await?;
                    }
                }
            }
            Ok(one_column("result", ["OK".to_string()]))
        }
        FlinkStatement::AlterTableSet { name, options } => {
            let (db, def) = ctx.resolve_object(name)?;
            let cluster = ctx.cluster(&db).expect("resolved database exists");
            let mut def = def.clone();
            // Re-validate through the CREATE TABLE checks.
            let probe = format!(
                "CREATE TABLE probe (x INT) WITH ({})",
                options
                    .iter()
                    .map(|(k, v)| format!(
                        "'{}' = '{}'",
                        k.replace('\'', "''"),
                        v.replace('\'', "''")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            crate::parser::parse(&probe)?;
            def.options.extend(options.clone());
            // Naming the subjects a discovered table is typed from (a
            // record-name strategy) keeps it the catalog sync's: it retypes
            // the table from them. Any other option makes it SQL's own.
            let subjects_only = options
                .keys()
                .all(|k| k == "value.subject" || k == "key.subject");
            if def.origin == TableOrigin::Discovered && !subjects_only {
                def.origin = TableOrigin::Managed;
            }
            store
                .replace_table(&ctx.org, &ctx.env_id, &cluster.id, &def)
                .await?;
            Ok(one_column("result", ["OK".to_string()]))
        }
        FlinkStatement::AlterTable {
            name,
            if_exists,
            change,
        } => {
            let (db, def) = match ctx.resolve_object(name) {
                Ok(x) => x,
                Err(_) if *if_exists => return Ok(one_column("result", ["OK".to_string()])),
                Err(e) => return Err(e),
            };
            let cluster = ctx.cluster(&db).expect("resolved database exists");
            let mut def = crate::table_changes::alter(def, change)?;
            planner.resolve_computed(&mut def)?;
            store
                .replace_table(&ctx.org, &ctx.env_id, &cluster.id, &def)
                .await?;
            Ok(one_column("result", ["OK".to_string()]))
        }
        other => Err(SqlError::unsupported(format!(
            "{other:?} is not a metadata statement"
        ))),
    }
}

/// What `DROP TABLE` (`view` false) or `DROP VIEW` (`view` true) of `name`
/// drops: `None` when it does not exist and `IF EXISTS` was said; an error
/// when it is the other kind.
fn to_drop<'a>(
    ctx: &'a CatalogContext,
    name: &ObjectName,
    if_exists: bool,
    view: bool,
) -> Result<Option<(String, &'a TableDef)>, SqlError> {
    let (db, def) = match ctx.resolve_object(name) {
        Ok(x) => x,
        Err(_) if if_exists => return Ok(None),
        Err(e) => return Err(e),
    };
    match (view, def.view.is_some()) {
        (true, false) => Err(SqlError::validation(
            format!("'{}' is a table, not a view; use DROP TABLE", def.name),
            None,
        )),
        (false, true) => Err(SqlError::validation(
            format!("'{}' is a view; use DROP VIEW", def.name),
            None,
        )),
        _ => Ok(Some((db, def))),
    }
}

/// Creates the topic and the table record.
pub async fn create_table(
    store: &Store,
    ctx: &CatalogContext,
    cluster: &ClusterRecord,
    def: &TableDef,
    if_not_exists: bool,
) -> Result<bool, SqlError> {
    if ctx
        .tables
        .iter()
        .any(|(d, t)| d == &cluster.name && t.name == def.name)
    {
        if if_not_exists {
            return Ok(false);
        }
        return Err(SqlError::User {
            kind: crate::SqlErrorKind::Conflict,
            message: format!("table `{}`.`{}`.`{}` already exists; use CREATE TABLE IF NOT EXISTS or DROP TABLE first", ctx.catalog, cluster.name, def.name),
            position: None,
        });
    }
    // A table in a registry format registers its key and value schemas
    // first: an incompatible one refuses the table, before any topic is
    // made.
    let mut registry = None;
    for part in [Part::Key, Part::Value] {
        if !weir_catalog::registry::FORMATS.contains(&part.format(def)) {
            continue;
        }
        let (ty, schema, subject) = weir_catalog::registry::schema_for_part(def, part)
            .map_err(|e| SqlError::validation(format!("table '{}': {e}", def.name), None))?;
        if registry.is_none() {
            registry = Some(SchemaRegistry::of(store, &ctx.org, &ctx.env_id).await?);
        }
        let registry = registry.as_ref().expect("set above");
        registry
            .register(&subject, ty, &schema, &[])
            .await
            .map_err(|e| match e {
                weir_catalog::registry::RegisterError::Store(e) => e.into(),
                e => SqlError::User {
                    kind: crate::SqlErrorKind::Conflict,
                    message: format!(
                        "table '{}': its {} schema cannot be registered under subject '{subject}': {e}",
                        def.name,
                        part.as_str()
                    ),
                    position: None,
                },
            })?;
    }
    let mut configs = vec![];
    let retention;
    if let Some(r) = def.option("kafka.retention.time") {
        retention = duration_ms(r)
            .ok_or_else(|| {
                SqlError::validation(
                    format!(
                        "'kafka.retention.time' = '{r}' is not a duration like '7 d' or '12 h'"
                    ),
                    None,
                )
            })?
            .to_string();
        configs.push(("retention.ms", retention.as_str()));
    }
    if def.changelog_mode() == "upsert" {
        configs.push(("cleanup.policy", "compact"));
    }
    KafkaAdmin::new(&cluster.connection())?
        .create_topic(&def.topic, def.partitions(), &configs)
        .await?;
    match store
        .create_table(&ctx.org, &ctx.env_id, &cluster.id, def)
        .await
    {
        Ok(()) => Ok(true),
        // The topic-sync loop may have registered the new topic as raw bytes
        // between the two steps: the definition given here wins.
        Err(CatalogError::AlreadyExists { .. }) => {
            store
                .replace_table(&ctx.org, &ctx.env_id, &cluster.id, def)
                .await?;
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// A `BOOLEAN` in the results wire format: `"TRUE"` or `"FALSE"`, as every
/// scalar there is a string.
fn flink_bool(b: bool) -> Value {
    json!(if b { "TRUE" } else { "FALSE" })
}

/// The database of a `` `catalog`.`database`.`table` `` name.
pub fn database_of(qualified: &str) -> Option<&str> {
    let inner = qualified.strip_prefix('`')?.strip_suffix('`')?;
    let parts: Vec<&str> = inner.split("`.`").collect();
    (parts.len() == 3).then(|| parts[1])
}
