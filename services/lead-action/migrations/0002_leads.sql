-- Campaign hierarchy, leads, the local suppression projection, call history, audit and e-mailed exports.

CREATE TABLE dial_groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dial_groups_account ON dial_groups (account_id, id);

CREATE TABLE campaigns (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     text NOT NULL,
    dial_group_id  bigint NOT NULL REFERENCES dial_groups (id) ON DELETE CASCADE,
    name           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_account ON campaigns (account_id, dial_group_id, id);

CREATE TABLE lead_lists (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   text NOT NULL,
    campaign_id  bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_lists_account ON lead_lists (account_id, campaign_id, id);

-- physical_state is derived so it can never disagree with status and suppression.
CREATE TABLE leads (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id          text NOT NULL,
    campaign_id         bigint NOT NULL,
    list_id             bigint NOT NULL REFERENCES lead_lists (id) ON DELETE CASCADE,
    external_id         text,
    contact_id          text,
    phone               text NOT NULL,
    first_name          text,
    last_name           text,
    fields              jsonb NOT NULL DEFAULT '{}',
    timezone            text,
    status              text NOT NULL DEFAULT 'READY',
    pass_count          integer NOT NULL DEFAULT 0,
    manual_pass_count   integer NOT NULL DEFAULT 0,
    next_dial_at        timestamptz NOT NULL DEFAULT now(),
    agent_disposition   text,
    system_disposition  text,
    suppression_causes  text[] NOT NULL DEFAULT '{}',
    suppressed          boolean GENERATED ALWAYS AS (cardinality(suppression_causes) > 0) STORED,
    physical_state      text GENERATED ALWAYS AS (
        CASE
            WHEN cardinality(suppression_causes) > 0 THEN 'SUPPRESSED'
            WHEN status IN ('READY', 'CALLBACK') THEN 'DIALABLE'
            ELSE 'NOT_DIALABLE'
        END) STORED,
    callback_at         timestamptz,
    reserved_agent_id   text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Search: the common pairs (campaign + state, list + state) are ordered index scans by id.
CREATE INDEX leads_campaign_status ON leads (account_id, campaign_id, status, id);
CREATE INDEX leads_list ON leads (account_id, list_id, id);
CREATE INDEX leads_phone ON leads (account_id, phone);
CREATE INDEX leads_agent_disposition ON leads (account_id, agent_disposition) WHERE agent_disposition IS NOT NULL;
CREATE INDEX leads_system_disposition ON leads (account_id, system_disposition) WHERE system_disposition IS NOT NULL;
CREATE INDEX leads_timezone ON leads (account_id, timezone);
CREATE UNIQUE INDEX leads_contact ON leads (account_id, list_id, contact_id) WHERE contact_id IS NOT NULL;

-- Suppression entries as learned from suppression.changes.v1 (phones only: leads are dialed by phone).
CREATE TABLE suppression_projection (
    account_id  text NOT NULL,
    entry_id    text NOT NULL,
    id_type     text NOT NULL,
    value       text NOT NULL,
    channel     text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, entry_id)
);
CREATE INDEX suppression_projection_value ON suppression_projection (account_id, id_type, value);

-- Call history outlives DELETE_LEADS (no foreign key to leads on purpose).
CREATE TABLE call_results (
    account_id          text NOT NULL,
    event_id            uuid PRIMARY KEY,
    lead_id             bigint NOT NULL,
    campaign_id         bigint,
    phone               text,
    attempted_at        timestamptz NOT NULL,
    system_disposition  text NOT NULL,
    agent_disposition   text,
    reached             boolean NOT NULL,
    do_not_call         boolean NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_results_lead ON call_results (account_id, lead_id, attempted_at);

CREATE TABLE lead_actions (
    id          uuid PRIMARY KEY,
    account_id  text NOT NULL,
    actor       text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    criteria    jsonb NOT NULL,
    params      jsonb NOT NULL,
    affected    integer NOT NULL
);
CREATE INDEX lead_actions_account ON lead_actions (account_id, applied_at DESC, id DESC);

CREATE TABLE lead_exports (
    id          uuid PRIMARY KEY,
    account_id  text NOT NULL,
    action_id   uuid NOT NULL,
    filename    text NOT NULL,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX lead_exports_expiry ON lead_exports (expires_at);
