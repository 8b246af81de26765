-- SASL credentials of a registered Kafka cluster; the password is sealed
-- (AES-256-GCM under the server's secret key) before it is stored.
ALTER TABLE kafka_clusters ADD COLUMN sasl_mechanism TEXT;
ALTER TABLE kafka_clusters ADD COLUMN sasl_username TEXT;
ALTER TABLE kafka_clusters ADD COLUMN sasl_password TEXT;

-- Quotas an organization's admin set for itself, below the server's:
-- per environment (env_id set) or per organization (env_id '').
CREATE TABLE tenant_limits (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, name)
);
