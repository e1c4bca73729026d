-- The typed columns hold every property, so the JSON copy of each entity is redundant: reads now
-- render it from the columns. Dropping it halves the bytes a row occupies (and a bulk load writes).
ALTER TABLE autopilot_events DROP COLUMN body;
ALTER TABLE policy_status_details DROP COLUMN body;
