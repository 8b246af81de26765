//! The stateful and update-stream operators of a stage: each takes a batch
//! of changes ([`changelog`]) and returns the changes it emits, and keeps
//! its state in a form [`crate::runtime::checkpoint`] can snapshot.
//!
//! Watermarks and window aggregation are in [`window`], session windows in
//! [`session`], group aggregation in [`group`], regular joins in [`join`],
//! Top-N and deduplication in [`topn`], upsert tables read as update
//! streams in [`normalize`], OVER aggregation in [`over`], temporal joins
//! in [`temporal`], `MATCH_RECOGNIZE` in [`matching`].

pub mod changelog;
pub mod group;
pub mod join;
pub mod matching;
pub mod normalize;
pub mod over;
pub mod session;
pub mod temporal;
pub mod topn;
pub mod window;
