//! The control-plane store: every record Weir keeps about tenants, tables and
//! statements, in SQLite or PostgreSQL through one `sqlx::AnyPool`.
//!
//! Invariant: every method that reads or writes a tenant's resource takes the
//! organization and environment and puts them in its `WHERE` clause, so that
//! no caller can reach across tenants by forgetting a filter. The one
//! exception is [`Store::find_api_key`], which is how a request finds its
//! tenant in the first place, and [`Store::statements_to_resume`], which the
//! scheduler uses on start-up and which returns tenant-qualified names.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::{now_millis, CatalogError, TableDef, TableOrigin};

mod iam;
mod identity;
mod registry;
mod workspace;

pub use iam::{ApiKeyInfo, AuditRecord, RoleBindingRecord, ServiceAccountRecord};
pub use identity::{IdentityPoolRecord, IdentityProviderRecord};
pub use registry::Registered;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Seals the credentials the store keeps; `None`: it keeps none.
    secrets: Option<std::sync::Arc<crate::secrets::SecretKey>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentRecord {
    pub org_id: String,
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterRecord {
    pub id: String,
    /// The SQL database name.
    pub name: String,
    pub bootstrap: String,
    /// Credentials, when the cluster asks for them (sealed in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<crate::SaslCredentials>,
}

impl ClusterRecord {
    /// How Weir's clients reach it.
    pub fn connection(&self) -> crate::KafkaConnection {
        crate::KafkaConnection {
            bootstrap: self.bootstrap.clone(),
            sasl: self.sasl.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolRecord {
    pub id: String,
    pub display_name: String,
    pub max_cfu: i64,
    /// The autoscaler's settings as JSON; `{}`: the defaults.
    pub autoscaler: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PoolRecord {
    /// A new pool with the autoscaler's defaults.
    pub fn new(id: &str, display_name: &str, max_cfu: i64) -> PoolRecord {
        PoolRecord {
            id: id.into(),
            display_name: display_name.into(),
            max_cfu,
            autoscaler: "{}".into(),
            created_at: 0,
            updated_at: 0,
        }
    }
}

/// The CFUs one statement held in one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub env_id: String,
    pub pool_id: String,
    pub statement_name: String,
    pub statement_uid: String,
    /// Milliseconds since the epoch of the minute's start.
    pub minute: i64,
    pub cfu: i64,
}

/// Which usage rows to read: one organization's, in `[start, end)`.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub env_id: Option<String>,
    pub pool_id: Option<String>,
    pub statement_name: Option<String>,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub org_id: String,
    pub secret_hash: String,
    /// The principal the key proves: `u-...` or `sa-...`.
    pub owner_id: String,
    /// The resource the key is limited to; `None`: its owner's reach.
    pub scope: Option<String>,
}

/// Which statements a listing returns.
#[derive(Debug, Clone, Default)]
pub struct StatementFilter {
    pub compute_pool: Option<String>,
    /// Every one of these labels, with these values.
    pub labels: Vec<(String, String)>,
    /// A part of the name.
    pub name_contains: Option<String>,
}

/// A statement as stored. The JSON columns hold `weir_api` types.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementRecord {
    pub org_id: String,
    pub env_id: String,
    pub name: String,
    pub uid: String,
    pub compute_pool_id: Option<String>,
    /// `weir_api::StatementSpec` as JSON.
    pub spec: String,
    pub phase: String,
    pub detail: String,
    /// `weir_api::StatementTraits` as JSON.
    pub traits: Option<String>,
    /// The rows of a completed metadata statement, as JSON.
    pub result: Option<String>,
    /// `weir_api::StatementMetrics` as JSON.
    pub metrics: Option<String>,
    pub resource_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// `metadata.labels` as a JSON object of strings.
    pub labels: String,
}

const STATEMENT_COLUMNS: &str = "org_id, env_id, name, uid, compute_pool_id, spec, phase, detail, traits, result, metrics, resource_version, created_at, updated_at, labels";

fn statement_from_row(r: &AnyRow) -> Result<StatementRecord, sqlx::Error> {
    Ok(StatementRecord {
        org_id: r.try_get("org_id")?,
        env_id: r.try_get("env_id")?,
        name: r.try_get("name")?,
        uid: r.try_get("uid")?,
        compute_pool_id: r.try_get("compute_pool_id")?,
        spec: r.try_get("spec")?,
        phase: r.try_get("phase")?,
        detail: r.try_get("detail")?,
        traits: r.try_get("traits")?,
        result: r.try_get("result")?,
        metrics: r.try_get("metrics")?,
        resource_version: r.try_get("resource_version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        labels: r.try_get("labels")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.message().contains("UNIQUE constraint failed")
                || d.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

/// A compare-and-set change of a statement's spec (see
/// [`Store::update_statement_spec`]).
pub struct SpecUpdate<'a> {
    /// The `resource_version` the caller read; a different current version
    /// fails with [`CatalogError::StaleVersion`].
    pub expected_version: i64,
    /// The new spec, as JSON.
    pub spec: &'a str,
    /// The new phase.
    pub phase: &'a str,
    /// The new phase detail.
    pub detail: &'a str,
}

impl Store {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...`
    /// and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, CatalogError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite://") {
            let url = if rest.contains('?') || rest == ":memory:" {
                format!("sqlite://{rest}")
            } else {
                format!("sqlite://{rest}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(CatalogError::UnsupportedUrl(url.to_string()));
        };
        let max = if backend == Backend::Sqlite { 4 } else { 10 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            secrets: None,
        })
    }

    /// The store, sealing the credentials it keeps with `key`.
    pub fn with_secret_key(mut self, key: crate::secrets::SecretKey) -> Store {
        self.secrets = Some(std::sync::Arc::new(key));
        self
    }

    /// A credential as it is stored: sealed.
    pub(crate) fn seal_secret(&self, plain: &str) -> Result<String, CatalogError> {
        self.secrets
            .as_ref()
            .map(|k| k.seal(plain))
            .ok_or(CatalogError::NoSecretKey)
    }

    /// A stored credential, opened (one stored before sealing existed is
    /// plain and comes back as it is).
    pub(crate) fn open_secret(&self, stored: &str) -> Result<String, CatalogError> {
        if !crate::secrets::is_sealed(stored) {
            return Ok(stored.to_string());
        }
        self.secrets
            .as_ref()
            .ok_or(CatalogError::NoSecretKey)?
            .open(stored)
    }

    pub fn is_sqlite(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- organizations and environments -------------------------------

    /// Creates the organization unless it exists. Returns whether it was new.
    pub async fn ensure_organization(&self, id: &str, name: &str) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The organization's display name, if it exists.
    /// Every organization's id, for what the process does for all of them
    /// (its metric export).
    pub async fn all_organizations(&self) -> Result<Vec<String>, CatalogError> {
        let rows = sqlx::query("SELECT id FROM organizations ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    pub async fn get_organization(&self, id: &str) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query("SELECT name FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("name")?),
            None => None,
        })
    }

    pub async fn ensure_environment(
        &self,
        org: &str,
        id: &str,
        name: &str,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "INSERT INTO environments (org_id, id, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, id) DO NOTHING",
        )
        .bind(org)
        .bind(id)
        .bind(name)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn get_environment(
        &self,
        org: &str,
        env: &str,
    ) -> Result<Option<EnvironmentRecord>, CatalogError> {
        let row = sqlx::query("SELECT org_id, id, name FROM environments WHERE org_id = $1 AND (id = $2 OR name = $2)")
            .bind(org)
            .bind(env)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(EnvironmentRecord {
                org_id: r.try_get("org_id")?,
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            }),
            None => None,
        })
    }

    pub async fn list_environments(
        &self,
        org: &str,
    ) -> Result<Vec<EnvironmentRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT org_id, id, name FROM environments WHERE org_id = $1 ORDER BY name",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EnvironmentRecord {
                    org_id: r.try_get("org_id")?,
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    // ---- Kafka clusters (SQL databases) --------------------------------

    pub async fn ensure_cluster(
        &self,
        org: &str,
        env: &str,
        cluster: &ClusterRecord,
    ) -> Result<(), CatalogError> {
        let (mechanism, username, password) = match &cluster.sasl {
            Some(c) => (
                Some(c.mechanism.clone()),
                Some(c.username.clone()),
                Some(self.seal_secret(&c.password)?),
            ),
            None => (None, None, None),
        };
        sqlx::query(
            "INSERT INTO kafka_clusters (org_id, env_id, id, name, bootstrap, created_at, sasl_mechanism, sasl_username, sasl_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (org_id, env_id, id) DO UPDATE SET bootstrap = excluded.bootstrap, \
             sasl_mechanism = excluded.sasl_mechanism, sasl_username = excluded.sasl_username, sasl_password = excluded.sasl_password",
        )
        .bind(org)
        .bind(env)
        .bind(&cluster.id)
        .bind(&cluster.name)
        .bind(&cluster.bootstrap)
        .bind(now_millis())
        .bind(mechanism)
        .bind(username)
        .bind(password)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An environment's clusters, the first registered first: it is the
    /// default database of the environment's statements.
    pub async fn list_clusters(
        &self,
        org: &str,
        env: &str,
    ) -> Result<Vec<ClusterRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, name, bootstrap, sasl_mechanism, sasl_username, sasl_password FROM kafka_clusters WHERE org_id = $1 AND env_id = $2 ORDER BY created_at, name",
        )
        .bind(org)
        .bind(env)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.cluster_row(r)).collect()
    }

    /// Forgets a Kafka cluster of an environment with the tables its topics
    /// gave (the topics themselves stay in Kafka); false when there is no
    /// such cluster.
    pub async fn delete_cluster(
        &self,
        org: &str,
        env: &str,
        id: &str,
    ) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM catalog_tables WHERE org_id = $1 AND env_id = $2 AND cluster_id = $3",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let r =
            sqlx::query("DELETE FROM kafka_clusters WHERE org_id = $1 AND env_id = $2 AND id = $3")
                .bind(org)
                .bind(env)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    fn cluster_row(&self, r: &AnyRow) -> Result<ClusterRecord, CatalogError> {
        let mechanism: Option<String> = r.try_get("sasl_mechanism")?;
        let sasl = match mechanism {
            Some(mechanism) => Some(crate::SaslCredentials {
                mechanism,
                username: r
                    .try_get::<Option<String>, _>("sasl_username")?
                    .unwrap_or_default(),
                password: self.open_secret(
                    &r.try_get::<Option<String>, _>("sasl_password")?
                        .unwrap_or_default(),
                )?,
            }),
            None => None,
        };
        Ok(ClusterRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            bootstrap: r.try_get("bootstrap")?,
            sasl,
        })
    }

    /// Every (org, env, cluster) known, for the topic-sync loop.
    pub async fn all_clusters(&self) -> Result<Vec<(String, String, ClusterRecord)>, CatalogError> {
        let rows = sqlx::query("SELECT org_id, env_id, id, name, bootstrap, sasl_mechanism, sasl_username, sasl_password FROM kafka_clusters")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("org_id")?,
                    r.try_get("env_id")?,
                    self.cluster_row(r)?,
                ))
            })
            .collect()
    }

    // ---- compute pools ---------------------------------------------------

    pub async fn ensure_pool(
        &self,
        org: &str,
        env: &str,
        pool: &PoolRecord,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO compute_pools (org_id, env_id, id, display_name, max_cfu, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (org_id, env_id, id) DO NOTHING",
        )
        .bind(org)
        .bind(env)
        .bind(&pool.id)
        .bind(&pool.display_name)
        .bind(pool.max_cfu)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates a pool; its id must be new in the environment.
    pub async fn create_pool(
        &self,
        org: &str,
        env: &str,
        pool: &PoolRecord,
    ) -> Result<(), CatalogError> {
        let now = now_millis();
        let done = sqlx::query(
            "INSERT INTO compute_pools (org_id, env_id, id, display_name, max_cfu, autoscaler, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (org_id, env_id, id) DO NOTHING",
        )
        .bind(org)
        .bind(env)
        .bind(&pool.id)
        .bind(&pool.display_name)
        .bind(pool.max_cfu)
        .bind(&pool.autoscaler)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::AlreadyExists {
                what: "compute pool",
                name: pool.id.clone(),
            });
        }
        Ok(())
    }

    /// Writes a pool's display name, `max_cfu` and autoscaler settings.
    pub async fn update_pool(
        &self,
        org: &str,
        env: &str,
        pool: &PoolRecord,
    ) -> Result<(), CatalogError> {
        let done = sqlx::query(
            "UPDATE compute_pools SET display_name = $1, max_cfu = $2, autoscaler = $3, updated_at = $4 \
             WHERE org_id = $5 AND env_id = $6 AND id = $7",
        )
        .bind(&pool.display_name)
        .bind(pool.max_cfu)
        .bind(&pool.autoscaler)
        .bind(now_millis())
        .bind(org)
        .bind(env)
        .bind(&pool.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound {
                what: "compute pool",
                name: pool.id.clone(),
            });
        }
        Ok(())
    }

    /// Deletes a pool unless a statement that has not ended runs on it:
    /// then `Err(names)` lists those statements (at most 20).
    pub async fn delete_pool(
        &self,
        org: &str,
        env: &str,
        id: &str,
    ) -> Result<Result<bool, Vec<String>>, CatalogError> {
        // One statement, so that no transaction upgrades a read lock to a
        // write lock (SQLite answers that with "database is locked" when
        // another writer came in between).
        let done = sqlx::query(
            "DELETE FROM compute_pools WHERE org_id = $1 AND env_id = $2 AND id = $3 \
             AND NOT EXISTS (SELECT 1 FROM statements WHERE org_id = $1 AND env_id = $2 \
             AND compute_pool_id = $3 AND phase IN ('PENDING', 'RUNNING', 'DEGRADED', 'STOPPING'))",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(Ok(true));
        }
        let rows = sqlx::query(
            "SELECT name FROM statements WHERE org_id = $1 AND env_id = $2 AND compute_pool_id = $3 \
             AND phase IN ('PENDING', 'RUNNING', 'DEGRADED', 'STOPPING') ORDER BY name LIMIT 20",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Ok(false));
        }
        let names = rows
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<Result<_, _>>()?;
        Ok(Err(names))
    }

    pub async fn get_pool(
        &self,
        org: &str,
        env: &str,
        id: &str,
    ) -> Result<Option<PoolRecord>, CatalogError> {
        let row = sqlx::query(
            "SELECT id, display_name, max_cfu, autoscaler, created_at, updated_at FROM compute_pools WHERE org_id = $1 AND env_id = $2 AND id = $3",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| pool_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    pub async fn list_pools(&self, org: &str, env: &str) -> Result<Vec<PoolRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, display_name, max_cfu, autoscaler, created_at, updated_at FROM compute_pools WHERE org_id = $1 AND env_id = $2 ORDER BY id",
        )
        .bind(org)
        .bind(env)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| pool_from_row(r).map_err(Into::into))
            .collect()
    }

    // ---- metering ----------------------------------------------------------

    /// Records that a statement held `cfu` CFUs during a minute. Recording
    /// the same minute again keeps the larger figure, so that retries and
    /// restarts never bill a minute twice.
    pub async fn record_usage(&self, org: &str, u: &UsageRecord) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO usage_minutes (org_id, env_id, pool_id, statement_name, statement_uid, minute, cfu) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, env_id, statement_uid, minute) \
             DO UPDATE SET cfu = CASE WHEN excluded.cfu > usage_minutes.cfu THEN excluded.cfu ELSE usage_minutes.cfu END",
        )
        .bind(org)
        .bind(&u.env_id)
        .bind(&u.pool_id)
        .bind(&u.statement_name)
        .bind(&u.statement_uid)
        .bind(u.minute)
        .bind(u.cfu)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An organization's CFU-minutes in the filter's range, summed per
    /// bucket of `bucket_ms` (aligned to the epoch), environment and pool,
    /// and per statement when `by_statement`; oldest first.
    pub async fn usage_totals(
        &self,
        org: &str,
        f: &UsageFilter,
        bucket_ms: i64,
        by_statement: bool,
    ) -> Result<Vec<UsageRecord>, CatalogError> {
        let (column, group) = if by_statement {
            ("statement_name", ", statement_name")
        } else {
            ("''", "")
        };
        let rows = sqlx::query(&format!(
            "SELECT (minute / $7) * $7 AS bucket, env_id, pool_id, {column} AS statement, CAST(SUM(cfu) AS BIGINT) AS cfu \
             FROM usage_minutes WHERE org_id = $1 AND minute >= $2 AND minute < $3 \
             AND ($4 = '' OR env_id = $4) AND ($5 = '' OR pool_id = $5) AND ($6 = '' OR statement_name = $6) \
             GROUP BY (minute / $7) * $7, env_id, pool_id{group} ORDER BY bucket, env_id, pool_id{group}"
        ))
        .bind(org)
        .bind(f.start)
        .bind(f.end)
        .bind(f.env_id.as_deref().unwrap_or(""))
        .bind(f.pool_id.as_deref().unwrap_or(""))
        .bind(f.statement_name.as_deref().unwrap_or(""))
        .bind(bucket_ms.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRecord {
                    env_id: r.try_get("env_id")?,
                    pool_id: r.try_get("pool_id")?,
                    statement_name: r.try_get("statement")?,
                    statement_uid: String::new(),
                    minute: r.try_get("bucket")?,
                    cfu: r.try_get("cfu")?,
                })
            })
            .collect()
    }

    // ---- scaling ---------------------------------------------------------

    /// Appends an autoscaler decision (JSON) to a statement's events.
    pub async fn add_scaling_event(
        &self,
        org: &str,
        env: &str,
        name: &str,
        uid: &str,
        event: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO scaling_events (org_id, env_id, statement, statement_uid, at, event) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org)
        .bind(env)
        .bind(name)
        .bind(uid)
        .bind(now_millis())
        .bind(event)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A statement's scaling events (JSON), newest first, at most `limit`.
    pub async fn scaling_events(
        &self,
        org: &str,
        env: &str,
        name: &str,
        limit: i64,
    ) -> Result<Vec<String>, CatalogError> {
        let rows = sqlx::query(
            "SELECT event FROM scaling_events WHERE org_id = $1 AND env_id = $2 AND statement = $3 \
             ORDER BY at DESC LIMIT $4",
        )
        .bind(org)
        .bind(env)
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("event").map_err(Into::into))
            .collect()
    }

    /// Where a statement stands with the autoscaler (JSON), if anywhere.
    pub async fn scaling_status(
        &self,
        org: &str,
        env: &str,
        name: &str,
        uid: &str,
    ) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query(
            "SELECT status FROM statement_scaling WHERE org_id = $1 AND env_id = $2 AND statement = $3 AND statement_uid = $4",
        )
        .bind(org)
        .bind(env)
        .bind(name)
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("status")).transpose()?)
    }

    pub async fn set_scaling_status(
        &self,
        org: &str,
        env: &str,
        name: &str,
        uid: &str,
        status: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO statement_scaling (org_id, env_id, statement, statement_uid, status) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, env_id, statement) DO UPDATE SET statement_uid = excluded.statement_uid, status = excluded.status",
        )
        .bind(org)
        .bind(env)
        .bind(name)
        .bind(uid)
        .bind(status)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- API keys ----------------------------------------------------------

    /// A key of the organization's owner (`u-owner-<org>`, an
    /// OrganizationAdmin): what `weir dev` and a new organization start with.
    pub async fn create_api_key(
        &self,
        org: &str,
        id: &str,
        secret_hash: &str,
        description: &str,
    ) -> Result<(), CatalogError> {
        // The organization's owner: the user who administers it.
        let owner = format!("u-owner-{org}");
        self.create_owned_api_key(org, id, secret_hash, &owner, None, description)
            .await?;
        sqlx::query(
            "INSERT INTO role_bindings (org_id, id, principal, role_name, crn_pattern, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (org_id, id) DO NOTHING",
        )
        .bind(org)
        .bind(format!("rb-owner-{org}"))
        .bind(format!("User:{owner}"))
        .bind("OrganizationAdmin")
        .bind(format!("crn://weir/organization={org}"))
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds a key by its id; the caller checks the secret.
    pub async fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, CatalogError> {
        let row = sqlx::query(
            "SELECT id, org_id, secret_hash, owner_id, scope FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(ApiKeyRecord {
                id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                secret_hash: r.try_get("secret_hash")?,
                owner_id: r
                    .try_get::<Option<String>, _>("owner_id")?
                    .unwrap_or_default(),
                scope: r.try_get("scope")?,
            }),
            None => None,
        })
    }

    // ---- tables ----------------------------------------------------------------

    /// Inserts a table; fails with `AlreadyExists` if the name is taken.
    pub async fn create_table(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
        def: &TableDef,
    ) -> Result<(), CatalogError> {
        let now = now_millis();
        let json = serde_json::to_string(def).expect("table definitions serialize");
        sqlx::query(
            "INSERT INTO catalog_tables (org_id, env_id, cluster_id, name, origin, definition, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(org)
        .bind(env)
        .bind(cluster)
        .bind(&def.name)
        .bind(origin_str(def.origin))
        .bind(json)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CatalogError::AlreadyExists {
                    what: "table",
                    name: def.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Replaces a table's definition (ALTER TABLE, or a discovered table
    /// becoming managed).
    pub async fn replace_table(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
        def: &TableDef,
    ) -> Result<(), CatalogError> {
        if !self
            .replace_table_where(org, env, cluster, def, None)
            .await?
        {
            return Err(CatalogError::NotFound {
                what: "table",
                name: def.name.clone(),
            });
        }
        Ok(())
    }

    /// [`Store::replace_table`], only while the stored table is still a
    /// discovered one: the topic sync's typing of a discovered table never
    /// overwrites a `CREATE TABLE` that replaced it meanwhile. Whether it
    /// replaced.
    pub async fn replace_discovered_table(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
        def: &TableDef,
    ) -> Result<bool, CatalogError> {
        self.replace_table_where(org, env, cluster, def, Some(TableOrigin::Discovered))
            .await
    }

    /// Replaces table `def.name`'s definition (only while its origin is
    /// `only_if`, when given); whether a row was replaced.
    async fn replace_table_where(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
        def: &TableDef,
        only_if: Option<TableOrigin>,
    ) -> Result<bool, CatalogError> {
        let json = serde_json::to_string(def).expect("table definitions serialize");
        let r = sqlx::query(
            "UPDATE catalog_tables SET definition = $1, origin = $2, updated_at = $3 \
             WHERE org_id = $4 AND env_id = $5 AND cluster_id = $6 AND name = $7 \
             AND ($8 IS NULL OR origin = $8)",
        )
        .bind(json)
        .bind(origin_str(def.origin))
        .bind(now_millis())
        .bind(org)
        .bind(env)
        .bind(cluster)
        .bind(&def.name)
        .bind(only_if.map(origin_str))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn get_table(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<TableDef>, CatalogError> {
        let row = sqlx::query(
            "SELECT definition FROM catalog_tables WHERE org_id = $1 AND env_id = $2 AND cluster_id = $3 AND name = $4",
        )
        .bind(org)
        .bind(env)
        .bind(cluster)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| parse_table(&r)).transpose()
    }

    pub async fn list_tables(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
    ) -> Result<Vec<TableDef>, CatalogError> {
        let rows = sqlx::query(
            "SELECT definition FROM catalog_tables WHERE org_id = $1 AND env_id = $2 AND cluster_id = $3 ORDER BY name",
        )
        .bind(org)
        .bind(env)
        .bind(cluster)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(parse_table).collect()
    }

    /// Removes a table; returns whether it existed.
    pub async fn delete_table(
        &self,
        org: &str,
        env: &str,
        cluster: &str,
        name: &str,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "DELETE FROM catalog_tables WHERE org_id = $1 AND env_id = $2 AND cluster_id = $3 AND name = $4",
        )
        .bind(org)
        .bind(env)
        .bind(cluster)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    // ---- statements ----------------------------------------------------------

    pub async fn insert_statement(&self, s: &StatementRecord) -> Result<(), CatalogError> {
        sqlx::query(&format!(
            "INSERT INTO statements ({STATEMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&s.org_id)
        .bind(&s.env_id)
        .bind(&s.name)
        .bind(&s.uid)
        .bind(&s.compute_pool_id)
        .bind(&s.spec)
        .bind(&s.phase)
        .bind(&s.detail)
        .bind(&s.traits)
        .bind(&s.result)
        .bind(&s.metrics)
        .bind(s.resource_version)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(&s.labels)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CatalogError::AlreadyExists {
                    what: "statement",
                    name: s.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    pub async fn get_statement(
        &self,
        org: &str,
        env: &str,
        name: &str,
    ) -> Result<Option<StatementRecord>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {STATEMENT_COLUMNS} FROM statements WHERE org_id = $1 AND env_id = $2 AND name = $3"
        ))
        .bind(org)
        .bind(env)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| statement_from_row(&r)).transpose()?)
    }

    /// A page of statements ordered by name, after `after` (exclusive).
    pub async fn list_statements(
        &self,
        org: &str,
        env: &str,
        filter: &StatementFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StatementRecord>, CatalogError> {
        // Each label is matched as its `"key":"value"` pair in the JSON
        // text (serde_json writes it compactly, keys sorted).
        let like = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        };
        let mut sql = format!(
            "SELECT {STATEMENT_COLUMNS} FROM statements WHERE org_id = $1 AND env_id = $2 \
             AND ($3 = '' OR compute_pool_id = $3) AND name > $4 \
             AND name LIKE $5 ESCAPE '\\'"
        );
        let mut binds = vec![format!(
            "%{}%",
            like(filter.name_contains.as_deref().unwrap_or(""))
        )];
        for (k, v) in &filter.labels {
            binds.push(format!(
                "%{}%",
                like(&format!(
                    "{}:{}",
                    serde_json::to_string(k).expect("a string serializes"),
                    serde_json::to_string(v).expect("a string serializes")
                ))
            ));
            sql.push_str(&format!(
                " AND labels LIKE ${} ESCAPE '\\'",
                binds.len() + 4
            ));
        }
        sql.push_str(&format!(" ORDER BY name LIMIT ${}", binds.len() + 5));
        let mut q = sqlx::query(&sql)
            .bind(org)
            .bind(env)
            .bind(filter.compute_pool.as_deref().unwrap_or(""))
            .bind(after.unwrap_or(""));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(statement_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Sets the phase and detail (and optionally traits, result and metrics)
    /// and bumps the resource version.
    pub async fn update_statement_status(
        &self,
        org: &str,
        env: &str,
        name: &str,
        phase: &str,
        detail: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE statements SET phase = $1, detail = $2, resource_version = resource_version + 1, updated_at = $3 \
             WHERE org_id = $4 AND env_id = $5 AND name = $6",
        )
        .bind(phase)
        .bind(detail)
        .bind(now_millis())
        .bind(org)
        .bind(env)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_statement_outcome(
        &self,
        org: &str,
        env: &str,
        name: &str,
        traits: Option<&str>,
        result: Option<&str>,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE statements SET traits = $1, result = $2, updated_at = $3 WHERE org_id = $4 AND env_id = $5 AND name = $6",
        )
        .bind(traits)
        .bind(result)
        .bind(now_millis())
        .bind(org)
        .bind(env)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_statement_metrics(
        &self,
        org: &str,
        env: &str,
        name: &str,
        metrics: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE statements SET metrics = $1 WHERE org_id = $2 AND env_id = $3 AND name = $4",
        )
        .bind(metrics)
        .bind(org)
        .bind(env)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the spec and phase if `update.expected_version` is current.
    pub async fn update_statement_spec(
        &self,
        org: &str,
        env: &str,
        name: &str,
        update: SpecUpdate<'_>,
    ) -> Result<StatementRecord, CatalogError> {
        let SpecUpdate {
            expected_version,
            spec,
            phase,
            detail,
        } = update;
        let r = sqlx::query(
            "UPDATE statements SET spec = $1, phase = $2, detail = $3, resource_version = resource_version + 1, updated_at = $4 \
             WHERE org_id = $5 AND env_id = $6 AND name = $7 AND resource_version = $8",
        )
        .bind(spec)
        .bind(phase)
        .bind(detail)
        .bind(now_millis())
        .bind(org)
        .bind(env)
        .bind(name)
        .bind(expected_version)
        .execute(&self.pool)
        .await?;
        let current =
            self.get_statement(org, env, name)
                .await?
                .ok_or_else(|| CatalogError::NotFound {
                    what: "statement",
                    name: name.to_string(),
                })?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::StaleVersion {
                expected: expected_version,
                current: current.resource_version,
            });
        }
        Ok(current)
    }

    pub async fn delete_statement(
        &self,
        org: &str,
        env: &str,
        name: &str,
    ) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "statement_offsets",
            "statement_exceptions",
            "scaling_events",
            "statement_scaling",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE org_id = $1 AND env_id = $2 AND statement = $3"
            ))
            .bind(org)
            .bind(env)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        let r =
            sqlx::query("DELETE FROM statements WHERE org_id = $1 AND env_id = $2 AND name = $3")
                .bind(org)
                .bind(env)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Statements that were running (or about to) when the control plane
    /// stopped, as `(org, env, name)`.
    pub async fn statements_to_resume(
        &self,
    ) -> Result<Vec<(String, String, String)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT org_id, env_id, name FROM statements WHERE phase IN ('RUNNING', 'PENDING', 'DEGRADED') ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("org_id")?,
                    r.try_get("env_id")?,
                    r.try_get("name")?,
                ))
            })
            .collect()
    }

    // ---- source offsets ------------------------------------------------------

    /// Records the next offset to read per partition of a statement's source.
    pub async fn save_offsets(
        &self,
        org: &str,
        env: &str,
        statement: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<(), CatalogError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        for (partition, offset) in offsets {
            sqlx::query(
                "INSERT INTO statement_offsets (org_id, env_id, statement, topic, partition_id, next_offset, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (org_id, env_id, statement, topic, partition_id) DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(env)
            .bind(statement)
            .bind(topic)
            .bind(*partition as i64)
            .bind(*offset)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `(topic, partition, next_offset)` of every source of a statement.
    pub async fn load_offsets(
        &self,
        org: &str,
        env: &str,
        statement: &str,
    ) -> Result<Vec<(String, i32, i64)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT topic, partition_id, next_offset FROM statement_offsets WHERE org_id = $1 AND env_id = $2 AND statement = $3 ORDER BY topic, partition_id",
        )
        .bind(org)
        .bind(env)
        .bind(statement)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let p: i64 = r.try_get("partition_id")?;
                Ok((r.try_get("topic")?, p as i32, r.try_get("next_offset")?))
            })
            .collect()
    }

    pub async fn offsets_updated_at(
        &self,
        org: &str,
        env: &str,
        statement: &str,
    ) -> Result<Option<i64>, CatalogError> {
        let row = sqlx::query(
            "SELECT MAX(updated_at) AS t FROM statement_offsets WHERE org_id = $1 AND env_id = $2 AND statement = $3",
        )
        .bind(org)
        .bind(env)
        .bind(statement)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?)
    }

    // ---- exceptions ------------------------------------------------------------

    pub async fn add_exception(
        &self,
        org: &str,
        env: &str,
        statement: &str,
        message: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO statement_exceptions (org_id, env_id, statement, id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org)
        .bind(env)
        .bind(statement)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(message)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest `limit` exceptions, newest first, as `(message, created_at)`.
    pub async fn list_exceptions(
        &self,
        org: &str,
        env: &str,
        statement: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT message, created_at FROM statement_exceptions WHERE org_id = $1 AND env_id = $2 AND statement = $3 \
             ORDER BY created_at DESC, id LIMIT $4",
        )
        .bind(org)
        .bind(env)
        .bind(statement)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("message")?, r.try_get("created_at")?)))
            .collect()
    }
}

fn pool_from_row(r: &AnyRow) -> Result<PoolRecord, sqlx::Error> {
    Ok(PoolRecord {
        id: r.try_get("id")?,
        display_name: r.try_get("display_name")?,
        max_cfu: r.try_get("max_cfu")?,
        autoscaler: r.try_get("autoscaler")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn parse_table(r: &AnyRow) -> Result<TableDef, CatalogError> {
    let json: String = r.try_get("definition")?;
    serde_json::from_str(&json).map_err(|e| CatalogError::Corrupt(format!("table definition: {e}")))
}

fn origin_str(o: TableOrigin) -> &'static str {
    match o {
        TableOrigin::Managed => "managed",
        TableOrigin::Discovered => "discovered",
    }
}
