-- Report export jobs (reports-and-sync.md A): one row per job, in creation order (`seq`), and the
-- finished zip file of a job in chunks of at most 1 MiB, so every node of a database can serve
-- any job's download and a restart keeps both. Instants are .NET ticks like the events' columns;
-- `not_before_ms` and `heartbeat_ms` are Unix milliseconds; `owner` names the node running it.
CREATE TABLE graphpilot_export_jobs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id TEXT COLLATE "C" NOT NULL,
    report_name TEXT NOT NULL,
    filter TEXT,
    search TEXT,
    snapshot_id TEXT,
    select_json TEXT NOT NULL,
    format TEXT NOT NULL,
    localization_type TEXT NOT NULL,
    status TEXT NOT NULL,
    request_ticks BIGINT NOT NULL,
    completed_ticks BIGINT,
    expiration_ticks BIGINT,
    not_before_ms BIGINT NOT NULL,
    url_shown BIGINT NOT NULL DEFAULT 0,
    file_bytes BIGINT,
    owner TEXT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
CREATE INDEX graphpilot_export_jobs_by_tenant ON graphpilot_export_jobs (tenant_id, seq);
CREATE TABLE graphpilot_export_chunks (
    job_id TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (job_id, n)
);
