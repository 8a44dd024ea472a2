DROP FUNCTION audit_adopt(bigint[], bigint[], bytea[], bytea[]);
ALTER TABLE audit_log DROP CONSTRAINT audit_log_chained;
CREATE INDEX audit_log_unchained ON audit_log (seq) WHERE chain_seq IS NULL;
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
GRANT UPDATE (chain_seq, prev_hash, hash) ON audit_log TO labedge_gateway_runtime;
INSERT INTO audit_log (at, lab_id, staff_id, device_id, action, patient_id, resource, request_id)
SELECT at, lab_id, staff_id, device_id, action, patient_id, resource, request_id FROM audit_pending ORDER BY id;
DROP TABLE audit_pending;
