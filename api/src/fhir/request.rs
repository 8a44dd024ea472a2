//! `ServiceRequest`: a prescription. The prescriber is named by RPPS identifier and display (the
//! prescriber is outside LabEdge: a logical reference), the exams are `orderDetail` codes of the
//! lab's catalog (the gateway's tube plan follows from them), fasting is an extension.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{exam_catalog, prescribed_exams, prescriptions};
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::json::{Obj, concept_code, identifier, identifiers, printable, reference};
use super::outcome::FhirError;
use super::store::{Expect, Stored, Target, VersionedWrite, insert_or_bump, meta, precondition, require_target};
use super::{EXAM_SYSTEM, FASTING_URL, RPPS_SYSTEM};

/// A prescription as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRow {
    pub patient_id: Uuid,
    pub lab_id: Uuid,
    pub prescriber_name: String,
    pub prescriber_rpps: String,
    pub issued_on: Date,
    pub fasting: bool,
    /// open, completed or cancelled (`sampled` is the edge's, never set from outside).
    pub status: &'static str,
    pub notes: Option<String>,
    /// Exam codes, with the index of their `orderDetail` for errors.
    pub exams: Vec<(usize, String)>,
}

/// Reads and checks a ServiceRequest.
pub fn parse(value: &Value) -> Result<(RequestRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "ServiceRequest")?;
    root.allow_only(
        &[
            "identifier",
            "status",
            "intent",
            "subject",
            "requester",
            "performer",
            "orderDetail",
            "authoredOn",
            "note",
            "extension",
            "code",
            "category",
        ],
        true,
    )?;
    let status = match root.req_str("status")? {
        "active" => "open",
        "completed" => "completed",
        "revoked" => "cancelled",
        other => {
            return Err(FhirError::at(
                root.path_of("status"),
                format!("`{}`: supported are active, completed, revoked", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    if !matches!(root.req_str("intent")?, "order" | "original-order") {
        return Err(FhirError::at(root.path_of("intent"), "a prescription is an order").code("code-invalid"));
    }
    let (_, patient_id) = reference(&root.req_obj("subject")?, &["Patient"])?;
    let (prescriber_name, rpps) = prescriber(&root)?;
    let performers = root.array("performer")?;
    let performer = performers
        .as_slice()
        .first()
        .ok_or_else(|| FhirError::required(root.path_of("performer")))?;
    let (_, lab_id) = reference(performer, &["Organization"])?;
    let exams = exams(&root)?;
    let issued_on = authored_on(&root)?;
    let fasting = match root.extension(FASTING_URL)? {
        Some(ext) => ext
            .bool("valueBoolean")?
            .ok_or_else(|| FhirError::required(ext.path_of("valueBoolean")))?,
        None => false,
    };
    let notes = root
        .array("note")?
        .into_iter()
        .next()
        .map(|n| n.req_str("text"))
        .transpose()?
        .map(str::to_owned);
    let identifiers = identifiers(&root)?;
    Ok((
        RequestRow {
            patient_id,
            lab_id,
            prescriber_name,
            prescriber_rpps: rpps,
            issued_on,
            fasting,
            status,
            notes,
            exams,
        },
        identifiers,
    ))
}

/// The exams: `orderDetail` codings of the catalog, with their index for errors.
fn exams(root: &Obj<'_>) -> Result<Vec<(usize, String)>, FhirError> {
    let mut exams = Vec::new();
    for (i, detail) in root.array("orderDetail")?.iter().enumerate() {
        exams.push((i, concept_code(detail, EXAM_SYSTEM)?.to_owned()));
    }
    if exams.is_empty() {
        return Err(FhirError::at(root.path_of("orderDetail"), "at least one exam of the catalog").code("required"));
    }
    Ok(exams)
}

/// The prescriber: RPPS number and name (a logical reference: prescribers are outside LabEdge).
fn prescriber(root: &Obj<'_>) -> Result<(String, String), FhirError> {
    let requester = root.req_obj("requester")?;
    requester.allow_only(&["identifier", "display", "type"], false)?;
    let rpps_id = requester.req_obj("identifier")?;
    let (system, rpps) = identifier(&rpps_id)?;
    if system != RPPS_SYSTEM || rpps.len() != 11 || !rpps.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FhirError::at(
            rpps_id.path(),
            format!("the prescriber's RPPS number: system {RPPS_SYSTEM}, 11 digits"),
        ));
    }
    let prescriber_name = requester.req_str("display")?.to_owned();
    Ok((prescriber_name, rpps.to_owned()))
}

/// `authoredOn`, a date or a date and time.
fn authored_on(root: &Obj<'_>) -> Result<Date, FhirError> {
    let issued_on = match root.str("authoredOn")? {
        Some(text) if text.len() == 10 => root.date("authoredOn")?,
        Some(_) => root.instant("authoredOn")?.map(|at| at.date()),
        None => None,
    }
    .ok_or_else(|| FhirError::required(root.path_of("authoredOn")))?;
    Ok(issued_on)
}

type Loaded = (
    Uuid,
    Uuid,
    Uuid,
    String,
    String,
    Date,
    bool,
    String,
    Option<String>,
    i64,
    OffsetDateTime,
);

/// The ServiceRequest of this id, rendered.
pub async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    let row: Option<Loaded> = prescriptions::table
        .find(id)
        .select((
            prescriptions::id,
            prescriptions::patient_id,
            prescriptions::lab_id,
            prescriptions::prescriber_name,
            prescriptions::prescriber_rpps,
            prescriptions::issued_on,
            prescriptions::fasting,
            prescriptions::status,
            prescriptions::notes,
            prescriptions::version,
            prescriptions::updated_at,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((id, patient, lab, name, rpps, issued, fasting, status, notes, version, updated)) = row else {
        return Ok(None);
    };
    let exams: Vec<String> = prescribed_exams::table
        .filter(prescribed_exams::prescription_id.eq(id))
        .select(prescribed_exams::exam_code)
        .order(prescribed_exams::exam_code)
        .load(conn)
        .await?;
    let mut resource = json!({
        "resourceType": "ServiceRequest",
        "id": id.to_string(),
        "meta": meta(version, updated),
        "status": match status.as_str() { "completed" => "completed", "cancelled" => "revoked", _ => "active" },
        "intent": "order",
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"identifier": {"system": RPPS_SYSTEM, "value": rpps}, "display": name},
        "performer": [{"reference": format!("Organization/{lab}")}],
        "orderDetail": exams.iter().map(|code| json!({"coding": [{"system": EXAM_SYSTEM, "code": code}]})).collect::<Vec<_>>(),
        "authoredOn": issued.to_string(),
        "extension": [{"url": FASTING_URL, "valueBoolean": fasting}],
    });
    if let Some(notes) = notes {
        resource["note"] = json!([{"text": notes}]);
    }
    if let Some(identifiers) = super::store::identifier_elements(conn, "ServiceRequest", id).await? {
        resource["identifier"] = identifiers;
    }
    Ok(Some(Stored {
        id,
        version,
        last_updated: updated,
        resource,
    }))
}

/// Creates or replaces a prescription and its exams.
pub async fn write(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    row: &RequestRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    check_references(conn, row).await?;
    let current: Option<(i64, String)> = prescriptions::table
        .find(id)
        .select((prescriptions::version, prescriptions::status))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current.as_ref().map(|c| c.0), expect, "ServiceRequest", id)?;
    // A prescription the edge has sampled stays sampled while the LIS still says active.
    let status = match (&current, row.status) {
        (Some((_, s)), "open") if s == "sampled" => "sampled",
        (_, s) => s,
    };
    let values = (
        prescriptions::patient_id.eq(row.patient_id),
        prescriptions::lab_id.eq(row.lab_id),
        prescriptions::prescriber_name.eq(&row.prescriber_name),
        prescriptions::prescriber_rpps.eq(&row.prescriber_rpps),
        prescriptions::issued_on.eq(row.issued_on),
        prescriptions::fasting.eq(row.fasting),
        prescriptions::status.eq(status),
        prescriptions::notes.eq(&row.notes),
    );
    let written = insert_or_bump!(conn, prescriptions, id, current.as_ref().map(|c| c.0), values);
    let codes: Vec<&str> = row.exams.iter().map(|(_, c)| c.as_str()).collect();
    diesel::delete(
        prescribed_exams::table
            .filter(prescribed_exams::prescription_id.eq(id))
            .filter(prescribed_exams::exam_code.ne_all(&codes)),
    )
    .execute(conn)
    .await?;
    let rows: Vec<_> = codes
        .iter()
        .map(|code| {
            (
                prescribed_exams::prescription_id.eq(id),
                prescribed_exams::exam_code.eq(*code),
            )
        })
        .collect();
    diesel::insert_into(prescribed_exams::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(written)
}

async fn check_references(conn: &mut AsyncPgConnection, row: &RequestRow) -> Result<(), FhirError> {
    require_target(
        conn,
        Target::Patient,
        row.patient_id,
        "ServiceRequest.subject.reference",
        "Patient",
    )
    .await?;
    require_target(
        conn,
        Target::Lab,
        row.lab_id,
        "ServiceRequest.performer[0].reference",
        "Organization (lab)",
    )
    .await?;
    let codes: Vec<&str> = row.exams.iter().map(|(_, c)| c.as_str()).collect();
    let known: Vec<String> = exam_catalog::table
        .filter(exam_catalog::code.eq_any(&codes))
        .filter(exam_catalog::active)
        .select(exam_catalog::code)
        .load(conn)
        .await?;
    if let Some((i, code)) = row.exams.iter().find(|(_, c)| !known.contains(c)) {
        return Err(FhirError::at(
            format!("ServiceRequest.orderDetail[{i}].coding"),
            format!("`{}` is not an active exam of the lab's catalog", printable(code)),
        )
        .code("code-invalid"));
    }
    Ok(())
}
