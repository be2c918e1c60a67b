-- The check confirms the cache's 'maybe' values here: with every column the check reads in the
-- index, Postgres answers from the index alone (no heap page per value) once the visibility map
-- is set, which autovacuum does for insert-mostly tables.
CREATE INDEX entries_check_covering ON entries (account_id, id_type, value)
    INCLUDE (channel, sender, expires_at, stoplist_id, id);
DROP INDEX entries_check;
ALTER INDEX entries_check_covering RENAME TO entries_check;
