-- Labs, their gateways, staff, devices and the exam catalog: the reference data every lab shares.

CREATE TABLE labs (
    id uuid PRIMARY KEY,
    code text NOT NULL CONSTRAINT labs_code_key UNIQUE
        CONSTRAINT labs_code_format CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,15}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    kind text NOT NULL CHECK (kind IN ('central', 'proximity')),
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The continuity plan has one central lab: the backup upstream of every proximity lab.
CREATE UNIQUE INDEX labs_one_central ON labs (kind) WHERE kind = 'central';

-- A lab's gateway credential: a client certificate signed by the cloud CA. Several may be valid at
-- once while a certificate is being rotated.
CREATE TABLE gateways (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL REFERENCES labs (id),
    cert_serial text NOT NULL CONSTRAINT gateways_cert_serial_key UNIQUE,
    cert_sha256 text NOT NULL CONSTRAINT gateways_cert_sha256_key UNIQUE,
    cert_not_after timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    -- What the gateway last told the cloud about itself (the central view of every lab).
    last_contact_at timestamptz,
    reported_state text CHECK (reported_state IN ('online', 'degraded', 'failover')),
    reported_backlog bigint,
    reported_oldest_unsent_s bigint,
    reported_feed_lag_s bigint
);
CREATE INDEX gateways_lab ON gateways (lab_id);

CREATE TABLE staff (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL REFERENCES labs (id),
    login text NOT NULL CHECK (login ~ '^[a-z0-9._-]{3,32}$'),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 120),
    role text NOT NULL CHECK (role IN ('nurse', 'home_sampler', 'lab_admin')),
    -- argon2id PHC strings. The PIN opens a tablet session, the password the admin console.
    pin_hash text NOT NULL,
    password_hash text,
    active boolean NOT NULL DEFAULT true,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT staff_lab_login_key UNIQUE (lab_id, login)
);

-- Tablets are enrolled at their lab's gateway; the cloud keeps what gateways report, for the central view.
CREATE TABLE devices (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL REFERENCES labs (id),
    label text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'revoked')),
    enrolled_at timestamptz NOT NULL,
    revoked_at timestamptz,
    last_seen_at timestamptz,
    app_version text,
    reported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_lab ON devices (lab_id);

-- Tube types in the order of draw (CLSI GP41): the tube plan lists them in this order.
CREATE TABLE tube_types (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z0-9_]{2,24}$'),
    label text NOT NULL,
    cap_color text NOT NULL,
    additive text,
    capacity_ul integer NOT NULL CHECK (capacity_ul > 0),
    draw_order smallint NOT NULL CHECK (draw_order >= 0),
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE exam_catalog (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z0-9_]{2,24}$'),
    label text NOT NULL,
    tube_type text NOT NULL REFERENCES tube_types (code),
    volume_ul integer NOT NULL CHECK (volume_ul > 0),
    fasting boolean NOT NULL DEFAULT false,
    active boolean NOT NULL DEFAULT true,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
