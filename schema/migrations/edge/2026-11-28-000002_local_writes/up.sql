-- What the gateway itself is the source of: enrolled tablets, collections recorded on them, and the
-- machinery that relays writes to the cloud exactly once.

CREATE TABLE devices (
    id uuid PRIMARY KEY,
    label text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'revoked')),
    -- argon2id PHC string of the device secret; the secret itself is shown once, at enrollment.
    secret_hash text NOT NULL,
    -- SHA-256 of the client certificate issued at enrollment (RFC 8705 x5t#S256), when the tablet sent a CSR.
    cert_sha256 text,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    enrolled_by uuid,
    last_seen_at timestamptz,
    app_version text,
    revoked_at timestamptz,
    revoked_by uuid
);

CREATE TABLE collections (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    appointment_id uuid,
    prescription_id uuid NOT NULL,
    collected_at timestamptz NOT NULL,
    collected_by uuid NOT NULL,
    device_id uuid NOT NULL,
    identity_checked boolean NOT NULL,
    identity_check_method text
        CHECK (identity_check_method IN ('id_document', 'health_card', 'known_patient', 'third_party')),
    comments text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT collections_checked_has_method CHECK (NOT identity_checked OR identity_check_method IS NOT NULL)
);
CREATE INDEX collections_patient ON collections (patient_id);

CREATE TABLE collection_tubes (
    collection_id uuid NOT NULL REFERENCES collections (id),
    barcode text NOT NULL CONSTRAINT collection_tubes_barcode_key UNIQUE,
    tube_type text NOT NULL,
    PRIMARY KEY (collection_id, barcode)
);

-- Writes waiting to reach the cloud. The relay reads pending rows by state (sent_at IS NULL) with
-- FOR UPDATE SKIP LOCKED, never by "seq > last seen", so a row that commits late is still sent.
CREATE TABLE outbox (
    seq bigserial PRIMARY KEY,
    mutation_id uuid NOT NULL CONSTRAINT outbox_mutation_id_key UNIQUE,
    -- 0: clinical writes, 1: audit checkpoints, 2: telemetry. Lower lanes go first.
    lane smallint NOT NULL DEFAULT 0 CHECK (lane IN (0, 1, 2)),
    kind text NOT NULL,
    -- Entries of one record ("appointment:<id>") are sent in order; a quarantined entry holds back
    -- the later entries of its own record only.
    entity_key text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    sent_at timestamptz,
    upstream text,
    outcome text CHECK (outcome IN ('applied', 'duplicate', 'conflict', 'rejected'))
);
CREATE INDEX outbox_pending ON outbox (lane, seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_entity ON outbox (entity_key, seq) WHERE sent_at IS NULL;

-- The stored answer of each write, so that a retried write returns it instead of writing twice.
CREATE TABLE idempotency_keys (
    device_id uuid NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    response_status smallint NOT NULL,
    response_body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- A write the cloud answered "conflict" for: kept until a lab admin resolves it, never dropped.
CREATE TABLE conflicts (
    id uuid PRIMARY KEY,
    outbox_seq bigint NOT NULL,
    mutation_id uuid NOT NULL CONSTRAINT conflicts_mutation_id_key UNIQUE,
    entity_key text NOT NULL,
    local_payload jsonb NOT NULL,
    server_version bigint,
    server_state jsonb,
    detected_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by uuid,
    resolution text CHECK (resolution IN ('keep_server', 'reapply_local'))
);

-- A write the cloud rejected, or that failed too often: quarantined here, out of the relay's way.
CREATE TABLE dead_letters (
    id uuid PRIMARY KEY,
    outbox_seq bigint NOT NULL,
    mutation_id uuid NOT NULL CONSTRAINT dead_letters_mutation_id_key UNIQUE,
    lane smallint NOT NULL,
    kind text NOT NULL,
    entity_key text NOT NULL,
    payload jsonb NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    discarded_at timestamptz,
    handled_by uuid
);
CREATE INDEX dead_letters_open ON dead_letters (entity_key) WHERE replayed_at IS NULL AND discarded_at IS NULL;
