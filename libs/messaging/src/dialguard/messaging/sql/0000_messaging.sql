-- Transactional outbox: rows are written in the same transaction as the change they announce;
-- the relay publishes them in id order and deletes them once the broker acknowledged.
CREATE TABLE IF NOT EXISTS outbox (
    id             bigserial PRIMARY KEY,
    topic          text        NOT NULL,
    key            bytea,
    value          bytea       NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Idempotent consumers: an event id is claimed in the same transaction as its effect.
CREATE TABLE IF NOT EXISTS inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at);
