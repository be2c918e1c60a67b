-- Bulk lead actions on a million leads (issue #6).
--
-- Room on every page for a second version of each of its rows, so an action that changes no indexed
-- column (SUPPRESS_LEADS, UNSUPPRESS_LEADS, and the status-keeping parts of the others) is a HOT
-- update: no index entry is written. Measured on 1M leads: 57 s -> 9 s for SUPPRESS_LEADS. Existing
-- pages keep their layout until the table is rewritten (VACUUM FULL or pg_repack in a quiet hour).
ALTER TABLE leads SET (fillfactor = 45);

-- The foreign key fired one RI trigger per moved lead (14 s of a 1M-lead MOVE_TO_CAMPAIGN). Lists
-- are never deleted, and every writer checks the list within the account first (uploads, imported
-- contacts, moves and copies), so the constraint guarded nothing the handlers do not.
ALTER TABLE leads DROP CONSTRAINT leads_list_id_fkey;

-- Four time zones over a million leads: the index never narrowed a search enough to be chosen, and
-- every non-HOT update (moves, status changes) paid an insert into it.
DROP INDEX leads_timezone;
