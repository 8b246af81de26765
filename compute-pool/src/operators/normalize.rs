//! Reading an upsert table as an update stream: Flink's `ChangelogNormalize`.
//!
//! An upsert topic holds, per primary key, the latest row (a record) or its
//! deletion (a tombstone). Right above such a source this operator keeps the
//! last row of every key and turns each record into the changes a full
//! changelog needs: `+I` for a key's first row, `-U` of the old row and `+U`
//! of the new one for a replacement (nothing when the row is unchanged), and
//! `-D` of the old row for a tombstone (nothing for a key it does not hold).
//! The decoder marks tombstones in the batch's last column
//! ([`crate::connector::decode::TOMBSTONE_COLUMN`]), which is dropped here.
//!
//! A retract table needs no state: each record's kind is in its `__op`
//! header, which the decoder puts in the last column
//! ([`crate::connector::decode::OP_COLUMN`]); here it becomes the rows' kinds.

use crate::hash::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, BinaryArray, Int8Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use crate::operators::changelog::{Changes, DELETE, INSERT, UPDATE_AFTER, UPDATE_BEFORE};
use crate::operators::group::row_converter;
use crate::runtime::checkpoint::StageState;
use crate::EngineError;

pub struct ChangelogNormalize {
    /// The primary key's columns in the source's schema.
    keys: Vec<usize>,
    key_rows: RowConverter,
    rows: RowConverter,
    output: SchemaRef,
    state: HashMap<Box<[u8]>, Box<[u8]>>,
    bytes: usize,
    retract: bool,
}

impl std::fmt::Debug for ChangelogNormalize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChangelogNormalize({} keys)", self.state.len())
    }
}

impl ChangelogNormalize {
    /// `schema`: the source's (without the tombstone column); `keys`: the
    /// primary key's columns in it.
    pub fn new(
        schema: &Schema,
        keys: &[usize],
        retract: bool,
    ) -> Result<ChangelogNormalize, EngineError> {
        let converter = |fields: Vec<SortField>| row_converter(fields, "an upsert table");
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(ChangelogNormalize {
            keys: keys.to_vec(),
            key_rows: converter(
                keys.iter()
                    .map(|k| SortField::new(types[*k].clone()))
                    .collect(),
            )?,
            rows: converter(types.into_iter().map(SortField::new).collect())?,
            output: Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            state: HashMap::default(),
            bytes: 0,
            retract,
        })
    }

    pub fn process(&mut self, c: &Changes) -> Result<Vec<Changes>, EngineError> {
        let batch = &c.batch;
        let width = batch.num_columns();
        if self.retract {
            let ops = batch
                .column_by_name(crate::connector::decode::OP_COLUMN)
                .ok_or_else(|| {
                    EngineError::Plan("a retract source's batch has no row kind column".into())
                })?
                .as_primitive::<arrow::datatypes::Int8Type>()
                .clone();
            let batch = RecordBatch::try_new_with_options(
                self.output.clone(),
                batch.columns()[..width - 1].to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )?;
            return Ok(vec![Changes {
                batch,
                ops: Some(Arc::new(ops)),
            }]);
        }
        let tombstones = batch
            .column_by_name(crate::connector::decode::TOMBSTONE_COLUMN)
            .ok_or_else(|| {
                EngineError::Plan("an upsert source's batch has no tombstone column".into())
            })?
            .as_boolean()
            .clone();
        let columns = &batch.columns()[..width - 1];
        let keys = self.key_rows.convert_columns(
            &self
                .keys
                .iter()
                .map(|k| columns[*k].clone())
                .collect::<Vec<_>>(),
        )?;
        let rows = self.rows.convert_columns(columns)?;
        let mut out: Vec<(Box<[u8]>, i8)> = vec![];
        for i in 0..batch.num_rows() {
            let key = keys.row(i);
            if tombstones.value(i) {
                if let Some(old) = self.state.remove(key.data()) {
                    self.bytes -= key.data().len() + old.len();
                    out.push((old, DELETE));
                }
                continue;
            }
            let row = rows.row(i);
            match self.state.get_mut(key.data()) {
                Some(old) if **old == *row.data() => {}
                Some(old) => {
                    self.bytes = self.bytes + row.data().len() - old.len();
                    let before = std::mem::replace(old, row.data().into());
                    out.push((before, UPDATE_BEFORE));
                    out.push((row.data().into(), UPDATE_AFTER));
                }
                None => {
                    self.bytes += key.data().len() + row.data().len();
                    self.state.insert(key.data().into(), row.data().into());
                    out.push((row.data().into(), INSERT));
                }
            }
        }
        if out.is_empty() {
            return Ok(vec![]);
        }
        let parser = self.rows.parser();
        let cols = self
            .rows
            .convert_rows(out.iter().map(|(r, _)| parser.parse(r)))?;
        let batch = RecordBatch::try_new_with_options(
            self.output.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(out.len())),
        )?;
        let ops = out.iter().any(|(_, o)| *o != INSERT).then(|| {
            Arc::new(Int8Array::from(
                out.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            ))
        });
        Ok(vec![Changes { batch, ops }])
    }

    /// Keys held.
    pub fn state_size(&self) -> usize {
        self.state.len()
    }

    /// Bytes of keys and rows held, and the hash table's slots.
    pub fn state_bytes(&self) -> usize {
        self.bytes + self.state.capacity() * (std::mem::size_of::<(Box<[u8]>, Box<[u8]>)>() + 1)
    }

    /// Every key and its last row.
    pub fn snapshot(&self) -> Result<StageState, EngineError> {
        if self.state.is_empty() {
            return Ok(StageState::default());
        }
        let (keys, rows): (Vec<&[u8]>, Vec<&[u8]>) =
            self.state.iter().map(|(k, r)| (&**k, &**r)).unzip();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("key", DataType::Binary, false),
                Field::new("row", DataType::Binary, false),
            ])),
            vec![
                Arc::new(BinaryArray::from(keys)),
                Arc::new(BinaryArray::from(rows)),
            ],
        )?;
        Ok(StageState {
            batches: vec![batch],
            meta: serde_json::Value::Null,
        })
    }

    pub fn restore(&mut self, state: &StageState) -> Result<(), EngineError> {
        self.state.clear();
        self.bytes = 0;
        for b in &state.batches {
            if b.num_columns() != 2 {
                return Err(EngineError::Checkpoint(
                    "an upsert source's checkpoint does not have its layout".into(),
                ));
            }
            let (keys, rows) = (
                b.column(0).as_binary::<i32>(),
                b.column(1).as_binary::<i32>(),
            );
            for i in 0..b.num_rows() {
                self.bytes += keys.value(i).len() + rows.value(i).len();
                self.state
                    .insert(keys.value(i).into(), rows.value(i).into());
            }
        }
        Ok(())
    }
}
