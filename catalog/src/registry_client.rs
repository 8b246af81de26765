//! Where an environment's schemas live: Weir's built-in registry (the
//! store), or an external Confluent-compatible Schema Registry reached over
//! its REST API with optional basic auth. [`SchemaRegistry`] is the one
//! handle the catalog sync, `CREATE TABLE` and statements' sources and sinks
//! use, so none of them knows which it is.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::registry::{
    register_schema, RegisterError, RegisteredSchema, SchemaReference, SchemaType, SubjectVersion,
};
use crate::{CatalogError, Store};

/// An environment's external registry settings, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// The registry's base URL (`http://host:8081`, or a path below which
    /// `/subjects` and `/schemas` are served).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// PEM certificates to trust for an `https` URL besides the machine's
    /// own trust store (a registry behind a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

/// How long one request to an external registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many referenced schemas are fetched to resolve one sync's
/// references (a guard against a registry that answers in cycles).
const MAX_REFERENCE_FETCHES: usize = 1000;

/// An environment's schema registry.
#[derive(Clone)]
pub enum SchemaRegistry {
    /// Weir's own, in the store.
    BuiltIn {
        store: Store,
        org: String,
        env: String,
    },
    External(ExternalRegistry),
}

impl SchemaRegistry {
    /// The registry the environment uses.
    pub async fn of(store: &Store, org: &str, env: &str) -> Result<SchemaRegistry, CatalogError> {
        Ok(match store.environment_registry(org, env).await? {
            Some(config) => SchemaRegistry::External(ExternalRegistry::new(&config)?),
            None => SchemaRegistry::BuiltIn {
                store: store.clone(),
                org: org.to_string(),
                env: env.to_string(),
            },
        })
    }

    /// The schema with global id `id`, if the registry has it.
    pub async fn schema(&self, id: i64) -> Result<Option<RegisteredSchema>, CatalogError> {
        match self {
            SchemaRegistry::BuiltIn { store, org, env } => {
                store.registry_schema(org, env, id).await
            }
            SchemaRegistry::External(r) => r.schema(id).await,
        }
    }

    /// The schema with id `id` and the texts of the schemas it references,
    /// transitively (what a worker needs to compile a Protobuf schema that
    /// imports others).
    pub async fn resolved(&self, id: i64) -> Result<Option<RegisteredSchema>, CatalogError> {
        let Some(mut s) = self.schema(id).await? else {
            return Ok(None);
        };
        let mut todo = s.references.clone();
        let mut seen = HashSet::new();
        while let Some(r) = todo.pop() {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            if seen.len() > MAX_REFERENCE_FETCHES {
                return Err(CatalogError::Registry {
                    url: "the schema registry".into(),
                    reason: format!(
                        "schema {id} references more than {MAX_REFERENCE_FETCHES} schemas"
                    ),
                });
            }
            if let Some(v) = self.version(&r.subject, r.version).await? {
                todo.extend(v.schema.references.iter().cloned());
                s.reference_texts.push((r.name.clone(), v.schema.schema));
            }
        }
        Ok(Some(s))
    }

    /// A subject's live version (`-1`: the latest).
    pub async fn version(
        &self,
        subject: &str,
        version: i64,
    ) -> Result<Option<SubjectVersion>, CatalogError> {
        match self {
            SchemaRegistry::BuiltIn { store, org, env } => {
                let versions = store.registry_versions(org, env, subject, false).await?;
                Ok(if version == -1 {
                    versions.into_iter().last()
                } else {
                    versions.into_iter().find(|v| v.version == version)
                })
            }
            SchemaRegistry::External(r) => {
                let v = if version == -1 {
                    "latest".to_string()
                } else {
                    version.to_string()
                };
                r.version(subject, &v).await
            }
        }
    }

    /// Registers `text` under `subject` (its existing id when the subject
    /// has it already), checked against the subject's compatibility level.
    pub async fn register(
        &self,
        subject: &str,
        ty: SchemaType,
        text: &str,
        references: &[SchemaReference],
    ) -> Result<i64, RegisterError> {
        match self {
            SchemaRegistry::BuiltIn { store, org, env } => {
                register_schema(store, org, env, subject, ty, text, references).await
            }
            SchemaRegistry::External(r) => r.register(subject, ty, text, references).await,
        }
    }

    /// Soft-deletes every live version of `subject` (what the registry's
    /// `DELETE /subjects/{subject}` does); the versions it deleted, none
    /// when the subject has none.
    pub async fn delete_subject(&self, subject: &str) -> Result<Vec<i64>, CatalogError> {
        match self {
            SchemaRegistry::BuiltIn { store, org, env } => {
                store.registry_soft_delete(org, env, subject, None).await
            }
            SchemaRegistry::External(r) => r.delete_subject(subject).await,
        }
    }

