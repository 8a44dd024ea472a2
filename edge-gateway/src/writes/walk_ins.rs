//! Walk-in registration (`POST /v1/patients`): a patient without a record, created at the desk with a
//! provisional identity (or `validated` when an identity document was checked), relayed to the cloud
//! and from there to the LIS.
//!
//! Probable duplicates are looked for before anything is written, among the patients this gateway
//! holds: the same NIR, or the same birth date and sex with a birth family name (or name in use)
//! that is equal once accents, case and punctuation are folded, or that sounds the same
//! ([`phonetic`]). The nurse sees them (the read is audited) and must name each in
//! `confirmed_distinct_from` to go on; a patient holding the same NIR can never be set aside, since a
//! NIR is one person's. Registrations of people born the same day with the same sex are serialised,
//! so that the same walk-in entered on two tablets at once is offered to the second as a duplicate.

use std::collections::HashSet;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_protocol::relay::{RegisteredPatient, RelayedOp};
use labedge_schema::sync::PatientRow;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{NewPatient, Patient, PatientSummary, Role, Sex};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{WriteError, durable, entry, keyed, mutation, wake_relay};
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::reads::render::{render_patient, render_summary};
use crate::state::AppState;
use crate::store::idempotency::{Answered, idempotent, request_hash};
use crate::store::walk_ins as stored;
use crate::store::{audit, outbox};

/// Who registers walk-ins: the desk.
const DESK: [Role; 2] = [Role::Nurse, Role::LabAdmin];

/// What stopped a registration.
enum Refusal {
    /// A write error (the transaction rolls back).
    Write(WriteError),
    /// Probable duplicates to show: the rows, to audit and render after the rollback.
    Duplicates(Vec<PatientRow>),
}

impl From<WriteError> for Refusal {
    fn from(e: WriteError) -> Self {
        Self::Write(e)
    }
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Self::Write(e.into())
    }
}

impl From<crate::store::idempotency::ClaimError> for Refusal {
    fn from(e: crate::store::idempotency::ClaimError) -> Self {
        Self::Write(e.into())
    }
}

impl From<ProblemError> for Refusal {
    fn from(p: ProblemError) -> Self {
        Self::Write(p.into())
    }
}

fn sex_name(sex: Sex) -> &'static str {
    match sex {
        Sex::F => "F",
        Sex::M => "M",
        Sex::I => "I",
    }
}

/// Registers a walk-in patient.
pub async fn register(
    state: &AppState,
    principal: &Principal,
    key: &str,
    body: NewPatient,
    request_id: &str,
) -> Result<Answered<Patient>, ApiError> {
    principal.require(&DESK)?;
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[b"patient.create", &canonical]);
    let mut conn = state.pool.get().await?;
    let outcome = conn
        .transaction::<_, Refusal, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 201),
                async |_| Ok(()),
                async move |conn| insert_walk_in(conn, lab.id, principal, body, request_id).await,
            )
            .await
        })
        .await;
    match outcome {
        Ok(answered) => {
            wake_relay(state, &answered);
            Ok(answered)
        }
        Err(Refusal::Write(e)) => Err(e.into()),
        Err(Refusal::Duplicates(rows)) => Err(offer(&mut conn, lab.id, principal, &rows, request_id).await?),
    }
}

/// 409 `possible_duplicate` with the candidates, once their showing is audited (committed on its
/// own: the registration itself rolled back).
async fn offer(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    rows: &[PatientRow],
    request_id: &str,
) -> Result<ApiError, ApiError> {
    let candidates: Vec<PatientSummary> = rows
        .iter()
        .map(|row| render_summary(row, principal.role))
        .collect::<Result<_, _>>()?;
    let entries: Vec<AuditEntry> = rows
        .iter()
        .map(|row| {
            entry(
                principal,
                lab_id,
                "patient.duplicate_offered",
                row.id,
                format!("patient:{}", row.id),
                request_id,
            )
        })
        .collect();
    audit::insert(conn, &entries).await?;
    let mut problem = ProblemError::new(ErrorCode::PossibleDuplicate).detail(
        "probable duplicates of this patient exist: check each, then send again with their ids in \
         confirmed_distinct_from if none is the patient",
    );
    problem.problem.candidates = candidates;
    Ok(problem.into())
}

