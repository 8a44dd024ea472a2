DROP TRIGGER devices_binding_fixed ON devices;
DROP FUNCTION devices_binding_is_fixed();
-- Sealed keys cannot be unsealed in SQL: they go (tablets refresh their tokens under the next key).
DELETE FROM signing_keys WHERE secret IS NULL;
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_material;
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_one_form;
ALTER TABLE signing_keys DROP COLUMN sealed_secret;
ALTER TABLE signing_keys ALTER COLUMN secret SET NOT NULL;
