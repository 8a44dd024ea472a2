-- Issue 12, item 5: the role that serves cannot rewrite the audit chain.
--
-- `edge-gateway migrate` runs as the owner of the schema (`database.migration_url`); `edge-gateway
-- serve` runs as a login role member of `labedge_gateway_runtime`, which may append to the audit
-- tables and link the chain, and nothing more on them: no UPDATE of a record's content, no DELETE, no
-- TRUNCATE, and, not being the owner, no ALTER TABLE … DISABLE TRIGGER, no DROP, no redefinition of
-- the guards. Old records leave only through `audit_purge`, which runs as the owner and enforces the
-- retention recorded in `audit_retention`.

-- Roles are cluster-wide: the role may exist already (another lab database on the same server, or
-- created beforehand by a DBA when the owner has no CREATEROLE), and two migrations may race.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'labedge_gateway_runtime') THEN
        BEGIN
            CREATE ROLE labedge_gateway_runtime NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- The retention the purge enforces, in months: `migrate` writes `audit.retention_months` here, as the
-- owner; the serving role may only read it.
CREATE TABLE audit_retention (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    months integer NOT NULL CHECK (months BETWEEN 1 AND 120),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_retention (months) VALUES (12);

-- Deletes were allowed to any session that set `labedge.audit_purge`: now only to the owner of the
-- table (the purge function runs as the owner, with the setting on for its own duration).
CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
       AND (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash') = (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND current_setting('labedge.audit_purge', true) = 'on'
       AND (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID)
           = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

-- TRUNCATE fires no row trigger: a statement trigger refuses it (the privilege is not granted
-- either; this stops the owner's mistakes).
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_history_guard();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_history_guard();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_history_guard();

-- Removes the chained records after the latest anchor up to position `p_upto` and records the new
-- anchor (the last removed record's position and hash), in the caller's transaction. Refused unless
-- they are a contiguous stretch of the chain, every one older than the retention. Returns how many
-- were removed. The caller verifies their hashes first (`edge-gateway audit purge`, the daily purge):
-- records past retention that do not verify are kept as evidence by the gateway, not by this rule.
CREATE FUNCTION audit_purge(p_upto bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
-- The caller's temporary schema would be searched first unless named: last, and every table is
-- qualified anyway, so that a temporary `audit_retention` cannot stand in for the real one.
SET search_path = pg_catalog, public, pg_temp
SET labedge.audit_purge = 'on'
AS $$
DECLARE
    v_months integer;
    v_cutoff timestamptz;
    v_start bigint;
    v_rows bigint;
    v_young bigint;
    v_hash bytea;
    v_deleted bigint;
BEGIN
    -- The purge's lock (see retention.rs): two purges never interleave.
    PERFORM pg_advisory_xact_lock(7305710004);
    SELECT months INTO STRICT v_months FROM public.audit_retention;
    v_cutoff := now() - make_interval(months => v_months);
    SELECT coalesce(max(chain_seq), 0) INTO v_start FROM public.audit_anchors;
    IF p_upto IS NULL OR p_upto <= v_start THEN
        RAISE EXCEPTION 'audit purge: position % is not after the latest anchor %', p_upto, v_start
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT count(*), count(*) FILTER (WHERE at >= v_cutoff) INTO v_rows, v_young
        FROM public.audit_log WHERE chain_seq > v_start AND chain_seq <= p_upto;
    IF v_young > 0 THEN
        RAISE EXCEPTION 'audit purge refused: % record(s) up to position % are younger than the retention of % month(s)',
            v_young, p_upto, v_months USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_rows <> p_upto - v_start THEN
        RAISE EXCEPTION 'audit purge refused: positions % to % are not all in the chain', v_start + 1, p_upto
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT hash INTO STRICT v_hash FROM public.audit_log WHERE chain_seq = p_upto;
    DELETE FROM public.audit_log WHERE chain_seq > v_start AND chain_seq <= p_upto;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    INSERT INTO public.audit_anchors (chain_seq, hash, first_chain_seq, purged_rows, cutoff)
        VALUES (p_upto, v_hash, v_start + 1, v_deleted, v_cutoff);
    RETURN v_deleted;
END
$$;
REVOKE EXECUTE ON FUNCTION audit_purge(bigint) FROM PUBLIC;

-- What `serve` needs: everything on the lab's data, appending to the audit tables and linking the
-- chain. Tables added by later migrations get the same by default; a later audit-like table must
-- revoke what its rows must not undergo, as below.
GRANT USAGE ON SCHEMA public TO labedge_gateway_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO labedge_gateway_runtime;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO labedge_gateway_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO labedge_gateway_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO labedge_gateway_runtime;
REVOKE INSERT, UPDATE, DELETE ON __diesel_schema_migrations FROM labedge_gateway_runtime;
REVOKE UPDATE, DELETE ON audit_log, audit_anchors, audit_checkpoints FROM labedge_gateway_runtime;
REVOKE INSERT, UPDATE, DELETE ON audit_anchors, audit_retention FROM labedge_gateway_runtime;
-- The chainer fills in the chain columns of unchained rows; the trigger allows nothing else.
GRANT UPDATE (chain_seq, prev_hash, hash) ON audit_log TO labedge_gateway_runtime;
GRANT EXECUTE ON FUNCTION audit_purge(bigint) TO labedge_gateway_runtime;
