-- percorso: least-privilege PostgreSQL roles for the read models.
--
-- Run once per database, as its owner or an administrator, before the first
-- start (it is idempotent, so running it again is harmless):
--
--   psql -v ON_ERROR_STOP=1 -d percorso -f deploy/postgres/bootstrap.sql
--
-- Two roles, and nothing else may write:
--
--   percorso_writer  the projectors (serve --role projector) and admins'
--                    `percorso rebuild`: owns the read-model schemas, creates
--                    and migrates them, writes every derived table.
--   percorso_reader  the APIs (serve --role api) and reporting tools: reads
--                    everything, and writes exactly what the API records
--                    outside the event stream — auditors' reads
--                    (audit_reads) and admins' skips of poison events
--                    (projection_poison.skipped_at/skipped_by). Those two
--                    grants are per table, so the projector makes them after
--                    each migration (the tables do not exist yet here).
--
-- Passwords are set out of band, never in this file:
--   ALTER ROLE percorso_writer PASSWORD '...';
--   ALTER ROLE percorso_reader PASSWORD '...';
-- Login users may instead be members of these roles; a member that creates
-- tables must `SET ROLE percorso_writer` (ALTER ROLE ... SET role) so the
-- tables belong to the role and the default privileges below apply.

DO $$
BEGIN
	CREATE ROLE percorso_writer LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL; -- already there (roles are cluster-wide: another database made it)
END $$;

DO $$
BEGIN
	CREATE ROLE percorso_reader LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
	NULL;
END $$;

-- Defaults for the tables the writer will create need membership of it
-- (a superuser has it implicitly).
DO $$
BEGIN
	IF NOT pg_has_role(current_user, 'percorso_writer', 'MEMBER') THEN
		GRANT percorso_writer TO CURRENT_USER;
	END IF;
END $$;

-- Connecting: only these roles (and the owner), not PUBLIC. The writer may
-- create schemas: the live read models (percorso_rm) and, during a rebuild,
-- the next set (percorso_rm_next), swapped in by renaming.
DO $$
BEGIN
	EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
	EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO percorso_writer', current_database());
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO percorso_reader', current_database());
END $$;

-- Nobody but the owner creates anything in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Whatever schema and table the writer creates — a rebuild's included — the
-- reader may read.
ALTER DEFAULT PRIVILEGES FOR ROLE percorso_writer GRANT USAGE ON SCHEMAS TO percorso_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE percorso_writer GRANT SELECT ON TABLES TO percorso_reader;
