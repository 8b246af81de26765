//! The exchange between a statement's source stage and its keyed stage: an
//! internal repartition topic in the statement's Kafka cluster.
//!
//! A source task hashes each row's key (Arrow's row format of the key
//! columns, through xxHash64, so that every worker of every machine agrees)
//! into one of the topic's `P` partitions and writes each partition's rows
//! of a batch as one record: an Arrow IPC stream of the rows, with their
//! row kinds as a last `$op` column when they are not all inserts. Beside
//! the rows it writes control records into every partition: its watermark,
//! that it is idle, and that its input ended. A keyed task owns a set of
//! the partitions and keeps its operator's state per partition, so that a
//! partition and its state can move to another task when the statement is
//! rescaled.
//!
//! Each record carries one header, [`HEADER`]: the record kind, the join
//! side it feeds, and the index of the source task that wrote it.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int8Array, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::row::{RowConverter, SortField};
use datafusion::execution::context::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use serde::{Deserialize, Serialize};
use weir_sql_gateway::stages::ExchangeKey;

use crate::operators::changelog::Changes;
use crate::runtime::checkpoint::{decode_batches, encode_batches};
use crate::EngineError;

/// The header naming an exchange record's kind, side and writer.
pub const HEADER: &str = "weir.exchange";

/// The repartition topic of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeSpec {
    pub topic: String,
    /// `P`: its partitions, the most tasks the keyed stage can have.
    pub partitions: u32,
}

/// What a task of a statement does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum TaskRole {
    /// The whole statement, in one task.
    #[default]
    Whole,
    /// Task `index` of `count` of the source stage: it reads the source
    /// partitions `p` with `p % count == index`, and writes into `exchange`
    /// (when the statement has a keyed stage) or its sink.
    Source {
        index: u32,
        count: u32,
        exchange: Option<ExchangeSpec>,
    },
    /// Task `index` of `count` of the keyed stage: it owns the partitions
    /// `k` of `exchange` with `k % count == index`; `upstream` source tasks
    /// write into them.
    Keyed {
        index: u32,
        count: u32,
        exchange: ExchangeSpec,
        upstream: u32,
    },
}

impl TaskRole {
    /// Whether the task reads source partition `p`.
    pub fn reads(&self, p: i32) -> bool {
        match self {
            TaskRole::Source { index, count, .. } => p.rem_euclid(*count as i32) as u32 == *index,
            _ => true,
        }
    }

    /// The repartition partitions a keyed task owns.
    pub fn owned(&self) -> Vec<u32> {
        match self {
            TaskRole::Keyed {
                index,
                count,
                exchange,
                ..
            } => (0..exchange.partitions)
                .filter(|k| k % count == *index)
                .collect(),
            _ => vec![],
        }
    }

    /// The task's name within its statement (`""` for a whole statement).
    pub fn suffix(&self) -> String {
        match self {
            TaskRole::Whole => String::new(),
            TaskRole::Source { index, .. } => format!("s1-t{index}"),
            TaskRole::Keyed { index, .. } => format!("s2-t{index}"),
        }
    }
}

/// The kind of an exchange record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Rows (the value is an Arrow IPC stream).
    Rows,
    /// The writer's watermark (the value: 8 bytes, little-endian ms).
    Watermark,
    /// The writer's sources are idle: it does not hold the watermark back.
    Idle,
    /// The writer's input ended: nothing more comes from it.
    End,
}

/// An exchange record's header value: kind, side (1: a join's right
/// input) and the writing task's index.
pub fn header(kind: RecordKind, right: bool, writer: u32) -> [u8; 6] {
    let k = match kind {
        RecordKind::Rows => 0,
        RecordKind::Watermark => 1,
        RecordKind::Idle => 2,
        RecordKind::End => 3,
    };
    let w = writer.to_le_bytes();
    [k, u8::from(right), w[0], w[1], w[2], w[3]]
}

