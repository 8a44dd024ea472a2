-- The tablets' change log is written once per statement, not once per row.
--
-- The row triggers were deferred constraint triggers so that positions could be taken at commit,
-- under the lock that the migration `…_change_log_order_by_transaction` removed: entries are now
-- ordered by their transaction's id, whenever in the transaction they are written. What was left of
-- the deferral was its cost: a queued event per row and two plpgsql calls per row at commit (about
-- 60 µs a row in 8-row inserts under pgbench, `docs/performance.md`), paid by every booking and status change and
-- 770,000 times by the bootstrap of a 100,000-patient lab.
--
-- Statement triggers read the statement's rows from its transition tables and append them with one
-- INSERT. A trigger with transition tables takes one event, hence three per table.
-- The rows a statement inserted or updated are upserts, the rows it deleted deletes: every trigger
-- below names its transition table `changed_rows`, so one function serves the three events.
CREATE FUNCTION change_log_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (position, entity, entity_id, op)
    SELECT nextval('change_position_seq'), TG_ARGV[0], id,
           CASE TG_OP WHEN 'DELETE' THEN 'delete' ELSE 'upsert' END
    FROM changed_rows;
    RETURN NULL;
END
$$;

-- An exam changed, added or removed changes its prescription, once however many of its exams.
CREATE FUNCTION change_log_prescribed_exams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (position, entity, entity_id, op)
    SELECT nextval('change_position_seq'), 'prescription', p.prescription_id, 'upsert'
    FROM (SELECT DISTINCT prescription_id FROM changed_rows) AS p;
    RETURN NULL;
END
$$;

DROP TRIGGER patients_change_log ON patients;
DROP TRIGGER prescriptions_change_log ON prescriptions;
DROP TRIGGER prescribed_exams_change_log ON prescribed_exams;
DROP TRIGGER appointments_change_log ON appointments;
DROP FUNCTION change_log_row();
DROP FUNCTION change_log_prescribed_exam();

CREATE TRIGGER patients_change_log_insert AFTER INSERT ON patients
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('patient');
CREATE TRIGGER patients_change_log_update AFTER UPDATE ON patients
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('patient');
CREATE TRIGGER patients_change_log_delete AFTER DELETE ON patients
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('patient');

CREATE TRIGGER prescriptions_change_log_insert AFTER INSERT ON prescriptions
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('prescription');
CREATE TRIGGER prescriptions_change_log_update AFTER UPDATE ON prescriptions
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('prescription');
CREATE TRIGGER prescriptions_change_log_delete AFTER DELETE ON prescriptions
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('prescription');

CREATE TRIGGER prescribed_exams_change_log_insert AFTER INSERT ON prescribed_exams
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_prescribed_exams();
CREATE TRIGGER prescribed_exams_change_log_update AFTER UPDATE ON prescribed_exams
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_prescribed_exams();
CREATE TRIGGER prescribed_exams_change_log_delete AFTER DELETE ON prescribed_exams
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_prescribed_exams();

CREATE TRIGGER appointments_change_log_insert AFTER INSERT ON appointments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('appointment');
CREATE TRIGGER appointments_change_log_update AFTER UPDATE ON appointments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('appointment');
CREATE TRIGGER appointments_change_log_delete AFTER DELETE ON appointments
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION change_log_rows('appointment');
