//! Table definitions: the columns, time attribute, keys and options of a
//! Kafka-backed table.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::types::{SqlType, ROWTIME_COLUMN};

/// Where a table definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableOrigin {
    /// `CREATE TABLE` in Weir: Weir created the topic and owns the schema.
    Managed,
    /// A topic created outside Weir, shown as `key BYTES, val BYTES`.
    Discovered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    /// Read from (and written to) the record's key or value.
    Physical,
    /// `c AS expr`, evaluated when the table is read.
    Computed { expr: String },
    /// `METADATA FROM 'timestamp'`; `virtual` columns are read-only.
    Metadata {
        key: String,
        #[serde(rename = "virtual")]
        virtual_: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: SqlType,
    pub nullable: bool,
    pub kind: ColumnKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkSpec {
    pub column: String,
    /// The SQL text of the watermark expression.
    pub expr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    pub columns: Vec<String>,
    pub buckets: Option<u32>,
}

/// A table of the catalog: one Kafka topic and how to read and write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub topic: String,
    pub columns: Vec<ColumnSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkSpec>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub origin: TableOrigin,
    /// A view's query (`CREATE VIEW name AS <query>`): the view has no
    /// topic, and a statement that reads it reads this query in its place.
    /// Its `columns` are the query's output, for `DESCRIBE` and
    /// `INFORMATION_SCHEMA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
}

/// How many partitions a table gets when neither `DISTRIBUTED ... INTO n
/// BUCKETS` nor `'kafka.partitions'` says.
pub const DEFAULT_PARTITIONS: u32 = 6;

impl TableDef {
    /// The table Weir shows for a topic that has no schema.
    pub fn discovered(topic: &str) -> TableDef {
        let col = |name: &str| ColumnSpec {
            name: name.to_string(),
            data_type: SqlType::Bytes,
            nullable: true,
            kind: ColumnKind::Physical,
            comment: None,
        };
        TableDef {
            name: topic.to_string(),
            topic: topic.to_string(),
            columns: vec![col("key"), col("val")],
            watermark: None,
            primary_key: vec![],
            distribution: None,
            options: BTreeMap::from([
                ("key.format".to_string(), "raw".to_string()),
                ("value.format".to_string(), "raw".to_string()),
            ]),
            origin: TableOrigin::Discovered,
            view: None,
        }
    }

