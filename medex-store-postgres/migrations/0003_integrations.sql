-- Integrations of a pharmacy: API keys (only their SHA-256 is kept), outgoing webhook endpoints,
-- their deliveries (the outbox: written in the same transaction as the order change that caused
-- them) and remembered Idempotency-Keys. Same shape as the other records: key columns beside the
-- whole record as JSONB.

CREATE TABLE api_keys (
    id        uuid   PRIMARY KEY,
    version   bigint NOT NULL,
    vendor_id uuid   NOT NULL,
    hash      text   NOT NULL CONSTRAINT api_keys_hash_key UNIQUE,
    record    jsonb  NOT NULL
);
CREATE INDEX api_keys_by_vendor ON api_keys (vendor_id, id);

CREATE TABLE webhooks (
    id        uuid   PRIMARY KEY,
    version   bigint NOT NULL,
    vendor_id uuid   NOT NULL,
    record    jsonb  NOT NULL
);
CREATE INDEX webhooks_by_vendor ON webhooks (vendor_id, id);

-- `pending` is true until the delivery is delivered or failed: the dispatchers' queue.
CREATE TABLE webhook_deliveries (
    id         uuid    PRIMARY KEY,
    version    bigint  NOT NULL,
    webhook_id uuid    NOT NULL,
    pending    boolean NOT NULL,
    record     jsonb   NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE pending;

CREATE TABLE idempotency_keys (
    id         uuid        PRIMARY KEY,
    version    bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    record     jsonb       NOT NULL
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
