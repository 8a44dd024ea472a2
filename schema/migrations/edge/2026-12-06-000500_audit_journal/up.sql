-- Issue 16, item 1: the audit journal has one owner.
--
-- One task of the serving gateway holds the head of the chain and writes every record already
-- chained: a read's record is inserted once, with its position and hash, and never updated. The
-- chainer, its UPDATE of every row a second later and the guard comparing `to_jsonb(OLD)` with
-- `to_jsonb(NEW)` on each such update are gone.
--
-- A write's record must commit with the write (its transaction may roll back), so it cannot be
-- chained by another task beforehand. It is appended to `audit_pending` inside the write's
-- transaction; the journal then moves it into the chain through `audit_adopt`, which copies the
-- pending row's content itself (the journal supplies only position and hashes, which `audit verify`
-- checks) and deletes it in the same statement. The serving role may append to `audit_pending` and
-- read it, not change or delete it.

CREATE TABLE audit_pending (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    lab_id uuid NOT NULL,
    staff_id uuid,
    device_id uuid,
    action text NOT NULL,
    patient_id uuid,
    resource text,
    request_id text
);
REVOKE UPDATE, DELETE, TRUNCATE ON audit_pending FROM labedge_gateway_runtime;
CREATE TRIGGER audit_pending_append_only BEFORE UPDATE OR DELETE ON audit_pending
    FOR EACH ROW WHEN (current_setting('labedge.audit_adopt', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION audit_history_guard();
CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending
    FOR EACH STATEMENT EXECUTE FUNCTION audit_history_guard();

-- Rows the old chainer had not linked yet wait for the journal like a write's.
SET LOCAL labedge.audit_purge = 'on';
WITH moved AS (
    DELETE FROM audit_log WHERE chain_seq IS NULL
    RETURNING at, lab_id, staff_id, device_id, action, patient_id, resource, request_id, seq
)
INSERT INTO audit_pending (at, lab_id, staff_id, device_id, action, patient_id, resource, request_id)
SELECT at, lab_id, staff_id, device_id, action, patient_id, resource, request_id FROM moved ORDER BY seq;
SET LOCAL labedge.audit_purge = 'off';

-- Every record in the log is chained from now on; NOT NULL would do the same, the constraint keeps
-- the columns' types (and the code reading them) as they were.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_chained
    CHECK (chain_seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL);
DROP INDEX audit_log_unchained;

-- No UPDATE at all now; DELETE only by the owner's retention purge. The row trigger no longer
-- fires on the chainer's updates, so it costs nothing on the hot path.
CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('labedge.audit_purge', true) = 'on'
       AND (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID)
           = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE UPDATE (chain_seq, prev_hash, hash) ON audit_log FROM labedge_gateway_runtime;

-- Moves the pending records `p_ids` into the chain at the positions and with the hashes given, in
-- one statement, copying their content from `audit_pending` (the caller cannot change it on the
-- way). Refused unless every id is still pending. Runs as the owner: the serving role may not delete
-- pending records otherwise.
CREATE FUNCTION audit_adopt(p_ids bigint[], p_chain_seqs bigint[], p_prev_hashes bytea[], p_hashes bytea[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_moved integer;
BEGIN
    PERFORM set_config('labedge.audit_adopt', 'on', true);
    WITH chain AS (
        SELECT * FROM unnest(p_ids, p_chain_seqs, p_prev_hashes, p_hashes) AS v(id, chain_seq, prev_hash, hash)
    ), moved AS (
        DELETE FROM public.audit_pending p USING chain c WHERE p.id = c.id
        RETURNING p.at, p.lab_id, p.staff_id, p.device_id, p.action, p.patient_id, p.resource, p.request_id,
                  c.chain_seq, c.prev_hash, c.hash
    )
    INSERT INTO public.audit_log (at, lab_id, staff_id, device_id, action, patient_id, resource, request_id,
                                  chain_seq, prev_hash, hash)
    SELECT * FROM moved ORDER BY chain_seq;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    PERFORM set_config('labedge.audit_adopt', 'off', true);
    IF v_moved <> cardinality(p_ids) THEN
        -- Another adopter took them first: the caller reads the head and the pending records again.
        RAISE EXCEPTION 'audit adopt refused: % of % record(s) are pending', v_moved, cardinality(p_ids)
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN v_moved;
END
$$;
REVOKE EXECUTE ON FUNCTION audit_adopt(bigint[], bigint[], bytea[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_adopt(bigint[], bigint[], bytea[], bytea[]) TO labedge_gateway_runtime;
