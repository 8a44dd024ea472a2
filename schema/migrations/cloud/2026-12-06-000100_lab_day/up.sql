-- The lab's own day at the edge (issue 15): booking rules per lab, walk-in patients registered at a
-- lab, and voided collections.

-- Booking rules, replicated to the lab's gateway with its `labs` row. Hours are local times of the
-- lab's time zone by ISO weekday key ("mon".."sun"): a list of [open, close) pairs "HH:MM".
-- `lab_places` is how many patients one lab slot takes (sampling chairs); a home slot takes one
-- visit per active home sampler of the lab.
ALTER TABLE labs
    ADD COLUMN slot_minutes smallint NOT NULL DEFAULT 15 CHECK (slot_minutes BETWEEN 5 AND 120),
    ADD COLUMN lab_places smallint NOT NULL DEFAULT 2 CHECK (lab_places BETWEEN 0 AND 50),
    ADD COLUMN opening_hours jsonb NOT NULL DEFAULT '{"mon":[["07:00","12:00"],["14:00","18:00"]],"tue":[["07:00","12:00"],["14:00","18:00"]],"wed":[["07:00","12:00"],["14:00","18:00"]],"thu":[["07:00","12:00"],["14:00","18:00"]],"fri":[["07:00","12:00"],["14:00","18:00"]],"sat":[["08:00","12:00"]]}'
        CHECK (jsonb_typeof(opening_hours) = 'object'),
    ADD COLUMN home_slot_minutes smallint NOT NULL DEFAULT 30 CHECK (home_slot_minutes BETWEEN 5 AND 240),
    ADD COLUMN home_hours jsonb NOT NULL DEFAULT '{"mon":[["07:00","11:00"]],"tue":[["07:00","11:00"]],"wed":[["07:00","11:00"]],"thu":[["07:00","11:00"]],"fri":[["07:00","11:00"]],"sat":[["07:00","10:00"]]}'
        CHECK (jsonb_typeof(home_hours) = 'object');

-- A walk-in patient registered at a gateway belongs to that lab's scope for the appointment window
-- from its registration, even before an appointment or a prescription names it (else the feed would
-- send its removal back to the gateway that created it).
ALTER TABLE patients
    ADD COLUMN registered_lab_id uuid REFERENCES labs (id),
    ADD COLUMN registered_at timestamptz;
CREATE INDEX patients_registered ON patients (registered_lab_id, registered_at) WHERE registered_lab_id IS NOT NULL;

-- A collection recorded by mistake is voided, never deleted: the void is its own append-only record,
-- with a mandatory reason, and the Specimen goes back to the LIS as entered-in-error.
CREATE TABLE collection_voids (
    collection_id uuid PRIMARY KEY REFERENCES collections (id),
    lab_id uuid NOT NULL REFERENCES labs (id),
    reason text NOT NULL CHECK (length(reason) BETWEEN 3 AND 500),
    voided_by uuid NOT NULL REFERENCES staff (id),
    device_id uuid,
    voided_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- A void reaches the LIS as a new position of the specimen feed (the Specimen's second version).
ALTER TABLE specimen_feed DROP CONSTRAINT specimen_feed_collection_key;
CREATE INDEX specimen_feed_collection ON specimen_feed (collection_id);
CREATE FUNCTION specimen_feed_append_void() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7305710002);
    INSERT INTO specimen_feed (position, collection_id)
    VALUES (nextval('specimen_feed_position_seq'), NEW.collection_id);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER collection_voids_specimen_feed AFTER INSERT ON collection_voids
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION specimen_feed_append_void();