async fn insert_walk_in(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    body: NewPatient,
    request_id: &str,
) -> Result<Answered<Patient>, Refusal> {
    let row = patient_row(&body);
    if let Some(existing) = crate::store::reads::load_patient(conn, body.id).await? {
        return same_patient(&existing, &row, principal.role).map(Answered::replayed);
    }
    stored::lock_birth(conn, row.birth_date, &row.sex).await?;
    check_duplicates(conn, &body, &row).await?;
    stored::insert(conn, &row).await?;
    let op = RelayedOp::PatientCreate {
        patient: registered(&row, &body),
    };
    outbox::enqueue(conn, &mutation(principal, OffsetDateTime::now_utc(), op)).await?;
    let audit_entry = entry(
        principal,
        lab_id,
        "patient.create",
        row.id,
        format!("patient:{}", row.id),
        request_id,
    );
    audit::insert(conn, &[audit_entry]).await?;
    let patient = render_patient(&row, principal.role).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
    Ok(Answered::fresh(patient))
}

/// Refuses when a probable duplicate was not set aside by the nurse; a patient with the same NIR is
/// always refused.
async fn check_duplicates(conn: &mut AsyncPgConnection, body: &NewPatient, row: &PatientRow) -> Result<(), Refusal> {
    let pool = stored::same_birth_or_nir(conn, row.birth_date, &row.sex, row.nir.as_deref()).await?;
    if row.nir.is_some() && pool.iter().any(|p| p.nir == row.nir) {
        return Err(ProblemError::new(ErrorCode::Conflict)
            .detail("a patient with this NIR is already registered: search for them instead")
            .errors(vec![FieldError::new("/nir", "taken", "already a patient's")])
            .into());
    }
    let set_aside: HashSet<Uuid> = body.confirmed_distinct_from.iter().copied().collect();
    let probable: Vec<PatientRow> = pool
        .into_iter()
        .filter(|p| p.birth_date == row.birth_date && p.sex == row.sex && names_match(p, row))
        .filter(|p| !set_aside.contains(&p.id))
        .collect();
    if probable.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Duplicates(probable))
    }
}

/// Whether two patients' family names are probably the same: equal once folded, or equal sounds.
/// The new patient's birth name is compared with the other's birth name and name in use.
fn names_match(known: &PatientRow, new: &PatientRow) -> bool {
    let new_name = phonetic::fold(&new.birth_family_name);
    let new_sound = phonetic::key(&new.birth_family_name);
    [
        Some(known.birth_family_name.as_str()),
        known.used_family_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|name| phonetic::fold(name) == new_name || phonetic::key(name) == new_sound)
}

fn same_patient(existing: &PatientRow, row: &PatientRow, role: Role) -> Result<Patient, Refusal> {
    let same = existing.birth_family_name == row.birth_family_name
        && existing.birth_given_names == row.birth_given_names
        && existing.birth_date == row.birth_date
        && existing.sex == row.sex;
    if !same {
        return Err(ProblemError::new(ErrorCode::Conflict)
            .detail("another patient already has this id")
            .errors(vec![FieldError::new("/id", "taken", "already used")])
            .into());
    }
    render_patient(existing, role).map_err(|_| ProblemError::new(ErrorCode::Internal).into())
}

