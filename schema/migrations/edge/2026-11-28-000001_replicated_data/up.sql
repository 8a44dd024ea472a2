-- The lab's share of the cloud's data, kept by the sync worker. The cloud owns its integrity: these
-- tables carry no foreign keys between entities, because a feed page may bring an appointment before
-- its patient, and a patient may leave the lab's scope while a local collection still names it.

CREATE TABLE labs (
    id uuid PRIMARY KEY,
    code text NOT NULL CONSTRAINT labs_code_key UNIQUE,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('central', 'proximity')),
    version bigint NOT NULL
);

CREATE TABLE staff (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL,
    login text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL CHECK (role IN ('nurse', 'home_sampler', 'lab_admin')),
    pin_hash text NOT NULL,
    password_hash text,
    active boolean NOT NULL,
    version bigint NOT NULL,
    CONSTRAINT staff_lab_login_key UNIQUE (lab_id, login)
);

CREATE TABLE tube_types (
    code text PRIMARY KEY,
    label text NOT NULL,
    cap_color text NOT NULL,
    additive text,
    capacity_ul integer NOT NULL,
    draw_order smallint NOT NULL,
    version bigint NOT NULL
);

CREATE TABLE exam_catalog (
    code text PRIMARY KEY,
    label text NOT NULL,
    tube_type text NOT NULL,
    volume_ul integer NOT NULL,
    fasting boolean NOT NULL,
    active boolean NOT NULL,
    version bigint NOT NULL
);

CREATE TABLE patients (
    id uuid PRIMARY KEY,
    nir text,
    ins_oid text,
    identity_status text NOT NULL
        CHECK (identity_status IN ('provisional', 'recovered', 'validated', 'qualified')),
    birth_family_name text NOT NULL,
    birth_given_names text NOT NULL,
    first_given_name text NOT NULL,
    used_family_name text,
    used_given_name text,
    birth_date date NOT NULL,
    sex text NOT NULL CHECK (sex IN ('F', 'M', 'I')),
    birth_place_code text,
    phone text,
    address_line text,
    postal_code text,
    city text,
    version bigint NOT NULL,
    -- Search keys: upper case, accents folded, letters only ("D'Almeida-Lefèvre" -> "DALMEIDALEFEVRE").
    -- Searching a prefix of them is a parameterised LIKE on letters only, so '%' and '_' in a query
    -- can never act as wildcards.
    birth_family_key text GENERATED ALWAYS AS (
        regexp_replace(upper(translate(birth_family_name,
            'àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ',
            'aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY')), '[^A-Z]', '', 'g')) STORED,
    used_family_key text GENERATED ALWAYS AS (
        regexp_replace(upper(translate(coalesce(used_family_name, ''),
            'àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ',
            'aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY')), '[^A-Z]', '', 'g')) STORED
);
CREATE INDEX patients_birth_family_key ON patients (birth_family_key text_pattern_ops);
CREATE INDEX patients_used_family_key ON patients (used_family_key text_pattern_ops);
CREATE INDEX patients_birth_date ON patients (birth_date);
CREATE INDEX patients_nir ON patients (nir);

CREATE TABLE prescriptions (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    lab_id uuid NOT NULL,
    prescriber_name text NOT NULL,
    prescriber_rpps text NOT NULL,
    issued_on date NOT NULL,
    fasting boolean NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'sampled', 'completed', 'cancelled')),
    notes text,
    version bigint NOT NULL
);
CREATE INDEX prescriptions_patient ON prescriptions (patient_id);

CREATE TABLE prescribed_exams (
    prescription_id uuid NOT NULL REFERENCES prescriptions (id) ON DELETE CASCADE,
    exam_code text NOT NULL,
    PRIMARY KEY (prescription_id, exam_code)
);

CREATE TABLE appointments (
    id uuid PRIMARY KEY,
    lab_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    prescription_id uuid,
    kind text NOT NULL CHECK (kind IN ('lab', 'home')),
    scheduled_at timestamptz NOT NULL,
    duration_min smallint NOT NULL,
    address_line text,
    postal_code text,
    city text,
    access_notes text,
    assigned_staff_id uuid,
    round_position smallint,
    status text NOT NULL
        CHECK (status IN ('scheduled', 'checked_in', 'collected', 'no_show', 'cancelled')),
    status_reason text,
    version bigint NOT NULL
);
CREATE INDEX appointments_time ON appointments (scheduled_at);
CREATE INDEX appointments_staff_time ON appointments (assigned_staff_id, scheduled_at);
CREATE INDEX appointments_patient ON appointments (patient_id);
