//! Flink SQL types and their Arrow counterparts.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, TimeUnit};
use serde::{Deserialize, Serialize};
use weir_api::{DataTypeDescriptor, RowFieldDescriptor};

use crate::CatalogError;

/// The system column every table has: the Kafka record timestamp.
pub const ROWTIME_COLUMN: &str = "$rowtime";

/// A Flink SQL data type. Nullability is carried by the column or field that
/// holds the type, except inside collections where it is on the element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SqlType {
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Char {
        length: u32,
    },
    Varchar {
        length: u32,
    },
    /// `STRING`, i.e. `VARCHAR(2147483647)`.
    String,
    Binary {
        length: u32,
    },
    Varbinary {
        length: u32,
    },
    /// `BYTES`, i.e. `VARBINARY(2147483647)`.
    Bytes,
    Date,
    Time {
        precision: u8,
    },
    Timestamp {
        precision: u8,
    },
    TimestampLtz {
        precision: u8,
    },
    IntervalDayTime,
    IntervalYearMonth,
    Array {
        element: Box<SqlType>,
        element_nullable: bool,
    },
    Map {
        key: Box<SqlType>,
        value: Box<SqlType>,
        value_nullable: bool,
    },
    Row {
        fields: Vec<RowField>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowField {
    pub name: String,
    pub data_type: SqlType,
    pub nullable: bool,
}

fn time_unit(precision: u8) -> TimeUnit {
    match precision {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// The session time zone Weir assumes when a statement sets none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// A `'sql.local-time-zone'` value as Arrow spells zones: an IANA name
/// (`Europe/Amsterdam`), `UTC`, or a fixed offset (`+08:00`, also written
/// `GMT+08:00` or `UTC+8` as Flink allows).
pub fn parse_time_zone(value: &str) -> Result<String, CatalogError> {
    let v = value.trim();
    let bad = || CatalogError::InvalidTimeZone(value.to_string());
    let offset = |rest: &str| -> Result<String, CatalogError> {
        let (sign, digits) = match rest.as_bytes().first() {
            Some(b'+') => ('+', &rest[1..]),
            Some(b'-') => ('-', &rest[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h, m),
            None if digits.len() <= 2 => (digits, "0"),
            None if digits.len() == 4 => digits.split_at(2),
            None => return Err(bad()),
        };
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 18 || m > 59 {
            return Err(bad());
        }
        Ok(format!("{sign}{h:02}:{m:02}"))
    };
    let upper = v.to_ascii_uppercase();
    let zone = if upper == "UTC" || upper == "GMT" || upper == "Z" {
        DEFAULT_TIME_ZONE.to_string()
    } else if let Some(rest) = upper
        .strip_prefix("GMT")
        .or_else(|| upper.strip_prefix("UTC"))
    {
        offset(rest)?
    } else if v.starts_with('+') || v.starts_with('-') {
        offset(v)?
    } else {
        v.to_string()
    };
    zone.parse::<arrow::array::timezone::Tz>()
        .map_err(|_| bad())?;
    Ok(zone)
}

/// `t` with every `TIMESTAMP_LTZ` in it (nested ones too) carrying time
/// zone `tz`: the same instants, shown and taken apart in that zone.
pub fn localize(t: &DataType, tz: &str) -> DataType {
    let field = |f: &Field| f.clone().with_data_type(localize(f.data_type(), tz));
    match t {
        DataType::Timestamp(u, Some(_)) => DataType::Timestamp(*u, Some(Arc::from(tz))),
        DataType::List(f) => DataType::List(Arc::new(field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(field(f))),
        DataType::Map(f, sorted) => DataType::Map(Arc::new(field(f)), *sorted),
        DataType::Struct(fs) => {
            DataType::Struct(fs.iter().map(|f| field(f)).collect::<Vec<_>>().into())
        }
        other => other.clone(),
    }
}

/// [`localize`] for every field of a schema.
pub fn localize_schema(schema: &arrow::datatypes::Schema, tz: &str) -> arrow::datatypes::Schema {
    arrow::datatypes::Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| {
                f.as_ref()
                    .clone()
                    .with_data_type(localize(f.data_type(), tz))
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    )
}

impl SqlType {
    /// The Arrow type that holds values of this SQL type in a `RecordBatch`.
    pub fn to_arrow(&self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Float => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Char { .. } | SqlType::Varchar { .. } | SqlType::String => DataType::Utf8,
            SqlType::Binary { .. } | SqlType::Varbinary { .. } | SqlType::Bytes => DataType::Binary,
            SqlType::Date => DataType::Date32,
            // `TIME` is `TIME(0)`: whole seconds, shown without a fraction.
            SqlType::Time { precision } => match time_unit(*precision) {
                u @ (TimeUnit::Second | TimeUnit::Millisecond) => DataType::Time32(u),
                u => DataType::Time64(u),
            },
            SqlType::Timestamp { precision } => DataType::Timestamp(time_unit(*precision), None),
            SqlType::TimestampLtz { precision } => {
                DataType::Timestamp(time_unit(*precision), Some(Arc::from("UTC")))
            }
            SqlType::IntervalDayTime => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::IntervalYearMonth => DataType::Interval(IntervalUnit::YearMonth),
            SqlType::Array {
                element,
                element_nullable,
            } => DataType::List(Arc::new(Field::new(
                "element",
                element.to_arrow(),
                *element_nullable,
            ))),
            SqlType::Map {
                key,
                value,
                value_nullable,
            } => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", key.to_arrow(), false),
                        Field::new("value", value.to_arrow(), *value_nullable),
                    ])),
                    false,
                )),
                false,
            ),
            SqlType::Row { fields } => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|f| Field::new(&f.name, f.data_type.to_arrow(), f.nullable))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// The SQL type Weir shows for an Arrow type computed by an expression.
    pub fn from_arrow(dt: &DataType) -> Result<SqlType, CatalogError> {
        Ok(match dt {
            DataType::Boolean => SqlType::Boolean,
            DataType::Int8 => SqlType::TinyInt,
            DataType::Int16 | DataType::UInt8 => SqlType::SmallInt,
            DataType::Int32 | DataType::UInt16 => SqlType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => SqlType::BigInt,
            DataType::Float16 | DataType::Float32 => SqlType::Float,
            DataType::Float64 => SqlType::Double,
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => SqlType::Decimal {
                precision: (*p).min(38),
                scale: *s,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::String,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => SqlType::Bytes,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(TimeUnit::Second) => SqlType::Time { precision: 0 },
            DataType::Time32(_) => SqlType::Time { precision: 3 },
            DataType::Time64(u) => SqlType::Time {
                precision: unit_precision(u),
            },
            DataType::Timestamp(u, None) => SqlType::Timestamp {
                precision: unit_precision(u),
            },
            DataType::Timestamp(u, Some(_)) => SqlType::TimestampLtz {
                precision: unit_precision(u),
            },
            DataType::Interval(IntervalUnit::YearMonth) => SqlType::IntervalYearMonth,
            DataType::Interval(_) | DataType::Duration(_) => SqlType::IntervalDayTime,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                SqlType::Array {
                    element: Box::new(SqlType::from_arrow(f.data_type())?),
                    element_nullable: f.is_nullable(),
                }
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => SqlType::Map {
                    key: Box::new(SqlType::from_arrow(kv[0].data_type())?),
                    value: Box::new(SqlType::from_arrow(kv[1].data_type())?),
                    value_nullable: kv[1].is_nullable(),
                },
                other => return Err(CatalogError::UnsupportedType(other.to_string())),
            },
            DataType::Struct(fields) => SqlType::Row {
                fields: fields
                    .iter()
                    .map(|f| {
                        Ok(RowField {
                            name: f.name().clone(),
                            data_type: SqlType::from_arrow(f.data_type())?,
                            nullable: f.is_nullable(),
                        })
                    })
                    .collect::<Result<_, CatalogError>>()?,
            },
            DataType::Null => SqlType::String,
            DataType::Dictionary(_, v) => SqlType::from_arrow(v)?,
            other => return Err(CatalogError::UnsupportedType(other.to_string())),
        })
    }

    /// The API's description of this type.
    pub fn descriptor(&self, nullable: bool) -> DataTypeDescriptor {
        let mut d = DataTypeDescriptor {
            nullable,
            ..Default::default()
        };
        let name = match self {
            SqlType::Boolean => "BOOLEAN",
            SqlType::TinyInt => "TINYINT",
            SqlType::SmallInt => "SMALLINT",
            SqlType::Int => "INTEGER",
            SqlType::BigInt => "BIGINT",
            SqlType::Float => "FLOAT",
            SqlType::Double => "DOUBLE",
            SqlType::Decimal { precision, scale } => {
                d.precision = Some(*precision as u32);
                d.scale = Some((*scale).max(0) as u32);
                "DECIMAL"
            }
            SqlType::Char { length } => {
                d.length = Some(*length);
                "CHAR"
            }
            SqlType::Varchar { length } => {
                d.length = Some(*length);
                "VARCHAR"
            }
            SqlType::String => {
                d.length = Some(i32::MAX as u32);
                "VARCHAR"
            }
            SqlType::Binary { length } => {
                d.length = Some(*length);
                "BINARY"
            }
            SqlType::Varbinary { length } => {
                d.length = Some(*length);
                "VARBINARY"
            }
            SqlType::Bytes => {
                d.length = Some(i32::MAX as u32);
                "VARBINARY"
            }
            SqlType::Date => "DATE",
            SqlType::Time { precision } => {
                d.precision = Some(*precision as u32);
                "TIME_WITHOUT_TIME_ZONE"
            }
            SqlType::Timestamp { precision } => {
                d.precision = Some(*precision as u32);
                "TIMESTAMP_WITHOUT_TIME_ZONE"
            }
            SqlType::TimestampLtz { precision } => {
                d.precision = Some(*precision as u32);
                "TIMESTAMP_WITH_LOCAL_TIME_ZONE"
            }
            SqlType::IntervalDayTime => "INTERVAL_DAY_TIME",
            SqlType::IntervalYearMonth => "INTERVAL_YEAR_MONTH",
            SqlType::Array {
                element,
                element_nullable,
            } => {
                d.element_type = Some(Box::new(element.descriptor(*element_nullable)));
                "ARRAY"
            }
            SqlType::Map {
                key,
                value,
                value_nullable,
            } => {
                d.key_type = Some(Box::new(key.descriptor(false)));
                d.value_type = Some(Box::new(value.descriptor(*value_nullable)));
                "MAP"
            }
            SqlType::Row { fields } => {
                d.fields = Some(
                    fields
                        .iter()
                        .map(|f| RowFieldDescriptor {
                            name: f.name.clone(),
                            field_type: f.data_type.descriptor(f.nullable),
                        })
                        .collect(),
                );
                "ROW"
            }
        };
        d.type_ = name.to_string();
        d
    }
}

