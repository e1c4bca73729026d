-- Indexes for the analytics (analytics.md; docs/performance.md has the measurements). Each holds
-- every column its statements read, so a window of a fleet is read from the index alone, in
-- eventDateTime order, never row by row from the table.
-- Counts, ranks, timelines and breakdowns over a window, with every filter column.
CREATE INDEX autopilot_events_analytics ON autopilot_events (
    tenant_id, event_date_time, deployment_state, enrollment_type, device_setup_status,
    account_setup_status, deployment_total_duration, device_setup_duration,
    account_setup_duration, deployment_duration, deployment_profile_display_name,
    esp_configuration_display_name, os_version);
-- Failure reasons: failed events only.
CREATE INDEX autopilot_events_failures ON autopilot_events (
    tenant_id, event_date_time, enrollment_failure_details, device_setup_status,
    account_setup_status, id, enrollment_type, deployment_profile_display_name,
    esp_configuration_display_name, os_version)
    WHERE deployment_state = 3;
-- Stuck deployments: in-progress events only, oldest start first.
CREATE INDEX autopilot_events_in_progress ON autopilot_events (
    tenant_id, deployment_start_date_time, event_date_time)
    WHERE deployment_state = 2;
-- Blockers: the details that held up the Enrollment Status Page only.
CREATE INDEX policy_status_details_blocking ON policy_status_details (
    tenant_id, event_id, display_name, policy_type, error_code)
    WHERE tracked_on_enrollment_status = TRUE AND compliance_status IN (3, 4, 5);
