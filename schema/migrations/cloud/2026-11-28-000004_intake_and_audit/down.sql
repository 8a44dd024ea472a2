DROP TRIGGER audit_log_append_only ON audit_log;
DROP FUNCTION audit_log_guard();
DROP TABLE audit_checkpoints;
DROP TABLE audit_log;
DROP TABLE applied_mutations;