fn unit_precision(u: &TimeUnit) -> u8 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Flink's own spelling of the type, as `SHOW CREATE TABLE` and `DESCRIBE` print it.
impl std::fmt::Display for SqlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::TinyInt => f.write_str("TINYINT"),
            SqlType::SmallInt => f.write_str("SMALLINT"),
            SqlType::Int => f.write_str("INT"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Float => f.write_str("FLOAT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::Char { length } => write!(f, "CHAR({length})"),
            SqlType::Varchar { length } => write!(f, "VARCHAR({length})"),
            SqlType::String => f.write_str("STRING"),
            SqlType::Binary { length } => write!(f, "BINARY({length})"),
            SqlType::Varbinary { length } => write!(f, "VARBINARY({length})"),
            SqlType::Bytes => f.write_str("BYTES"),
            SqlType::Date => f.write_str("DATE"),
            SqlType::Time { precision } => write!(f, "TIME({precision})"),
            SqlType::Timestamp { precision } => write!(f, "TIMESTAMP({precision})"),
            SqlType::TimestampLtz { precision } => write!(f, "TIMESTAMP_LTZ({precision})"),
            SqlType::IntervalDayTime => f.write_str("INTERVAL DAY TO SECOND"),
            SqlType::IntervalYearMonth => f.write_str("INTERVAL YEAR TO MONTH"),
            SqlType::Array {
                element,
                element_nullable,
            } => write!(f, "ARRAY<{element}{}>", not_null(*element_nullable)),
            SqlType::Map {
                key,
                value,
                value_nullable,
            } => write!(f, "MAP<{key}, {value}{}>", not_null(*value_nullable)),
            SqlType::Row { fields } => {
                f.write_str("ROW<")?;
                for (i, fld) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(
                        f,
                        "`{}` {}{}",
                        fld.name,
                        fld.data_type,
                        not_null(fld.nullable)
                    )?;
                }
                f.write_str(">")
            }
        }
    }
}

