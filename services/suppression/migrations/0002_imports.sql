-- File imports into one or more stoplists: progress, counts and the rejected rows with reasons.
CREATE TABLE imports (
    id           uuid PRIMARY KEY,
    account_id   text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('analyzing', 'validated', 'running', 'completed', 'failed', 'cancelled')),
    stoplist_ids uuid[]      NOT NULL,
    filename     text        NOT NULL,
    mapping      jsonb       NOT NULL,
    skip_rows    int         NOT NULL DEFAULT 0,
    total        bigint      NOT NULL DEFAULT 0,
    processed    bigint      NOT NULL DEFAULT 0,
    imported     bigint      NOT NULL DEFAULT 0,
    duplicates   bigint      NOT NULL DEFAULT 0,
    invalid      bigint      NOT NULL DEFAULT 0,
    skipped      bigint      NOT NULL DEFAULT 0,
    error        text,
    created_by   text,
    worker       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
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
