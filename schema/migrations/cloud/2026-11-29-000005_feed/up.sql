-- What the change feed needs beyond the change log itself.

-- The end of the appointment window (the end of the last day a gateway keeps ahead) when the horizon
-- job last ran. Appointments enter a lab's scope as days pass, without any change of their own: the
-- job appends a change-log entry for each appointment scheduled between the last horizon and the
-- new one, so that gateways hear of them. One row at most.
CREATE TABLE feed_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT feed_horizon_singleton CHECK (singleton),
    horizon timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A prescription may be referenced by an appointment of another lab than its own; that lab reads the
-- prescription's changes by its id.
CREATE INDEX change_log_entity_id ON change_log (entity_id, position);
