-- Secondary indexes dropped for a bulk load into an empty table, kept here until they are built
-- again, so that a load interrupted by a crash still gets its indexes back at the next start.
CREATE TABLE graphpilot_deferred_indexes (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
