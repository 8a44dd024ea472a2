-- What the cloud needs to verify and keep the gateways' signed audit checkpoints: each credential's
-- certificate (its public key checks the signatures), and, per checkpoint, everything that was signed
-- and who signed it, so that a stored checkpoint can be verified again later.

-- PEM of the credential's certificate, recorded by `api provision-gateway` (NULL for credentials
-- issued before: their checkpoints are refused until the gateway is provisioned again).
ALTER TABLE gateways ADD COLUMN cert_pem text;

ALTER TABLE audit_checkpoints
    ADD COLUMN prev_chain_seq bigint,
    ADD COLUMN prev_chain_hash bytea,
    ADD COLUMN gateway_id uuid REFERENCES gateways (id),
    ADD COLUMN mutation_id uuid,
    ADD CONSTRAINT audit_checkpoints_prev_both CHECK ((prev_chain_seq IS NULL) = (prev_chain_hash IS NULL));
