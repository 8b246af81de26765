//! The Nexmark benchmark as Weir runs it: a deterministic generator of the
//! auction site's people, auctions and bids ([`Generator`]), the three
//! tables' DDL, and the queries' Flink SQL ([`queries`]).
//!
//! It owns the data and the SQL text only. It does not run anything: the
//! engine runs the queries in its tests and benchmarks, and the CLI writes
//! the events to a broker as JSON. The reference results the tests compare
//! against are computed there, from the events, without Weir's engine.

mod generator;
pub mod queries;

pub use generator::{Auction, Bid, Event, Generator, GeneratorConfig, Person};
