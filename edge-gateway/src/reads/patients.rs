//! `GET /v1/patients?q=`, `GET /v1/patients/{id}`, `GET /v1/patients/{id}/prescriptions`.
//!
//! A name search matches the generated search keys `birth_family_key` and `used_family_key`
//! (upper case, accents folded, letters only) with a parameterised `LIKE` prefix. The query is
//! normalised the same way ([`name_key`]): accents folded, upper-cased, name separators (spaces,
//! hyphens, apostrophes, dots) dropped; any other character (`%`, `_`, digits, `=`…) is kept and
//! escaped, so it is matched literally, and since the keys hold letters only such a query matches
//! nobody. Wildcards typed by a user never act as wildcards.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_schema::sync::PatientRow;
use labedge_service::error::ApiError;
use mobile_contracts::patients::MIN_NAME_LETTERS;
use mobile_contracts::problem::{ErrorCode, FieldError, Problem};
use mobile_contracts::{
    Patient, PatientPage, PatientSearchQuery, PrescriptionList, PrescriptionSummary, SearchTerm, like_prefix_pattern,
};
use uuid::Uuid;

use super::render;
use super::{Audited, Caller, cached};
use crate::cache::keys;
use crate::state::AppState;
use crate::store::reads::{self as store, PatientFilter, PatientScope};

/// Accented letters folded by the search keys' `translate(…)` in the edge migration, and what they
/// become: the two must stay in step.
const FOLD_FROM: &str = "àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ";
const FOLD_TO: &str = "aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY";

/// A name prefix as the search keys store names: accents folded, upper case, separators dropped.
/// Letters the keys drop (those outside A–Z after folding) are dropped too; any other character is
/// kept, to be matched literally (and so to match nothing).
pub fn name_key(prefix: &str) -> String {
    prefix
        .chars()
        .filter_map(|c| {
            let folded = FOLD_FROM
                .chars()
                .position(|from| from == c)
                .and_then(|index| FOLD_TO.chars().nth(index))
                .unwrap_or(c);
            if folded.is_ascii_alphabetic() {
                Some(folded.to_ascii_uppercase())
            } else if folded.is_alphabetic() || folded.is_whitespace() || matches!(folded, '-' | '\'' | '’' | '.') {
                None
            } else {
                Some(folded)
            }
        })
        .collect()
}

/// Patients of `term` in the caller's scope, a page at a time; and whether more follow.
pub async fn search(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    term: &SearchTerm,
    page: u32,
    per_page: u32,
) -> QueryResult<(Vec<PatientRow>, bool)> {
    let filter = match term {
        SearchTerm::NamePrefix(prefix) => {
            let key = name_key(prefix);
            // Folding may leave fewer letters than the contract asked for (letters the keys drop):
            // too vague a prefix matches nobody rather than half the lab.
            if key.chars().count() < MIN_NAME_LETTERS {
                return Ok((Vec::new(), false));
            }
            PatientFilter::FamilyKeyLike(like_prefix_pattern(&key))
        }
        SearchTerm::BirthDate(date) => PatientFilter::BirthDate(*date),
        SearchTerm::Nir(nir) => PatientFilter::Nir(nir.as_str().to_owned()),
    };
    let scope = if caller.is_home_sampler() {
        PatientScope::AssignedTo {
            lab: caller.lab_id,
            staff: caller.staff_id,
        }
    } else {
        PatientScope::All
    };
    store::search_patients(conn, filter, scope, page, per_page).await
}

/// `GET /v1/patients?q=`: one audit entry per patient of the page (one without a patient when the
/// page is empty: the search itself was made).
pub async fn search_page(
    state: &AppState,
    caller: &Caller,
    query: &PatientSearchQuery,
) -> Result<Audited<PatientPage>, ApiError> {
    // Validated by the extractor; a term that does not parse here is the same 422.
    let term = query.term().map_err(|_| {
        ApiError::from(
            Problem::new(ErrorCode::ValidationFailed).with_errors(vec![FieldError::new(
                "/q",
                "search_term",
                "must be a name prefix, a birth date or a NIR",
            )]),
        )
    })?;
    let (page, per_page) = (query.page_or_default(), query.per_page_or_default());
    let mut conn = state.pool.get().await?;
    let (rows, has_more) = search(&mut conn, caller, &term, page, per_page).await?;
    drop(conn);
    let items = rows
        .iter()
        .map(|row| render::render_summary(row, caller.role))
        .collect::<Result<Vec<_>, _>>()?;
    let mut audit: Vec<_> = rows
        .iter()
        .map(|row| caller.audit("patient.search", Some(row.id), Some(format!("patient:{}", row.id))))
        .collect();
    if audit.is_empty() {
        audit.push(caller.audit("patient.search", None, None));
    }
    Ok(Audited {
        body: PatientPage {
            items,
            page,
            per_page,
            has_more,
        },
        audit,
    })
}