fn trimmed(name: &mobile_contracts::PersonName) -> String {
    name.as_str().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn patient_row(body: &NewPatient) -> PatientRow {
    let address = body.address.as_ref();
    PatientRow {
        id: body.id,
        nir: body.parsed_nir().map(|n| n.as_str().to_owned()),
        ins_oid: None,
        identity_status: if body.identity_document.is_some() {
            "validated"
        } else {
            "provisional"
        }
        .to_owned(),
        birth_family_name: trimmed(&body.birth_family_name),
        birth_given_names: trimmed(&body.birth_given_names),
        first_given_name: body.first_given_name(),
        used_family_name: body.used_family_name.as_ref().map(trimmed),
        used_given_name: body.used_given_name.as_ref().map(trimmed),
        birth_date: body.birth_date.get(),
        sex: sex_name(body.sex).to_owned(),
        birth_place_code: Some(body.birth_place_code.clone()),
        phone: body.phone.as_ref().map(|p| p.as_str().to_owned()),
        address_line: address.map(|a| a.line.clone()),
        postal_code: address.map(|a| a.postal_code.clone()),
        city: address.map(|a| a.city.clone()),
        version: 1,
        merged_into: None,
    }
}

fn registered(row: &PatientRow, body: &NewPatient) -> RegisteredPatient {
    RegisteredPatient {
        id: row.id,
        nir: row.nir.clone(),
        identity_status: row.identity_status.clone(),
        birth_family_name: row.birth_family_name.clone(),
        birth_given_names: row.birth_given_names.clone(),
        first_given_name: row.first_given_name.clone(),
        used_family_name: row.used_family_name.clone(),
        used_given_name: row.used_given_name.clone(),
        birth_date: row.birth_date,
        sex: row.sex.clone(),
        birth_place_code: row.birth_place_code.clone(),
        phone: row.phone.clone(),
        address_line: row.address_line.clone(),
        postal_code: row.postal_code.clone(),
        city: row.city.clone(),
        // Typed at the desk ("saisie manuelle"), checked against the document named.
        identity_method: Some("SM".to_owned()),
        validation_mode: body.identity_document.map(|d| d.validation_mode().to_owned()),
    }
}

/// Names folded for comparison, and a French phonetic key.
pub mod phonetic {
    /// Upper case, accents folded, letters only: "D'Almeida-Lefèvre" → "DALMEIDALEFEVRE", the fold
    /// of the database's search keys (the search's own [`name_key`](crate::reads::patients::name_key),
    /// kept to letters).
    pub fn fold(name: &str) -> String {
        crate::reads::patients::name_key(name)
            .chars()
            .filter(char::is_ascii_uppercase)
            .collect()
    }

    /// How a French family name sounds, roughly: spellings a clerk or a patient confuses map to the
    /// same key ("Lefèvre" and "Lefebvre", "Dupont" and "Dupond", "Philippe" and "Filipe",
    /// "Meunier" and "Meusnier"). Rewrites of the usual French graphemes, then doubled letters
    /// and silent endings dropped. It errs towards matching: a false candidate costs the nurse a
    /// glance, a missed duplicate splits a patient's results.
    pub fn key(name: &str) -> String {
        let mut s = fold(name);
        for (from, to) in [
            ("SCH", "CH"),
            ("SH", "CH"),
            ("PH", "F"),
            ("TH", "T"),
            ("GU", "G"),
            ("QU", "K"),
            ("CK", "K"),
            ("EAU", "O"),
            ("AU", "O"),
            ("OU", "U"),
            ("AI", "E"),
            ("EI", "E"),
            ("BV", "V"),
            ("SN", "N"),
            ("Y", "I"),
            ("W", "V"),
            ("Z", "S"),
        ] {
            s = s.replace(from, to);
        }
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(chars.len());
        for (i, &c) in chars.iter().enumerate() {
            let next = chars.get(i + 1).copied();
            let mapped = match c {
                'C' if matches!(next, Some('E' | 'I')) => 'S',
                'C' if next == Some('H') => 'C',
                'C' | 'Q' => 'K',
                'G' if matches!(next, Some('E' | 'I')) => 'J',
                'H' if i > 0 && chars[i - 1] == 'C' => 'H',
                'H' => continue,
                other => other,
            };
            if out.ends_with(mapped) {
                continue;
            }
            out.push(mapped);
        }
        // Silent endings: a final E, then a final S, T, D or X ("Dupont", "Dupond", "Desmoulins").
        if out.len() > 2 && out.ends_with('E') {
            out.pop();
        }
        while out.len() > 2 && out.ends_with(['S', 'T', 'D', 'X']) {
            out.pop();
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn confusable_spellings_share_a_key() {
            for (a, b) in [
                ("Lefèvre", "LEFEBVRE"),
                ("Dupont", "dupond"),
                ("Philippe", "Filipe"),
                ("Meunier", "Meusnier"),
                ("Rousseau", "Roussot"),
                ("Schmitt", "Chmit"),
                ("Gautier", "Gauthier"),
            ] {
                assert_eq!(key(a), key(b), "{a} / {b}");
            }
            for (a, b) in [("Martin", "Bernard"), ("Petit", "Durand"), ("Moreau", "Morel")] {
                assert_ne!(key(a), key(b), "{a} / {b}");
            }
            assert_eq!(fold("D'Almeida-Lefèvre"), "DALMEIDALEFEVRE");
        }
    }
}