fn not_null(nullable: bool) -> &'static str {
    if nullable {
        ""
    } else {
        " NOT NULL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_types_map_to_arrow_and_back() {
        let t = SqlType::Row {
            fields: vec![
                RowField {
                    name: "tags".into(),
                    data_type: SqlType::Array {
                        element: Box::new(SqlType::String),
                        element_nullable: true,
                    },
                    nullable: true,
                },
                RowField {
                    name: "amount".into(),
                    data_type: SqlType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                    nullable: false,
                },
            ],
        };
        let back = SqlType::from_arrow(&t.to_arrow()).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            t.to_string(),
            "ROW<`tags` ARRAY<STRING>, `amount` DECIMAL(10, 2) NOT NULL>"
        );
    }

    #[test]
    fn time_zones_parse_as_flink_writes_them() {
        assert_eq!(parse_time_zone("UTC").unwrap(), "UTC");
        assert_eq!(parse_time_zone("Asia/Shanghai").unwrap(), "Asia/Shanghai");
        assert_eq!(parse_time_zone("GMT+08:00").unwrap(), "+08:00");
        assert_eq!(parse_time_zone("UTC-5").unwrap(), "-05:00");
        assert_eq!(parse_time_zone("+0530").unwrap(), "+05:30");
        for bad in ["Mars/Olympus", "GMT+25:00", "+8:99", ""] {
            assert!(parse_time_zone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn localize_retags_ltz_only_nested_too() {
        let t = SqlType::Row {
            fields: vec![
                RowField {
                    name: "a".into(),
                    data_type: SqlType::TimestampLtz { precision: 3 },
                    nullable: true,
                },
                RowField {
                    name: "b".into(),
                    data_type: SqlType::Timestamp { precision: 3 },
                    nullable: true,
                },
            ],
        };
        let DataType::Struct(fs) = localize(&t.to_arrow(), "+08:00") else {
            panic!()
        };
        assert_eq!(
            fs[0].data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("+08:00")))
        );
        assert_eq!(
            fs[1].data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
    }

    #[test]
    fn ltz_carries_utc_and_describes_as_local_time_zone() {
        let t = SqlType::TimestampLtz { precision: 3 };
        assert_eq!(
            t.to_arrow(),
            DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
        );
        assert_eq!(t.descriptor(false).type_, "TIMESTAMP_WITH_LOCAL_TIME_ZONE");
        assert_eq!(t.descriptor(false).precision, Some(3));
    }
}
