//! Data sources: `weir_environment`, `weir_compute_pool` and `weir_table`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeType, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::common::{
    api_error, computed, known, optional_computed, required, schema, string, Shared, Str,
};

/// The label of the provider's own lookups, as the web workspace labels its.
const INTERNAL_LABEL: &str = "weir.dev/terraform-internal";

pub struct EnvironmentData(pub Shared);

#[derive(Serialize, Deserialize, Default)]
pub struct EnvironmentDataState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    display_name: Str,
    #[serde(default)]
    resource_name: Str,
}

#[async_trait]
impl DataSource for EnvironmentData {
    type State<'a> = EnvironmentDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(
            "An environment, by id or by display_name.",
            vec![
                ("id", optional_computed(string(), "Its id.")),
                (
                    "display_name",
                    optional_computed(string(), "Its name (the SQL catalog's)."),
                ),
                ("resource_name", computed(string(), "Its CRN.")),
            ],
        ))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let conn = self.0.get(diags)?;
        let list = match conn
            .client(None)
            .json("GET", "/org/v2/environments", None)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                api_error(diags, "Listing environments", &e);
                return None;
            }
        };
        let (id, name) = (known(&config.id), known(&config.display_name));
        let wanted = id.or(name).unwrap_or(&conn.environment).to_string();
        let found = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| match (id, name) {
                (None, Some(n)) => e["display_name"] == n,
                _ => e["id"] == wanted.as_str(),
            });
        let Some(e) = found else {
            diags.root_error_short(format!(
                "There is no environment '{wanted}' that this key can see"
            ));
            return None;
        };
        Some(EnvironmentDataState {
            id: Value::Value(e["id"].as_str().unwrap_or_default().into()),
            display_name: Value::Value(e["display_name"].as_str().unwrap_or_default().into()),
            resource_name: Value::Value(
                e["metadata"]["resource_name"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            ),
        })
    }
}

pub struct ComputePoolData(pub Shared);

#[derive(Serialize, Deserialize, Default)]
pub struct ComputePoolDataState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    environment: Str,
    #[serde(default)]
    display_name: Str,
    #[serde(default)]
    max_cfu: Value<i64>,
    #[serde(default)]
    current_cfu: Value<i64>,
    #[serde(default)]
    phase: Str,
}

#[async_trait]
impl DataSource for ComputePoolData {
    type State<'a> = ComputePoolDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(
            "A compute pool, by id or by display_name (the provider's pool when neither is set).",
            vec![
                ("id", optional_computed(string(), "Its id.")),
                (
                    "environment",
                    optional_computed(string(), "Its environment (the provider's when unset)."),
                ),
                ("display_name", optional_computed(string(), "Its name.")),
                (
                    "max_cfu",
                    computed(
                        AttributeType::Number,
                        "The most CFUs its statements may hold.",
                    ),
                ),
                (
                    "current_cfu",
                    computed(AttributeType::Number, "The CFUs its statements hold now."),
                ),
                ("phase", computed(string(), "PROVISIONED.")),
            ],
        ))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let conn = self.0.get(diags)?;
        let env = known(&config.environment)
            .unwrap_or(&conn.environment)
            .to_string();
        let client = conn.client(Some(&env));
        let pools = match client.list_pools().await {
            Ok(l) => l.data,
            Err(e) => {
                api_error(diags, format!("Listing the compute pools of {env}"), &e);
                return None;
            }
        };
        let (id, name) = (known(&config.id), known(&config.display_name));
        let default_pool = conn.compute_pool.clone().unwrap_or_default();
        let found = pools.into_iter().find(|p| match (id, name) {
            (Some(id), _) => p.id == id,
            (None, Some(n)) => p.spec.display_name.as_deref() == Some(n),
            (None, None) => p.id == default_pool,
        });
        let Some(p) = found else {
            let wanted = id.or(name).unwrap_or(&default_pool);
            diags.root_error_short(format!("There is no compute pool '{wanted}' in {env}"));
            return None;
        };
        Some(ComputePoolDataState {
            id: Value::Value(p.id),
            environment: Value::Value(env),
            display_name: Value::Value(p.spec.display_name.unwrap_or_default()),
            max_cfu: Value::Value(p.spec.max_cfu.unwrap_or_default()),
            current_cfu: Value::Value(p.status.current_cfu),
            phase: Value::Value(p.status.phase),
        })
    }
}

pub struct TableData(pub Shared);

