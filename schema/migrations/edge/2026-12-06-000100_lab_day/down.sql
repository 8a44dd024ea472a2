DROP TABLE collection_voids;
ALTER TABLE labs DROP COLUMN home_hours, DROP COLUMN home_slot_minutes, DROP COLUMN opening_hours,
    DROP COLUMN lab_places, DROP COLUMN slot_minutes;
