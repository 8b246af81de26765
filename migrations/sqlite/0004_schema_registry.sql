-- The built-in schema registry (Confluent-compatible), per environment.
-- A schema's id is global across the store; a registration of the same
-- schema (same type, normalized text and references) in the same
-- environment reuses it, under any subject.
CREATE TABLE registry_schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    schema_type TEXT NOT NULL,
    schema_text TEXT NOT NULL,
    refs TEXT NOT NULL,
    normalized TEXT NOT NULL
);
CREATE INDEX registry_schemas_by_text ON registry_schemas (org_id, env_id, schema_type);

-- A subject's versions; `deleted` marks a soft delete.
CREATE TABLE registry_versions (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    version BIGINT NOT NULL,
    schema_id BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, subject, version)
);
CREATE INDEX registry_versions_by_schema ON registry_versions (schema_id);

-- Compatibility levels: subject '' is the environment's global level.
CREATE TABLE registry_config (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    compatibility TEXT NOT NULL,
    PRIMARY KEY (org_id, env_id, subject)
);
