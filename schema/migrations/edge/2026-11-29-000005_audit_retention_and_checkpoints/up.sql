-- Retention of the audit log and the signed checkpoints of its chain.

-- One row per retention purge: the purge removed the chained records at positions first_chain_seq to
-- chain_seq, and keeps the last one's position and hash, so that the chain stays verifiable from there
-- (the latest anchor is where `edge-gateway audit verify` starts).
CREATE TABLE audit_anchors (
    chain_seq bigint PRIMARY KEY,
    hash bytea NOT NULL CHECK (length(hash) = 32),
    first_chain_seq bigint NOT NULL CHECK (first_chain_seq BETWEEN 1 AND chain_seq),
    purged_rows bigint NOT NULL CHECK (purged_rows > 0),
    -- Records chained before this time were old enough to be purged.
    cutoff timestamptz NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now()
);

-- The checkpoints this gateway signed and queued for the cloud (each with its outbox entry), so that
-- the next one names the one it continues.
CREATE TABLE audit_checkpoints (
    chain_seq bigint PRIMARY KEY,
    chain_hash bytea NOT NULL CHECK (length(chain_hash) = 32),
    record_count bigint NOT NULL,
    prev_chain_seq bigint,
    prev_chain_hash bytea,
    signed_at timestamptz NOT NULL,
    signature bytea NOT NULL,
    -- SHA-256 (hex) of the certificate whose key signed it.
    signer_cert_sha256 text NOT NULL,
    mutation_id uuid NOT NULL CONSTRAINT audit_checkpoints_mutation_id_key UNIQUE,
    CONSTRAINT audit_checkpoints_prev_both CHECK ((prev_chain_seq IS NULL) = (prev_chain_hash IS NULL))
);

-- Both are records of the log's history: append-only, like the log.
CREATE FUNCTION audit_history_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_history_guard();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_history_guard();
