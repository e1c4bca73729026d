-- Dashboard sign-in (analytics.md §6): one-time codes printed by `graphpilot dashboard`, and the
-- sessions their cookies name. Only SHA-256 hashes of codes and session secrets are kept (both
-- are 256-bit random values); `expires_at` is in Unix seconds.
CREATE TABLE graphpilot_dashboard_codes (
    code_sha256 TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE graphpilot_dashboard_sessions (
    session_sha256 TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    app TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
