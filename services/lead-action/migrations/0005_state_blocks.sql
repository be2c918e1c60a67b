-- Lead search by state without an index on leads.status (issue #6).
--
-- An index holding status would make every status-changing bulk action a non-HOT update (0004), so
-- the state stays unindexed on `leads`. lead_blocks is a small hand-made block summary instead: per
-- (origin list, list, block of 256 consecutive lead ids) the set of lead states present there, one
-- bit each (lead_state_bit). A campaign or list search walks the blocks of its (origin, list)
-- placements in id order, skips those without a wanted state and reads only the rest (an id range
-- of leads_origin), so a state no lead is in costs a scan of the summary (~4,000 rows per million
-- leads) instead of the whole campaign, and a list a move emptied is not walked at all.
--
-- The summary may claim more than is there (a search filters the leads it reads anyway) but never
-- less. Writers that add leads or change a lead's status or list OR their bits in, in the same
-- transaction, after the lead change (insert_leads, copy_leads, apply_call_outcomes); bulk actions
-- (update_matching, move_leads, delete_matching) recompute the blocks they touched exactly, after
-- locking those summary rows, so bits of states no lead is in any more are cleared
-- (repository.refresh_blocks says why that cannot lose a concurrent writer's bit).
CREATE FUNCTION lead_state_bit(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE status WHEN 'READY' THEN 1 WHEN 'ACTIVE' THEN 2 WHEN 'CALLBACK' THEN 4
                             WHEN 'COMPLETE' THEN 8 WHEN 'CANCELLED' THEN 16 WHEN 'PAUSED' THEN 32
                             WHEN 'TRANSITION' THEN 64 ELSE 128 END $$;

-- Room on each page so a recompute's update stays on its page (HOT: states is not indexed) and the
-- rows keep the key order they were written in: a walk then reads a few pages, not one per block.
CREATE TABLE lead_blocks (
    account_id      text NOT NULL,
    origin_list_id  bigint NOT NULL,
    list_id         bigint NOT NULL,
    block           bigint NOT NULL,  -- lead id >> 8
    states          integer NOT NULL,
    PRIMARY KEY (account_id, origin_list_id, list_id, block)
) WITH (fillfactor = 50);

-- The exact summary of one account's leads (or every account's): the backfill below, a repair after
-- writing leads behind the service's back, and the benchmark after it COPYs leads in.
CREATE FUNCTION rebuild_lead_blocks(account text DEFAULT NULL) RETURNS void
    LANGUAGE sql SET search_path FROM CURRENT
    AS $$
    DELETE FROM lead_blocks WHERE account IS NULL OR account_id = account;
    INSERT INTO lead_blocks (account_id, origin_list_id, list_id, block, states)
        SELECT account_id, origin_list_id, list_id, id >> 8, bit_or(lead_state_bit(status))
        FROM leads WHERE account IS NULL OR account_id = account
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
    $$;

SELECT rebuild_lead_blocks();
