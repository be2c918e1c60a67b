-- Plumbing probe: pings this service sent, and every ping event it consumed (no unique key on
-- purpose, so a doubled delivery would show as a doubled receipt).
CREATE TABLE IF NOT EXISTS pings (
    id         uuid PRIMARY KEY,
    account_id text        NOT NULL,
    origin     text        NOT NULL,
    note       text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS ping_receipts (
    seq         bigserial PRIMARY KEY,
    ping_id     uuid        NOT NULL,
    event_id    uuid        NOT NULL,
    account_id  text        NOT NULL,
    origin      text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ping_receipts_ping ON ping_receipts (ping_id);
