-- Idempotency keys are scoped to (device, staff member) (issue 12): a key used by one staff member on
-- a shared tablet is never answered to another. Keys stored before this migration belong to no one
-- (the nil id): they can no longer be replayed, and the duplicate checks of the writes themselves
-- (a collection's id, an appointment's version) still keep a retry across the upgrade single.
ALTER TABLE idempotency_keys ADD COLUMN staff_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE idempotency_keys ALTER COLUMN staff_id DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (device_id, staff_id, idempotency_key);
