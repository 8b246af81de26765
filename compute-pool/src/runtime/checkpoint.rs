//! Checkpoints: a consistent snapshot of a statement's operator state and
//! of the source offsets that state covers, in an `object_store`.
//!
//! The worker's sink loop is the one place where state changes: it takes
//! every batch the sources send, in order, with the offsets after it. A
//! snapshot taken there between two batches is consistent without
//! barriers: the state holds exactly the records before the offsets. A
//! checkpoint is written as `chk-<n>.stage-<i>.arrow` (Arrow IPC streams)
//! and `chk-<n>.meta.json`, then `_latest` names it and the one before is
//! deleted; a crash half-way through leaves the previous one in force. An
//! exactly-once sink publishes a checkpoint only once the Kafka transaction
//! naming it has committed, and resumes from the one the transaction names
//! (see [`crate::connector::transaction`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// One stateful stage's state: rows of state, and small values beside them.
#[derive(Debug, Clone, Default)]
pub struct StageState {
    pub batches: Vec<RecordBatch>,
    pub meta: serde_json::Value,
}

/// One row of a [`TaggedRows`] batch: tag, time, key, row.
pub(crate) type TaggedRow<'b> = (i8, i64, Option<&'b [u8]>, Option<&'b [u8]>);

/// Held rows as one snapshot batch, the layout of operators that hold
/// rows by kind and time: a tag (what the row is to the operator), a time,
/// a key and a row (key and row in Arrow's row format, either may be
/// NULL).
#[derive(Default)]
pub(crate) struct TaggedRows<'a> {
    tags: Vec<i8>,
    times: Vec<i64>,
    keys: Vec<Option<&'a [u8]>>,
    rows: Vec<Option<&'a [u8]>>,
}

impl<'a> TaggedRows<'a> {
    pub fn push(&mut self, tag: i8, time: i64, key: Option<&'a [u8]>, row: Option<&'a [u8]>) {
        self.tags.push(tag);
        self.times.push(time);
        self.keys.push(key);
        self.rows.push(row);
    }

    pub fn into_batch(self) -> Result<RecordBatch, EngineError> {
        use arrow::array::{BinaryArray, Int64Array, Int8Array};
        use arrow::datatypes::{DataType, Field, Schema};
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("tag", DataType::Int8, false),
                Field::new("time", DataType::Int64, false),
                Field::new("key", DataType::Binary, true),
                Field::new("row", DataType::Binary, true),
            ])),
            vec![
                Arc::new(Int8Array::from(self.tags)),
                Arc::new(Int64Array::from(self.times)),
                Arc::new(BinaryArray::from(self.keys)),
                Arc::new(BinaryArray::from(self.rows)),
            ],
        )?)
    }

    /// The `(tag, time, key, row)`s of a batch [`TaggedRows::into_batch`]
    /// made; `what` names the operator in the error for another layout.
    pub fn read<'b>(b: &'b RecordBatch, what: &str) -> Result<Vec<TaggedRow<'b>>, EngineError> {
        use arrow::array::{Array, AsArray};
        if b.num_columns() != 4 {
            return Err(EngineError::Checkpoint(format!(
                "{what}'s checkpoint does not have its layout"
            )));
        }
        let tags = b.column(0).as_primitive::<arrow::datatypes::Int8Type>();
        let times = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        let (keys, rows) = (
            b.column(2).as_binary::<i32>(),
            b.column(3).as_binary::<i32>(),
        );
        Ok((0..b.num_rows())
            .map(|i| {
                (
                    tags.value(i),
                    times.value(i),
                    keys.is_valid(i).then(|| keys.value(i)),
                    rows.is_valid(i).then(|| rows.value(i)),
                )
            })
            .collect())
    }
}

/// A snapshot of a statement.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// topic -> partition -> next offset to read.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    pub stages: Vec<StageState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    id: u64,
    offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    stages: Vec<serde_json::Value>,
}

/// State batches as an Arrow IPC stream (empty for none). Every batch of a
/// stage shares its schema.
pub fn encode_batches(batches: &[RecordBatch]) -> Result<Vec<u8>, EngineError> {
    let mut buf = vec![];
    if let Some(first) = batches.first() {
        let mut w = StreamWriter::try_new(&mut buf, &first.schema())?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
}

/// The batches [`encode_batches`] wrote.
pub fn decode_batches(bytes: &[u8]) -> Result<Vec<RecordBatch>, EngineError> {
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    Ok(StreamReader::try_new(std::io::Cursor::new(bytes), None)?.collect::<Result<Vec<_>, _>>()?)
}

/// Where and how often one statement checkpoints.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    pub interval: Duration,
}

