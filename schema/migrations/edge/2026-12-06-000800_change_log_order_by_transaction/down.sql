CREATE OR REPLACE FUNCTION change_log_append(p_entity text, p_entity_id uuid, p_op text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7305710002);
    INSERT INTO change_log (position, entity, entity_id, op)
    VALUES (nextval('change_position_seq'), p_entity, p_entity_id, p_op);
END
$$;

DROP INDEX change_log_xid_position;
ALTER TABLE change_log DROP COLUMN xid;
