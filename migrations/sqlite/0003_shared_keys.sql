-- Keys every node of one database must share (PostgreSQL deployments): the token signing key, from
-- which the paging-token MAC secret also derives. The first node to start publishes its key.
CREATE TABLE graphpilot_keys (
    name TEXT PRIMARY KEY,
    pem TEXT NOT NULL
);
