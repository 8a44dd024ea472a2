-- Issue 12 item 6. The HMAC keys that sign access tokens are kept sealed: AES-256-GCM under a
-- key-encryption key (KEK) that lives in the gateway's environment file, never in the database, so
-- that a dump of the database cannot mint tokens. SQL has no KEK: a key written before this migration
-- keeps its plaintext until the next `edge-gateway serve`, which seals it and erases the plaintext.
ALTER TABLE signing_keys ALTER COLUMN secret DROP NOT NULL;
-- nonce (12 bytes) || ciphertext || tag (16 bytes); the kid is the associated data, so a sealed key
-- copied onto another kid does not open.
ALTER TABLE signing_keys ADD COLUMN sealed_secret bytea CHECK (length(sealed_secret) >= 60);
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_one_form CHECK (secret IS NULL OR sealed_secret IS NULL);
-- Retiring a key erases its material: a retired key never verifies again, whatever happens later.
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_material
    CHECK (retired_at IS NOT NULL OR secret IS NOT NULL OR sealed_secret IS NOT NULL);

-- A device's certificate binding is fixed at enrollment (a new certificate is a new enrollment): the
-- gateway caches it per device and checks every token of the device against it.
CREATE FUNCTION devices_binding_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cert_sha256 IS DISTINCT FROM OLD.cert_sha256 THEN
        RAISE EXCEPTION 'the certificate binding of device % cannot change: enroll the tablet again', OLD.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_binding_fixed BEFORE UPDATE OF cert_sha256 ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_binding_is_fixed();
