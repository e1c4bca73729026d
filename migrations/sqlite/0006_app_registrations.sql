-- App registrations for the token endpoint's client-credentials flow. Only a SHA-256 hash of each
-- secret is kept (secrets are 256-bit random values, so a slow hash adds nothing).
CREATE TABLE graphpilot_apps (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
