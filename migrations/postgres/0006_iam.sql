-- Identity and access: service accounts, the owner and scope of API keys,
-- role bindings, and the audit log. Every row is scoped to an organization.
CREATE TABLE service_accounts (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX service_accounts_by_name ON service_accounts (org_id, display_name);

-- The principal a key proves (`u-...` a user, `sa-...` a service account)
-- and the resource it is limited to (NULL: what its owner may do anywhere).
ALTER TABLE api_keys ADD COLUMN owner_id TEXT;
ALTER TABLE api_keys ADD COLUMN scope TEXT;
-- Keys made before roles existed belong to their organization's owner,
-- who administers the organization.
UPDATE api_keys SET owner_id = 'u-owner-' || org_id WHERE owner_id IS NULL;

-- `principal` is `User:<id>`; `crn_pattern` a resource name such as
-- `crn://weir/organization=o/environment=e/kafka=c/topic=orders-*`.
CREATE TABLE role_bindings (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    principal TEXT NOT NULL,
    role_name TEXT NOT NULL,
    crn_pattern TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX role_bindings_by_principal ON role_bindings (org_id, principal);
INSERT INTO role_bindings (org_id, id, principal, role_name, crn_pattern, created_at)
SELECT DISTINCT org_id, 'rb-owner-' || org_id, 'User:u-owner-' || org_id, 'OrganizationAdmin',
       'crn://weir/organization=' || org_id, 0
FROM api_keys;

-- Every mutating call and every denied call.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    org_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    principal TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL,
    result TEXT NOT NULL,
    request_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (org_id, at);

-- What a statement's principal must keep being allowed while the statement
-- runs (JSON [[permission, resource name], ...]): checked again and again,
-- so that removing a binding fails the statement.
CREATE TABLE statement_access (
    org_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    statement TEXT NOT NULL,
    principal TEXT NOT NULL,
    needs TEXT NOT NULL,
    PRIMARY KEY (org_id, env_id, statement)
);