    /// A view named `name` over `query`, whose output is `columns`.
    pub fn view(name: &str, query: &str, columns: Vec<ColumnSpec>) -> TableDef {
        TableDef {
            name: name.to_string(),
            topic: String::new(),
            columns,
            watermark: None,
            primary_key: vec![],
            distribution: None,
            options: BTreeMap::new(),
            origin: TableOrigin::Managed,
            view: Some(query.to_string()),
        }
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// `'changelog.mode'`: as set, else `upsert` for a table with a
    /// primary key and `append` for one without.
    pub fn changelog_mode(&self) -> &str {
        match self.option("changelog.mode") {
            Some(m) => m,
            None if !self.primary_key.is_empty() => "upsert",
            None => "append",
        }
    }

    pub fn value_format(&self) -> &str {
        self.option("value.format").unwrap_or("json")
    }

    /// The columns whose values travel in the record key: `key.fields`, or the
    /// distribution columns, or the primary key.
    pub fn key_columns(&self) -> Vec<String> {
        if let Some(fields) = self.option("key.fields") {
            return fields
                .split(';')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if self.origin == TableOrigin::Discovered {
            return vec!["key".to_string()];
        }
        if let Some(d) = &self.distribution {
            return d.columns.clone();
        }
        self.primary_key.clone()
    }

    /// Columns stored in the record value (all physical columns but the key
    /// columns of a discovered table).
    pub fn value_columns(&self) -> Vec<&ColumnSpec> {
        let key = if self.origin == TableOrigin::Discovered {
            self.key_columns()
        } else {
            vec![]
        };
        self.columns
            .iter()
            .filter(|c| c.kind == ColumnKind::Physical)
            .filter(|c| !key.contains(&c.name))
            .collect()
    }

    pub fn partitions(&self) -> u32 {
        self.distribution
            .as_ref()
            .and_then(|d| d.buckets)
            .or_else(|| self.option("kafka.partitions").and_then(|p| p.parse().ok()))
            .unwrap_or(DEFAULT_PARTITIONS)
    }

    /// The schema of the physical columns, as the decoder produces them.
    pub fn physical_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter(|c| c.kind == ColumnKind::Physical)
                .map(|c| Field::new(&c.name, c.data_type.to_arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The columns computed columns are evaluated over: every column that
    /// is not computed, then `$rowtime`.
    pub fn computed_input_schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .filter(|c| !matches!(c.kind, ColumnKind::Computed { .. }))
                .map(|c| Field::new(&c.name, c.data_type.to_arrow(), c.nullable))
                .chain(std::iter::once(rowtime_field()))
                .collect::<Vec<_>>(),
        )
    }

    /// The schema a query sees: every declared column followed by `$rowtime`.
    pub fn read_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.to_arrow(), c.nullable))
            .collect();
        fields.push(rowtime_field());
        Arc::new(Schema::new(fields))
    }

    /// The schema an `INSERT INTO` must produce: physical and writable
    /// metadata columns, in declaration order.
    pub fn write_columns(&self) -> Vec<&ColumnSpec> {
        self.columns
            .iter()
            .filter(|c| match &c.kind {
                ColumnKind::Physical => true,
                ColumnKind::Metadata { virtual_, .. } => !virtual_,
                ColumnKind::Computed { .. } => false,
            })
            .collect()
    }

    /// `SHOW CREATE TABLE` text.
    pub fn create_statement(&self, catalog: &str, database: &str) -> String {
        if let Some(q) = &self.view {
            return format!(
                "CREATE VIEW `{catalog}`.`{database}`.`{}` AS\n{q}",
                self.name
            );
        }
        let mut lines: Vec<String> = self
            .columns
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Physical => format!(
                    "  `{}` {}{}",
                    c.name,
                    c.data_type,
                    if c.nullable { "" } else { " NOT NULL" }
                ),
                ColumnKind::Computed { expr } => format!("  `{}` AS {expr}", c.name),
                ColumnKind::Metadata { key, virtual_ } => format!(
                    "  `{}` {} METADATA FROM '{key}'{}",
                    c.name,
                    c.data_type,
                    if *virtual_ { " VIRTUAL" } else { "" }
                ),
            })
            .collect();
        if let Some(w) = &self.watermark {
            lines.push(format!("  WATERMARK FOR `{}` AS {}", w.column, w.expr));
        }
        if !self.primary_key.is_empty() {
            lines.push(format!(
                "  PRIMARY KEY ({}) NOT ENFORCED",
                quoted_list(&self.primary_key)
            ));
        }
        let mut s = format!(
            "CREATE TABLE `{catalog}`.`{database}`.`{}` (\n{}\n)",
            self.name,
            lines.join(",\n")
        );
        if let Some(d) = &self.distribution {
            s.push_str(&format!(
                "\nDISTRIBUTED BY HASH({})",
                quoted_list(&d.columns)
            ));
            if let Some(b) = d.buckets {
                s.push_str(&format!(" INTO {b} BUCKETS"));
            }
        }
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("  '{k}' = '{}'", v.replace('\'', "''")))
                .collect();
            s.push_str(&format!("\nWITH (\n{}\n)", opts.join(",\n")));
        }
        s
    }
}

fn quoted_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$rowtime TIMESTAMP_LTZ(3) NOT NULL`.
pub fn rowtime_field() -> Field {
    Field::new(
        ROWTIME_COLUMN,
        DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_topic_is_key_val_bytes_plus_rowtime() {
        let t = TableDef::discovered("clicks");
        let s = t.read_schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["key", "val", "$rowtime"]);
        assert_eq!(s.field(0).data_type(), &DataType::Binary);
        assert_eq!(t.key_columns(), ["key"]);
        assert_eq!(t.value_columns().len(), 1);
    }
}
