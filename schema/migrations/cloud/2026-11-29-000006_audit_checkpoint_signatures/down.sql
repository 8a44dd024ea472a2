ALTER TABLE audit_checkpoints
    DROP CONSTRAINT audit_checkpoints_prev_both,
    DROP COLUMN mutation_id,
    DROP COLUMN gateway_id,
    DROP COLUMN prev_chain_hash,
    DROP COLUMN prev_chain_seq;
ALTER TABLE gateways DROP COLUMN cert_pem;
