//! `weir dev` defaults: one organization, environment, Kafka cluster and
//! compute pool, and an API key, created on first start.

use std::path::Path;

use weir_catalog::{ClusterRecord, PoolRecord, Store};

use crate::auth::{hash_secret, new_key, secret_matches};
use crate::ApiError;

/// A UUID, as the managed service's organization ids are (its Table API
/// plugin refuses anything else). Data directories made before kept
/// `org-dev`, which their saved `dev.env` names and which stays in use.
pub const DEV_ORG: &str = "00000000-0000-4000-8000-000000000001";
pub const DEV_ENV: &str = "env-dev";
pub const DEV_ENV_NAME: &str = "default";
pub const DEV_CLUSTER: &str = "lkc-dev";
pub const DEV_DATABASE: &str = "cluster_0";
pub const DEV_POOL: &str = "lfcp-dev";
/// The default pool's `max_cfu` (it can be raised through the API).
pub const DEV_POOL_MAX_CFU: i64 = 10;

/// What a shell needs to talk to `weir dev`.
#[derive(Debug, Clone)]
pub struct DevEnv {
    pub url: String,
    pub org: String,
    pub env: String,
    pub pool: String,
    pub key: String,
    pub secret: String,
    pub bootstrap: String,
}

impl DevEnv {
    pub fn shell_lines(&self) -> String {
        format!(
            "export WEIR_URL={} WEIR_ORG={} WEIR_ENV={} WEIR_COMPUTE_POOL={} WEIR_API_KEY={} WEIR_API_SECRET={} WEIR_BOOTSTRAP={} WEIR_SCHEMA_REGISTRY_URL={}\n",
            self.url,
            self.org,
            self.env,
            self.pool,
            self.key,
            self.secret,
            self.bootstrap,
            self.schema_registry_url()
        )
    }

    /// The environment's built-in schema registry, for Confluent clients
    /// (with the same key and secret).
    pub fn schema_registry_url(&self) -> String {
        format!("{}/schema-registry/{}", self.url, self.env)
    }
}

/// Creates the defaults once; later starts reuse the key saved in
/// `<data_dir>/dev.env` (the store keeps only the secret's hash).
pub async fn bootstrap(
    store: &Store,
    data_dir: &Path,
    url: &str,
    bootstrap: &str,
) -> Result<DevEnv, ApiError> {
    let saved = std::fs::read_to_string(data_dir.join("dev.env")).ok();
    let find = |k: &str| -> Option<String> {
        saved
            .as_deref()?
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let org = find("WEIR_ORG").unwrap_or_else(|| DEV_ORG.to_string());
    let org = org.as_str();
    store.ensure_organization(org, "dev").await?;
    store.ensure_environment(org, DEV_ENV, DEV_ENV_NAME).await?;
    store
        .ensure_cluster(
            org,
            DEV_ENV,
            &ClusterRecord {
                id: DEV_CLUSTER.into(),
                name: DEV_DATABASE.into(),
                bootstrap: bootstrap.into(),
                sasl: None,
            },
        )
        .await?;
    store
        .ensure_pool(
            org,
            DEV_ENV,
            &PoolRecord::new(DEV_POOL, "default", DEV_POOL_MAX_CFU),
        )
        .await?;
    let (key, secret) = match (find("WEIR_API_KEY"), find("WEIR_API_SECRET")) {
        (Some(k), Some(s))
            if store
                .find_api_key(&k)
                .await?
                .is_some_and(|r| secret_matches(&s, &r.secret_hash)) =>
        {
            (k, s)
        }
        _ => {
            let (k, s) = new_key();
            store
                .create_api_key(org, &k, &hash_secret(&s), "weir dev")
                .await?;
            (k, s)
        }
    };
    let env = DevEnv {
        url: url.into(),
        org: org.into(),
        env: DEV_ENV.into(),
        pool: DEV_POOL.into(),
        key,
        secret,
        bootstrap: bootstrap.into(),
    };
    std::fs::write(data_dir.join("dev.env"), env.shell_lines()).map_err(|e| {
        ApiError::internal(format!(
            "cannot write {}: {e}",
            data_dir.join("dev.env").display()
        ))
    })?;
    Ok(env)
}
