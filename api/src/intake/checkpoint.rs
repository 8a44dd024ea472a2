//! Audit checkpoints uploaded by the gateways: each one is the head of a gateway's audit chain,
//! signed with its credential key (see [`labedge_protocol::relay::checkpoint`] for the bytes signed).
//!
//! A checkpoint is applied when:
//! 1. it names a credential of its lab (`signer_cert_sha256`) that is not revoked and whose
//!    certificate was recorded at provisioning, and the signature (ECDSA P-256 SHA-256, ASN.1 DER)
//!    verifies with that certificate's public key;
//! 2. it continues the last checkpoint the cloud holds for the lab: it names that one as its
//!    previous (same position, same hash), and neither its position nor its record count goes back.
//!    The lab's first checkpoint continues nothing the cloud holds.
//!
//! It is then recorded in `audit_checkpoints` with `continuity_ok` true. A forged signature is
//! rejected and not recorded; a validly signed checkpoint that does not continue (a fork: a chain
//! rebuilt or restored from a backup, a rewritten history) is rejected and recorded with
//! `continuity_ok` false, as evidence, unless its position is taken already. Both are security
//! events. Checkpoints of one lab are checked one at a time (a transaction-scoped advisory lock).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::checkpoint::{SignedHead, parse_hash, signed_bytes};
use labedge_protocol::relay::{AckOutcome, MutationAck, RelayedMutation, RelayedOp};
use labedge_schema::cloud::schema::{audit_checkpoints, gateways};
use labedge_service::tls::parse_certs;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use time::OffsetDateTime;
use uuid::Uuid;

/// Seed of the per-lab advisory lock key of the checkpoint check (transaction scoped).
const CHECKPOINT_LOCK: i64 = 7_305_710_006;

/// The last checkpoint held for a lab.
#[derive(Queryable)]
struct Held {
    chain_seq: i64,
    chain_hash: Vec<u8>,
    record_count: i64,
}

/// Checks and records a gateway's audit checkpoint (inside the batch's transaction).
pub async fn apply(conn: &mut AsyncPgConnection, lab_id: Uuid, mutation: &RelayedMutation) -> QueryResult<MutationAck> {
    let (head, signature, signer_cert_sha256) = match signed_head(lab_id, mutation) {
        Ok(parsed) => parsed,
        Err(refusal) => return Ok(refusal),
    };
    // 1. The signature, with the named credential's certificate.
    let gateway_id = match verified_signer(conn, lab_id, mutation, &head, &signature, signer_cert_sha256).await? {
        Ok(gateway_id) => gateway_id,
        Err(refusal) => return Ok(refusal),
    };
    // 2. Continuity with the last checkpoint held for the lab.
    let last = last_held(conn, lab_id).await?;
    let fork = match &last {
        None => None,
        Some(last) if last.chain_seq == head.chain_seq && last.chain_hash == head.chain_hash => {
            // The head the cloud holds already, signed again: nothing new.
            return Ok(applied(mutation));
        }
        Some(last) => discontinuity(last, &head),
    };
    store(conn, lab_id, mutation, &head, signature, gateway_id, fork).await
}

/// The checkpoint's head as the gateway signed it, its signature and the signer's fingerprint; a
/// malformed one is rejected.
fn signed_head(
    lab_id: Uuid,
    mutation: &RelayedMutation,
) -> Result<(SignedHead, Vec<u8>, Option<&String>), MutationAck> {
    let RelayedOp::AuditCheckpoint {
        chain_seq,
        chain_hash,
        record_count,
        previous,
        signer_cert_sha256,
        signed_at,
        signature,
    } = &mutation.op
    else {
        return Err(rejected(mutation, "invalid: not an audit checkpoint"));
    };
    let parsed_previous = match previous {
        None => Some(None),
        Some(p) => parse_hash(&p.chain_hash).map(|hash| Some((p.chain_seq, hash))),
    };
    let (Some(hash), Some(previous), Ok(signature)) = (parse_hash(chain_hash), parsed_previous, hex::decode(signature))
    else {
        return Err(rejected(
            mutation,
            "invalid: chain_hash and previous.chain_hash must be 64 hex digits, the signature hex",
        ));
    };
    if *chain_seq < 1 || *record_count < 0 || previous.is_some_and(|(p, _)| p < 1) {
        return Err(rejected(mutation, "invalid: positions start at 1 and counts at 0"));
    }
    let head = SignedHead {
        lab_id,
        chain_seq: *chain_seq,
        chain_hash: hash,
        record_count: *record_count,
        previous,
        signed_at: *signed_at,
    };
    Ok((head, signature, signer_cert_sha256.as_ref()))
}

