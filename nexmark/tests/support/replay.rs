//! What the Nexmark tests and bench share: the events as a consumer polls
//! them, and how two multisets of rows differ.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use weir_compute_pool::{MemoryPoll, MemoryRecord};
use weir_nexmark::queries::side_input;
use weir_nexmark::Event;

/// One poll per run of events of one table, as a consumer would see them;
/// `topic` names a table's topic.
pub fn polls(events: &[Event], topic: impl Fn(&str) -> String) -> Vec<MemoryPoll> {
    let mut polls: Vec<MemoryPoll> = vec![];
    let mut offsets: HashMap<&str, i64> = HashMap::new();
    for e in events {
        let offset = offsets.entry(e.table()).or_default();
        let record = MemoryRecord {
            partition: 0,
            offset: *offset,
            timestamp_ms: e.timestamp_ms(),
            key: None,
            value: Some(e.to_json()),
            headers: vec![],
        };
        *offset += 1;
        let topic = topic(e.table());
        match polls.last_mut() {
            Some(p) if p.topic == topic => p.records.push(record),
            _ => polls.push(MemoryPoll {
                topic,
                records: vec![record],
                at_ms: e.timestamp_ms(),
            }),
        }
    }
    polls
}

/// q13's side input as one poll at processing and record time `at_ms`,
/// read before the events as Flink's suite has it on disk before the
/// query starts.
pub fn side_input_poll(at_ms: i64) -> MemoryPoll {
    MemoryPoll {
        topic: "side_input".to_string(),
        at_ms,
        records: side_input()
            .enumerate()
            .map(|(i, (key, value))| MemoryRecord {
                partition: 0,
                offset: i as i64,
                timestamp_ms: at_ms,
                key: Some(key.into_bytes()),
                value: Some(value.into_bytes()),
                headers: vec![],
            })
            .collect(),
    }
}

/// A few rows `want` has and `got` lacks, and the other way round.
pub fn differences(want: &BTreeMap<String, usize>, got: &BTreeMap<String, usize>) -> String {
    let only = |a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>| -> Vec<String> {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .take(5)
            .cloned()
            .collect()
    };
    format!(
        "  missing: {:#?}\n  extra: {:#?}",
        only(want, got),
        only(got, want)
    )
}
