//! The catalog: what tables exist, what their columns are, and the store
//! that keeps every control-plane record.
//!
//! It owns the model of organizations → environments (SQL catalogs) → Kafka
//! clusters (SQL databases) → tables (topics), the mapping of Flink SQL types
//! to Arrow types ([`SqlType`]), the SQL store over SQLite or PostgreSQL
//! ([`Store`]), and the Kafka side of the catalog: creating and deleting
//! topics and discovering the topics created outside Weir ([`KafkaAdmin`],
//! [`sync_topics`]). It does not parse SQL (that is `sql-gateway`) and does not
//! run statements (that is `compute-pool`).
//!
//! It also owns the schema registry's model ([`registry`]: schema types,
//! validity, compatibility, and schemas to columns), its records, and the
//! client of an environment's external Confluent-compatible registry
//! ([`registry::SchemaRegistry`] is either).
//!
//! Read [`TableDef`] and [`Store`] first.

mod error;
mod kafka;
pub mod proto;
pub mod registry;
mod registry_client;
pub mod secrets;
mod store;
mod table;
mod types;

pub use error::CatalogError;
pub use kafka::{
    sync_topics, KafkaAdmin, KafkaConnection, SaslCredentials, SyncReport, SASL_MECHANISMS,
};
pub use registry::sync_schemas;
pub use store::{
    ApiKeyInfo, ApiKeyRecord, AuditRecord, ClusterRecord, EnvironmentRecord, IdentityPoolRecord,
    IdentityProviderRecord, PoolRecord, Registered, RoleBindingRecord, ServiceAccountRecord,
    SpecUpdate, StatementFilter, StatementRecord, Store, UsageFilter, UsageRecord,
};
pub use table::{
    rowtime_field, ColumnKind, ColumnSpec, Distribution, TableDef, TableOrigin, WatermarkSpec,
};
pub use types::{
    localize, localize_schema, parse_time_zone, RowField, SqlType, DEFAULT_TIME_ZONE,
    ROWTIME_COLUMN,
};

/// Milliseconds since the Unix epoch, the timestamp unit of the store.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