    /// Every subject's latest live version, and the versions their
    /// references name (to resolve the references' texts).
    pub async fn latest(&self) -> Result<(Vec<SubjectVersion>, Vec<SubjectVersion>), CatalogError> {
        match self {
            SchemaRegistry::BuiltIn { store, org, env } => {
                let latest = store.registry_latest(org, env).await?;
                let all = if latest.iter().any(|v| !v.schema.references.is_empty()) {
                    store.registry_all(org, env).await?
                } else {
                    vec![]
                };
                Ok((latest, all))
            }
            SchemaRegistry::External(r) => r.latest().await,
        }
    }
}

/// A Confluent-compatible Schema Registry reached over HTTP.
#[derive(Clone)]
pub struct ExternalRegistry {
    base: Url,
    username: Option<String>,
    password: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for ExternalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("ExternalRegistry")
            .field("url", &self.base.as_str())
            .field("username", &self.username)
            .finish()
    }
}

/// One schema as the registry's REST API returns it.
#[derive(Deserialize)]
struct WireSchema {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<SchemaReference>,
    schema: String,
}

impl WireSchema {
    fn registered(
        self,
        id: i64,
    ) -> Result<(Option<String>, Option<i64>, RegisteredSchema), String> {
        let ty = match self.schema_type.as_deref() {
            None | Some("") => SchemaType::Avro,
            Some(t) => SchemaType::parse(t).ok_or_else(|| format!("unknown schemaType '{t}'"))?,
        };
        Ok((
            self.subject,
            self.version,
            RegisteredSchema {
                id: self.id.unwrap_or(id),
                schema_type: ty,
                schema: self.schema,
                references: self.references,
                reference_texts: vec![],
            },
        ))
    }
}

impl ExternalRegistry {
    pub fn new(config: &RegistryConfig) -> Result<ExternalRegistry, CatalogError> {
        let bad = |reason: String| CatalogError::Registry {
            url: config.url.clone(),
            reason,
        };
        let base = Url::parse(&config.url).map_err(|e| bad(format!("not a URL: {e}")))?;
        match base.scheme() {
            "http" | "https" => {}
            s => return Err(bad(format!("scheme '{s}' is not http or https"))),
        }
        if base.cannot_be_a_base() || base.query().is_some() {
            return Err(bad("use a base URL without a query".into()));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tls_built_in_root_certs(true);
        if let Some(pem) = config
            .ca_certificate
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            if base.scheme() != "https" {
                return Err(bad("ca_certificate applies to https URLs only".into()));
            }
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| bad(format!("ca_certificate is not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(bad(
                    "ca_certificate holds no '-----BEGIN CERTIFICATE-----' block".into(),
                ));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(ExternalRegistry {
            base,
            username: config.username.clone().filter(|u| !u.is_empty()),
            password: config.password.clone(),
            http,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .expect("checked in new()")
            .pop_if_empty()
            .extend(segments);
        u
    }

    fn error(&self, reason: impl Into<String>) -> CatalogError {
        CatalogError::Registry {
            url: self.base.to_string(),
            reason: reason.into(),
        }
    }

    /// One request: its status and JSON body (`Value::Null` when none).
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), CatalogError> {
        let mut r = self.http.request(method, url.clone()).header(
            "accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(u) = &self.username {
            r = r.basic_auth(u, self.password.as_deref());
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(b.to_string());
        }
        let resp = r.send().await.map_err(|e| {
            self.error(format!(
                "request to {}: {}",
                url.path(),
                weir_api::with_causes(&e)
            ))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.error(format!("reading the answer to {}: {e}", url.path())))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.error(format!(
                "it refused the credentials ({status}); check the username and password set for the environment"
            )));
        }
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    /// The registry's own message of an error body.
    fn message(v: &Value) -> String {
        v.get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    }

    fn unexpected(&self, what: &str, status: StatusCode, v: &Value) -> CatalogError {
        self.error(format!("{what}: {status}: {}", Self::message(v)))
    }

    /// Checks that the registry answers and takes the credentials.
    pub async fn check(&self) -> Result<usize, CatalogError> {
        let (status, v) = self
            .call(Method::GET, self.url(&["subjects"]), None)
            .await?;
        match v.as_array() {
            Some(a) if status.is_success() => Ok(a.len()),
            _ => Err(self.unexpected("listing subjects", status, &v)),
        }
    }

    pub async fn schema(&self, id: i64) -> Result<Option<RegisteredSchema>, CatalogError> {
        let (status, v) = self
            .call(
                Method::GET,
                self.url(&["schemas", "ids", &id.to_string()]),
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.unexpected(&format!("reading schema {id}"), status, &v));
        }
        let w: WireSchema = serde_json::from_value(v)
            .map_err(|e| self.error(format!("schema {id} is not a schema: {e}")))?;
        w.registered(id)
            .map(|(_, _, s)| Some(s))
            .map_err(|e| self.error(format!("schema {id}: {e}")))
    }

    pub async fn register(
        &self,
        subject: &str,
        ty: SchemaType,
        text: &str,
        references: &[SchemaReference],
    ) -> Result<i64, RegisterError> {
        let mut body = json!({"schema": text});
        if ty != SchemaType::Avro {
            body["schemaType"] = json!(ty.as_str());
        }
        if !references.is_empty() {
            body["references"] = json!(references);
        }
        let (status, v) = self
            .call(
                Method::POST,
                self.url(&["subjects", subject, "versions"]),
                Some(body),
            )
            .await?;
        match status.as_u16() {
            200..=299 => v.get("id").and_then(Value::as_i64).ok_or_else(|| {
                RegisterError::Store(self.error(format!(
                    "registering under '{subject}' answered without an id: {v}"
                )))
            }),
            409 => Err(RegisterError::Incompatible(Self::message(&v))),
            422 => Err(RegisterError::Invalid(Self::message(&v))),
            _ => Err(RegisterError::Store(self.unexpected(
                &format!("registering under '{subject}'"),
                status,
                &v,
            ))),
        }
    }

    pub async fn delete_subject(&self, subject: &str) -> Result<Vec<i64>, CatalogError> {
        let (status, v) = self
            .call(Method::DELETE, self.url(&["subjects", subject]), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(vec![]);
        }
        if !status.is_success() {
            return Err(self.unexpected(&format!("deleting '{subject}'"), status, &v));
        }
        serde_json::from_value(v)
            .map_err(|e| self.error(format!("deleting '{subject}' answered: {e}")))
    }

    async fn version(
        &self,
        subject: &str,
        version: &str,
    ) -> Result<Option<SubjectVersion>, CatalogError> {
        let (status, v) = self
            .call(
                Method::GET,
                self.url(&["subjects", subject, "versions", version]),
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.unexpected(
                &format!("reading {subject} version {version}"),
                status,
                &v,
            ));
        }
        let w: WireSchema = serde_json::from_value(v)
            .map_err(|e| self.error(format!("{subject} version {version}: {e}")))?;
        self.subject_version(w, Some(subject)).map(Some)
    }

