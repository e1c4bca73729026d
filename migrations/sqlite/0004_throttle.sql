-- Request budgets shared by the nodes of one database (PostgreSQL deployments): how much of each
-- 20-second window's limit the nodes have claimed. `app` is '' for a tenant-wide counter.
CREATE TABLE graphpilot_throttle (
    tenant_id TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_window BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, app, kind, time_window)
);
