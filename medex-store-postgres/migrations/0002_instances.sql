-- What several MedEx instances on one database share besides the records: the configuration's
-- version (a save is accepted only on top of the version it read), leases (background sweeps and
-- the first admin, one instance at a time) and uploaded proof files.

-- A configuration saved before versions were kept counts as version 1.
ALTER TABLE system_config ADD COLUMN version bigint NOT NULL DEFAULT 1;

-- `until` is the holder's own clock; a lease is free once it has passed.
CREATE TABLE medex_leases (
    name   text        PRIMARY KEY,
    holder text        NOT NULL,
    until  timestamptz NOT NULL
);

-- Proof photos and signatures, by their generated names; never updated, deleted only with a
-- failed attachment.
CREATE TABLE uploads (
    name       text        PRIMARY KEY,
    bytes      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The sweep of expired refresh sessions.
CREATE INDEX refresh_sessions_by_expiry ON refresh_sessions (expires_at);