    fn subject_version(
        &self,
        w: WireSchema,
        subject: Option<&str>,
    ) -> Result<SubjectVersion, CatalogError> {
        let (s, version, schema) = w.registered(0).map_err(|e| self.error(e))?;
        let subject = s
            .or_else(|| subject.map(str::to_string))
            .ok_or_else(|| self.error("a schema came without its subject"))?;
        if schema.id == 0 {
            return Err(self.error(format!("'{subject}' came without a schema id")));
        }
        Ok(SubjectVersion {
            subject,
            version: version.unwrap_or(0),
            deleted: false,
            schema,
        })
    }

    /// Every subject's latest version, in one request where the registry
    /// serves `GET /schemas?latestOnly=true` (Confluent Platform 7 and
    /// later, and Weir's), else subject by subject; then the versions their
    /// references name.
    pub async fn latest(&self) -> Result<(Vec<SubjectVersion>, Vec<SubjectVersion>), CatalogError> {
        let mut url = self.url(&["schemas"]);
        url.query_pairs_mut().append_pair("latestOnly", "true");
        let (status, v) = self.call(Method::GET, url, None).await?;
        let latest = match v.as_array() {
            Some(items) if status.is_success() => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let w: WireSchema = serde_json::from_value(item.clone())
                        .map_err(|e| self.error(format!("a listed schema: {e}")))?;
                    out.push(self.subject_version(w, None)?);
                }
                out
            }
            _ => {
                let (status, v) = self
                    .call(Method::GET, self.url(&["subjects"]), None)
                    .await?;
                let subjects: Vec<String> = match v.as_array() {
                    Some(_) if status.is_success() => serde_json::from_value(v)
                        .map_err(|e| self.error(format!("the subject list: {e}")))?,
                    _ => return Err(self.unexpected("listing subjects", status, &v)),
                };
                let mut out = vec![];
                for s in subjects {
                    // A subject deleted between the two requests is gone.
                    out.extend(self.version(&s, "latest").await?);
                }
                out
            }
        };
        // The versions references name, transitively.
        let mut refs = vec![];
        let mut seen: HashSet<(String, i64)> = HashSet::new();
        let mut todo: Vec<SchemaReference> = latest
            .iter()
            .flat_map(|v| v.schema.references.clone())
            .collect();
        let latest_of: HashMap<&str, i64> = latest
            .iter()
            .map(|v| (v.subject.as_str(), v.version))
            .collect();
        while let Some(r) = todo.pop() {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            if seen.len() > MAX_REFERENCE_FETCHES {
                return Err(self.error(format!(
                    "more than {MAX_REFERENCE_FETCHES} referenced schemas; not following more"
                )));
            }
            let in_latest = latest_of
                .get(r.subject.as_str())
                .is_some_and(|v| r.version == -1 || *v == r.version);
            if in_latest {
                // Already in the latest set; its own references are queued.
                continue;
            }
            let version = if r.version == -1 {
                "latest".to_string()
            } else {
                r.version.to_string()
            };
            if let Some(v) = self.version(&r.subject, &version).await? {
                todo.extend(v.schema.references.iter().cloned());
                refs.push(v);
            }
        }
        refs.extend(latest.iter().cloned());
        Ok((latest, refs))
    }
}
