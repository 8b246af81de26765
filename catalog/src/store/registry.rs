//! The schema registry's records: schemas by id, subjects' versions and
//! compatibility levels, each scoped to an organization and environment.

use sqlx::Row;

use super::{is_unique_violation, Store};
use crate::registry::{
    Compatibility, RegisteredSchema, RegistryConfig, SchemaReference, SchemaType, SubjectVersion,
};
use crate::{now_millis, CatalogError};

const VERSION_COLUMNS: &str =
    "v.subject, v.version, v.deleted, s.id, s.schema_type, s.schema_text, s.refs";

fn version_of(r: &sqlx::any::AnyRow) -> Result<SubjectVersion, CatalogError> {
    let ty: String = r.try_get("schema_type")?;
    let refs: String = r.try_get("refs")?;
    Ok(SubjectVersion {
        subject: r.try_get("subject")?,
        version: r.try_get("version")?,
        deleted: r.try_get::<i64, _>("deleted")? != 0,
        schema: RegisteredSchema {
            id: r.try_get("id")?,
            schema_type: SchemaType::parse(&ty)
                .ok_or_else(|| CatalogError::Corrupt(format!("schema type '{ty}'")))?,
            schema: r.try_get("schema_text")?,
            references: serde_json::from_str(&refs)
                .map_err(|e| CatalogError::Corrupt(format!("schema references: {e}")))?,
            reference_texts: vec![],
        },
    })
}

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub id: i64,
    pub version: i64,
    /// Whether a new version was made (not the same schema found again).
    pub created: bool,
}

