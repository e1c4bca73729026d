-- Every entity keeps its typed columns (filters, ordering, cursors) beside its canonical JSON
-- (`body`), which reads splice into responses. DateTimeOffset and Duration are exact 100 ns ticks;
-- enums are their underlying values. `seq` is the insertion order used by unordered paging.
-- Texts use the "C" collation: byte order, the same order SQLite gives.

CREATE TABLE autopilot_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    etag TEXT COLLATE "C" NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C",
    user_id TEXT COLLATE "C",
    event_date_time BIGINT NOT NULL,
    device_registered_date_time BIGINT NOT NULL,
    enrollment_start_date_time BIGINT NOT NULL,
    enrollment_type BIGINT NOT NULL,
    device_serial_number TEXT COLLATE "C",
    managed_device_name TEXT COLLATE "C",
    user_principal_name TEXT COLLATE "C",
    deployment_profile_display_name TEXT COLLATE "C",
    enrollment_state BIGINT NOT NULL,
    esp_configuration_display_name TEXT COLLATE "C",
    esp_configuration_id TEXT COLLATE "C",
    deployment_state BIGINT NOT NULL,
    device_setup_status BIGINT NOT NULL,
    account_setup_status BIGINT NOT NULL,
    os_version TEXT COLLATE "C",
    deployment_duration BIGINT NOT NULL,
    deployment_total_duration BIGINT NOT NULL,
    device_preparation_duration BIGINT NOT NULL,
    device_setup_duration BIGINT NOT NULL,
    account_setup_duration BIGINT NOT NULL,
    deployment_start_date_time BIGINT NOT NULL,
    deployment_end_date_time BIGINT NOT NULL,
    targeted_app_count BIGINT NOT NULL,
    targeted_policy_count BIGINT NOT NULL,
    enrollment_failure_details TEXT COLLATE "C"
);

CREATE TABLE policy_status_details (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    etag TEXT COLLATE "C" NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C",
    policy_type BIGINT NOT NULL,
    compliance_status BIGINT NOT NULL,
    tracked_on_enrollment_status BOOLEAN NOT NULL,
    last_reported_date_time BIGINT NOT NULL,
    error_code BIGINT NOT NULL
);

CREATE UNIQUE INDEX autopilot_events_key ON autopilot_events (tenant_id, id);
CREATE UNIQUE INDEX autopilot_events_walk ON autopilot_events (tenant_id, seq);
CREATE UNIQUE INDEX policy_status_details_key ON policy_status_details (tenant_id, event_id, id);
CREATE UNIQUE INDEX policy_status_details_walk ON policy_status_details (tenant_id, event_id, seq);

-- Indexes for the queries people run: newest first, by state, by device, by user (docs/odata.md).
CREATE INDEX autopilot_events_by_time ON autopilot_events (tenant_id, event_date_time, id);
CREATE INDEX autopilot_events_by_state ON autopilot_events (tenant_id, deployment_state, event_date_time, id);
CREATE INDEX autopilot_events_by_serial ON autopilot_events (tenant_id, device_serial_number);
CREATE INDEX autopilot_events_by_user ON autopilot_events (tenant_id, user_principal_name);
CREATE INDEX autopilot_events_by_device ON autopilot_events (tenant_id, device_id);
CREATE INDEX autopilot_events_by_enrollment_start ON autopilot_events (tenant_id, enrollment_start_date_time, id);
