//! A typed client for the statement API, used by the CLI and the tests.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{
    ComputePool, ComputePoolList, ComputePoolRequest, CreateStatementRequest, ErrorBody,
    ScalingEventList, Statement, StatementExceptionList, StatementList, StatementResult, UsageList,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach Weir at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Weir answered {status}: {body}")]
    Api { status: StatusCode, body: ErrorBody },
    #[error("Weir answered {status} with a body that is not the API's error shape: {text}")]
    Unexpected { status: StatusCode, text: String },
    #[error("cannot read Weir's answer: {0}")]
    Decode(String),
    #[error("statement {name} failed: {detail}")]
    Failed { name: String, detail: String },
}

impl ClientError {
    /// The HTTP status of an API error, if the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// An API key and secret, sent as HTTP Basic credentials.
#[derive(Clone)]
pub struct Credentials {
    pub key: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .finish()
    }
}

/// An OAuth bearer token from the organization's identity provider, and
/// the identity pool to act as when several admit it.
#[derive(Clone)]
pub struct BearerToken {
    pub token: String,
    pub identity_pool: Option<String>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("identity_pool", &self.identity_pool)
            .finish()
    }
}

/// A client bound to one organization and environment.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    org: String,
    env: String,
    credentials: Option<Credentials>,
    bearer: Option<BearerToken>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base_url: &str, org: &str, env: &str, credentials: Option<Credentials>) -> Client {
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            org: org.to_string(),
            env: env.to_string(),
            credentials,
            bearer: None,
            http: reqwest::Client::new(),
        }
    }

    /// Authenticates with a bearer token instead of an API key.
    pub fn with_bearer_token(mut self, token: BearerToken) -> Client {
        self.bearer = Some(token);
        self
    }

    /// The environment this client is bound to.
    pub fn env(&self) -> &str {
        &self.env
    }

    fn statements_url(&self) -> String {
        format!(
            "{}/sql/v1/organizations/{}/environments/{}/statements",
            self.base, self.org, self.env
        )
    }

    /// Resolves a `next` link, which may be absolute or a path.
    fn absolute(&self, link: &str) -> String {
        if link.starts_with("http://") || link.starts_with("https://") {
            link.to_string()
        } else {
            format!("{}{}", self.base, link)
        }
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut req = self.http.request(method, url);
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(&b.token);
            if let Some(pool) = &b.identity_pool {
                req = req.header("Weir-Identity-Pool-Id", pool);
            }
        } else if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.key, Some(&c.secret));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|source| ClientError::Connect {
            url: url.to_string(),
            source,
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(body) => ClientError::Api { status, body },
                Err(_) => ClientError::Unexpected { status, text },
            });
        }
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|e| ClientError::Decode(format!("{e}: {text}")))
    }

    /// Any route of the API, as JSON: `path` is absolute from the API's
    /// root (`/iam/v2/service-accounts`); `Value::Null` for an empty answer.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Decode(format!("method {method}: {e}")))?;
        self.call(method, &format!("{}{path}", self.base), body)
            .await
    }

    pub async fn create_statement(
        &self,
        req: &CreateStatementRequest,
    ) -> Result<Statement, ClientError> {
        self.call(Method::POST, &self.statements_url(), Some(req))
            .await
    }

    pub async fn get_statement(&self, name: &str) -> Result<Statement, ClientError> {
        let url = format!("{}/{name}", self.statements_url());
        self.call::<(), _>(Method::GET, &url, None).await
    }

    /// One page of statements; pass the previous page's `metadata.next` to go on.
    pub async fn list_statements(
        &self,
        page_token: Option<&str>,
    ) -> Result<StatementList, ClientError> {
        let url = match page_token {
            Some(next) => self.absolute(next),
            None => self.statements_url(),
        };
        self.call::<(), _>(Method::GET, &url, None).await
    }

    pub async fn update_statement(&self, statement: &Statement) -> Result<Statement, ClientError> {
        let url = format!("{}/{}", self.statements_url(), statement.name);
        self.call(Method::PUT, &url, Some(statement)).await
    }

    pub async fn delete_statement(&self, name: &str) -> Result<(), ClientError> {
        let url = format!("{}/{name}", self.statements_url());
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &url, None).await?;
        Ok(())
    }

    /// One page of results; `next` is the previous page's `metadata.next`.
    pub async fn results(
        &self,
        name: &str,
        next: Option<&str>,
    ) -> Result<StatementResult, ClientError> {
        let url = match next {
            Some(n) => self.absolute(n),
            None => format!("{}/{name}/results", self.statements_url()),
        };
        self.call::<(), _>(Method::GET, &url, None).await
    }

    pub async fn exceptions(&self, name: &str) -> Result<StatementExceptionList, ClientError> {
        let url = format!("{}/{name}/exceptions", self.statements_url());
        self.call::<(), _>(Method::GET, &url, None).await
    }

    fn pools_url(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => format!(
                "{}/fcpm/v2/compute-pools/{id}?environment={}",
                self.base, self.env
            ),
            None => format!(
                "{}/fcpm/v2/compute-pools?environment={}",
                self.base, self.env
            ),
        }
    }

    pub async fn list_pools(&self) -> Result<ComputePoolList, ClientError> {
        self.call::<(), _>(Method::GET, &self.pools_url(None), None)
            .await
    }

    pub async fn get_pool(&self, id: &str) -> Result<ComputePool, ClientError> {
        self.call::<(), _>(Method::GET, &self.pools_url(Some(id)), None)
            .await
    }

    pub async fn create_pool(&self, req: &ComputePoolRequest) -> Result<ComputePool, ClientError> {
        self.call(Method::POST, &self.pools_url(None), Some(req))
            .await
    }

    /// Changes the fields `req.spec` sets.
    pub async fn update_pool(
        &self,
        id: &str,
        req: &ComputePoolRequest,
    ) -> Result<ComputePool, ClientError> {
        self.call(Method::PATCH, &self.pools_url(Some(id)), Some(req))
            .await
    }

    pub async fn delete_pool(&self, id: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call::<(), _>(Method::DELETE, &self.pools_url(Some(id)), None)
            .await?;
        Ok(())
    }

    /// The organization's usage; `query` holds the usage API's parameters
    /// (`start`, `end`, `granularity`, `environment`, `compute_pool`,
    /// `statement`, `group_by`).
    pub async fn usage(&self, query: &[(&str, &str)]) -> Result<UsageList, ClientError> {
        let url = reqwest::Url::parse_with_params(&format!("{}/weir/v1/usage", self.base), query)
            .map_err(|e| ClientError::Decode(format!("bad API URL {}: {e}", self.base)))?;
        self.call::<(), _>(Method::GET, url.as_str(), None).await
    }

    /// The autoscaler's decisions for a statement, newest first.
    pub async fn scaling_events(&self, name: &str) -> Result<ScalingEventList, ClientError> {
        let url = format!("{}/{name}/scaling-events", self.statements_url());
        self.call::<(), _>(Method::GET, &url, None).await
    }

    /// Runs a bounded statement (`SHOW ...`, an `INFORMATION_SCHEMA` query)
    /// for a tool, labelled `label` so that listings can hide it, and
    /// returns its rows with the changelog applied; the statement is deleted
    /// afterwards, whatever happened.
    pub async fn query(
        &self,
        sql: &str,
        properties: std::collections::BTreeMap<String, String>,
        label: &str,
    ) -> Result<Vec<Vec<serde_json::Value>>, ClientError> {
        let req = CreateStatementRequest {
            name: None,
            metadata: Some(crate::CreateMetadata {
                labels: [(label.to_string(), "true".to_string())].into(),
            }),
            spec: crate::StatementSpec {
                statement: sql.to_string(),
                properties,
                ..Default::default()
            },
        };
        let st = self.create_statement(&req).await?;
        let rows = self.collect_rows(&st.name).await;
        let _ = self.delete_statement(&st.name).await;
        rows
    }

    async fn collect_rows(&self, name: &str) -> Result<Vec<Vec<serde_json::Value>>, ClientError> {
        let s = self
            .wait_started(name, std::time::Duration::from_secs(60))
            .await?;
        if s.status.phase == crate::Phase::Failed {
            return Err(ClientError::Failed {
                name: name.to_string(),
                detail: s.status.detail,
            });
        }
        let mut rows: Vec<Vec<serde_json::Value>> = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.results(name, next.as_deref()).await?;
            if page.results.data.is_empty() && !page.metadata.next.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            for r in page.results.data {
                if r.op == 0 || r.op == 2 {
                    rows.push(r.row);
                } else if let Some(i) = rows.iter().position(|x| *x == r.row) {
                    rows.remove(i);
                }
            }
            if page.metadata.next.is_empty() {
                return Ok(rows);
            }
            next = Some(page.metadata.next);
        }
    }

    /// Polls until the statement leaves `PENDING` (or `timeout` passes).
    pub async fn wait_started(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<Statement, ClientError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let s = self.get_statement(name).await?;
            if s.status.phase != crate::Phase::Pending || std::time::Instant::now() > deadline {
                return Ok(s);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
