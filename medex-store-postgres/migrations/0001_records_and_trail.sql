-- Records are kept whole as JSONB (`record`), next to the key columns that the Store contract
-- filters, sorts and keeps unique, and the `version` that commits check. Fields a later MedEx adds
-- to a record need no migration; a new filter or unique key does.

CREATE TABLE users (
    id        uuid    PRIMARY KEY,
    version   bigint  NOT NULL,
    email     text    NOT NULL CONSTRAINT users_email_key UNIQUE,
    role      text    NOT NULL,
    is_active boolean NOT NULL,
    record    jsonb   NOT NULL
);

CREATE TABLE vendors (
    id      uuid   PRIMARY KEY,
    version bigint NOT NULL,
    record  jsonb  NOT NULL
);

-- Drivers without their position: that lives in `positions`, moved by fixes.
CREATE TABLE drivers (
    id        uuid   PRIMARY KEY,
    version   bigint NOT NULL,
    vendor_id uuid   NOT NULL,
    status    text   NOT NULL,
    record    jsonb  NOT NULL
);
CREATE INDEX drivers_by_vendor ON drivers (vendor_id, id);

-- `created_at` holds the creation time cut to microseconds (PostgreSQL's precision) and
-- `created_ns` the nanoseconds below that, so that range filters compare exactly.
CREATE TABLE orders (
    id              uuid     PRIMARY KEY,
    version         bigint   NOT NULL,
    order_number    text     NOT NULL CONSTRAINT orders_order_number_key UNIQUE,
    tracking_token  text     NOT NULL CONSTRAINT orders_tracking_token_key UNIQUE,
    vendor_id       uuid     NOT NULL,
    user_id         uuid     NOT NULL,
    driver_id       uuid,
    status          text     NOT NULL,
    created_at      timestamptz NOT NULL,
    created_ns      smallint NOT NULL,
    external_source text,
    external_id     text,
    record          jsonb    NOT NULL,
    -- NULLs are distinct: orders without an external reference never clash.
    CONSTRAINT orders_external_ref_key UNIQUE (vendor_id, external_source, external_id)
);
CREATE INDEX orders_by_vendor ON orders (vendor_id, id);
CREATE INDEX orders_by_vendor_created ON orders (vendor_id, created_at);
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_by_driver ON orders (driver_id, id) WHERE driver_id IS NOT NULL;

-- Each driver's newest fix. Rewritten constantly: room on each page for HOT updates.
CREATE TABLE positions (
    driver_id   uuid        PRIMARY KEY,
    latitude    float8      NOT NULL,
    longitude   float8      NOT NULL,
    recorded_at timestamptz NOT NULL,
    recorded_ns smallint    NOT NULL
) WITH (fillfactor = 50);

-- The trail, one partition per UTC day, so that retention drops whole days. `seq` keeps fixes
-- with equal times in arrival order.
CREATE SEQUENCE trail_seq;
CREATE TABLE trail (
    driver_id   uuid        NOT NULL,
    recorded_at timestamptz NOT NULL,
    recorded_ns smallint    NOT NULL,
    seq         bigint      NOT NULL DEFAULT nextval('trail_seq'),
    latitude    float8      NOT NULL,
    longitude   float8      NOT NULL,
    speed       float8,
    heading     float8,
    accuracy    float8
) PARTITION BY RANGE (recorded_at);
CREATE INDEX trail_by_driver ON trail (driver_id, recorded_at, recorded_ns, seq);

-- The trail's partitions by day, and partitions already detached by a retention sweep but not yet
-- counted and dropped (a sweep interrupted between the two finishes the job next time).
CREATE TABLE trail_partitions (
    day  date PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE trail_detached (
    name text PRIMARY KEY
);
CREATE SEQUENCE trail_partition_seq;

-- Creates the partition of `day` unless it exists. Serialised by a transaction-level advisory
-- lock, which retention takes too.
CREATE FUNCTION medex_trail_partition(day date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    partition text;
BEGIN
    PERFORM pg_advisory_xact_lock(7262730600000000002);
    IF EXISTS (SELECT 1 FROM trail_partitions p WHERE p.day = medex_trail_partition.day) THEN
        RETURN;
    END IF;
    partition := format('trail_%s_%s', to_char(day, 'YYYYMMDD'), nextval('trail_partition_seq'));
    EXECUTE format('CREATE TABLE %I PARTITION OF trail FOR VALUES FROM (%L) TO (%L)',
        partition,
        day::timestamp AT TIME ZONE 'UTC',
        (day + 1)::timestamp AT TIME ZONE 'UTC');
    INSERT INTO trail_partitions (day, name) VALUES (day, partition);
END
$$;

-- Live refresh tokens by `jti`; `expires_at` (cut to microseconds) is there for a later sweep.
CREATE TABLE refresh_sessions (
    id         text        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    expires_at timestamptz NOT NULL,
    record     jsonb       NOT NULL
);

CREATE TABLE system_config (
    id     smallint PRIMARY KEY CHECK (id = 1),
    record jsonb    NOT NULL
);

-- Small facts of the store: the health probe writes here, and so does the durable point that
-- ends the asynchronous commits of fix batches.
CREATE TABLE medex_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
