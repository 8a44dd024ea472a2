-- Where the gateway stands in the cloud's change feed, what the nightly reconciliation found, the
-- gateway's own change sequence (for the tablets' delta pulls) and the hash-chained audit log.

CREATE TABLE sync_checkpoints (
    stream text PRIMARY KEY,
    position bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reconciliation_runs (
    id bigserial PRIMARY KEY,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    ok boolean,
    -- Per table: local and cloud counts and checksums, and how many rows were pulled again.
    tables jsonb NOT NULL DEFAULT '[]',
    repaired_rows bigint NOT NULL DEFAULT 0,
    error text
);

-- The tablets' delta pulls follow this sequence. Positions are taken at commit time under a
-- transaction-scoped advisory lock, as in the cloud (see the cloud migration for the reasoning), so a
-- tablet's cursor never moves past a change that commits late.
CREATE SEQUENCE change_position_seq AS bigint;

CREATE TABLE change_log (
    position bigint PRIMARY KEY,
    entity text NOT NULL CHECK (entity IN ('patient', 'prescription', 'appointment')),
    entity_id uuid NOT NULL,
    op text NOT NULL CHECK (op IN ('upsert', 'delete')),
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION change_log_append(p_entity text, p_entity_id uuid, p_op text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7305710002);
    INSERT INTO change_log (position, entity, entity_id, op)
    VALUES (nextval('change_position_seq'), p_entity, p_entity_id, p_op);
END
$$;

CREATE FUNCTION change_log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM change_log_append(TG_ARGV[0], OLD.id, 'delete');
    ELSE
        PERFORM change_log_append(TG_ARGV[0], NEW.id, 'upsert');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION change_log_prescribed_exam() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM change_log_append('prescription',
        CASE WHEN TG_OP = 'DELETE' THEN OLD.prescription_id ELSE NEW.prescription_id END, 'upsert');
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER patients_change_log AFTER INSERT OR UPDATE OR DELETE ON patients
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('patient');
CREATE CONSTRAINT TRIGGER prescriptions_change_log AFTER INSERT OR UPDATE OR DELETE ON prescriptions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('prescription');
CREATE CONSTRAINT TRIGGER prescribed_exams_change_log AFTER INSERT OR UPDATE OR DELETE ON prescribed_exams
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_prescribed_exam();
CREATE CONSTRAINT TRIGGER appointments_change_log AFTER INSERT OR UPDATE OR DELETE ON appointments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('appointment');

-- Append-only, hash-chained log of every read and write of patient data. Writers append rows
-- unchained (chain_seq, prev_hash and hash NULL) inside their own transaction; a single chainer links
-- committed rows in order, so that writers never queue behind each other on the head of the chain.
CREATE TABLE audit_log (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    lab_id uuid NOT NULL,
    staff_id uuid,
    device_id uuid,
    action text NOT NULL,
    patient_id uuid,
    resource text,
    request_id text,
    chain_seq bigint CONSTRAINT audit_log_chain_seq_key UNIQUE,
    prev_hash bytea,
    hash bytea
);
CREATE INDEX audit_log_unchained ON audit_log (seq) WHERE chain_seq IS NULL;
CREATE INDEX audit_log_patient ON audit_log (patient_id, at);

CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
       AND (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash') = (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND current_setting('labedge.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