fn store_error(e: object_store::Error) -> EngineError {
    EngineError::Checkpoint(e.to_string())
}

impl Checkpointer {
    /// `prefix`: the statement's folder in `store` (one per statement
    /// incarnation, so a re-created statement starts afresh).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, interval: Duration) -> Checkpointer {
        Checkpointer {
            store,
            prefix: Path::from(prefix),
            interval,
        }
    }

    /// The checkpoints of a part of the statement (one repartition
    /// partition's state), in a folder of its own under the statement's.
    pub fn child(&self, name: &str) -> Checkpointer {
        Checkpointer {
            store: self.store.clone(),
            prefix: Path::from(format!("{}/{name}", self.prefix)),
            interval: self.interval,
        }
    }

    fn path(&self, rest: &str) -> Path {
        Path::from(format!("{}/{rest}", self.prefix))
    }

    /// The bytes of `rest` in the statement's folder; `None` if absent.
    async fn read(&self, rest: &str) -> Result<Option<impl AsRef<[u8]>>, EngineError> {
        match self.store.get(&self.path(rest)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(store_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The bytes of a file a complete checkpoint must have.
    async fn read_part(&self, rest: &str) -> Result<impl AsRef<[u8]>, EngineError> {
        self.read(rest)
            .await?
            .ok_or_else(|| EngineError::Checkpoint(format!("{}: missing", self.path(rest))))
    }

    /// The latest complete checkpoint, if any.
    pub async fn latest(&self) -> Result<Option<(u64, Snapshot)>, EngineError> {
        match self.latest_id().await? {
            0 => Ok(None),
            id => Ok(Some((id, self.load(id).await?))),
        }
    }

    /// The id `_latest` names; 0 for none.
    pub async fn latest_id(&self) -> Result<u64, EngineError> {
        let Some(latest) = self.read("_latest").await? else {
            return Ok(0);
        };
        std::str::from_utf8(latest.as_ref())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| EngineError::Checkpoint("_latest does not name a checkpoint".into()))
    }

    /// Checkpoint `id`, which must be complete.
    pub async fn load(&self, id: u64) -> Result<Snapshot, EngineError> {
        let meta = self.read_part(&format!("chk-{id}.meta.json")).await?;
        let meta: Meta = serde_json::from_slice(meta.as_ref())
            .map_err(|e| EngineError::Checkpoint(format!("chk-{id}.meta.json: {e}")))?;
        let mut stages = Vec::with_capacity(meta.stages.len());
        for (i, m) in meta.stages.into_iter().enumerate() {
            let bytes = self.read_part(&format!("chk-{id}.stage-{i}.arrow")).await?;
            stages.push(StageState {
                batches: decode_batches(bytes.as_ref())?,
                meta: m,
            });
        }
        Ok(Snapshot {
            offsets: meta.offsets,
            stages,
        })
    }

    /// Writes checkpoint `id`. It is not in force until
    /// [`Checkpointer::publish`] makes it the latest.
    pub async fn write(&self, id: u64, snapshot: &Snapshot) -> Result<(), EngineError> {
        for (i, stage) in snapshot.stages.iter().enumerate() {
            let buf = encode_batches(&stage.batches)?;
            self.store
                .put(
                    &self.path(&format!("chk-{id}.stage-{i}.arrow")),
                    PutPayload::from(buf),
                )
                .await
                .map_err(store_error)?;
        }
        let meta = Meta {
            id,
            offsets: snapshot.offsets.clone(),
            stages: snapshot.stages.iter().map(|s| s.meta.clone()).collect(),
        };
        let meta = serde_json::to_vec(&meta).expect("meta serializes");
        self.store
            .put(
                &self.path(&format!("chk-{id}.meta.json")),
                PutPayload::from(meta),
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Makes checkpoint `id`, written by [`Checkpointer::write`], the
    /// latest, and deletes the one before; `stages` is its number of
    /// stages.
    pub async fn publish(&self, id: u64, stages: usize) -> Result<(), EngineError> {
        self.store
            .put(
                &self.path("_latest"),
                PutPayload::from(id.to_string().into_bytes()),
            )
            .await
            .map_err(store_error)?;
        if id > 0 {
            let old = id - 1;
            for i in 0..stages {
                let _ = self
                    .store
                    .delete(&self.path(&format!("chk-{old}.stage-{i}.arrow")))
                    .await;
            }
            let _ = self
                .store
                .delete(&self.path(&format!("chk-{old}.meta.json")))
                .await;
        }
        Ok(())
    }
}
