//! The Terraform provider for Weir (`terraform-provider-weir`): Weir's
//! environments, Kafka cluster registrations, compute pools, Flink
//! statements, service accounts, API keys and role bindings as Terraform
//! resources, and tables, pools and environments as data sources.
//!
//! It owns the mapping between Terraform's plan/apply life cycle and Weir's
//! REST API: what changes in place and what replaces a resource, what a
//! plan may leave unknown, how long an apply waits for a statement. It
//! speaks to Weir only through [`weir_api::Client`], as any other client
//! does; it knows nothing of how Weir stores or runs anything. The plugin
//! protocol (gRPC, Terraform's protocol v6) is `tf-provider`'s.

mod common;
mod data_sources;
mod identity;
mod lifecycle;
mod org;
mod pool;
mod provider;
mod statement;

pub use provider::WeirProvider;