#[derive(Serialize, Deserialize, Default)]
pub struct TableDataState {
    #[serde(default)]
    environment: Str,
    #[serde(default)]
    database: Str,
    #[serde(default)]
    name: Str,
    #[serde(default)]
    columns: Value<Vec<Column>>,
    #[serde(default)]
    primary_key: Value<Vec<Value<String>>>,
    #[serde(default)]
    watermark_column: Str,
    #[serde(default)]
    watermark_expression: Str,
    #[serde(default)]
    options: Value<BTreeMap<String, Value<String>>>,
}

#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Column {
    name: Str,
    data_type: Str,
    nullable: Value<bool>,
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[async_trait]
impl DataSource for TableData {
    type State<'a> = TableDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let column = AttributeType::Object(HashMap::from([
            ("name".to_string(), AttributeType::String),
            ("data_type".to_string(), AttributeType::String),
            ("nullable".to_string(), AttributeType::Bool),
        ]));
        Some(schema(
            "A table of an environment's catalog (a topic, or a table made with CREATE TABLE), as INFORMATION_SCHEMA describes it.",
            vec![
                ("environment", optional_computed(string(), "The environment (the provider's when unset).")),
                ("database", required(string(), "The database: the Kafka cluster's display_name.")),
                ("name", required(string(), "The table's name.")),
                ("columns", computed(AttributeType::List(Box::new(column)), "Its columns in order: name, Flink SQL type, nullable.")),
                ("primary_key", computed(AttributeType::List(Box::new(AttributeType::String)), "The primary key's columns, in order.")),
                ("watermark_column", computed(string(), "The column its watermark is on.")),
                ("watermark_expression", computed(string(), "The watermark's expression.")),
                ("options", computed(AttributeType::Map(Box::new(AttributeType::String)), "Its WITH options.")),
            ],
        ))
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let conn = self.0.get(diags)?;
        let env = known(&config.environment)
            .unwrap_or(&conn.environment)
            .to_string();
        let db = known(&config.database).unwrap_or_default().to_string();
        let name = known(&config.name).unwrap_or_default().to_string();
        let client = conn.client(Some(&env));
        let filter = format!(
            "WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            lit(&db),
            lit(&name)
        );
        let mut results = Vec::new();
        for sql in [
            format!("SELECT COLUMN_NAME, FULL_DATA_TYPE, IS_NULLABLE, ORDINAL_POSITION FROM INFORMATION_SCHEMA.COLUMNS {filter}"),
            format!("SELECT COLUMN_NAME, ORDINAL_POSITION FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE {filter}"),
            format!("SELECT WATERMARK_COLUMN, WATERMARK_EXPRESSION FROM INFORMATION_SCHEMA.TABLES {filter}"),
            format!("SELECT OPTION_KEY, OPTION_VALUE FROM INFORMATION_SCHEMA.TABLE_OPTIONS {filter}"),
        ] {
            match client.query(&sql, BTreeMap::new(), INTERNAL_LABEL).await {
                Ok(rows) => results.push(rows),
                Err(e) => {
                    api_error(diags, format!("Describing table {db}.{name}"), &e);
                    return None;
                }
            }
        }
        let [mut columns, mut key, tables, options]: [Vec<Vec<serde_json::Value>>; 4] =
            results.try_into().ok()?;
        if columns.is_empty() {
            diags.root_error_short(format!(
                "There is no table `{db}`.`{name}` in environment {env}"
            ));
            return None;
        }
        let position =
            |r: &Vec<serde_json::Value>, i: usize| r.get(i).and_then(|v| v.as_i64()).unwrap_or(0);
        columns.sort_by_key(|r| position(r, 3));
        key.sort_by_key(|r| position(r, 1));
        let watermark = tables.first();
        Some(TableDataState {
            environment: Value::Value(env),
            database: Value::Value(db),
            name: Value::Value(name),
            columns: Value::Value(
                columns
                    .iter()
                    .map(|r| Column {
                        name: Value::Value(text(&r[0])),
                        data_type: Value::Value(text(&r[1])),
                        nullable: Value::Value(text(&r[2]) == "YES"),
                    })
                    .collect(),
            ),
            primary_key: Value::Value(key.iter().map(|r| Value::Value(text(&r[0]))).collect()),
            watermark_column: watermark
                .map(|r| text(&r[0]))
                .filter(|s| !s.is_empty())
                .map(Value::Value)
                .unwrap_or(Value::Null),
            watermark_expression: watermark
                .map(|r| text(&r[1]))
                .filter(|s| !s.is_empty())
                .map(Value::Value)
                .unwrap_or(Value::Null),
            options: Value::Value(
                options
                    .iter()
                    .map(|r| (text(&r[0]), Value::Value(text(&r[1]))))
                    .collect(),
            ),
        })
    }
}
