-- Indexes for the analytics (analytics.md; docs/performance.md has the measurements): a window of
-- a fleet is read in eventDateTime order from an index holding the columns the aggregates read.
-- Text columns stay out of the keys here: a btree entry holds at most about 2.7 KB (see 0007), and
-- display names are free text; text filters read them from the rows.
CREATE INDEX autopilot_events_analytics ON autopilot_events (
    tenant_id, event_date_time, deployment_state, enrollment_type, device_setup_status,
    account_setup_status, deployment_total_duration, device_setup_duration,
    account_setup_duration, deployment_duration);
CREATE INDEX autopilot_events_failures ON autopilot_events (tenant_id, event_date_time)
    WHERE deployment_state = 3;
CREATE INDEX autopilot_events_in_progress ON autopilot_events (
    tenant_id, deployment_start_date_time, event_date_time)
    WHERE deployment_state = 2;
CREATE INDEX policy_status_details_blocking ON policy_status_details (
    tenant_id, event_id, policy_type, error_code)
    WHERE tracked_on_enrollment_status = TRUE AND compliance_status IN (3, 4, 5);
