//! Checkpoints: a consistent snapshot of a statement's operator state and
//! of the source offsets that state covers, in an `object_store`.
//!
//! The worker's sink loop is the one place where state changes: it takes
//! every batch the sources send, in order, with the offsets after it. A
//! snapshot taken there between two batches is consistent without
//! barriers: the state holds exactly the records before the offsets. A
//! checkpoint is written as `chk-<n>.stage-<i>.arrow` (Arrow IPC streams)
//! and `chk-<n>.meta.json`, then `_latest` names it and the one before is
//! deleted; a crash half-way through leaves the previous one in force.

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
        let Some(latest) = self.read("_latest").await? else {
            return Ok(None);
        };
        let id: u64 = std::str::from_utf8(latest.as_ref())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| EngineError::Checkpoint("_latest does not name a checkpoint".into()))?;
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
        Ok(Some((
            id,
            Snapshot {
                offsets: meta.offsets,
                stages,
            },
        )))
    }

    /// Writes checkpoint `id`, then makes it the latest; the one before is
    /// deleted.
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
        self.store
            .put(
                &self.path("_latest"),
                PutPayload::from(id.to_string().into_bytes()),
            )
            .await
            .map_err(store_error)?;
        if id > 0 {
            let old = id - 1;
            for i in 0..snapshot.stages.len() {
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
