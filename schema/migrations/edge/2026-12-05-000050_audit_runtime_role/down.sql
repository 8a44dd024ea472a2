-- The role itself stays: it is cluster-wide, and other databases may use it.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM labedge_gateway_runtime;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM labedge_gateway_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM labedge_gateway_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM labedge_gateway_runtime;
REVOKE USAGE ON SCHEMA public FROM labedge_gateway_runtime;
DROP FUNCTION audit_purge(bigint);
DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints;
DROP TRIGGER audit_anchors_no_truncate ON audit_anchors;
DROP TRIGGER audit_log_no_truncate ON audit_log;
CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
DROP TABLE audit_retention;
