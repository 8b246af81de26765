//! Identity and access records: service accounts, API keys with their owner
//! and scope, role bindings, the audit log and the quotas a tenant set for
//! itself, each scoped to an organization. Deciding what a binding allows is the control plane's.

use sqlx::Row;

use super::{is_unique_violation, Store};
use crate::{now_millis, CatalogError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceAccountRecord {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoleBindingRecord {
    pub id: String,
    /// `User:<principal id>`.
    pub principal: String,
    pub role_name: String,
    pub crn_pattern: String,
    pub created_at: i64,
}

/// An API key as listed: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub owner_id: String,
    /// The resource the key is limited to; `None`: its owner's reach.
    pub scope: Option<String>,
    pub description: String,
    pub created_at: i64,
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub principal: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    /// `allowed`, `denied` (401/403) or `failed` (another error).
    pub result: String,
    pub request_id: String,
    pub detail: String,
}

impl Store {
    // ---- service accounts ------------------------------------------------

    pub async fn create_service_account(
        &self,
        org: &str,
        rec: &ServiceAccountRecord,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO service_accounts (org_id, id, display_name, description, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org)
        .bind(&rec.id)
        .bind(&rec.display_name)
        .bind(&rec.description)
        .bind(rec.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                CatalogError::AlreadyExists {
                    what: "service account",
                    name: rec.display_name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    pub async fn list_service_accounts(
        &self,
        org: &str,
    ) -> Result<Vec<ServiceAccountRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, display_name, description, created_at FROM service_accounts WHERE org_id = $1 ORDER BY display_name",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(service_account).collect()
    }

    pub async fn get_service_account(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<ServiceAccountRecord>, CatalogError> {
        let row = sqlx::query(
            "SELECT id, display_name, description, created_at FROM service_accounts WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(service_account).transpose()
    }

    /// Changes a service account's description; false when it does not
    /// exist.
    pub async fn update_service_account(
        &self,
        org: &str,
        id: &str,
        description: &str,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE service_accounts SET description = $3 WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(description)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a service account with its keys and role bindings; false
    /// when it does not exist.
    pub async fn delete_service_account(&self, org: &str, id: &str) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM service_accounts WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_keys WHERE org_id = $1 AND owner_id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM role_bindings WHERE org_id = $1 AND principal = $2")
            .bind(org)
            .bind(format!("User:{id}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- API keys --------------------------------------------------------

    /// Inserts a key owned by `owner`, limited to `scope` (a resource name)
    /// when given. The secret is kept only as `secret_hash`.
    pub async fn create_owned_api_key(
        &self,
        org: &str,
        id: &str,
        secret_hash: &str,
        owner: &str,
        scope: Option<&str>,
        description: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, secret_hash, description, created_at, owner_id, scope) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(org)
        .bind(secret_hash)
        .bind(description)
        .bind(now_millis())
        .bind(owner)
        .bind(scope)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organization's keys, or one owner's.
    pub async fn list_api_keys(
        &self,
        org: &str,
        owner: Option<&str>,
    ) -> Result<Vec<ApiKeyInfo>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, owner_id, scope, description, created_at FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR owner_id = $2) ORDER BY created_at, id",
        )
        .bind(org)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_info).collect()
    }

    pub async fn get_api_key(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<ApiKeyInfo>, CatalogError> {
        let row = sqlx::query(
            "SELECT id, owner_id, scope, description, created_at FROM api_keys WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_info).transpose()
    }

    pub async fn update_api_key(
        &self,
        org: &str,
        id: &str,
        description: &str,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query("UPDATE api_keys SET description = $3 WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .bind(description)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn delete_api_key(&self, org: &str, id: &str) -> Result<bool, CatalogError> {
        let r = sqlx::query("DELETE FROM api_keys WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- role bindings ---------------------------------------------------

    pub async fn create_role_binding(
        &self,
        org: &str,
        rec: &RoleBindingRecord,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO role_bindings (org_id, id, principal, role_name, crn_pattern, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org)
        .bind(&rec.id)
        .bind(&rec.principal)
        .bind(&rec.role_name)
        .bind(&rec.crn_pattern)
        .bind(rec.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organization's bindings, or one principal's (`User:<id>`).
    pub async fn list_role_bindings(
        &self,
        org: &str,
        principal: Option<&str>,
    ) -> Result<Vec<RoleBindingRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, principal, role_name, crn_pattern, created_at FROM role_bindings WHERE org_id = $1 AND ($2 IS NULL OR principal = $2) ORDER BY created_at, id",
        )
        .bind(org)
        .bind(principal)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(binding).collect()
    }

    pub async fn get_role_binding(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<RoleBindingRecord>, CatalogError> {
        let row = sqlx::query(
            "SELECT id, principal, role_name, crn_pattern, created_at FROM role_bindings WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(binding).transpose()
    }

    pub async fn delete_role_binding(&self, org: &str, id: &str) -> Result<bool, CatalogError> {
        let r = sqlx::query("DELETE FROM role_bindings WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- audit log -------------------------------------------------------

    pub async fn append_audit(&self, org: &str, rec: &AuditRecord) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO audit_log (org_id, at, principal, method, path, status, result, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(org)
        .bind(rec.at)
        .bind(&rec.principal)
        .bind(&rec.method)
        .bind(&rec.path)
        .bind(rec.status)
        .bind(&rec.result)
        .bind(&rec.request_id)
        .bind(&rec.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organization's audit records since `since` (ms), newest first,
    /// at most `limit`.
    pub async fn list_audit(
        &self,
        org: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, at, principal, method, path, status, result, request_id, detail FROM audit_log WHERE org_id = $1 AND at >= $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(org)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    principal: r.try_get("principal")?,
                    method: r.try_get("method")?,
                    path: r.try_get("path")?,
                    status: r.try_get("status")?,
                    result: r.try_get("result")?,
                    request_id: r.try_get("request_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Renames an environment; false when it does not exist.
    pub async fn rename_environment(
        &self,
        org: &str,
        env: &str,
        name: &str,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query("UPDATE environments SET name = $3 WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(env)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes an empty environment: `Ok(Ok(false))` when it does not
    /// exist, `Ok(Err(what))` when it still holds clusters, pools or
    /// statements (named), in one statement so nothing is added meanwhile.
    pub async fn delete_environment(
        &self,
        org: &str,
        env: &str,
    ) -> Result<Result<bool, String>, CatalogError> {
        let r = sqlx::query(
            "DELETE FROM environments WHERE org_id = $1 AND id = $2 \
             AND NOT EXISTS (SELECT 1 FROM kafka_clusters WHERE org_id = $1 AND env_id = $2) \
             AND NOT EXISTS (SELECT 1 FROM compute_pools WHERE org_id = $1 AND env_id = $2) \
             AND NOT EXISTS (SELECT 1 FROM statements WHERE org_id = $1 AND env_id = $2)",
        )
        .bind(org)
        .bind(env)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            // Its quotas and saved workspaces go with it (a new environment of the same id
            // starts from the server's).
            sqlx::query("DELETE FROM tenant_limits WHERE org_id = $1 AND env_id = $2")
                .bind(org)
                .bind(env)
                .execute(&self.pool)
                .await?;
            self.delete_workspaces(org, env).await?;
            return Ok(Ok(true));
        }
        if self.get_environment(org, env).await?.is_none() {
            return Ok(Ok(false));
        }
        let count = |table: &'static str| {
            let q = format!("SELECT COUNT(*) AS n FROM {table} WHERE org_id = $1 AND env_id = $2");
            async move {
                let row = sqlx::query(&q)
                    .bind(org)
                    .bind(env)
                    .fetch_one(&self.pool)
                    .await?;
                Ok::<i64, CatalogError>(row.try_get("n")?)
            }
        };
        let held = [
            ("Kafka clusters", count("kafka_clusters").await?),
            ("compute pools", count("compute_pools").await?),
            ("statements", count("statements").await?),
        ];
        Ok(Err(held
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")))
    }

    /// How many statements an environment holds.
    pub async fn count_statements(&self, org: &str, env: &str) -> Result<i64, CatalogError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM statements WHERE org_id = $1 AND env_id = $2")
                .bind(org)
                .bind(env)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("n")?)
    }

    /// Records what a statement's principal needs while it runs.
    pub async fn set_statement_access(
        &self,
        org: &str,
        env: &str,
        statement: &str,
        principal: &str,
        needs: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO statement_access (org_id, env_id, statement, principal, needs) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, env_id, statement) DO UPDATE SET principal = excluded.principal, needs = excluded.needs",
        )
        .bind(org)
        .bind(env)
        .bind(statement)
        .bind(principal)
        .bind(needs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A statement's principal and needs, as recorded.
    pub async fn statement_access(
        &self,
        org: &str,
        env: &str,
        statement: &str,
    ) -> Result<Option<(String, String)>, CatalogError> {
        let row = sqlx::query(
            "SELECT principal, needs FROM statement_access WHERE org_id = $1 AND env_id = $2 AND statement = $3",
        )
        .bind(org)
        .bind(env)
        .bind(statement)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("principal")?, r.try_get("needs")?)))
            .transpose()
    }
}

fn service_account(r: &sqlx::any::AnyRow) -> Result<ServiceAccountRecord, CatalogError> {
    Ok(ServiceAccountRecord {
        id: r.try_get("id")?,
        display_name: r.try_get("display_name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

fn key_info(r: &sqlx::any::AnyRow) -> Result<ApiKeyInfo, CatalogError> {
    Ok(ApiKeyInfo {
        id: r.try_get("id")?,
        owner_id: r
            .try_get::<Option<String>, _>("owner_id")?
            .unwrap_or_default(),
        scope: r.try_get("scope")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

fn binding(r: &sqlx::any::AnyRow) -> Result<RoleBindingRecord, CatalogError> {
    Ok(RoleBindingRecord {
        id: r.try_get("id")?,
        principal: r.try_get("principal")?,
        role_name: r.try_get("role_name")?,
        crn_pattern: r.try_get("crn_pattern")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// The quotas an organization set for itself: for `env`, or for the
    /// organization with `env` `None`. Name → value.
    pub async fn tenant_limits(
        &self,
        org: &str,
        env: Option<&str>,
    ) -> Result<std::collections::BTreeMap<String, i64>, CatalogError> {
        let rows =
            sqlx::query("SELECT name, value FROM tenant_limits WHERE org_id = $1 AND env_id = $2")
                .bind(org)
                .bind(env.unwrap_or(""))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect()
    }

    /// Sets (or with `None`, removes) one quota of `org` or its `env`.
    pub async fn set_tenant_limit(
        &self,
        org: &str,
        env: Option<&str>,
        name: &str,
        value: Option<i64>,
    ) -> Result<(), CatalogError> {
        let env = env.unwrap_or("");
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO tenant_limits (org_id, env_id, name, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (org_id, env_id, name) DO UPDATE SET value = excluded.value",
                )
                .bind(org)
                .bind(env)
                .bind(name)
                .bind(v)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM tenant_limits WHERE org_id = $1 AND env_id = $2 AND name = $3",
                )
                .bind(org)
                .bind(env)
                .bind(name)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }
}
