DROP TRIGGER collection_voids_specimen_feed ON collection_voids;
DROP FUNCTION specimen_feed_append_void();
DELETE FROM specimen_feed f USING specimen_feed g
    WHERE f.collection_id = g.collection_id AND f.position > g.position;
DROP INDEX specimen_feed_collection;
ALTER TABLE specimen_feed ADD CONSTRAINT specimen_feed_collection_key UNIQUE (collection_id);
DROP TABLE collection_voids;
DROP INDEX patients_registered;
ALTER TABLE patients DROP COLUMN registered_at, DROP COLUMN registered_lab_id;
ALTER TABLE labs DROP COLUMN home_hours, DROP COLUMN home_slot_minutes, DROP COLUMN opening_hours,
    DROP COLUMN lab_places, DROP COLUMN slot_minutes;
