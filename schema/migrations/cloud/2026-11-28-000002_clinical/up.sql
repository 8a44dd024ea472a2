-- Patients, prescriptions, appointments and specimen collections.

-- Identity follows the French INS rules: the strict traits (birth family name, birth given names,
-- first given name, birth date, sex, birth place) and the INS matricule (NIR or NIA with its OID) are
-- set by the identity service; tablets read them and never edit them.
CREATE TABLE patients (
    id uuid PRIMARY KEY,
    nir text CONSTRAINT patients_nir_format CHECK (nir ~ '^[1234578][0-9]{4}(2A|2B|[0-9]{2})[0-9]{8}$'),
    ins_oid text CHECK (ins_oid IN ('1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9',
                                    '1.2.250.1.213.1.4.10', '1.2.250.1.213.1.4.11')),
    identity_status text NOT NULL
        CHECK (identity_status IN ('provisional', 'recovered', 'validated', 'qualified')),
    birth_family_name text NOT NULL CHECK (length(birth_family_name) BETWEEN 1 AND 100),
    birth_given_names text NOT NULL CHECK (length(birth_given_names) BETWEEN 1 AND 200),
    first_given_name text NOT NULL CHECK (length(first_given_name) BETWEEN 1 AND 100),
    used_family_name text,
    used_given_name text,
    birth_date date NOT NULL,
    sex text NOT NULL CHECK (sex IN ('F', 'M', 'I')),
    birth_place_code text CHECK (birth_place_code ~ '^[0-9][0-9AB][0-9]{3}$'),
    phone text,
    address_line text,
    postal_code text,
    city text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- A recovered or qualified identity comes from the INS teleservice, which always returns the matricule.
    CONSTRAINT patients_ins_when_recovered CHECK (
        identity_status IN ('provisional', 'validated') OR (nir IS NOT NULL AND ins_oid IS NOT NULL))
);
CREATE UNIQUE INDEX patients_nir_key ON patients (nir) WHERE nir IS NOT NULL;

CREATE TABLE prescriptions (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients (id),
    -- The lab in charge of the sampling.
    lab_id uuid NOT NULL REFERENCES labs (id),
    prescriber_name text NOT NULL,
    prescriber_rpps text NOT NULL CHECK (prescriber_rpps ~ '^[0-9]{11}$'),
    issued_on date NOT NULL,
    -- The prescriber's own instruction; an exam of the catalog may require fasting too.
    fasting boolean NOT NULL DEFAULT false,
    status text NOT NULL CHECK (status IN ('open', 'sampled', 'completed', 'cancelled')),
    notes text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prescriptions_patient ON prescriptions (patient_id);
CREATE INDEX prescriptions_lab_open ON prescriptions (lab_id, issued_on) WHERE status = 'open';

CREATE TABLE prescribed_exams (
    prescription_id uuid NOT NULL REFERENCES prescriptions (id) ON DELETE CASCADE,
    exam_code text NOT NULL REFERENCES exam_catalog (code),
    PRIMARY KEY (prescription_id, exam_code)
);

CREATE TABLE appointments (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL REFERENCES labs (id),
    patient_id uuid NOT NULL REFERENCES patients (id),
    prescription_id uuid REFERENCES prescriptions (id),
    kind text NOT NULL CHECK (kind IN ('lab', 'home')),
    scheduled_at timestamptz NOT NULL,
    duration_min smallint NOT NULL DEFAULT 15 CHECK (duration_min BETWEEN 5 AND 240),
    -- Where a home visit takes place (often not the patient's own address: a nursing home, a relative).
    address_line text,
    postal_code text,
    city text,
    access_notes text,
    assigned_staff_id uuid REFERENCES staff (id),
    -- Order of the visit in its staff member's round of the day.
    round_position smallint CHECK (round_position > 0),
    status text NOT NULL
        CHECK (status IN ('scheduled', 'checked_in', 'collected', 'no_show', 'cancelled')),
    status_reason text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_home_has_address CHECK (kind = 'lab' OR address_line IS NOT NULL)
);
CREATE INDEX appointments_lab_time ON appointments (lab_id, scheduled_at);
CREATE INDEX appointments_staff_time ON appointments (assigned_staff_id, scheduled_at);
CREATE INDEX appointments_patient ON appointments (patient_id);

-- A specimen collection is a clinical fact recorded on a tablet: append-only, its id made by the tablet.
CREATE TABLE collections (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL REFERENCES labs (id),
    patient_id uuid NOT NULL REFERENCES patients (id),
    appointment_id uuid REFERENCES appointments (id),
    prescription_id uuid NOT NULL REFERENCES prescriptions (id),
    collected_at timestamptz NOT NULL,
    collected_by uuid NOT NULL REFERENCES staff (id),
    device_id uuid NOT NULL,
    identity_checked boolean NOT NULL,
    identity_check_method text
        CHECK (identity_check_method IN ('id_document', 'health_card', 'known_patient', 'third_party')),
    comments text,
    -- When the gateway committed it (its acknowledgement to the tablet), and when the cloud applied it.
    recorded_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT collections_checked_has_method CHECK (NOT identity_checked OR identity_check_method IS NOT NULL)
);
CREATE INDEX collections_patient ON collections (patient_id);
CREATE INDEX collections_prescription ON collections (prescription_id);

CREATE TABLE collection_tubes (
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    barcode text NOT NULL CONSTRAINT collection_tubes_barcode_key UNIQUE,
    tube_type text NOT NULL REFERENCES tube_types (code),
    PRIMARY KEY (collection_id, barcode)
);
