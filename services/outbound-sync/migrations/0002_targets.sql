-- Targets: where a stoplist's new entries are pushed. Every row carries account_id; every query filters by it.
CREATE TABLE targets (
    id               uuid PRIMARY KEY,
    account_id       text        NOT NULL,
    stoplist_id      text        NOT NULL,
    type             text        NOT NULL CHECK (type IN ('TM', 'MANUAL')),
    system           text,
    project          text,
    expires_in_days  integer,
    url              text,
    method           text        NOT NULL DEFAULT 'POST',
    headers          jsonb       NOT NULL DEFAULT '{}',
    body_template    text,
    active           boolean     NOT NULL DEFAULT true,
    last_success_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text
);
CREATE INDEX targets_by_stoplist ON targets (account_id, stoplist_id, created_at, id);
CREATE INDEX targets_page ON targets (account_id, created_at, id);

-- The local projection of suppression.changes.v1: live entries per stoplist (for backfill).
CREATE TABLE known_entries (
    account_id   text        NOT NULL,
    entry_id     text        NOT NULL,
    stoplist_id  text        NOT NULL,
    entry        jsonb       NOT NULL,
    expires_at   timestamptz,
    added_at     timestamptz,
    PRIMARY KEY (account_id, entry_id)
);
CREATE INDEX known_entries_by_stoplist ON known_entries (account_id, stoplist_id);

-- One row per (target, entry): the delivery queue and its request log.
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    seq              bigserial   NOT NULL,
    account_id       text        NOT NULL,
    target_id        uuid        NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    entry_id         text        NOT NULL,
    identifier_key   text        NOT NULL,
    entry            jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_owner      text,
    last_error       text,
    request          jsonb,
    response         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (target_id, entry_id)
);
-- The worker's claim path: due pending rows of one target in arrival order.
CREATE INDEX deliveries_due ON deliveries (target_id, seq) WHERE status = 'pending';
-- Ordering per identifier within a target.
CREATE INDEX deliveries_identifier ON deliveries (target_id, identifier_key, seq) WHERE status = 'pending';
-- The request log, newest first.
CREATE INDEX deliveries_log ON deliveries (target_id, created_at DESC, id DESC);
