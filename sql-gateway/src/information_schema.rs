//! `INFORMATION_SCHEMA`: the catalog as tables a query can read, shaped as
//! the managed service's (`TABLES`, `COLUMNS`, `SCHEMATA`, `CATALOGS`,
//! `TABLE_OPTIONS`, `TABLE_CONSTRAINTS`, `KEY_COLUMN_USAGE`, `VIEWS`), so that tools written for it (dbt, BI
//! clients) find their way around. The catalog is the environment, a
//! schema is a Kafka cluster (a database). Each table is a snapshot of the
//! catalog taken when the statement is planned: a bounded source.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::TableSource;
use weir_catalog::{ColumnKind, ROWTIME_COLUMN};

use crate::metadata::CatalogContext;

/// The schema name that holds these tables.
pub const SCHEMA: &str = "INFORMATION_SCHEMA";

/// One `INFORMATION_SCHEMA` table, as planned.
#[derive(Debug)]
pub(crate) struct InfoSchemaSource {
    pub batch: RecordBatch,
}

impl TableSource for InfoSchemaSource {
    fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }
}

/// A column of strings or of integers, built row by row.
enum Col {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i32>>),
}

struct Builder {
    names: Vec<&'static str>,
    cols: Vec<Col>,
}

impl Builder {
    fn new(spec: &[(&'static str, bool)]) -> Builder {
        Builder {
            names: spec.iter().map(|(n, _)| *n).collect(),
            cols: spec
                .iter()
                .map(|(_, int)| {
                    if *int {
                        Col::Int(vec![])
                    } else {
                        Col::Text(vec![])
                    }
                })
                .collect(),
        }
    }

    fn row(&mut self, values: Vec<V>) {
        for (c, v) in self.cols.iter_mut().zip(values) {
            match (c, v) {
                (Col::Text(t), V::S(s)) => t.push(Some(s)),
                (Col::Text(t), V::Null) => t.push(None),
                (Col::Int(t), V::I(i)) => t.push(Some(i)),
                (Col::Int(t), _) => t.push(None),
                (Col::Text(t), V::I(i)) => t.push(Some(i.to_string())),
            }
        }
    }

    fn finish(self) -> RecordBatch {
        let fields: Vec<Field> = self
            .names
            .iter()
            .zip(&self.cols)
            .map(|(n, c)| {
                let t = match c {
                    Col::Text(_) => DataType::Utf8,
                    Col::Int(_) => DataType::Int32,
                };
                Field::new(*n, t, true)
            })
            .collect();
        let arrays: Vec<ArrayRef> = self
            .cols
            .into_iter()
            .map(|c| match c {
                Col::Text(v) => Arc::new(StringArray::from(v)) as ArrayRef,
                Col::Int(v) => Arc::new(Int32Array::from(v)) as ArrayRef,
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .expect("columns match their fields")
    }
}

enum V {
    S(String),
    I(i32),
    Null,
}

fn s(v: impl Into<String>) -> V {
    V::S(v.into())
}

fn yes_no(b: bool) -> V {
    s(if b { "YES" } else { "NO" })
}

fn opt(v: Option<String>) -> V {
    v.map_or(V::Null, V::S)
}

/// The columns that say which table a row is about, first in every
/// per-table view.
const QUALIFIED: [(&str, bool); 5] = [
    ("TABLE_CATALOG_ID", false),
    ("TABLE_CATALOG", false),
    ("TABLE_SCHEMA_ID", false),
    ("TABLE_SCHEMA", false),
    ("TABLE_NAME", false),
];

/// A per-table view's columns: [`QUALIFIED`], then `rest`.
fn per_table(rest: &[(&'static str, bool)]) -> Builder {
    Builder::new(&[&QUALIFIED[..], rest].concat())
}

/// `INFORMATION_SCHEMA.<name>` of `ctx`'s environment, if there is one.
pub(crate) fn table(name: &str, ctx: &CatalogContext) -> Option<RecordBatch> {
    let catalog = || vec![s(&ctx.env_id), s(&ctx.catalog)];
    let schema_id = |db: &str| {
        ctx.cluster(db)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| db.to_string())
    };
    let qualified = |db: &str, t: &str| {
        let mut v = catalog();
        v.extend([s(schema_id(db)), s(db), s(t)]);
        v
    };
    Some(match name.to_ascii_uppercase().as_str() {
        "CATALOGS" => {
            let mut b = Builder::new(&[("CATALOG_ID", false), ("CATALOG_NAME", false)]);
            b.row(catalog());
            b.finish()
        }
        "SCHEMATA" => {
            let mut b = Builder::new(&[
                ("CATALOG_ID", false),
                ("CATALOG_NAME", false),
                ("SCHEMA_ID", false),
                ("SCHEMA_NAME", false),
            ]);
            for c in &ctx.clusters {
                let mut r = catalog();
                r.extend([s(&c.id), s(&c.name)]);
                b.row(r);
            }
            let mut r = catalog();
            r.extend([s(SCHEMA), s(SCHEMA)]);
            b.row(r);
            b.finish()
        }
        "TABLES" => {
            let mut b = per_table(&[
                ("TABLE_TYPE", false),
                ("IS_DISTRIBUTED", false),
                ("DISTRIBUTION_ALGORITHM", false),
                ("DISTRIBUTION_BUCKETS", true),
                ("IS_WATERMARKED", false),
                ("WATERMARK_COLUMN", false),
                ("WATERMARK_EXPRESSION", false),
                ("WATERMARK_IS_HIDDEN", false),
                ("IS_MATERIALIZED", false),
                ("COMMENT", false),
            ]);
            for (db, t) in &ctx.tables {
                let mut r = qualified(db, &t.name);
                let view = t.view.is_some();
                r.push(s(if view { "VIEW" } else { "BASE TABLE" }));
                r.push(yes_no(t.distribution.is_some()));
                r.push(opt(t.distribution.as_ref().map(|_| "HASH".to_string())));
                r.push(
                    t.distribution
                        .as_ref()
                        .and_then(|d| d.buckets)
                        .map_or(V::Null, |n| V::I(n as i32)),
                );
                // A table without a WATERMARK has the system one on $rowtime.
                r.push(yes_no(!view));
                r.push(opt((!view).then(|| {
                    t.watermark
                        .as_ref()
                        .map_or(ROWTIME_COLUMN.to_string(), |w| w.column.clone())
                })));
                r.push(opt((!view).then(|| {
                    t.watermark
                        .as_ref()
                        .map_or("SOURCE_WATERMARK()".to_string(), |w| w.expr.clone())
                })));
                r.push(opt((!view).then(|| {
                    if t.watermark.is_none() { "YES" } else { "NO" }.to_string()
                })));
                r.push(yes_no(false));
                r.push(V::Null);
                b.row(r);
            }
            b.finish()
        }
        "COLUMNS" => {
            let mut b = per_table(&[
                ("COLUMN_NAME", false),
                ("ORDINAL_POSITION", true),
                ("IS_NULLABLE", false),
                ("DATA_TYPE", false),
                ("FULL_DATA_TYPE", false),
                ("IS_HIDDEN", false),
                ("IS_GENERATED", false),
                ("GENERATION_EXPRESSION", false),
                ("IS_METADATA", false),
                ("METADATA_KEY", false),
                ("IS_PERSISTED", false),
                ("DISTRIBUTION_ORDINAL_POSITION", true),
                ("COMMENT", false),
            ]);
            for (db, t) in &ctx.tables {
                let mut position = 0;
                for c in &t.columns {
                    position += 1;
                    let mut r = qualified(db, &t.name);
                    let data_type = c.data_type.to_string();
                    let full = if c.nullable {
                        data_type.clone()
                    } else {
                        format!("{data_type} NOT NULL")
                    };
                    let (generated, expr, metadata, key, persisted) = match &c.kind {
                        ColumnKind::Physical => (false, None, false, None, true),
                        ColumnKind::Computed { expr } => {
                            (true, Some(expr.clone()), false, None, false)
                        }
                        ColumnKind::Metadata { key, virtual_ } => {
                            (false, None, true, Some(key.clone()), !virtual_)
                        }
                    };
                    r.extend([
                        s(&c.name),
                        V::I(position),
                        yes_no(c.nullable),
                        s(data_type),
                        s(full),
                        yes_no(false),
                        yes_no(generated),
                        opt(expr),
                        yes_no(metadata),
                        opt(key),
                        yes_no(persisted),
                        t.distribution
                            .as_ref()
                            .and_then(|d| d.columns.iter().position(|x| x == &c.name))
                            .map_or(V::Null, |p| V::I(p as i32 + 1)),
                        opt(c.comment.clone()),
                    ]);
                    b.row(r);
                }
                if t.view.is_none() {
                    let mut r = qualified(db, &t.name);
                    r.extend([
                        s(ROWTIME_COLUMN),
                        V::I(position + 1),
                        yes_no(false),
                        s("TIMESTAMP_LTZ"),
                        s("TIMESTAMP_LTZ(3) NOT NULL"),
                        yes_no(true),
                        yes_no(false),
                        V::Null,
                        yes_no(true),
                        s("timestamp"),
                        yes_no(false),
                        V::Null,
                        V::Null,
                    ]);
                    b.row(r);
                }
            }
            b.finish()
        }
        "TABLE_OPTIONS" => {
            let mut b = per_table(&[("OPTION_KEY", false), ("OPTION_VALUE", false)]);
            for (db, t) in &ctx.tables {
                for (k, v) in &t.options {
                    let mut r = qualified(db, &t.name);
                    r.extend([s(k), s(v)]);
                    b.row(r);
                }
            }
            b.finish()
        }
        // A table's primary key (`NOT ENFORCED`, as every key in Flink),
        // named `PK_<table>`.
        "TABLE_CONSTRAINTS" => {
            let mut b = per_table(&[
                ("CONSTRAINT_NAME", false),
                ("CONSTRAINT_TYPE", false),
                ("ENFORCED", false),
            ]);
            for (db, t) in &ctx.tables {
                if !t.primary_key.is_empty() {
                    let mut r = qualified(db, &t.name);
                    r.extend([s(format!("PK_{}", t.name)), s("PRIMARY KEY"), yes_no(false)]);
                    b.row(r);
                }
            }
            b.finish()
        }
        "KEY_COLUMN_USAGE" => {
            let mut b = per_table(&[
                ("CONSTRAINT_NAME", false),
                ("COLUMN_NAME", false),
                ("ORDINAL_POSITION", true),
            ]);
            for (db, t) in &ctx.tables {
                for (i, c) in t.primary_key.iter().enumerate() {
                    let mut r = qualified(db, &t.name);
                    r.extend([s(format!("PK_{}", t.name)), s(c), V::I(i as i32 + 1)]);
                    b.row(r);
                }
            }
            b.finish()
        }
        "VIEWS" => {
            let mut b = per_table(&[("VIEW_DEFINITION", false)]);
            for (db, t) in &ctx.tables {
                if let Some(q) = &t.view {
                    let mut r = qualified(db, &t.name);
                    r.push(s(q));
                    b.row(r);
                }
            }
            b.finish()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    fn rows(name: &str, ctx: &CatalogContext) -> Vec<Vec<String>> {
        let b = table(name, ctx).unwrap();
        (0..b.num_rows())
            .map(|i| {
                b.columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn primary_keys_are_listed_as_constraints_and_their_columns_in_order() {
        let ctx = CatalogContext::from_ddl(
            &crate::Planner::new(),
            &[
                "CREATE TABLE t (a BIGINT, b STRING, c INT, PRIMARY KEY (c, a) NOT ENFORCED)",
                "CREATE TABLE u (x BIGINT)",
            ],
        )
        .unwrap();
        let constraints = rows("TABLE_CONSTRAINTS", &ctx);
        assert_eq!(constraints.len(), 1, "{constraints:?}");
        assert_eq!(constraints[0][4..], ["t", "PK_t", "PRIMARY KEY", "NO"]);
        let keys = rows("KEY_COLUMN_USAGE", &ctx);
        let cols: Vec<(&str, &str)> = keys
            .iter()
            .map(|r| (r[6].as_str(), r[7].as_str()))
            .collect();
        assert_eq!(cols, [("c", "1"), ("a", "2")]);
        let b = table("KEY_COLUMN_USAGE", &ctx).unwrap();
        assert!(b
            .column_by_name("ORDINAL_POSITION")
            .unwrap()
            .as_primitive_opt::<arrow::datatypes::Int32Type>()
            .is_some());
    }
}
