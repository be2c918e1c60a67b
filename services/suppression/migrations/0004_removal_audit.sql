-- Compliance evidence outlives the entry: a removal row keeps who added the entry and when, so
-- the audit can show an opt-out's whole life after the entry itself is gone.
ALTER TABLE entry_removals
    ADD COLUMN sender   text,
    ADD COLUMN source   text,
    ADD COLUMN added_by text,
    ADD COLUMN added_at timestamptz;
CREATE INDEX entry_removals_identifier ON entry_removals (account_id, id_type, value);
CREATE INDEX entries_added ON entries (account_id, added_at);
