DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints;
DROP TRIGGER audit_anchors_append_only ON audit_anchors;
DROP FUNCTION audit_history_guard();
DROP TABLE audit_checkpoints;
DROP TABLE audit_anchors;
