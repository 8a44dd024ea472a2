-- The lab's own day at the edge (issue 15): the booking rules that come with the lab's row, and
-- voided collections. Walk-in patients need no column here: a patient made at this gateway is kept
-- by its pending outbox entry until the cloud has it (then the cloud's scope keeps it).
ALTER TABLE labs
    ADD COLUMN slot_minutes smallint NOT NULL DEFAULT 15,
    ADD COLUMN lab_places smallint NOT NULL DEFAULT 2,
    ADD COLUMN opening_hours jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN home_slot_minutes smallint NOT NULL DEFAULT 30,
    ADD COLUMN home_hours jsonb NOT NULL DEFAULT '{}';

CREATE TABLE collection_voids (
    collection_id uuid PRIMARY KEY REFERENCES collections (id),
    reason text NOT NULL,
    voided_by uuid NOT NULL,
    device_id uuid NOT NULL,
    voided_at timestamptz NOT NULL DEFAULT now()
);

