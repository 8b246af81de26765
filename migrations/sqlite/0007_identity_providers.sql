-- OAuth: identity providers (an issuer whose tokens Weir accepts, checked
-- against its JWKS) and identity pools (which of its tokens map to which
-- principal, `pool-...`, by a filter on their claims). Scoped to an
-- organization; a provider's pools go with it.
CREATE TABLE identity_providers (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    issuer TEXT NOT NULL,
    jwks_uri TEXT NOT NULL,
    audience TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX identity_providers_by_name ON identity_providers (org_id, display_name);
CREATE INDEX identity_providers_by_issuer ON identity_providers (issuer);

CREATE TABLE identity_pools (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    identity_claim TEXT NOT NULL,
    filter TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX identity_pools_by_provider ON identity_pools (org_id, provider_id);
