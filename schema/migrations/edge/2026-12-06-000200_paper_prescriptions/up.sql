-- Paper prescriptions (issue 15): a patient brings a prescription on paper, the desk photographs or
-- scans it. It is not a prescription of the lab's work list yet (its exams are not known until the
-- LIS transcribes it), so it has its own table rather than a status of `prescriptions`, which the
-- feed replicates from the cloud and would sweep: this table is the gateway's own, never swept.
CREATE TABLE paper_prescriptions (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    lab_id uuid NOT NULL,
    prescriber_name text,
    prescriber_rpps text CHECK (prescriber_rpps ~ '^[0-9]{11}$'),
    issued_on date NOT NULL,
    notes text,
    -- Provisional until the LIS transcribes it into a ServiceRequest.
    status text NOT NULL DEFAULT 'provisional' CHECK (status IN ('provisional')),
    recorded_by uuid NOT NULL,
    device_id uuid NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX paper_prescriptions_patient ON paper_prescriptions (patient_id);

-- The photo or scan, kept whole at the gateway; the relay sends it to the cloud in chunks read from
-- its outbox entries.
CREATE TABLE prescription_documents (
    id uuid PRIMARY KEY,
    prescription_id uuid NOT NULL UNIQUE REFERENCES paper_prescriptions (id),
    media_type text NOT NULL CHECK (media_type IN ('image/jpeg', 'image/png', 'application/pdf')),
    size_bytes integer NOT NULL CHECK (size_bytes > 0),
    sha256 bytea NOT NULL CHECK (octet_length(sha256) = 32),
    content bytea NOT NULL
);
