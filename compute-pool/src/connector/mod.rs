//! Kafka and the formats: the rdkafka consumer and producer settings
//! (`kafka`), exactly-once sinks (a transaction per checkpoint),
//! JSON decoding straight into Arrow ([`decode`], with the fast path of
//! `fastjson`), encoding of sink records ([`encode`]), and the results
//! wire format of the REST API ([`wire`]).

pub mod decode;
pub mod encode;
pub(crate) mod fastjson;
pub(crate) mod kafka;
pub mod registry;
pub(crate) mod transaction;
pub mod wire;
