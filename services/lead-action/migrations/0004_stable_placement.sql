-- Bulk actions as HOT updates (issue #6). A non-HOT update of a million leads writes an entry into
-- every index of the table for every lead (measured here: ~6 s per index per million leads, so
-- RESET_LEADS 38 s and MOVE_TO_CAMPAIGN 28 s even after 0003). An update is HOT, and writes no index
-- entry, only when no indexed column changes. So no index of `leads` holds a column a bulk action
-- changes (status, campaign_id, list_id, suppression_causes, ...):
--
-- * A lead is found through origin_list_id, the list it entered (never changes), and
--   lead_placements, the (campaign, list) pairs that hold leads of each origin list. A move updates
--   campaign_id/list_id (HOT) and adds placements for the moved leads' origins; a campaign's leads are
--   those of its placements' origins whose campaign_id is the campaign. Placements are never removed:
--   one that no longer holds leads only costs its search a look at that origin's leads.
-- * status is filtered, not indexed: campaign or list + state walks the origin's leads in id order
--   and stops after a page of matches (fast for any state a page's worth of leads are in; a state
--   almost no lead is in walks the whole origin).
ALTER TABLE leads ADD COLUMN origin_list_id bigint;
UPDATE leads SET origin_list_id = list_id;
ALTER TABLE leads ALTER COLUMN origin_list_id SET NOT NULL;

CREATE TABLE lead_placements (
    account_id      text NOT NULL,
    origin_list_id  bigint NOT NULL,
    list_id         bigint NOT NULL,
    campaign_id     bigint NOT NULL,
    PRIMARY KEY (account_id, origin_list_id, list_id)
);
CREATE INDEX lead_placements_campaign ON lead_placements (account_id, campaign_id, origin_list_id);
CREATE INDEX lead_placements_list ON lead_placements (account_id, list_id, origin_list_id);
INSERT INTO lead_placements (account_id, origin_list_id, list_id, campaign_id)
    SELECT account_id, id, id, campaign_id FROM lead_lists;
INSERT INTO lead_placements (account_id, origin_list_id, list_id, campaign_id)
    SELECT DISTINCT account_id, origin_list_id, list_id, campaign_id FROM leads
    ON CONFLICT DO NOTHING;

DROP INDEX leads_campaign_status;
DROP INDEX leads_list;
CREATE INDEX leads_origin ON leads (account_id, origin_list_id, id);
-- One lead per contact and list it was imported into (moves no longer change an indexed column).
DROP INDEX leads_contact;
CREATE UNIQUE INDEX leads_contact ON leads (account_id, origin_list_id, contact_id) WHERE contact_id IS NOT NULL;
