-- The HL7 FHIR R4 interface (issue 14): integration clients, practitioners, and the commit-safe order in
-- which the lab information system reads specimens back.

-- An integration client (the LIS, an integration platform): a client certificate signed by the cloud
-- CA, distinct from gateway credentials, with SMART-style scopes (`system/Patient.read`,
-- `system/*.write`, …). The lookup is by the certificate's SHA-256 fingerprint, like gateways.
CREATE TABLE integration_clients (
    id uuid PRIMARY KEY,
    name text NOT NULL CONSTRAINT integration_clients_name_key UNIQUE
        CHECK (name ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    -- Space-separated, as OAuth writes scopes.
    scopes text NOT NULL CHECK (length(scopes) BETWEEN 1 AND 2000),
    cert_serial text NOT NULL CONSTRAINT integration_clients_cert_serial_key UNIQUE,
    cert_sha256 text NOT NULL CONSTRAINT integration_clients_cert_sha256_key UNIQUE,
    cert_not_after timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- A practitioner is the person; each `staff` row is one of their roles at a lab (a FHIR
-- PractitionerRole, same id). Deactivating the practitioner deactivates every role, which the change
-- feed carries to each lab's gateway.
CREATE TABLE practitioners (
    id uuid PRIMARY KEY,
    login text NOT NULL CHECK (login ~ '^[a-z0-9._-]{3,32}$'),
    rpps text CHECK (rpps ~ '^[0-9]{11}$'),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 120),
    active boolean NOT NULL DEFAULT true,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX practitioners_login ON practitioners (login);
CREATE INDEX practitioners_rpps ON practitioners (rpps) WHERE rpps IS NOT NULL;

ALTER TABLE staff ADD COLUMN practitioner_id uuid REFERENCES practitioners (id);
ALTER TABLE staff ADD CONSTRAINT staff_one_role_per_lab UNIQUE (practitioner_id, lab_id);

-- The identifiers a LIS gives its resources (its order number for a ServiceRequest, its visit number
-- for an Appointment, the INS for a Patient, …): searched by `identifier=system|value` and used by
-- conditional create and update. One resource of a type per (system, value).
CREATE TABLE fhir_identifiers (
    resource_type text NOT NULL
        CHECK (resource_type IN ('Patient', 'Practitioner', 'PractitionerRole', 'ServiceRequest', 'Appointment')),
    system text NOT NULL CHECK (length(system) BETWEEN 1 AND 255),
    value text NOT NULL CHECK (length(value) BETWEEN 1 AND 255),
    resource_id uuid NOT NULL,
    PRIMARY KEY (resource_type, system, value)
);
CREATE INDEX fhir_identifiers_resource ON fhir_identifiers (resource_id);

-- FR Core's identity reliability: how the traits were collected, and which document validated them.
ALTER TABLE patients
    ADD COLUMN identity_method text CHECK (identity_method IN ('SM', 'CV', 'INSI', 'CB', 'RFID', 'AV')),
    ADD COLUMN identity_validation_mode text
        CHECK (identity_validation_mode IN ('AN', 'CC', 'CE', 'CM', 'CN', 'CS', 'LE', 'PA', 'PC', 'TC', 'DC', 'AC', 'IE'));

-- Specimens go back to the LIS in commit order: a position taken at commit time under a lock held to
-- the commit (the same reasoning as change_log), so that a reader that has passed position N never
-- later finds a collection below N.
CREATE SEQUENCE specimen_feed_position_seq AS bigint;
CREATE TABLE specimen_feed (
    position bigint PRIMARY KEY,
    collection_id uuid NOT NULL CONSTRAINT specimen_feed_collection_key UNIQUE REFERENCES collections (id),
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX specimen_feed_committed ON specimen_feed (committed_at, position);

CREATE FUNCTION specimen_feed_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7305710002);
    INSERT INTO specimen_feed (position, collection_id)
    VALUES (nextval('specimen_feed_position_seq'), NEW.id);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER collections_specimen_feed AFTER INSERT ON collections
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION specimen_feed_append();

-- Existing collections are in the feed too, in the order they were received.
INSERT INTO specimen_feed (position, collection_id, committed_at)
SELECT nextval('specimen_feed_position_seq'), id, received_at
FROM (SELECT id, received_at FROM collections ORDER BY received_at, id) c;

-- R4 Subscriptions (rest-hook): the LIS is told of new Specimens or Appointment versions at its
-- endpoint. `cursor` is the last position delivered and acknowledged (specimen_feed or change_log):
-- at least once, each resource with its version, so that the LIS drops what it has seen.
CREATE TABLE fhir_subscriptions (
    id uuid PRIMARY KEY,
    client_id uuid NOT NULL REFERENCES integration_clients (id),
    criteria text NOT NULL CHECK (criteria IN ('Specimen', 'Appointment')),
    endpoint text NOT NULL CHECK (endpoint ~ '^https://' AND length(endpoint) <= 500),
    active boolean NOT NULL DEFAULT true,
    cursor bigint NOT NULL,
    failures integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fhir_subscriptions_due ON fhir_subscriptions (next_attempt_at) WHERE active;
