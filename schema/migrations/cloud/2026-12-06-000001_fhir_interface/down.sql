DROP TRIGGER collections_specimen_feed ON collections;
DROP FUNCTION specimen_feed_append();
DROP TABLE specimen_feed;
DROP SEQUENCE specimen_feed_position_seq;
ALTER TABLE patients DROP COLUMN identity_method, DROP COLUMN identity_validation_mode;
DROP TABLE fhir_identifiers;
ALTER TABLE staff DROP COLUMN practitioner_id;
DROP TABLE practitioners;
DROP TABLE integration_clients;
