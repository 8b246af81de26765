//! Weir's wire contract: the JSON shapes of the REST API and a typed HTTP
//! client for them.
//!
//! This crate owns the request and response types that the server, the CLI,
//! the web workspace and the Terraform provider all speak, so that no shape is
//! defined twice. It does not know how a statement runs or where anything is
//! stored. Start with [`Statement`], [`StatementResult`] and [`Client`].
//!
//! The types derive `utoipa::ToSchema`: the server's OpenAPI document
//! (`api/openapi.json`, served at `/openapi.json`) describes them from these
//! definitions, so the client and the document cannot disagree.

mod client;
mod error;
mod pool;
mod resources;
mod statement;

pub use client::{BearerToken, Client, ClientError, Credentials};
pub use error::{with_causes, ErrorBody, ErrorItem, ErrorSource};
pub use pool::*;
pub use resources::*;
pub use statement::*;

/// The `api_version` of the statement resources.
pub const SQL_API_VERSION: &str = "sql/v1";
