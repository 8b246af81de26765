//! OAuth identity providers and their identity pools, each scoped to an
//! organization. Checking tokens and evaluating a pool's filter is the
//! control plane's; this keeps the records.

use sqlx::Row;

use super::{is_unique_violation, Store};
use crate::CatalogError;

/// An issuer whose tokens are accepted, checked against its JWKS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityProviderRecord {
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// Where its signing keys are published.
    pub jwks_uri: String,
    /// The `aud` its tokens for Weir carry.
    pub audience: String,
    pub created_at: i64,
}

/// Which of a provider's tokens become the principal `pool-...`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityPoolRecord {
    pub id: String,
    pub provider_id: String,
    pub display_name: String,
    pub description: String,
    /// The claim that names the person or workload (`claims.sub`), for
    /// the audit log.
    pub identity_claim: String,
    /// The expression a token's claims must satisfy.
    pub filter: String,
    pub created_at: i64,
}

const PROVIDER_COLUMNS: &str =
    "id, display_name, description, issuer, jwks_uri, audience, created_at";
const POOL_COLUMNS: &str =
    "id, provider_id, display_name, description, identity_claim, filter, created_at";

fn provider(r: &sqlx::any::AnyRow) -> Result<IdentityProviderRecord, CatalogError> {
    Ok(IdentityProviderRecord {
        id: r.try_get("id")?,
        display_name: r.try_get("display_name")?,
        description: r.try_get("description")?,
        issuer: r.try_get("issuer")?,
        jwks_uri: r.try_get("jwks_uri")?,
        audience: r.try_get("audience")?,
        created_at: r.try_get("created_at")?,
    })
}

fn pool(r: &sqlx::any::AnyRow) -> Result<IdentityPoolRecord, CatalogError> {
    Ok(IdentityPoolRecord {
        id: r.try_get("id")?,
        provider_id: r.try_get("provider_id")?,
        display_name: r.try_get("display_name")?,
        description: r.try_get("description")?,
        identity_claim: r.try_get("identity_claim")?,
        filter: r.try_get("filter")?,
        created_at: r.try_get("created_at")?,
    })
}

fn duplicate<'a>(
    what: &'static str,
    name: &'a str,
) -> impl FnOnce(sqlx::Error) -> CatalogError + 'a {
    move |e| {
        if is_unique_violation(&e) {
            CatalogError::AlreadyExists {
                what,
                name: name.to_string(),
            }
        } else {
            e.into()
        }
    }
}

impl Store {
    pub async fn create_identity_provider(
        &self,
        org: &str,
        rec: &IdentityProviderRecord,
    ) -> Result<(), CatalogError> {
        sqlx::query(&format!(
            "INSERT INTO identity_providers (org_id, {PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(org)
        .bind(&rec.id)
        .bind(&rec.display_name)
        .bind(&rec.description)
        .bind(&rec.issuer)
        .bind(&rec.jwks_uri)
        .bind(&rec.audience)
        .bind(rec.created_at)
        .execute(&self.pool)
        .await
        .map_err(duplicate("identity provider", &rec.display_name))?;
        Ok(())
    }

    pub async fn list_identity_providers(
        &self,
        org: &str,
    ) -> Result<Vec<IdentityProviderRecord>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE org_id = $1 ORDER BY display_name"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(provider).collect()
    }

    pub async fn get_identity_provider(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<IdentityProviderRecord>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(provider).transpose()
    }

    /// Every provider, of any organization, whose tokens carry `issuer`:
    /// where a bearer token is checked.
    pub async fn identity_providers_by_issuer(
        &self,
        issuer: &str,
    ) -> Result<Vec<(String, IdentityProviderRecord)>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT org_id, {PROVIDER_COLUMNS} FROM identity_providers WHERE issuer = $1 ORDER BY org_id, id"
        ))
        .bind(issuer)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("org_id")?, provider(r)?)))
            .collect()
    }

    /// Changes what may change of a provider (all but its id).
    pub async fn update_identity_provider(
        &self,
        org: &str,
        rec: &IdentityProviderRecord,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE identity_providers SET display_name = $3, description = $4, issuer = $5, jwks_uri = $6, audience = $7 WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(&rec.id)
        .bind(&rec.display_name)
        .bind(&rec.description)
        .bind(&rec.issuer)
        .bind(&rec.jwks_uri)
        .bind(&rec.audience)
        .execute(&self.pool)
        .await
        .map_err(duplicate("identity provider", &rec.display_name))?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a provider with its pools and their role bindings; false
    /// when it does not exist.
    pub async fn delete_identity_provider(
        &self,
        org: &str,
        id: &str,
    ) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let pools =
            sqlx::query("SELECT id FROM identity_pools WHERE org_id = $1 AND provider_id = $2")
                .bind(org)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        for p in &pools {
            let pool_id: String = p.try_get("id")?;
            sqlx::query("DELETE FROM role_bindings WHERE org_id = $1 AND principal = $2")
                .bind(org)
                .bind(format!("User:{pool_id}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM identity_pools WHERE org_id = $1 AND provider_id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM identity_providers WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn create_identity_pool(
        &self,
        org: &str,
        rec: &IdentityPoolRecord,
    ) -> Result<(), CatalogError> {
        sqlx::query(&format!(
            "INSERT INTO identity_pools (org_id, {POOL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(org)
        .bind(&rec.id)
        .bind(&rec.provider_id)
        .bind(&rec.display_name)
        .bind(&rec.description)
        .bind(&rec.identity_claim)
        .bind(&rec.filter)
        .bind(rec.created_at)
        .execute(&self.pool)
        .await
        .map_err(duplicate("identity pool", &rec.display_name))?;
        Ok(())
    }

    /// A provider's pools.
    pub async fn list_identity_pools(
        &self,
        org: &str,
        provider_id: &str,
    ) -> Result<Vec<IdentityPoolRecord>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {POOL_COLUMNS} FROM identity_pools WHERE org_id = $1 AND provider_id = $2 ORDER BY display_name"
        ))
        .bind(org)
        .bind(provider_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pool).collect()
    }

    /// A pool of the organization, whichever provider it belongs to.
    pub async fn get_identity_pool(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<IdentityPoolRecord>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {POOL_COLUMNS} FROM identity_pools WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pool).transpose()
    }

    pub async fn update_identity_pool(
        &self,
        org: &str,
        rec: &IdentityPoolRecord,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE identity_pools SET display_name = $3, description = $4, identity_claim = $5, filter = $6 WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(&rec.id)
        .bind(&rec.display_name)
        .bind(&rec.description)
        .bind(&rec.identity_claim)
        .bind(&rec.filter)
        .execute(&self.pool)
        .await
        .map_err(duplicate("identity pool", &rec.display_name))?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a pool with its role bindings; false when it does not exist.
    pub async fn delete_identity_pool(&self, org: &str, id: &str) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM role_bindings WHERE org_id = $1 AND principal = $2")
            .bind(org)
            .bind(format!("User:{id}"))
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM identity_pools WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }
}
