-- One LOGIN role per service, each owning only its own schema; PUBLIC gets nothing.
--
-- Compose: the postgres image runs this once, as the superuser, in POSTGRES_DB, when its data volume
-- is empty; the passwords come from the container's environment (docker-compose.yml).
-- A provided server (Kubernetes, managed Postgres): run it as an admin in the target database, e.g.
--   DG_SUPPRESSION_DB_PASSWORD=... DG_CONTACT_LIST_DB_PASSWORD=... DG_LEAD_ACTION_DB_PASSWORD=... \
--   DG_OUTBOUND_SYNC_DB_PASSWORD=... psql "postgresql://admin@db-host:5432/dialguard" -f 01-roles.sql
-- Every DG_*_DB_PASSWORD must be set (compose sets them, with dev defaults); the script stops otherwise.
-- It is idempotent: re-running it sets the passwords again (rotation) and restores the grants.
-- Needs psql >= 15 (\getenv).
\set ON_ERROR_STOP on

\getenv pw_suppression DG_SUPPRESSION_DB_PASSWORD
\if :{?pw_suppression}
\else
  DO $$ BEGIN RAISE EXCEPTION 'DG_SUPPRESSION_DB_PASSWORD is not set'; END $$;
\endif
\getenv pw_contact_list DG_CONTACT_LIST_DB_PASSWORD
\if :{?pw_contact_list}
\else
  DO $$ BEGIN RAISE EXCEPTION 'DG_CONTACT_LIST_DB_PASSWORD is not set'; END $$;
\endif
\getenv pw_lead_action DG_LEAD_ACTION_DB_PASSWORD
\if :{?pw_lead_action}
\else
  DO $$ BEGIN RAISE EXCEPTION 'DG_LEAD_ACTION_DB_PASSWORD is not set'; END $$;
\endif
\getenv pw_outbound_sync DG_OUTBOUND_SYNC_DB_PASSWORD
\if :{?pw_outbound_sync}
\else
  DO $$ BEGIN RAISE EXCEPTION 'DG_OUTBOUND_SYNC_DB_PASSWORD is not set'; END $$;
\endif
SELECT :'pw_suppression' = '' OR :'pw_contact_list' = '' OR :'pw_lead_action' = ''
       OR :'pw_outbound_sync' = '' AS dg_empty_password \gset
\if :dg_empty_password
  DO $$ BEGIN RAISE EXCEPTION 'a DG_*_DB_PASSWORD is empty'; END $$;
\endif

BEGIN;

-- Nobody gets anything by default: not the database (CONNECT, TEMP), not schema public.
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- Roles (created when missing; the password is set either way).
SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['dg_suppression', 'dg_contact_list', 'dg_lead_action', 'dg_outbound_sync']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec

ALTER ROLE dg_suppression   WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'pw_suppression';
ALTER ROLE dg_contact_list  WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'pw_contact_list';
ALTER ROLE dg_lead_action   WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'pw_lead_action';
ALTER ROLE dg_outbound_sync WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'pw_outbound_sync';

-- Each role owns exactly its schema (the service runs its own migrations in it at start-up).
CREATE SCHEMA IF NOT EXISTS suppression   AUTHORIZATION dg_suppression;
CREATE SCHEMA IF NOT EXISTS contact_list  AUTHORIZATION dg_contact_list;
CREATE SCHEMA IF NOT EXISTS lead_action   AUTHORIZATION dg_lead_action;
CREATE SCHEMA IF NOT EXISTS outbound_sync AUTHORIZATION dg_outbound_sync;
ALTER SCHEMA suppression   OWNER TO dg_suppression;
ALTER SCHEMA contact_list  OWNER TO dg_contact_list;
ALTER SCHEMA lead_action   OWNER TO dg_lead_action;
ALTER SCHEMA outbound_sync OWNER TO dg_outbound_sync;
REVOKE ALL ON SCHEMA suppression, contact_list, lead_action, outbound_sync FROM PUBLIC;

-- Connect to this database (TEMP for temporary tables in bulk imports), nothing else.
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME"
  TO dg_suppression, dg_contact_list, dg_lead_action, dg_outbound_sync;

-- Unqualified names resolve to the role's own schema.
ALTER ROLE dg_suppression   SET search_path = suppression;
ALTER ROLE dg_contact_list  SET search_path = contact_list;
ALTER ROLE dg_lead_action   SET search_path = lead_action;
ALTER ROLE dg_outbound_sync SET search_path = outbound_sync;

COMMIT;
