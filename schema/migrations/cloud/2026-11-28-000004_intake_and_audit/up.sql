-- Mutations relayed by the gateways, applied at most once whichever route they came by.
CREATE TABLE applied_mutations (
    mutation_id uuid PRIMARY KEY,
    lab_id uuid NOT NULL REFERENCES labs (id),
    kind text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('applied', 'conflict', 'rejected')),
    -- For a conflict, the current server version; for a rejection, the reason (a problem document).
    detail jsonb,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applied_mutations_lab ON applied_mutations (lab_id, applied_at);

-- Append-only, hash-chained log of every access to patient data in the cloud. Rows are appended
-- unchained (hash NULL) by the writers and chained in order by a single chainer, so that writers never
-- queue behind one another on the head of the chain.
CREATE TABLE audit_log (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    lab_id uuid,
    actor text NOT NULL,
    staff_id uuid,
    device_id uuid,
    action text NOT NULL,
    patient_id uuid,
    resource text,
    request_id text,
    chain_seq bigint CONSTRAINT audit_log_chain_seq_key UNIQUE,
    prev_hash bytea,
    hash bytea
);
CREATE INDEX audit_log_unchained ON audit_log (seq) WHERE chain_seq IS NULL;
CREATE INDEX audit_log_patient ON audit_log (patient_id, at);

-- Signed checkpoints of each gateway's own audit chain, uploaded at least hourly; the cloud checks
-- that each one continues the previous.
CREATE TABLE audit_checkpoints (
    lab_id uuid NOT NULL REFERENCES labs (id),
    chain_seq bigint NOT NULL,
    chain_hash bytea NOT NULL,
    record_count bigint NOT NULL,
    signed_at timestamptz NOT NULL,
    signature bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    continuity_ok boolean NOT NULL,
    PRIMARY KEY (lab_id, chain_seq)
);

-- Append-only means append-only: updates and deletes are refused, except the chainer filling in the
-- chain columns of a row that has none yet.
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
       AND (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash') = (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND current_setting('labedge.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
