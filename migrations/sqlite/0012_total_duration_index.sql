-- The total duration as an index of its own: a range of it ("took longer than 45 minutes") is
-- counted, and its first page found, from the few entries it matches, where the covering index
-- led by eventDateTime had to be read whole (about 100 ms over 1,000,000 events,
-- docs/performance.md, Counts). The other durations are not indexed: each index costs every
-- write and bulk load.
CREATE INDEX autopilot_events_by_total_duration ON autopilot_events (
    tenant_id, deployment_total_duration);
