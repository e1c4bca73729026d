-- A btree entry holds at most about 2.7 KB, so a long, incompressible serial number, device id
-- or user principal name could not be stored at all (the insert failed). These indexes now hold
-- only values of up to 1,024 bytes; equality filters on the three columns repeat that bound
-- (store/sql.rs, INDEXED_TEXT_BYTES) so the planner still uses them. Longer values are stored and
-- found like any other, by a scan within the tenant.
DROP INDEX autopilot_events_by_serial;
DROP INDEX autopilot_events_by_user;
DROP INDEX autopilot_events_by_device;
CREATE INDEX autopilot_events_by_serial ON autopilot_events (tenant_id, device_serial_number)
    WHERE octet_length(device_serial_number) <= 1024;
CREATE INDEX autopilot_events_by_user ON autopilot_events (tenant_id, user_principal_name)
    WHERE octet_length(user_principal_name) <= 1024;
CREATE INDEX autopilot_events_by_device ON autopilot_events (tenant_id, device_id)
    WHERE octet_length(device_id) <= 1024;
