DROP TABLE dead_letters;
DROP TABLE conflicts;
DROP TABLE idempotency_keys;
DROP TABLE outbox;
DROP TABLE collection_tubes;
DROP TABLE collections;
DROP TABLE devices;
