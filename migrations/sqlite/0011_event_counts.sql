-- Events counted per (tenant, UTC day, the enum and text dimensions the dashboard groups by),
-- kept exact by triggers on every write, so `/$count` of equality and range terms on these
-- columns sums a few thousand rows instead of reading a million (docs/storage.md, Counts).
-- Column names are the events' own, so a `$filter` lowered for events reads these rows too.
CREATE TABLE autopilot_event_counts (
    tenant_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    deployment_state INTEGER NOT NULL,
    enrollment_type INTEGER NOT NULL,
    device_setup_status INTEGER NOT NULL,
    account_setup_status INTEGER NOT NULL,
    deployment_profile_display_name TEXT,
    esp_configuration_display_name TEXT,
    os_version TEXT,
    n INTEGER NOT NULL
);
CREATE INDEX autopilot_event_counts_key ON autopilot_event_counts (
    tenant_id, day, deployment_state, enrollment_type, device_setup_status, account_setup_status,
    deployment_profile_display_name, esp_configuration_display_name, os_version, n);
INSERT INTO autopilot_event_counts
    SELECT tenant_id, event_date_time / 864000000000, deployment_state, enrollment_type,
        device_setup_status, account_setup_status, deployment_profile_display_name,
        esp_configuration_display_name, os_version, count(*)
    FROM autopilot_events
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
CREATE TRIGGER autopilot_event_counts_insert AFTER INSERT ON autopilot_events BEGIN
    INSERT INTO autopilot_event_counts
        SELECT new.tenant_id, new.event_date_time / 864000000000, new.deployment_state,
            new.enrollment_type, new.device_setup_status, new.account_setup_status,
            new.deployment_profile_display_name, new.esp_configuration_display_name,
            new.os_version, 0
        WHERE NOT EXISTS (SELECT 1 FROM autopilot_event_counts WHERE tenant_id = new.tenant_id
            AND day = new.event_date_time / 864000000000
            AND deployment_state = new.deployment_state AND enrollment_type = new.enrollment_type
            AND device_setup_status = new.device_setup_status
            AND account_setup_status = new.account_setup_status
            AND deployment_profile_display_name IS new.deployment_profile_display_name
            AND esp_configuration_display_name IS new.esp_configuration_display_name
            AND os_version IS new.os_version);
    UPDATE autopilot_event_counts SET n = n + 1 WHERE tenant_id = new.tenant_id
        AND day = new.event_date_time / 864000000000
        AND deployment_state = new.deployment_state AND enrollment_type = new.enrollment_type
        AND device_setup_status = new.device_setup_status
        AND account_setup_status = new.account_setup_status
        AND deployment_profile_display_name IS new.deployment_profile_display_name
        AND esp_configuration_display_name IS new.esp_configuration_display_name
        AND os_version IS new.os_version;
END;
CREATE TRIGGER autopilot_event_counts_delete AFTER DELETE ON autopilot_events BEGIN
    UPDATE autopilot_event_counts SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND day = old.event_date_time / 864000000000
        AND deployment_state = old.deployment_state AND enrollment_type = old.enrollment_type
        AND device_setup_status = old.device_setup_status
        AND account_setup_status = old.account_setup_status
        AND deployment_profile_display_name IS old.deployment_profile_display_name
        AND esp_configuration_display_name IS old.esp_configuration_display_name
        AND os_version IS old.os_version;
END;
CREATE TRIGGER autopilot_event_counts_update AFTER UPDATE OF tenant_id, event_date_time,
    deployment_state, enrollment_type, device_setup_status, account_setup_status,
    deployment_profile_display_name, esp_configuration_display_name, os_version
    ON autopilot_events
    WHEN old.tenant_id IS NOT new.tenant_id
        OR old.event_date_time / 864000000000 IS NOT new.event_date_time / 864000000000
        OR old.deployment_state IS NOT new.deployment_state
        OR old.enrollment_type IS NOT new.enrollment_type
        OR old.device_setup_status IS NOT new.device_setup_status
        OR old.account_setup_status IS NOT new.account_setup_status
        OR old.deployment_profile_display_name IS NOT new.deployment_profile_display_name
        OR old.esp_configuration_display_name IS NOT new.esp_configuration_display_name
        OR old.os_version IS NOT new.os_version
BEGIN
    UPDATE autopilot_event_counts SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND day = old.event_date_time / 864000000000
        AND deployment_state = old.deployment_state AND enrollment_type = old.enrollment_type
        AND device_setup_status = old.device_setup_status
        AND account_setup_status = old.account_setup_status
        AND deployment_profile_display_name IS old.deployment_profile_display_name
        AND esp_configuration_display_name IS old.esp_configuration_display_name
        AND os_version IS old.os_version;
    INSERT INTO autopilot_event_counts
        SELECT new.tenant_id, new.event_date_time / 864000000000, new.deployment_state,
            new.enrollment_type, new.device_setup_status, new.account_setup_status,
            new.deployment_profile_display_name, new.esp_configuration_display_name,
            new.os_version, 0
        WHERE NOT EXISTS (SELECT 1 FROM autopilot_event_counts WHERE tenant_id = new.tenant_id
            AND day = new.event_date_time / 864000000000
            AND deployment_state = new.deployment_state AND enrollment_type = new.enrollment_type
            AND device_setup_status = new.device_setup_status
            AND account_setup_status = new.account_setup_status
            AND deployment_profile_display_name IS new.deployment_profile_display_name
            AND esp_configuration_display_name IS new.esp_configuration_display_name
            AND os_version IS new.os_version);
    UPDATE autopilot_event_counts SET n = n + 1 WHERE tenant_id = new.tenant_id
        AND day = new.event_date_time / 864000000000
        AND deployment_state = new.deployment_state AND enrollment_type = new.enrollment_type
        AND device_setup_status = new.device_setup_status
        AND account_setup_status = new.account_setup_status
        AND deployment_profile_display_name IS new.deployment_profile_display_name
        AND esp_configuration_display_name IS new.esp_configuration_display_name
        AND os_version IS new.os_version;
END;
