-- Compute pools become a resource users create and change: when each was
-- last changed, and its autoscaler settings (JSON; '{}' means the defaults).
ALTER TABLE compute_pools ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE compute_pools ADD COLUMN autoscaler TEXT NOT NULL DEFAULT '{}';

-- Metering: the CFUs a statement held during one minute (the most task
-- slots allocated to it at once in that minute). A row's identity is the
-- statement and the minute, so recording a minute twice never bills it twice.
CREATE TABLE usage_minutes (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    statement_name TEXT NOT NULL,
    statement_uid TEXT NOT NULL,
    minute BIGINT NOT NULL,
    cfu BIGINT NOT NULL,
    PRIMARY KEY (org_id, env_id, statement_uid, minute)
);
CREATE INDEX usage_minutes_by_time ON usage_minutes (org_id, minute);

-- The autoscaler's decisions, per statement.
CREATE TABLE scaling_events (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    statement TEXT NOT NULL,
    statement_uid TEXT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX scaling_events_by_statement ON scaling_events (org_id, env_id, statement, at);

-- Where each statement stands with the autoscaler (JSON): its tasks per
-- stage, which its next start uses, and its scaling state.
CREATE TABLE statement_scaling (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    statement TEXT NOT NULL,
    statement_uid TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (org_id, env_id, statement)
);
