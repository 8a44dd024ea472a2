DELETE FROM idempotency_keys a USING idempotency_keys b
 WHERE a.device_id = b.device_id AND a.idempotency_key = b.idempotency_key AND a.staff_id > b.staff_id;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (device_id, idempotency_key);
ALTER TABLE idempotency_keys DROP COLUMN staff_id;
