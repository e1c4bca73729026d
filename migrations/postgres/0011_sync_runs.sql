-- Runs of `graphpilot sync` (reports-and-sync.md C), newest last by `seq`. Instants are .NET ticks
-- like the events' columns; `watermark` is the largest eventDateTime received by this run;
-- `errors_json` is a JSON array of every failed attempt (`failed_attempts` counts them, for
-- metrics). The secret is never stored.
CREATE TABLE graphpilot_sync_runs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    source_tenant TEXT COLLATE "C" NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ticks BIGINT NOT NULL,
    end_ticks BIGINT,
    filter_from_ticks BIGINT,
    watermark_ticks BIGINT,
    pages BIGINT NOT NULL DEFAULT 0,
    fetched BIGINT NOT NULL DEFAULT 0,
    upserted BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    errors_json TEXT NOT NULL DEFAULT '[]',
    failed_attempts BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX graphpilot_sync_runs_by_tenant ON graphpilot_sync_runs (tenant_id, source, source_tenant, seq);
