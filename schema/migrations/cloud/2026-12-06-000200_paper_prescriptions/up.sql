-- Paper prescriptions relayed by the gateways (issue 15): provisional until the LIS transcribes them
-- into a ServiceRequest, so kept apart from `prescriptions` (whose exams, status and change feed are
-- the LIS's). The document reaches the LIS as FHIR DocumentReference and Binary.
CREATE TABLE paper_prescriptions (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients (id),
    lab_id uuid NOT NULL REFERENCES labs (id),
    prescriber_name text CHECK (length(prescriber_name) BETWEEN 1 AND 200),
    prescriber_rpps text CHECK (prescriber_rpps ~ '^[0-9]{11}$'),
    issued_on date NOT NULL,
    notes text CHECK (length(notes) <= 2000),
    status text NOT NULL DEFAULT 'provisional' CHECK (status IN ('provisional')),
    recorded_by uuid REFERENCES staff (id),
    device_id uuid,
    recorded_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX paper_prescriptions_patient ON paper_prescriptions (patient_id);

-- The document announced with its prescription (size, type, SHA-256, number of chunks); `content`
-- is set once every chunk is in and the whole matches its SHA-256: only then does the LIS see it.
CREATE TABLE prescription_documents (
    id uuid PRIMARY KEY,
    prescription_id uuid NOT NULL UNIQUE REFERENCES paper_prescriptions (id),
    lab_id uuid NOT NULL REFERENCES labs (id),
    patient_id uuid NOT NULL REFERENCES patients (id),
    media_type text NOT NULL CHECK (media_type IN ('image/jpeg', 'image/png', 'application/pdf')),
    size_bytes integer NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
    sha256 bytea NOT NULL CHECK (octet_length(sha256) = 32),
    chunk_count integer NOT NULL CHECK (chunk_count BETWEEN 1 AND 1000),
    content bytea,
    -- FHIR R4's attachment hash is a SHA-1: computed once, when the document is complete.
    sha1 bytea CHECK (octet_length(sha1) = 20),
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((content IS NULL) = (completed_at IS NULL) AND (sha1 IS NULL) = (completed_at IS NULL))
);
CREATE INDEX prescription_documents_patient ON prescription_documents (patient_id, completed_at)
    WHERE completed_at IS NOT NULL;

-- Chunks as they arrive, once each by (document, index); deleted when the document is assembled.
CREATE TABLE prescription_document_chunks (
    document_id uuid NOT NULL REFERENCES prescription_documents (id) ON DELETE CASCADE,
    chunk_index integer NOT NULL CHECK (chunk_index >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (document_id, chunk_index)
);