/// Reads a header value [`header`] wrote.
pub fn read_header(h: &[u8]) -> Result<(RecordKind, bool, u32), EngineError> {
    let bad = || EngineError::Plan("a record of a repartition topic has a malformed header".into());
    if h.len() != 6 {
        return Err(bad());
    }
    let kind = match h[0] {
        0 => RecordKind::Rows,
        1 => RecordKind::Watermark,
        2 => RecordKind::Idle,
        3 => RecordKind::End,
        _ => return Err(bad()),
    };
    Ok((
        kind,
        h[1] == 1,
        u32::from_le_bytes([h[2], h[3], h[4], h[5]]),
    ))
}

const OP_COLUMN: &str = "$op";

/// Changes as an exchange record's value.
pub fn encode_changes(c: &Changes) -> Result<Vec<u8>, EngineError> {
    let batch = match &c.ops {
        None => c.batch.clone(),
        Some(ops) => {
            let mut fields: Vec<Field> = c
                .batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(OP_COLUMN, DataType::Int8, false));
            let mut cols = c.batch.columns().to_vec();
            cols.push(ops.clone() as Arc<dyn Array>);
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?
        }
    };
    encode_batches(&[batch])
}

/// The changes [`encode_changes`] wrote.
pub fn decode_changes(bytes: &[u8]) -> Result<Changes, EngineError> {
    let mut batches = decode_batches(bytes)?;
    if batches.len() != 1 {
        return Err(EngineError::Plan(
            "a record of a repartition topic does not hold one batch".into(),
        ));
    }
    let batch = batches.remove(0);
    let schema = batch.schema();
    match schema.fields().last() {
        Some(f) if f.name() == OP_COLUMN => {
            let n = batch.num_columns() - 1;
            let ops: Int8Array = batch.column(n).as_primitive().clone();
            Ok(Changes {
                batch: batch.project(&(0..n).collect::<Vec<_>>())?,
                ops: Some(Arc::new(ops)),
            })
        }
        _ => Ok(Changes::inserts(batch)),
    }
}

/// Splits rows by the partition their key hashes to.
pub struct Partitioner {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    converter: Option<RowConverter>,
    partitions: u32,
}

impl Partitioner {
    pub fn new(key: &ExchangeKey, partitions: u32) -> Result<Partitioner, EngineError> {
        let props = ExecutionProps::new();
        let exprs = key
            .exprs
            .iter()
            .map(|e| create_physical_expr(e, &key.schema, &props, &Default::default()))
            .collect::<Result<_, _>>()?;
        Ok(Partitioner {
            exprs,
            converter: None,
            partitions: partitions.max(1),
        })
    }

    /// Each partition's rows of `c`, in their order, partitions ascending.
    pub fn split(&mut self, c: &Changes) -> Result<Vec<(u32, Changes)>, EngineError> {
        let n = c.num_rows();
        let keys = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&c.batch).and_then(|v| v.into_array(n)))
            .collect::<Result<Vec<_>, _>>()?;
        let converter = match &mut self.converter {
            Some(conv) => conv,
            None => self
                .converter
                .insert(crate::operators::group::row_converter(
                    keys.iter()
                        .map(|k| SortField::new(k.data_type().clone()))
                        .collect(),
                    "a repartition key",
                )?),
        };
        let rows = converter.convert_columns(&keys)?;
        let mut by: Vec<Vec<u32>> = vec![vec![]; self.partitions as usize];
        for (i, row) in rows.iter().enumerate() {
            by[partition_of(row.as_ref(), self.partitions) as usize].push(i as u32);
        }
        let mut out = vec![];
        for (k, idx) in by.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            if idx.len() == n {
                out.push((k as u32, c.clone()));
                continue;
            }
            let idx = UInt32Array::from(idx);
            let batch = take_record_batch(&c.batch, &idx)?;
            let ops = match &c.ops {
                Some(o) => Some(Arc::new(
                    arrow::compute::take(o.as_ref(), &idx, None)?
                        .as_primitive()
                        .clone(),
                )),
                None => None,
            };
            out.push((k as u32, Changes { batch, ops }));
        }
        Ok(out)
    }
}

