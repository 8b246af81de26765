//! One partition's log: record batches as the producer sent them, with
//! their base offset rewritten, appended to one file (or kept in memory),
//! and an in-memory index of where each batch starts.
//!
//! Batches are never decoded on the hot path: a produce checks the batch
//! header and its CRC, a fetch copies a byte range. That is what makes the
//! broker cost per batch, not per record.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::BrokerError;

/// The Kafka error codes a produce can answer with.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REQUEST: i16 = 42;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const INVALID_RECORD: i16 = 87;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
}

/// The fixed part of a v2 record batch, up to and including its record count.
const HEADER: usize = 61;
/// `baseOffset` and `batchLength`: what precedes the length a batch declares.
const LOG_OVERHEAD: usize = 12;
/// The largest batch accepted (Kafka's `message.max.bytes` is about 1 MiB;
/// this is generous for a development broker).
pub const MAX_BATCH_BYTES: usize = 16 << 20;
/// How many recent batches per producer are remembered to recognise a retry.
const PRODUCER_WINDOW: usize = 5;

/// What the header of a v2 record batch says.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader {
    pub len: usize,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `b`; `Err` with the Kafka error code
    /// when it is not a whole, well-formed v2 batch.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, i16> {
        if b.len() < HEADER {
            return Err(code::CORRUPT_MESSAGE);
        }
        let declared = i32::from_be_bytes(b[8..12].try_into().expect("4 bytes"));
        if declared < (HEADER - LOG_OVERHEAD) as i32 {
            return Err(code::CORRUPT_MESSAGE);
        }
        let len = LOG_OVERHEAD + declared as usize;
        if len > MAX_BATCH_BYTES {
            return Err(code::MESSAGE_TOO_LARGE);
        }
        if b.len() < len {
            return Err(code::CORRUPT_MESSAGE);
        }
        if b[16] != 2 {
            return Err(code::UNSUPPORTED_FOR_MESSAGE_FORMAT);
        }
        let i16_at = |i: usize| i16::from_be_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        let i32_at = |i: usize| i32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let i64_at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let last_offset_delta = i32_at(23);
        if last_offset_delta < 0 || i32_at(57) < 0 {
            return Err(code::CORRUPT_MESSAGE);
        }
        Ok(BatchHeader {
            len,
            last_offset_delta,
            max_timestamp: i64_at(35),
            attributes: i16_at(21),
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
        })
    }

    /// Whether the CRC-32C the batch carries matches its content.
    pub fn crc_ok(&self, b: &[u8]) -> bool {
        let stored = u32::from_be_bytes(b[17..21].try_into().expect("4 bytes"));
        crc32c::crc32c(&b[21..self.len]) == stored
    }

    fn last_sequence(&self) -> i32 {
        self.base_sequence.wrapping_add(self.last_offset_delta)
    }
}

/// Where one batch lies in the log.
#[derive(Debug, Clone, Copy)]
struct Entry {
    base: i64,
    last: i64,
    max_timestamp: i64,
    pos: u64,
    len: u32,
}

/// An idempotent producer's recent batches on this partition.
#[derive(Debug, Default)]
struct ProducerState {
    epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first.
    recent: VecDeque<(i32, i32, i64)>,
}

enum Store {
    File { file: File, path: PathBuf },
    Memory(Vec<Bytes>),
}

/// One partition's log.
pub struct PartitionLog {
    store: Store,
    index: Vec<Entry>,
    next: i64,
    end: u64,
    producers: HashMap<i64, ProducerState>,
    /// Appended since the last `sync`.
    dirty: bool,
}

/// What an append did.
pub enum Appended {
    /// Written at this base offset.
    New(i64),
    /// A retry of a batch already written at this base offset.
    Duplicate(i64),
}

impl PartitionLog {
    pub fn memory() -> PartitionLog {
        PartitionLog {
            store: Store::Memory(Vec::new()),
            index: Vec::new(),
            next: 0,
            end: 0,
            producers: HashMap::new(),
            dirty: false,
        }
    }

