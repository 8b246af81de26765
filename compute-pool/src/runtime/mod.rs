//! What runs a compiled statement: the plan compiled into branches and
//! stages of operators ([`pipeline`]), snapshots of their state and
//! offsets ([`checkpoint`]), the in-memory runner of tests and benchmarks
//! ([`memory`]), and the bounded results buffer behind a `SELECT`
//! (`results`).

pub mod checkpoint;
pub mod exchange;
pub mod memory;
pub mod pipeline;
pub(crate) mod results;