/// The partition of a key in Arrow's row format: stable across processes,
/// machines and releases (xxHash64 with seed 0).
pub fn partition_of(row: &[u8], partitions: u32) -> u32 {
    (twox_hash::XxHash64::oneshot(0, row) % partitions as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::col;

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("v", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("a"),
                    Some("c"),
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn changes_round_trip_with_and_without_kinds() {
        let plain = Changes::inserts(batch());
        let back = decode_changes(&encode_changes(&plain).unwrap()).unwrap();
        assert_eq!(back.batch, plain.batch);
        assert!(back.ops.is_none());
        let kinds = Changes {
            batch: batch(),
            ops: Some(Arc::new(Int8Array::from(vec![0, 1, 2, 3, 0]))),
        };
        let back = decode_changes(&encode_changes(&kinds).unwrap()).unwrap();
        assert_eq!(back.batch, kinds.batch);
        assert_eq!(back.ops.unwrap().values(), kinds.ops.unwrap().values());
        assert!(decode_changes(b"not arrow").is_err());
    }

    #[test]
    fn rows_of_one_key_meet_in_one_partition() {
        let schema = Arc::new(DFSchema::try_from(batch().schema().as_ref().clone()).unwrap());
        let key = ExchangeKey {
            exprs: vec![col("k")],
            schema,
        };
        let mut p = Partitioner::new(&key, 8).unwrap();
        let parts = p.split(&Changes::inserts(batch())).unwrap();
        let total: usize = parts.iter().map(|(_, c)| c.num_rows()).sum();
        assert_eq!(total, 5);
        // Both `a` rows land together, in their order.
        let with_a: Vec<_> = parts
            .iter()
            .filter(|(_, c)| {
                c.batch
                    .column(0)
                    .as_string::<i32>()
                    .iter()
                    .any(|v| v == Some("a"))
            })
            .collect();
        assert_eq!(with_a.len(), 1);
        let vals = with_a[0]
            .1
            .batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert!(vals.values().windows(2).all(|w| w[0] < w[1]));
        // The same key hashes the same in another partitioner (another task).
        let again = Partitioner::new(&key, 8)
            .unwrap()
            .split(&Changes::inserts(batch()))
            .unwrap();
        let ks = |v: &Vec<(u32, Changes)>| v.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(ks(&parts), ks(&again));
    }

    #[test]
    fn the_partition_of_a_key_is_fixed() {
        // Pinned: every worker, on every machine and release, must agree,
        // or rows of one key meet in different partitions after an upgrade.
        let got: Vec<u32> = [&b""[..], b"weir", b"a longer key, 32 bytes or more.."]
            .iter()
            .map(|k| partition_of(k, 32))
            .collect();
        // xxHash64 of "" is 0xEF46DB3751D8E999, 25 modulo 32.
        assert_eq!(got, vec![25, 14, 7]);
        assert_eq!(partition_of(b"weir", 1), 0);
    }

    #[test]
    fn roles_split_partitions_without_overlap() {
        let x = ExchangeSpec {
            topic: "t".into(),
            partitions: 8,
        };
        let owned: Vec<Vec<u32>> = (0..3)
            .map(|i| {
                TaskRole::Keyed {
                    index: i,
                    count: 3,
                    exchange: x.clone(),
                    upstream: 2,
                }
                .owned()
            })
            .collect();
        let mut all: Vec<u32> = owned.concat();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        let src = |i| TaskRole::Source {
            index: i,
            count: 2,
            exchange: None,
        };
        assert!(src(0).reads(4) && !src(1).reads(4) && src(1).reads(7));
        let h = header(RecordKind::Watermark, true, 7);
        assert_eq!(read_header(&h).unwrap(), (RecordKind::Watermark, true, 7));
        assert!(read_header(&[9, 0, 0, 0, 0, 0]).is_err());
    }
}
