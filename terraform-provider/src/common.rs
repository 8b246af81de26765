//! What every resource shares: the configured connection, schema
//! shorthands, and Weir's errors as Terraform diagnostics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::Value;
use tf_provider::Diagnostics;
use weir_api::{Client, ClientError, Credentials};

/// A string attribute: known, null or unknown.
pub type Str = Value<String>;
/// A map of strings whose values may be unknown at plan time.
pub type StrMap = Value<BTreeMap<String, Value<String>>>;

/// Where and as whom the provider talks to Weir.
#[derive(Clone, Debug)]
pub struct Conn {
    pub endpoint: String,
    pub organization: String,
    pub environment: String,
    pub compute_pool: Option<String>,
    pub principal: Option<String>,
    pub credentials: Option<Credentials>,
}

impl Conn {
    /// A client bound to `env` (the provider's environment when `None`).
    pub fn client(&self, env: Option<&str>) -> Client {
        Client::new(
            &self.endpoint,
            &self.organization,
            env.unwrap_or(&self.environment),
            self.credentials.clone(),
        )
    }
}

/// The connection, set by `configure` and read by every resource.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<Option<Conn>>>);

impl Shared {
    pub fn set(&self, conn: Conn) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
    }

    pub fn get(&self, diags: &mut Diagnostics) -> Option<Conn> {
        let conn = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        if conn.is_none() {
            diags.root_error_short(
                "The Weir provider is not configured: its endpoint or credentials are unknown",
            );
        }
        conn
    }
}

pub fn string() -> AttributeType {
    AttributeType::String
}

pub fn attr(ty: AttributeType, c: AttributeConstraint, description: &str) -> Attribute {
    Attribute {
        attr_type: ty,
        description: Description::plain(description),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

pub fn required(ty: AttributeType, description: &str) -> Attribute {
    attr(ty, AttributeConstraint::Required, description)
}

pub fn optional(ty: AttributeType, description: &str) -> Attribute {
    attr(ty, AttributeConstraint::Optional, description)
}

pub fn optional_computed(ty: AttributeType, description: &str) -> Attribute {
    attr(ty, AttributeConstraint::OptionalComputed, description)
}

pub fn computed(ty: AttributeType, description: &str) -> Attribute {
    attr(ty, AttributeConstraint::Computed, description)
}

pub fn sensitive(mut a: Attribute) -> Attribute {
    a.sensitive = true;
    a
}

pub fn schema(description: &str, attrs: Vec<(&str, Attribute)>) -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            attributes: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<HashMap<_, _>>(),
            blocks: Default::default(),
            description: Description::plain(description),
            deprecated: false,
        },
    }
}

/// Records a failed call as an error diagnostic: `summary` says what was
/// being done, the detail is Weir's own message (with the SQL's line and
/// column when Weir gave them).
pub fn api_error(diags: &mut Diagnostics, summary: impl Into<String>, e: &ClientError) {
    let detail = match e {
        ClientError::Api { status, body } => {
            let mut parts = Vec::new();
            for item in &body.errors {
                let mut s = item.detail.clone();
                if let Some(src) = &item.source {
                    if let (Some(l), Some(c)) = (src.line, src.column) {
                        s.push_str(&format!(" (line {l}, column {c})"));
                    }
                }
                parts.push(s);
            }
            let hint = match status.as_u16() {
                401 => "\n\nWeir refused the API key: check api_key and api_secret (or WEIR_API_KEY and WEIR_API_SECRET).",
                403 => "\n\nThe API key is valid but its principal lacks a role for this; bind one with weir_role_binding.",
                _ => "",
            };
            format!("Weir answered {status}: {}{hint}", parts.join("; "))
        }
        ClientError::Connect { url, source } => format!(
            "Cannot reach Weir at {url}: {}.\n\nCheck the provider's endpoint (or WEIR_URL) and that Weir is running.",
            weir_api::with_causes(source)
        ),
        other => other.to_string(),
    };
    diags.root_error(summary.into(), detail);
}

pub fn is_not_found(e: &ClientError) -> bool {
    e.status().is_some_and(|s| s.as_u16() == 404)
}

/// A known, non-empty string of a `Value`, or `None`.
pub fn known(v: &Str) -> Option<&str> {
    match v {
        Value::Value(s) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

/// `""` as null: Weir answers empty strings where Terraform's configuration
/// leaves an optional attribute out.
pub fn non_empty(s: &str) -> Str {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Value(s.to_string())
    }
}

/// An optional+computed attribute left out of the configuration is unknown
/// until the apply says what the server chose.
pub fn unknown_if_null<T>(v: &mut Value<T>) {
    if v.is_null() {
        *v = Value::Unknown;
    }
}

/// The provider's environment where the configuration names none (unknown
/// while the provider itself is not configured yet).
pub fn default_environment(conn: Option<&Conn>, env: &mut Str) {
    if env.is_null() {
        *env = conn
            .map(|c| Value::Value(c.environment.clone()))
            .unwrap_or(Value::Unknown);
    }
}

/// What an import read: the resource, or an error that there is no `what`.
pub fn imported<T>(diags: &mut Diagnostics, what: &str, read: Result<Option<T>, ()>) -> Option<T> {
    match read {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            diags.root_error_short(format!("There is no {what} to import"));
            None
        }
        Err(()) => None,
    }
}

/// GET `path` as the resource's new state; `Ok(None)` on 404.
pub async fn get_json(
    conn: &Conn,
    diags: &mut Diagnostics,
    what: &str,
    path: &str,
) -> Result<Option<serde_json::Value>, ()> {
    match conn.client(None).json("GET", path, None).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => {
            api_error(diags, format!("Reading {what}"), &e);
            Err(())
        }
    }
}

pub async fn delete_json(
    conn: &Conn,
    diags: &mut Diagnostics,
    what: &str,
    path: &str,
) -> Option<()> {
    match conn.client(None).json("DELETE", path, None).await {
        Ok(_) => Some(()),
        Err(e) if is_not_found(&e) => Some(()),
        Err(e) => {
            api_error(diags, format!("Deleting {what}"), &e);
            None
        }
    }
}

/// `method path` with `body`, Weir's answer as JSON; a failure is an error
/// diagnostic saying what was being done (`summary`).
pub async fn send_json(
    conn: &Conn,
    diags: &mut Diagnostics,
    summary: impl Into<String>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Option<serde_json::Value> {
    match conn.client(None).json(method, path, body).await {
        Ok(v) => Some(v),
        Err(e) => {
            api_error(diags, summary, &e);
            None
        }
    }
}

/// Splits an import id `env/id` (or a bare `id`, in the provider's
/// environment).
pub fn env_and_id<'a>(conn: &'a Conn, import: &'a str) -> (&'a str, &'a str) {
    match import.split_once('/') {
        Some((env, id)) => (env, id),
        None => (conn.environment.as_str(), import),
    }
}

/// A map whose every value is known, or `None` (null or unknown anywhere).
pub fn known_map(m: &StrMap) -> Option<BTreeMap<String, String>> {
    match m {
        Value::Value(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::Value(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

pub fn to_map(m: BTreeMap<String, String>) -> StrMap {
    Value::Value(m.into_iter().map(|(k, v)| (k, Value::Value(v))).collect())
}
