-- Contact lists, contacts with communication units, imports, and the local suppression projection.
-- Every row carries account_id; every query filters by it.
CREATE TABLE contact_lists (
    id                    uuid PRIMARY KEY,
    account_id            text        NOT NULL,
    name                  text        NOT NULL,
    kind                  text        NOT NULL CHECK (kind IN ('telephony', 'text')),
    channel               text CHECK (channel IN ('voice', 'sms', 'whatsapp', 'viber', 'email', 'messenger')),
    unique_id_column      text,
    name_column           text,
    close_when_all_reached boolean    NOT NULL DEFAULT false,
    max_attempts          int         NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    campaign_id           text,
    campaign_list_id      text,
    campaign_status       text CHECK (campaign_status IN ('active', 'completed')),
    source                text        NOT NULL CHECK (source IN ('file', 'filter')),
    filter                jsonb,
    auto_add              boolean     NOT NULL DEFAULT false,
    auto_add_cron         text        NOT NULL DEFAULT '0 0 * * *',
    next_auto_add_at      timestamptz,
    columns               text[],
    next_seq              bigint      NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text
);
CREATE INDEX contact_lists_account ON contact_lists (account_id, created_at, id);
CREATE INDEX contact_lists_campaign ON contact_lists (account_id, campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX contact_lists_auto_add ON contact_lists (next_auto_add_at) WHERE auto_add;

-- base_status is the lifecycle; status adds `flagged` when no unit is callable (closed stays closed),
-- so a contact returns to its lifecycle status by itself when a suppression is lifted.
CREATE TABLE contacts (
    id                uuid PRIMARY KEY,
    seq               bigserial   NOT NULL,
    account_id        text        NOT NULL,
    list_id           uuid        NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    external_id       text        NOT NULL,
    name              text,
    fields            jsonb       NOT NULL DEFAULT '{}',
    timezone          text,
    base_status       text        NOT NULL DEFAULT 'callable'
                      CHECK (base_status IN ('callable', 'planning', 'open', 'attempted', 'closed')),
    has_callable      boolean     NOT NULL DEFAULT true,
    status            text GENERATED ALWAYS AS (
                          CASE WHEN base_status <> 'closed' AND NOT has_callable THEN 'flagged' ELSE base_status END
                      ) STORED,
    attempts          int         NOT NULL DEFAULT 0,
    reached_channels  text[]      NOT NULL DEFAULT '{}',
    source_contact_id uuid,
    import_id         uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (list_id, external_id)
);
CREATE INDEX contacts_page ON contacts (list_id, seq);
CREATE INDEX contacts_status ON contacts (list_id, status);
CREATE INDEX contacts_account ON contacts (account_id, seq);
CREATE INDEX contacts_source ON contacts (list_id, source_contact_id) WHERE source_contact_id IS NOT NULL;

CREATE TABLE units (
    contact_id uuid    NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    position   int     NOT NULL,
    account_id text    NOT NULL,
    type       text    NOT NULL CHECK (type IN ('phone', 'email', 'person_id', 'client_id')),
    value      text    NOT NULL,
    channel    text,
    priority   int     NOT NULL DEFAULT 1,
    callable   boolean NOT NULL DEFAULT true,
    PRIMARY KEY (contact_id, position)
);
CREATE INDEX units_identifier ON units (account_id, type, value);

-- Row fingerprints of everything imported into a list: a row identical in every field is a duplicate.
CREATE TABLE list_rows (
    list_id  uuid NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    row_hash text NOT NULL,
    PRIMARY KEY (list_id, row_hash)
);

-- The live suppression entries as learnt from suppression.changes.v1 (channel null = all channels).
CREATE TABLE suppressions (
    account_id text NOT NULL,
    entry_id   text NOT NULL,
    id_type    text NOT NULL,
    value      text NOT NULL,
    channel    text,
    PRIMARY KEY (account_id, entry_id)
);
CREATE INDEX suppressions_identifier ON suppressions (account_id, id_type, value);

CREATE TABLE imports (
    id          uuid PRIMARY KEY,
    account_id  text        NOT NULL,
    list_id     uuid        NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    status      text        NOT NULL CHECK (status IN ('analyzing', 'validated', 'running', 'completed', 'failed', 'cancelled')),
    filename    text        NOT NULL,
    columns     text[]      NOT NULL,
    total       bigint      NOT NULL DEFAULT 0,
    processed   bigint      NOT NULL DEFAULT 0,
    valid       bigint      NOT NULL DEFAULT 0,
    imported    bigint      NOT NULL DEFAULT 0,
    duplicates  bigint      NOT NULL DEFAULT 0,
    invalid     bigint      NOT NULL DEFAULT 0,
    skipped     bigint      NOT NULL DEFAULT 0,
    error       text,
    created_by  text,
    worker      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX imports_account ON imports (account_id, created_at);

CREATE TABLE import_errors (
    import_id  uuid   NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_number bigint NOT NULL,
    value      text,
    code       text   NOT NULL,
    reason     text   NOT NULL
);
CREATE INDEX import_errors_import ON import_errors (import_id, row_number);

-- Validated rows waiting for commit (emptied by commit or cancel).
CREATE TABLE import_rows (
    import_id   uuid   NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_number  bigint NOT NULL,
    external_id text,
    name        text,
    fields      jsonb  NOT NULL,
    timezone    text,
    units       jsonb  NOT NULL,
    row_hash    text   NOT NULL,
    raw         text,
    PRIMARY KEY (import_id, row_number)
);
