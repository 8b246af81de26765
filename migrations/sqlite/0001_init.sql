-- Weir control-plane metadata. Published migrations are never edited: add a new file.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE environments (
    org_id TEXT NOT NULL REFERENCES organizations(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE kafka_clusters (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    bootstrap TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, id),
    FOREIGN KEY (org_id, env_id) REFERENCES environments(org_id, id)
);

CREATE TABLE compute_pools (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    max_cfu BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, id),
    FOREIGN KEY (org_id, env_id) REFERENCES environments(org_id, id)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id),
    secret_hash TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE catalog_tables (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    name TEXT NOT NULL,
    origin TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, cluster_id, name),
    FOREIGN KEY (org_id, env_id, cluster_id) REFERENCES kafka_clusters(org_id, env_id, id)
);

CREATE TABLE statements (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    compute_pool_id TEXT,
    spec TEXT NOT NULL,
    phase TEXT NOT NULL,
    detail TEXT NOT NULL,
    traits TEXT,
    result TEXT,
    metrics TEXT,
    resource_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, name),
    FOREIGN KEY (org_id, env_id) REFERENCES environments(org_id, id)
);

CREATE TABLE statement_offsets (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    statement TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, statement, topic, partition_id)
);

CREATE TABLE statement_exceptions (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    statement TEXT NOT NULL,
    id TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, statement, id)
);
CREATE INDEX statement_exceptions_by_time ON statement_exceptions (org_id, env_id, statement, created_at);
