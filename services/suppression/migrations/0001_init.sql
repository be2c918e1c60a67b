-- Stoplists and their entries. Every row carries account_id; every query filters by it.
CREATE TABLE stoplists (
    id                     uuid PRIMARY KEY,
    account_id             text        NOT NULL,
    name                   text        NOT NULL,
    record_count           bigint      NOT NULL DEFAULT 0,
    truncate_password_hash text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    created_by             text,
    UNIQUE (account_id, name)
);
CREATE INDEX stoplists_account ON stoplists (account_id, created_at, id);

CREATE TABLE entries (
    id          uuid PRIMARY KEY,
    account_id  text        NOT NULL,
    stoplist_id uuid        NOT NULL REFERENCES stoplists (id) ON DELETE CASCADE,
    id_type     text        NOT NULL CHECK (id_type IN ('phone', 'email', 'person_id', 'client_id')),
    value       text        NOT NULL,
    channel     text CHECK (channel IN ('voice', 'sms', 'whatsapp', 'viber', 'email', 'messenger')),
    sender      text,
    source      text        NOT NULL DEFAULT 'api',
    reason      text,
    added_at    timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    added_by    text
);
-- Adding the same identifier + channel + sender to a stoplist again is idempotent.
CREATE UNIQUE INDEX entries_identity
    ON entries (stoplist_id, id_type, value, coalesce(channel, ''), coalesce(sender, ''));
-- The check path: every live entry of an identifier in the account.
CREATE INDEX entries_check ON entries (account_id, id_type, value);
-- Listing and export pages in a stable order.
CREATE INDEX entries_page ON entries (stoplist_id, added_at, id);
CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;

-- Who removed what and why (adds are on the entry row itself): compliance evidence.
CREATE TABLE entry_removals (
    seq         bigserial PRIMARY KEY,
    account_id  text        NOT NULL,
    entry_id    uuid        NOT NULL,
    stoplist_id uuid        NOT NULL,
    id_type     text        NOT NULL,
    value       text        NOT NULL,
    channel     text,
    op          text        NOT NULL,
    removed_by  text,
    reason      text,
    removed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entry_removals_account ON entry_removals (account_id, removed_at);