    /// Opens (or creates) the log at `path`, rebuilding the index and the
    /// producers' state from it. A batch cut short by a crash at the end of
    /// the file is cut off: it was never acknowledged.
    pub fn open(path: &Path) -> Result<PartitionLog, BrokerError> {
        let io = |e| BrokerError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        // Indexed as read, then given the file as its store.
        let mut log = PartitionLog::memory();
        let size = file.metadata().map_err(io)?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut file);
        let mut pos = 0u64;
        let mut buf = Vec::new();
        loop {
            let mut head = [0u8; LOG_OVERHEAD];
            if pos + LOG_OVERHEAD as u64 > size || reader.read_exact(&mut head).is_err() {
                break;
            }
            let declared = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
            let len = LOG_OVERHEAD as u64 + declared.max(0) as u64;
            if declared < (HEADER - LOG_OVERHEAD) as i32 || pos + len > size {
                break;
            }
            buf.clear();
            buf.extend_from_slice(&head);
            buf.resize(len as usize, 0);
            if reader.read_exact(&mut buf[LOG_OVERHEAD..]).is_err() {
                break;
            }
            let Ok(h) = BatchHeader::parse(&buf) else {
                break;
            };
            let base = i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes"));
            log.record(&h, base, pos);
            pos += len;
        }
        drop(reader);
        if pos < size {
            tracing::warn!(
                log = %path.display(),
                kept = pos,
                size,
                "cutting off an incomplete batch at the end of the log (written, never acknowledged)"
            );
            file.set_len(pos).map_err(io)?;
        }
        log.end = pos;
        log.store = Store::File {
            file,
            path: path.to_path_buf(),
        };
        Ok(log)
    }

    /// Indexes a batch written at `base`, `pos`, and remembers its producer.
    fn record(&mut self, h: &BatchHeader, base: i64, pos: u64) {
        let last = base + h.last_offset_delta as i64;
        self.index.push(Entry {
            base,
            last,
            max_timestamp: h.max_timestamp,
            pos,
            len: h.len as u32,
        });
        self.next = last + 1;
        if h.producer_id >= 0 {
            let p = self.producers.entry(h.producer_id).or_default();
            if h.producer_epoch != p.epoch {
                p.epoch = h.producer_epoch;
                p.recent.clear();
            }
            if p.recent.len() == PRODUCER_WINDOW {
                p.recent.pop_front();
            }
            p.recent
                .push_back((h.base_sequence, h.last_sequence(), base));
        }
    }

    /// The next offset to be written: the high watermark.
    pub fn next_offset(&self) -> i64 {
        self.next
    }

    /// The first offset still in the log.
    pub fn start_offset(&self) -> i64 {
        self.index.first().map_or(self.next, |e| e.base)
    }

    /// The largest producer id this log has seen.
    pub fn max_producer_id(&self) -> i64 {
        self.producers.keys().copied().max().unwrap_or(-1)
    }

    /// Appends one batch (the bytes of exactly one batch, as parsed into
    /// `h`); checks an idempotent producer's sequence first.
    pub fn append(&mut self, h: &BatchHeader, batch: &[u8]) -> Result<Appended, i16> {
        if h.producer_id >= 0 {
            if let Some(p) = self.producers.get(&h.producer_id) {
                if h.producer_epoch < p.epoch {
                    return Err(code::INVALID_PRODUCER_EPOCH);
                }
                if h.producer_epoch == p.epoch {
                    if let Some(&(_, _, base)) = p.recent.iter().find(|(first, last, _)| {
                        *first == h.base_sequence && *last == h.last_sequence()
                    }) {
                        return Ok(Appended::Duplicate(base));
                    }
                    let expected = p.recent.back().map_or(0, |r| r.1.wrapping_add(1));
                    if h.base_sequence != expected {
                        return Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER);
                    }
                }
            }
        }
        let base = self.next;
        let mut owned = batch[..h.len].to_vec();
        owned[0..8].copy_from_slice(&base.to_be_bytes());
        // partitionLeaderEpoch: this broker is the only leader there is.
        owned[12..16].copy_from_slice(&0i32.to_be_bytes());
        let pos = self.end;
        match &mut self.store {
            Store::File { file, path } => {
                if let Err(e) = file.write_all(&owned) {
                    tracing::error!(log = %path.display(), error = %e, "could not append to the log");
                    // Whatever part was written is cut off again, so that the
                    // log stays a sequence of whole batches.
                    let _ = file.set_len(pos);
                    return Err(code::KAFKA_STORAGE_ERROR);
                }
                self.dirty = true;
            }
            Store::Memory(batches) => batches.push(Bytes::from(owned)),
        }
        self.end += h.len as u64;
        self.record(h, base, pos);
        Ok(Appended::New(base))
    }

    /// The batches holding `offset` and after, at most about `max_bytes` of
    /// them but always the first whole; `None` when there is nothing at or
    /// after `offset` yet.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>, BrokerError> {
        let first = self.index.partition_point(|e| e.last < offset);
        if first == self.index.len() {
            return Ok(None);
        }
        let mut last = first;
        let mut bytes = self.index[first].len as usize;
        while last + 1 < self.index.len() && bytes + self.index[last + 1].len as usize <= max_bytes
        {
            last += 1;
            bytes += self.index[last].len as usize;
        }
        match &self.store {
            Store::File { file, path } => {
                let mut buf = vec![0u8; bytes];
                file.read_exact_at(&mut buf, self.index[first].pos)
                    .map_err(|e| BrokerError::io(path, e))?;
                Ok(Some(Bytes::from(buf)))
            }
            Store::Memory(batches) => {
                if first == last {
                    return Ok(Some(batches[first].clone()));
                }
                let mut buf = Vec::with_capacity(bytes);
                for b in &batches[first..=last] {
                    buf.extend_from_slice(b);
                }
                Ok(Some(Bytes::from(buf)))
            }
        }
    }

    /// The base offset of the first batch whose records may have a
    /// timestamp at or after `ts`, and that batch (to look inside).
    pub fn batch_for_time(&self, ts: i64) -> Result<Option<(i64, Bytes)>, BrokerError> {
        let Some(e) = self.index.iter().find(|e| e.max_timestamp >= ts) else {
            return Ok(None);
        };
        Ok(self.read(e.base, 0)?.map(|b| (e.base, b)))
    }

    /// The largest timestamp in the log and the batch holding it.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.index
            .iter()
            .max_by_key(|e| e.max_timestamp)
            .map(|e| (e.max_timestamp, e.last))
    }

    /// Flushes what was appended to the disk.
    pub fn sync(&mut self) -> Result<(), BrokerError> {
        if let (Store::File { file, path }, true) = (&self.store, self.dirty) {
            file.sync_data().map_err(|e| BrokerError::io(path, e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch of `n` (opaque) records from `producer` at `seq`, with a
    /// correct CRC.
    fn batch(producer: i64, epoch: i16, seq: i32, n: i32, ts: i64) -> Vec<u8> {
        let records = vec![7u8; 10 * n as usize];
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&producer.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn append(log: &mut PartitionLog, b: &[u8]) -> Result<Appended, i16> {
        let h = BatchHeader::parse(b)?;
        assert!(h.crc_ok(b));
        log.append(&h, b)
    }

    fn base(a: Result<Appended, i16>) -> (bool, i64) {
        match a.expect("appended") {
            Appended::New(b) => (true, b),
            Appended::Duplicate(b) => (false, b),
        }
    }

    #[test]
    fn batches_get_consecutive_offsets_and_are_read_back_from_any_offset() {
        let mut log = PartitionLog::memory();
        assert_eq!(base(append(&mut log, &batch(-1, -1, -1, 3, 10))), (true, 0));
        assert_eq!(base(append(&mut log, &batch(-1, -1, -1, 2, 20))), (true, 3));
        assert_eq!(log.next_offset(), 5);
        let from4 = log.read(4, 1 << 20).unwrap().unwrap();
        // The batch holding offset 4 starts at 3.
        assert_eq!(i64::from_be_bytes(from4[0..8].try_into().unwrap()), 3);
        let all = log.read(0, 1 << 20).unwrap().unwrap();
        assert_eq!(
            all.len(),
            batch(-1, -1, -1, 3, 0).len() + batch(-1, -1, -1, 2, 0).len()
        );
        assert!(log.read(5, 1 << 20).unwrap().is_none());
    }

    #[test]
    fn a_retried_batch_is_acknowledged_at_its_first_offset_and_not_written_again() {
        let mut log = PartitionLog::memory();
        base(append(&mut log, &batch(7, 0, 0, 4, 1)));
        base(append(&mut log, &batch(7, 0, 4, 4, 1)));
        assert_eq!(base(append(&mut log, &batch(7, 0, 0, 4, 1))), (false, 0));
        assert_eq!(base(append(&mut log, &batch(7, 0, 4, 4, 1))), (false, 4));
        assert_eq!(log.next_offset(), 8);
        // A gap in the sequence is refused, an older epoch too.
        assert_eq!(
            append(&mut log, &batch(7, 0, 12, 1, 1)).err(),
            Some(code::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        base(append(&mut log, &batch(7, 1, 0, 1, 1)));
        assert_eq!(
            append(&mut log, &batch(7, 0, 8, 1, 1)).err(),
            Some(code::INVALID_PRODUCER_EPOCH)
        );
    }

    #[test]
    fn a_corrupt_batch_is_refused() {
        let mut b = batch(-1, -1, -1, 2, 0);
        let last = b.len() - 1;
        b[last] ^= 1;
        let h = BatchHeader::parse(&b).unwrap();
        assert!(!h.crc_ok(&b));
        b[16] = 1;
        assert_eq!(
            BatchHeader::parse(&b).err(),
            Some(code::UNSUPPORTED_FOR_MESSAGE_FORMAT)
        );
        assert_eq!(
            BatchHeader::parse(&b[..30]).err(),
            Some(code::CORRUPT_MESSAGE)
        );
    }

    #[test]
    fn reopening_cuts_off_a_torn_batch_and_remembers_producers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        {
            let mut log = PartitionLog::open(&path).unwrap();
            for seq in [0, 5, 10] {
                base(append(&mut log, &batch(9, 0, seq, 5, 100 + seq as i64)));
            }
            log.sync().unwrap();
        }
        // A crash in the middle of writing a fourth batch.
        let torn = batch(9, 0, 15, 5, 0);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(f);
        let mut log = PartitionLog::open(&path).unwrap();
        assert_eq!(log.next_offset(), 15);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            3 * batch(9, 0, 0, 5, 0).len()
        );
        // The producer's retry of the third batch is known; the fourth is new.
        assert_eq!(base(append(&mut log, &batch(9, 0, 10, 5, 0))), (false, 10));
        assert_eq!(base(append(&mut log, &torn)), (true, 15));
        assert_eq!(log.batch_for_time(105).unwrap().map(|(b, _)| b), Some(5));
    }
}