impl Store {
    /// Every version of a subject, oldest first; soft-deleted ones only
    /// when `deleted`.
    pub async fn registry_versions(
        &self,
        org: &str,
        env: &str,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<SubjectVersion>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM registry_versions v JOIN registry_schemas s ON s.id = v.schema_id \
             WHERE v.org_id = $1 AND v.env_id = $2 AND v.subject = $3 AND ($4 = 1 OR v.deleted = 0) ORDER BY v.version"
        ))
        .bind(org)
        .bind(env)
        .bind(subject)
        .bind(deleted as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_of).collect()
    }

    /// The latest live version of every subject of an environment.
    pub async fn registry_latest(
        &self,
        org: &str,
        env: &str,
    ) -> Result<Vec<SubjectVersion>, CatalogError> {
        let mut out: Vec<SubjectVersion> = vec![];
        for v in self.registry_all(org, env).await? {
            match out.last_mut() {
                Some(last) if last.subject == v.subject => *last = v,
                _ => out.push(v),
            }
        }
        Ok(out)
    }

    /// Every live version of every subject of an environment, by subject
    /// and version.
    pub async fn registry_all(
        &self,
        org: &str,
        env: &str,
    ) -> Result<Vec<SubjectVersion>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM registry_versions v JOIN registry_schemas s ON s.id = v.schema_id \
             WHERE v.org_id = $1 AND v.env_id = $2 AND v.deleted = 0 ORDER BY v.subject, v.version"
        ))
        .bind(org)
        .bind(env)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_of).collect()
    }

    /// The subjects of an environment with a live version (or any version,
    /// when `deleted`), sorted.
    pub async fn registry_subjects(
        &self,
        org: &str,
        env: &str,
        deleted: bool,
    ) -> Result<Vec<String>, CatalogError> {
        let rows = sqlx::query(
            "SELECT DISTINCT subject FROM registry_versions \
             WHERE org_id = $1 AND env_id = $2 AND ($3 = 1 OR deleted = 0) ORDER BY subject",
        )
        .bind(org)
        .bind(env)
        .bind(deleted as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("subject")?)).collect()
    }

    /// A schema by id, if it belongs to this environment.
    pub async fn registry_schema(
        &self,
        org: &str,
        env: &str,
        id: i64,
    ) -> Result<Option<RegisteredSchema>, CatalogError> {
        let row = sqlx::query(
            "SELECT id, schema_type, schema_text, refs FROM registry_schemas WHERE org_id = $1 AND env_id = $2 AND id = $3",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let ty: String = r.try_get("schema_type")?;
        let refs: String = r.try_get("refs")?;
        Ok(Some(RegisteredSchema {
            id: r.try_get("id")?,
            schema_type: SchemaType::parse(&ty)
                .ok_or_else(|| CatalogError::Corrupt(format!("schema type '{ty}'")))?,
            schema: r.try_get("schema_text")?,
            references: serde_json::from_str(&refs)
                .map_err(|e| CatalogError::Corrupt(format!("schema references: {e}")))?,
            reference_texts: vec![],
        }))
    }

    /// The live subject versions that use schema `id`.
    pub async fn registry_schema_versions(
        &self,
        org: &str,
        env: &str,
        id: i64,
    ) -> Result<Vec<(String, i64)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT subject, version FROM registry_versions WHERE org_id = $1 AND env_id = $2 AND schema_id = $3 AND deleted = 0 ORDER BY subject, version",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("subject")?, r.try_get("version")?)))
            .collect()
    }

    /// Registers a schema under a subject: the existing version when the
    /// subject already has it, else a new version (reusing the schema's id
    /// when the environment has it under another subject). Compatibility is
    /// the caller's to check first.
    #[allow(clippy::too_many_arguments)]
    pub async fn registry_register(
        &self,
        org: &str,
        env: &str,
        subject: &str,
        ty: SchemaType,
        text: &str,
        normalized: &str,
        refs: &[SchemaReference],
    ) -> Result<Registered, CatalogError> {
        let refs = serde_json::to_string(refs).expect("references serialize");
        // A concurrent registration may take the version number: try again.
        for _ in 0..5 {
            // A write transaction from the start: a read lock upgraded to a
            // write one fails on SQLite when another writer commits between.
            let mut tx = if self.is_sqlite() {
                self.pool.begin_with("BEGIN IMMEDIATE").await?
            } else {
                self.pool.begin().await?
            };
            let same = sqlx::query(
                "SELECT v.version, s.id FROM registry_versions v JOIN registry_schemas s ON s.id = v.schema_id \
                 WHERE v.org_id = $1 AND v.env_id = $2 AND v.subject = $3 AND v.deleted = 0 \
                 AND s.schema_type = $4 AND s.normalized = $5 AND s.refs = $6 ORDER BY v.version LIMIT 1",
            )
            .bind(org)
            .bind(env)
            .bind(subject)
            .bind(ty.as_str())
            .bind(normalized)
            .bind(&refs)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = same {
                return Ok(Registered {
                    id: r.try_get("id")?,
                    version: r.try_get("version")?,
                    created: false,
                });
            }
            let existing = sqlx::query(
                "SELECT id FROM registry_schemas WHERE org_id = $1 AND env_id = $2 AND schema_type = $3 AND normalized = $4 AND refs = $5 ORDER BY id LIMIT 1",
            )
            .bind(org)
            .bind(env)
            .bind(ty.as_str())
            .bind(normalized)
            .bind(&refs)
            .fetch_optional(&mut *tx)
            .await?;
            let id: i64 = match existing {
                Some(r) => r.try_get("id")?,
                None => sqlx::query(
                    "INSERT INTO registry_schemas (org_id, env_id, schema_type, schema_text, refs, normalized) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(org)
                .bind(env)
                .bind(ty.as_str())
                .bind(text)
                .bind(&refs)
                .bind(normalized)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?,
            };
            let next: i64 = sqlx::query(
                "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) AS next FROM registry_versions \
                 WHERE org_id = $1 AND env_id = $2 AND subject = $3",
            )
            .bind(org)
            .bind(env)
            .bind(subject)
            .fetch_one(&mut *tx)
            .await?
            .try_get("next")?;
            let inserted = sqlx::query(
                "INSERT INTO registry_versions (org_id, env_id, subject, version, schema_id, deleted, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(org)
            .bind(env)
            .bind(subject)
            .bind(next)
            .bind(id)
            .bind(now_millis())
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(Registered {
                        id,
                        version: next,
                        created: true,
                    });
                }
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CatalogError::Corrupt(format!(
            "subject '{subject}' kept changing while a version was registered; try again"
        )))
    }

    /// Marks versions deleted (one, or every live one); returns those it
    /// marked.
    pub async fn registry_soft_delete(
        &self,
        org: &str,
        env: &str,
        subject: &str,
        version: Option<i64>,
    ) -> Result<Vec<i64>, CatalogError> {
        self.registry_versions_change(
            "UPDATE registry_versions SET deleted = 1 WHERE org_id = $1 AND env_id = $2 AND subject = $3 \
             AND deleted = 0 AND ($4 < 0 OR version = $4) RETURNING version",
            org,
            env,
            subject,
            version,
        )
        .await
    }

    /// Removes soft-deleted versions for good (one, or all of the
    /// subject's); returns those it removed. A schema no version uses any
    /// more is removed with them.
    pub async fn registry_hard_delete(
        &self,
        org: &str,
        env: &str,
        subject: &str,
        version: Option<i64>,
    ) -> Result<Vec<i64>, CatalogError> {
        let gone = self
            .registry_versions_change(
                "DELETE FROM registry_versions WHERE org_id = $1 AND env_id = $2 AND subject = $3 \
                 AND deleted = 1 AND ($4 < 0 OR version = $4) RETURNING version",
                org,
                env,
                subject,
                version,
            )
            .await?;
        sqlx::query(
            "DELETE FROM registry_schemas WHERE org_id = $1 AND env_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM registry_versions v WHERE v.schema_id = registry_schemas.id)",
        )
        .bind(org)
        .bind(env)
        .execute(&self.pool)
        .await?;
        Ok(gone)
    }

    /// One statement that changes a subject's versions (one, or all) and
    /// returns the versions it changed, sorted: a single write, so it never
    /// upgrades a read lock (SQLite refuses that while another writer
    /// commits).
    async fn registry_versions_change(
        &self,
        sql: &'static str,
        org: &str,
        env: &str,
        subject: &str,
        version: Option<i64>,
    ) -> Result<Vec<i64>, CatalogError> {
        let rows = sqlx::query(sql)
            .bind(org)
            .bind(env)
            .bind(subject)
            .bind(version.unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?;
        let mut versions: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get("version"))
            .collect::<Result<_, _>>()?;
        versions.sort_unstable();
        Ok(versions)
    }

    /// A subject's compatibility level (`subject` "" is the environment's
    /// global one), if set.
    pub async fn registry_compatibility(
        &self,
        org: &str,
        env: &str,
        subject: &str,
    ) -> Result<Option<Compatibility>, CatalogError> {
        let row = sqlx::query(
            "SELECT compatibility FROM registry_config WHERE org_id = $1 AND env_id = $2 AND subject = $3",
        )
        .bind(org)
        .bind(env)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let c: String = r.try_get("compatibility")?;
                Ok(Some(Compatibility::parse(&c).ok_or_else(|| {
                    CatalogError::Corrupt(format!("compatibility level '{c}'"))
                })?))
            }
        }
    }

    pub async fn set_registry_compatibility(
        &self,
        org: &str,
        env: &str,
        subject: &str,
        level: Compatibility,
    ) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO registry_config (org_id, env_id, subject, compatibility) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, env_id, subject) DO UPDATE SET compatibility = excluded.compatibility",
        )
        .bind(org)
        .bind(env)
        .bind(subject)
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a subject's level; returns whether it had one.
    pub async fn delete_registry_compatibility(
        &self,
        org: &str,
        env: &str,
        subject: &str,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "DELETE FROM registry_config WHERE org_id = $1 AND env_id = $2 AND subject = $3",
        )
        .bind(org)
        .bind(env)
        .bind(subject)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The environment's external schema registry (`None`: the built-in
    /// one). `Ok(None)` too when the environment does not exist.
    pub async fn environment_registry(
        &self,
        org: &str,
        env: &str,
    ) -> Result<Option<RegistryConfig>, CatalogError> {
        let row =
            sqlx::query("SELECT schema_registry FROM environments WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(env)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let Some(text) = r.try_get::<Option<String>, _>("schema_registry")? else {
            return Ok(None);
        };
        let mut config: RegistryConfig = serde_json::from_str(&text)
            .map_err(|e| CatalogError::Corrupt(format!("schema registry settings: {e}")))?;
        if let Some(p) = &config.password {
            config.password = Some(self.open_secret(p)?);
        }
        Ok(Some(config))
    }

    /// Points the environment at an external registry (`None`: back to the
    /// built-in one); false when the environment does not exist.
    pub async fn set_environment_registry(
        &self,
        org: &str,
        env: &str,
        config: Option<&RegistryConfig>,
    ) -> Result<bool, CatalogError> {
        // The password is sealed before it reaches the database.
        let config = match config {
            Some(c) => {
                let mut c = c.clone();
                if let Some(p) = &c.password {
                    c.password = Some(self.seal_secret(p)?);
                }
                Some(c)
            }
            None => None,
        };
        let text = config
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| CatalogError::Corrupt(format!("schema registry settings: {e}")))?;
        let r = sqlx::query(
            "UPDATE environments SET schema_registry = $3 WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(env)
        .bind(text)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