/// The credential that signed: known for this lab, not revoked, its certificate on record and
/// verifying the signature. Otherwise the refusal.
async fn verified_signer(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    head: &SignedHead,
    signature: &[u8],
    signer_cert_sha256: Option<&String>,
) -> QueryResult<Result<Uuid, MutationAck>> {
    let signer: Option<(Uuid, Option<String>, Option<OffsetDateTime>)> = match signer_cert_sha256 {
        None => None,
        Some(fingerprint) => gateways::table
            .filter(gateways::lab_id.eq(lab_id))
            .filter(gateways::cert_sha256.eq(fingerprint))
            .select((gateways::id, gateways::cert_pem, gateways::revoked_at))
            .first(conn)
            .await
            .optional()?,
    };
    Ok(match signer {
        None => Err(refused(
            mutation,
            lab_id,
            head,
            "unknown_signer",
            "unknown_signer: no credential of this lab has the certificate named",
        )),
        Some((_, _, Some(_))) => Err(refused(
            mutation,
            lab_id,
            head,
            "signer_revoked",
            "signer_revoked: the credential that signed the checkpoint is revoked",
        )),
        Some((_, None, None)) => {
            // Not an attack: the credential predates the recording of certificates.
            tracing::warn!(
                lab.id = %lab_id,
                audit.chain_seq = head.chain_seq,
                "audit checkpoint refused: the gateway's certificate was not recorded at provisioning; provision the gateway again"
            );
            Err(rejected(
                mutation,
                "no_certificate_on_record: the signer's certificate was not recorded at provisioning; provision the gateway again",
            ))
        }
        Some((gateway_id, Some(pem), None)) => {
            if signature_verifies(&pem, &signed_bytes(head), signature) {
                Ok(gateway_id)
            } else {
                Err(refused(
                    mutation,
                    lab_id,
                    head,
                    "bad_signature",
                    "bad_signature: the signature does not verify with the gateway's certificate",
                ))
            }
        }
    })
}

/// The last continuous checkpoint held for the lab, under a lock held to the commit so that two
/// batches of one lab cannot both continue it.
async fn last_held(conn: &mut AsyncPgConnection, lab_id: Uuid) -> QueryResult<Option<Held>> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
        .bind::<Text, _>(lab_id.to_string())
        .bind::<BigInt, _>(CHECKPOINT_LOCK)
        .execute(conn)
        .await?;
    audit_checkpoints::table
        .filter(audit_checkpoints::lab_id.eq(lab_id))
        .filter(audit_checkpoints::continuity_ok)
        .order(audit_checkpoints::chain_seq.desc())
        .select((
            audit_checkpoints::chain_seq,
            audit_checkpoints::chain_hash,
            audit_checkpoints::record_count,
        ))
        .first(conn)
        .await
        .optional()
}

/// Records the checkpoint: continuing, applied; forking, kept as evidence and refused.
async fn store(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    head: &SignedHead,
    signature: Vec<u8>,
    gateway_id: Uuid,
    fork: Option<String>,
) -> QueryResult<MutationAck> {
    let record = (
        audit_checkpoints::lab_id.eq(lab_id),
        audit_checkpoints::chain_seq.eq(head.chain_seq),
        audit_checkpoints::chain_hash.eq(head.chain_hash.to_vec()),
        audit_checkpoints::record_count.eq(head.record_count),
        audit_checkpoints::signed_at.eq(head.signed_at),
        audit_checkpoints::signature.eq(signature),
        audit_checkpoints::continuity_ok.eq(fork.is_none()),
        audit_checkpoints::prev_chain_seq.eq(head.previous.map(|p| p.0)),
        audit_checkpoints::prev_chain_hash.eq(head.previous.map(|p| p.1.to_vec())),
        audit_checkpoints::gateway_id.eq(gateway_id),
        audit_checkpoints::mutation_id.eq(mutation.mutation_id),
    );
    match fork {
        None => {
            diesel::insert_into(audit_checkpoints::table)
                .values(record)
                .execute(conn)
                .await?;
            Ok(applied(mutation))
        }
        Some(reason) => {
            // Kept as evidence, unless the position is taken (by the checkpoint it forks from).
            diesel::insert_into(audit_checkpoints::table)
                .values(record)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            Ok(refused(mutation, lab_id, head, "audit_fork", &reason))
        }
    }
}

/// Why `head` does not continue `last`, if it does not.
fn discontinuity(last: &Held, head: &SignedHead) -> Option<String> {
    match head.previous {
        None => Some(format!(
            "audit_fork: the checkpoint starts a new chain, but the cloud holds this lab's chain up to position {}",
            last.chain_seq
        )),
        Some((seq, _)) if seq != last.chain_seq => Some(format!(
            "audit_fork: the checkpoint continues position {seq}, but the last checkpoint the cloud holds is at position {}",
            last.chain_seq
        )),
        Some((_, hash)) if hash.as_slice() != last.chain_hash.as_slice() => Some(format!(
            "audit_fork: the checkpoint continues position {} with another hash than the cloud holds for it",
            last.chain_seq
        )),
        Some(_) if head.chain_seq <= last.chain_seq || head.record_count < last.record_count => Some(format!(
            "audit_fork: the chain goes back, from position {} ({} records) to {} ({} records)",
            last.chain_seq, last.record_count, head.chain_seq, head.record_count
        )),
        Some(_) => None,
    }
}

