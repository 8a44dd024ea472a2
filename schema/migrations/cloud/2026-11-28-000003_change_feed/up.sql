-- The cloud's change sequence: every change to data a lab's gateway keeps gets a position, so that a
-- gateway can ask "what changed in my scope after N".
--
-- Positions must be commit-safe: a reader that has seen position N must never later find a change
-- below N. A plain sequence taken at INSERT time is not: a transaction can take position 10, commit
-- after another one took and committed 11, and a reader that moved past 11 skips 10 for ever.
-- So positions are taken at commit time, by deferred constraint triggers, under a transaction-scoped
-- advisory lock that is held until the commit: two transactions cannot interleave between taking their
-- positions and committing, so positions become visible in increasing order. The lock is held only from
-- the first deferred trigger to the end of the commit, which keeps writers mostly parallel.

CREATE SEQUENCE change_position_seq AS bigint;

CREATE TABLE change_log (
    position bigint PRIMARY KEY,
    entity text NOT NULL
        CHECK (entity IN ('lab', 'staff', 'tube_type', 'exam', 'patient', 'prescription', 'appointment')),
    entity_id text NOT NULL,
    -- The lab whose scope the change concerns; NULL when any lab's scope may hold the row (catalog, patients).
    lab_id uuid,
    op text NOT NULL CHECK (op IN ('upsert', 'delete')),
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_log_lab_position ON change_log (lab_id, position);

CREATE FUNCTION change_log_append(p_entity text, p_entity_id text, p_lab_id uuid, p_op text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7305710001);
    INSERT INTO change_log (position, entity, entity_id, lab_id, op)
    VALUES (nextval('change_position_seq'), p_entity, p_entity_id, p_lab_id, p_op);
END
$$;

-- Trigger arguments: entity name, id column, lab column ('' when the table has none).
CREATE FUNCTION change_log_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_entity text := TG_ARGV[0];
    v_id_column text := TG_ARGV[1];
    v_lab_column text := TG_ARGV[2];
    v_old jsonb;
    v_new jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN v_old := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN v_new := to_jsonb(NEW); END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM change_log_append(v_entity, v_old ->> v_id_column,
            CASE WHEN v_lab_column = '' THEN NULL ELSE (v_old ->> v_lab_column)::uuid END, 'delete');
        RETURN NULL;
    END IF;
    PERFORM change_log_append(v_entity, v_new ->> v_id_column,
        CASE WHEN v_lab_column = '' THEN NULL ELSE (v_new ->> v_lab_column)::uuid END, 'upsert');
    -- A row moved to another lab leaves the old lab's scope: that lab must hear of it too.
    IF TG_OP = 'UPDATE' AND v_lab_column <> ''
       AND (v_old ->> v_lab_column) IS DISTINCT FROM (v_new ->> v_lab_column)
       AND (v_old ->> v_lab_column) IS NOT NULL THEN
        PERFORM change_log_append(v_entity, v_new ->> v_id_column, (v_old ->> v_lab_column)::uuid, 'upsert');
    END IF;
    RETURN NULL;
END
$$;

-- A prescription's exams travel with the prescription.
CREATE FUNCTION change_log_prescribed_exam() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_prescription uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.prescription_id ELSE NEW.prescription_id END;
BEGIN
    PERFORM change_log_append('prescription', v_prescription::text,
        (SELECT lab_id FROM prescriptions WHERE id = v_prescription), 'upsert');
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER labs_change_log AFTER INSERT OR UPDATE OR DELETE ON labs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('lab', 'id', 'id');
CREATE CONSTRAINT TRIGGER staff_change_log AFTER INSERT OR UPDATE OR DELETE ON staff
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('staff', 'id', 'lab_id');
CREATE CONSTRAINT TRIGGER tube_types_change_log AFTER INSERT OR UPDATE OR DELETE ON tube_types
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('tube_type', 'code', '');
CREATE CONSTRAINT TRIGGER exam_catalog_change_log AFTER INSERT OR UPDATE OR DELETE ON exam_catalog
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('exam', 'code', '');
CREATE CONSTRAINT TRIGGER patients_change_log AFTER INSERT OR UPDATE OR DELETE ON patients
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('patient', 'id', '');
CREATE CONSTRAINT TRIGGER prescriptions_change_log AFTER INSERT OR UPDATE OR DELETE ON prescriptions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('prescription', 'id', 'lab_id');
CREATE CONSTRAINT TRIGGER prescribed_exams_change_log AFTER INSERT OR UPDATE OR DELETE ON prescribed_exams
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_prescribed_exam();
CREATE CONSTRAINT TRIGGER appointments_change_log AFTER INSERT OR UPDATE OR DELETE ON appointments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_log_row('appointment', 'id', 'lab_id');