/// 404 unless the caller may read this patient: always for nurses and lab admins (the gateway
/// holds its lab's patients only), for home samplers when an appointment of theirs names them.
pub async fn ensure_in_scope(state: &AppState, caller: &Caller, patient: Uuid) -> Result<(), ApiError> {
    if !caller.is_home_sampler() {
        return Ok(());
    }
    let mut conn = state.pool.get().await?;
    if store::assigned_to(&mut conn, caller.lab_id, caller.staff_id, patient).await? {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// A patient's row as cached in Redis (`None`: a miss, or Redis unavailable).
pub async fn cached_row(state: &AppState, id: Uuid) -> Option<PatientRow> {
    cached::get::<PatientRow>(&state.redis, keys::patient(id))
        .await
        .filter(|row| row.id == id)
}

/// A patient's stored row: the cached one when there is one, else PostgreSQL (filling Redis).
async fn patient_row(state: &AppState, id: Uuid, cached: Option<PatientRow>) -> Result<PatientRow, ApiError> {
    if let Some(row) = cached.filter(|row| row.id == id) {
        return Ok(row);
    }
    let mut conn = state.pool.get().await?;
    let row = store::load_patient(&mut conn, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    drop(conn);
    cached::put(&state.redis, &keys::patient(id), &row).await;
    Ok(row)
}

/// `GET /v1/patients/{id}`, given what [`cached_row`] found (the handler reads Redis while the
/// caller is being authenticated). For a nurse or an admin, a cache hit costs no query (the audit
/// aside); a home sampler's scope check runs beside the database read on a miss.
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    cached: Option<PatientRow>,
) -> Result<Audited<Patient>, ApiError> {
    let (row, ()) = tokio::try_join!(patient_row(state, id, cached), ensure_in_scope(state, caller, id))?;
    // Merged by the LIS into another patient: the read leads to the survivor (its own id in the
    // body tells the tablet to follow), audited as a read of the survivor.
    let row = match row.merged_into {
        None => row,
        Some(survivor) => {
            let (row, ()) = tokio::try_join!(
                patient_row(state, survivor, None),
                ensure_in_scope(state, caller, survivor)
            )?;
            row
        }
    };
    Ok(Audited {
        body: render::render_patient(&row, caller.role)?,
        audit: vec![caller.audit("patient.read", Some(row.id), Some(format!("patient:{id}")))],
    })
}

/// A patient's prescriptions at `lab`, newest first.
pub async fn prescription_list(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    patient: Uuid,
) -> Result<PrescriptionList, ApiError> {
    let ids = store::prescription_ids_of(conn, lab, &[patient]).await?;
    let mut loaded = store::load_prescriptions(conn, &ids).await?;
    loaded.sort_by(|a, b| {
        (b.prescription.issued_on, a.prescription.id).cmp(&(a.prescription.issued_on, b.prescription.id))
    });
    let items = loaded
        .into_iter()
        .map(|l| {
            let p = l.prescription;
            PrescriptionSummary {
                id: p.id,
                patient_id: p.patient_id,
                prescriber: p.prescriber,
                issued_on: p.issued_on,
                status: p.status,
                fasting_required: p.fasting_required,
                exam_count: u32::try_from(p.exams.len()).unwrap_or(u32::MAX),
                version: p.version,
            }
        })
        .collect();
    Ok(PrescriptionList { items })
}

/// `GET /v1/patients/{id}/prescriptions`: the patient and the list come from Redis in one round
/// trip when cached.
pub async fn prescriptions(
    state: &AppState,
    caller: &Caller,
    patient: Uuid,
) -> Result<Audited<PrescriptionList>, ApiError> {
    let mut raw = cached::get_raw(
        &state.redis,
        &[keys::patient(patient), keys::patient_prescriptions(patient)],
    )
    .await;
    let cached_list: Option<PrescriptionList> = cached::decode(raw.pop().flatten());
    let cached_patient: Option<PatientRow> = cached::decode(raw.pop().flatten());
    tokio::try_join!(
        patient_row(state, patient, cached_patient),
        ensure_in_scope(state, caller, patient)
    )?;
    let list = match cached_list {
        Some(list) => list,
        None => {
            let mut conn = state.pool.get().await?;
            let list = prescription_list(&mut conn, caller.lab_id, patient).await?;
            drop(conn);
            cached::put(&state.redis, &keys::patient_prescriptions(patient), &list).await;
            list
        }
    };
    Ok(Audited {
        body: list,
        audit: vec![caller.audit(
            "prescription.list",
            Some(patient),
            Some(format!("patient:{patient}/prescriptions")),
        )],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_fold_like_the_generated_columns() {
        assert_eq!(name_key("D'Almeida-Lefèvre"), "DALMEIDALEFEVRE");
        assert_eq!(name_key("  lé fè"), "LEFE");
        assert_eq!(name_key("Ñúñez"), "NUNEZ");
        assert_eq!(FOLD_FROM.chars().count(), FOLD_TO.chars().count());
    }

    #[test]
    fn wildcards_and_other_characters_stay_literal() {
        assert_eq!(name_key("mar%"), "MAR%");
        assert_eq!(name_key("x' OR 1=1--"), "XOR1=1");
        assert_eq!(like_prefix_pattern(&name_key("d_u%")), "D\\_U\\%%");
        // Letters the keys drop are dropped here too.
        assert_eq!(name_key("Bœuf"), "BUF");
    }
}
