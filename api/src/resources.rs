//! The organization's resources as the managed service's v2 APIs shape
//! them: organizations and environments (`org/v2`), Kafka clusters
//! (`cmk/v2`), service accounts, API keys, role bindings, identity
//! providers and pools (`iam/v2`), the audit log, costs (`billing/v1`) and
//! the schema registry setting. The server builds its answers from these
//! types, so the OpenAPI document describes what it sends.

use serde::{Deserialize, Serialize};

/// Where a resource lives and what it is called in role bindings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ResourceMeta {
    /// Its URL.
    #[serde(rename = "self")]
    pub self_: String,
    /// Its CRN, as role bindings name it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_name: String,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A page of a list. Weir answers every list in one page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ListPage {
    /// The URL of this (the first) page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// The URL of the next page; `null` on the last.
    #[serde(default)]
    pub next: Option<String>,
    pub total_size: usize,
}

/// A list of resources of one kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ResourceList<T: utoipa::ToSchema> {
    pub api_version: String,
    /// `<Kind>List`.
    pub kind: String,
    pub metadata: ListPage,
    pub data: Vec<T>,
}

/// A reference by id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IdRef {
    pub id: String,
}

/// A reference by id and kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TypedRef {
    pub id: String,
    /// `User`, `ServiceAccount`, `Environment`, `Organization`.
    pub kind: String,
}

/// An organization (`org/v2`): a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Organization {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub display_name: String,
}

/// An environment (`org/v2`): a SQL catalog of Kafka clusters, pools and
/// statements.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Environment {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub display_name: String,
}

/// A registered Kafka cluster (`cmk/v2`): a SQL database of its topics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KafkaCluster {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub spec: KafkaClusterSpec,
    pub status: KafkaClusterStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KafkaClusterSpec {
    /// The SQL database name of its topics' tables.
    pub display_name: String,
    /// `host:port[,host:port...]`.
    pub kafka_bootstrap_endpoint: String,
    pub availability: String,
    pub cloud: String,
    pub region: String,
    pub config: KindOnly,
    pub environment: IdRef,
    /// The SASL mechanism and user it is reached with; the password is
    /// never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SaslUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KindOnly {
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SaslUser {
    pub mechanism: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KafkaClusterStatus {
    /// `PROVISIONED`.
    pub phase: String,
}

/// A service account (`iam/v2`): a principal for statements and
/// automation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ServiceAccount {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub display_name: String,
    pub description: String,
}

/// An API key (`iam/v2`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApiKey {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub spec: ApiKeySpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApiKeySpec {
    pub display_name: String,
    pub description: String,
    /// Whose key it is.
    pub owner: TypedRef,
    /// What it reaches: its organization, or one environment.
    pub resource: TypedRef,
    /// Only in the answer that makes the key; never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A role binding (`iam/v2`): a principal holds a role on the resources a
/// CRN pattern names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RoleBinding {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    /// `User:<id>`.
    pub principal: String,
    pub role_name: String,
    pub crn_pattern: String,
}

/// An OAuth/OIDC identity provider (`iam/v2`) whose tokens Weir accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IdentityProvider {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub display_name: String,
    pub description: String,
    /// `ENABLED`.
    pub state: String,
    pub issuer: String,
    pub jwks_uri: String,
    pub audience: String,
}

/// An identity pool (`iam/v2`): which tokens of a provider map to one
/// principal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IdentityPool {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub metadata: ResourceMeta,
    pub display_name: String,
    pub description: String,
    pub identity_claim: String,
    /// A CEL-subset filter on the token's claims.
    pub filter: String,
    /// `User:<pool id>`: the principal its tokens act as.
    pub principal: String,
    pub identity_provider: IdRef,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339, UTC.
    pub time: String,
    pub principal: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    /// `allowed`, `denied` (401/403) or `failed` (another error).
    pub result: String,
    pub request_id: String,
    pub detail: String,
}

/// One day's cost of one compute pool (`billing/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Cost {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub start_date: String,
    pub end_date: String,
    pub granularity: String,
    pub product: String,
    pub line_type: String,
    pub network_access_type: String,
    pub unit: String,
    pub quantity: f64,
    pub price: f64,
    pub original_amount: f64,
    pub discount_amount: f64,
    pub amount: f64,
    pub resource: CostResource,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CostResource {
    pub id: String,
    pub display_name: String,
    pub environment: IdRef,
}

/// The environment's schema registry: the built-in one, or the external
/// one it syncs from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SchemaRegistrySetting {
    /// `SchemaRegistry`.
    pub kind: String,
    pub environment: String,
    pub built_in: bool,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether a password is kept (it is never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_set: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

/// An answer with nothing to say.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Empty {}

// ---- the schema registry (Confluent's wire shapes) --------------------------

/// A schema another one uses, by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RegistryReference {
    pub name: String,
    pub subject: String,
    pub version: i64,
}

/// A schema by id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RegistrySchema {
    pub schema: String,
    /// `PROTOBUF` or `JSON`; left out for Avro.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<RegistryReference>>,
}

/// A version of a subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RegistrySchemaVersion {
    pub subject: String,
    pub version: i64,
    pub id: i64,
    pub schema: String,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<RegistryReference>>,
}

/// The id a registered schema has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RegisteredId {
    pub id: i64,
}

/// A subject and version that use a schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SubjectVersionRef {
    pub subject: String,
    pub version: i64,
}

/// The answer of a compatibility check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CompatibilityResult {
    pub is_compatible: bool,
    /// Why not, when asked with `verbose=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<String>>,
}

/// A compatibility level as read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CompatibilityLevel {
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: String,
}

/// A compatibility level as set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CompatibilityUpdate {
    pub compatibility: String,
}

/// The registry's mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RegistryMode {
    pub mode: String,
}
