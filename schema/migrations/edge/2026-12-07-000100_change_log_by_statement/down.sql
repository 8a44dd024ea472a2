DROP TRIGGER patients_change_log_insert ON patients;
DROP TRIGGER patients_change_log_update ON patients;
DROP TRIGGER patients_change_log_delete ON patients;
DROP TRIGGER prescriptions_change_log_insert ON prescriptions;
DROP TRIGGER prescriptions_change_log_update ON prescriptions;
DROP TRIGGER prescriptions_change_log_delete ON prescriptions;
DROP TRIGGER prescribed_exams_change_log_insert ON prescribed_exams;
DROP TRIGGER prescribed_exams_change_log_update ON prescribed_exams;
DROP TRIGGER prescribed_exams_change_log_delete ON prescribed_exams;
DROP TRIGGER appointments_change_log_insert ON appointments;
DROP TRIGGER appointments_change_log_update ON appointments;
DROP TRIGGER appointments_change_log_delete ON appointments;
DROP FUNCTION change_log_rows();
DROP FUNCTION change_log_prescribed_exams();

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
