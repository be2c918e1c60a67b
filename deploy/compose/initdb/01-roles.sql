-- One LOGIN role per service, owning only its schema; PUBLIC gets nothing.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE dialguard FROM PUBLIC;
CREATE ROLE dg_suppression LOGIN PASSWORD 'dg_suppression';
CREATE ROLE dg_contact_list LOGIN PASSWORD 'dg_contact_list';
CREATE ROLE dg_lead_action LOGIN PASSWORD 'dg_lead_action';
CREATE ROLE dg_outbound_sync LOGIN PASSWORD 'dg_outbound_sync';
CREATE SCHEMA suppression AUTHORIZATION dg_suppression;
CREATE SCHEMA contact_list AUTHORIZATION dg_contact_list;
CREATE SCHEMA lead_action AUTHORIZATION dg_lead_action;
CREATE SCHEMA outbound_sync AUTHORIZATION dg_outbound_sync;
GRANT CONNECT, TEMP ON DATABASE dialguard TO dg_suppression, dg_contact_list, dg_lead_action, dg_outbound_sync;
ALTER ROLE dg_suppression SET search_path = suppression;
ALTER ROLE dg_contact_list SET search_path = contact_list;
ALTER ROLE dg_lead_action SET search_path = lead_action;
ALTER ROLE dg_outbound_sync SET search_path = outbound_sync;