/// Whether `signature` (ASN.1 DER) over `message` verifies with the public key of the certificate
/// `cert_pem` (ECDSA P-256).
fn signature_verifies(cert_pem: &str, message: &[u8], signature: &[u8]) -> bool {
    let Ok(certs) = parse_certs(cert_pem) else {
        return false;
    };
    let Some(point) = certs.as_slice().first().and_then(|c| ec_p256_public_key(c.as_ref())) else {
        return false;
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, signature)
        .is_ok()
}

/// DER of the `AlgorithmIdentifier` of an EC key on P-256: id-ecPublicKey, prime256v1.
const EC_P256_ALGORITHM: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// The public key (uncompressed point) of an X.509 certificate (DER) whose key is ECDSA P-256.
/// Reads only the path to `subjectPublicKeyInfo` (RFC 5280 §4.1): the certificate itself was
/// checked when the gateway was provisioned and at every TLS connection.
fn ec_p256_public_key(cert_der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = der_element(cert_der)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = der_element(certificate)? else {
        return None;
    };
    // version [0] EXPLICIT (absent for v1), then serialNumber, signature, issuer, validity, subject.
    let (tag, _, rest) = der_element(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..5 {
        tbs = der_element(tbs)?.2;
    }
    let (SEQUENCE, spki, _) = der_element(tbs)? else {
        return None;
    };
    let (SEQUENCE, algorithm, rest) = der_element(spki)? else {
        return None;
    };
    if algorithm != EC_P256_ALGORITHM {
        return None;
    }
    let (0x03, bits, _) = der_element(rest)? else {
        return None;
    };
    match bits.split_first()? {
        (0, point) => Some(point),
        _ => None,
    }
}

/// One DER element at the start of `input`: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (length, rest) = rest.split_at(octets);
        (length.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, rest) = rest.split_at(length);
    Some((tag, contents, rest))
}

fn applied(mutation: &RelayedMutation) -> MutationAck {
    MutationAck {
        mutation_id: mutation.mutation_id,
        outcome: AckOutcome::Applied,
        current_version: None,
        current: None,
        reason: None,
    }
}

fn rejected(mutation: &RelayedMutation, reason: &str) -> MutationAck {
    MutationAck {
        mutation_id: mutation.mutation_id,
        outcome: AckOutcome::Rejected,
        current_version: None,
        current: None,
        reason: Some(reason.to_owned()),
    }
}

/// A rejection that is a security event: a checkpoint not signed by the lab's gateway, or a chain
/// that does not continue.
fn refused(
    mutation: &RelayedMutation,
    lab_id: Uuid,
    head: &SignedHead,
    code: &'static str,
    reason: &str,
) -> MutationAck {
    tracing::event!(
        target: "security",
        tracing::Level::WARN,
        event.kind = "security",
        event.category = "integrity",
        event.action = "audit_checkpoint_rejected",
        event.outcome = "failure",
        event.reason = code,
        lab.id = %lab_id,
        mutation.id = %mutation.mutation_id,
        audit.chain_seq = head.chain_seq,
        audit.previous_seq = head.previous.map(|p| p.0),
        "security event"
    );
    metrics::counter!(
        "labedge_security_events_total",
        "action" => "audit_checkpoint_rejected",
        "outcome" => "failure",
        "reason" => code
    )
    .increment(1);
    rejected(mutation, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use labedge_service::pki::CertAuthority;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

    #[test]
    fn a_signature_by_the_certificates_key_verifies_and_no_other() {
        let (ca, _) = CertAuthority::generate("test CA").expect("CA");
        let issued = ca.issue_client("LabEdge gateway X", "X", 1).expect("cert");
        let key_pem = issued.key_pem.as_deref().expect("key");
        let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).expect("pkcs8");
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.secret_pkcs8_der(), &rng).expect("key");
        let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("cert der");
        assert_eq!(ec_p256_public_key(cert.as_ref()), Some(key.public_key().as_ref()));

        let message = b"labedge.audit.checkpoint.v1 test";
        let signature = key.sign(&rng, message).expect("sign");
        assert!(signature_verifies(&issued.cert_pem, message, signature.as_ref()));
        assert!(!signature_verifies(
            &issued.cert_pem,
            b"another message",
            signature.as_ref()
        ));
        let other = ca.issue_client("LabEdge gateway Y", "Y", 1).expect("cert");
        assert!(!signature_verifies(&other.cert_pem, message, signature.as_ref()));
        assert!(!signature_verifies("not a certificate", message, signature.as_ref()));
    }

    #[test]
    fn malformed_der_is_refused_without_panicking() {
        assert_eq!(der_element(&[]), None);
        assert_eq!(der_element(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(der_element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            der_element(&[0x30, 0x81, 0x01, 9, 7]),
            Some((0x30, &[9u8][..], &[7u8][..]))
        );
        for len in 0..40 {
            assert_eq!(ec_p256_public_key(&vec![0x30; len]), None);
        }
    }
}
