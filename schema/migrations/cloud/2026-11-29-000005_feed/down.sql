DROP INDEX change_log_entity_id;
DROP TABLE feed_horizon;
