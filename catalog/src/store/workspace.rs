//! The web workspace's saved cells: one JSON document per user and
//! environment. What the document holds is the control plane's and the
//! page's; this keeps it, scoped to its organization and environment.

use sqlx::Row;

use super::Store;
use crate::CatalogError;

impl Store {
    /// `principal`'s workspace document in `org`/`env` and when it was
    /// saved (ms), if it saved one.
    pub async fn get_workspace(
        &self,
        org: &str,
        env: &str,
        principal: &str,
    ) -> Result<Option<(String, i64)>, CatalogError> {
        let row = sqlx::query(
            "SELECT body, updated_at FROM workspaces WHERE org_id = $1 AND env_id = $2 AND principal = $3",
        )
        .bind(org)
        .bind(env)
        .bind(principal)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("body")?, r.try_get("updated_at")?)))
            .transpose()
    }

    /// Saves `principal`'s workspace document in `org`/`env`, replacing the
    /// one it had.
    pub async fn put_workspace(
        &self,
        org: &str,
        env: &str,
        principal: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO workspaces (org_id, env_id, principal, body, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, env_id, principal) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(org)
        .bind(env)
        .bind(principal)
        .bind(body)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets every workspace of `env` (when the environment is deleted).
    pub async fn delete_workspaces(&self, org: &str, env: &str) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM workspaces WHERE org_id = $1 AND env_id = $2")
            .bind(org)
            .bind(env)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
