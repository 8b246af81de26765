-- The web workspace's SQL cells, one document per user and environment
-- (JSON: the cells' SQL, catalog and database), saved as the user edits.
CREATE TABLE workspaces (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, principal)
);
