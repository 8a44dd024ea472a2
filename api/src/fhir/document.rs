//! Outbound: the paper prescriptions photographed at the labs' desks, as FHIR `DocumentReference`
//! (what the document is, whose, its type, size and hashes) and `Binary` (its bytes). A document is
//! shown once it is complete in the cloud (every chunk in, size and SHA-256 checked); until then it
//! does not exist for the LIS.
//!
//! `content.attachment.hash` is R4's: the base64 SHA-1 of the bytes. The SHA-256 the tablet was
//! given in its receipt is in the extension [`SHA256_URL`] (hex), so that both ends can compare the
//! same value. The prescription itself (provisional until the LIS transcribes it) is named by
//! `context.related` (identifier [`PAPER_PRESCRIPTION_SYSTEM`]) and described by the extension
//! [`PAPER_PRESCRIPTION_URL`].

use base64::Engine as _;
use diesel::sql_types::{Bytea, Date, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::RPPS_SYSTEM;
use super::store::{Stored, meta};

/// DocumentReference extension: the SHA-256 of the bytes, lowercase hex (valueString).
pub const SHA256_URL: &str = "https://labedge.labanalyse.fr/fhir/StructureDefinition/attachment-sha256";
/// DocumentReference extension: the paper prescription as the desk recorded it (complex: `issuedOn`,
/// `prescriberName`, `prescriberRpps`, `notes`, `status`).
pub const PAPER_PRESCRIPTION_URL: &str = "https://labedge.labanalyse.fr/fhir/StructureDefinition/paper-prescription";
/// The ids of paper prescriptions (made by the tablets).
pub const PAPER_PRESCRIPTION_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/sid/paper-prescription";

#[derive(diesel::QueryableByName, Debug)]
struct DocumentRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    prescription_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    patient_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    lab_id: Uuid,
    #[diesel(sql_type = Text)]
    media_type: String,
    #[diesel(sql_type = Int4)]
    size_bytes: i32,
    #[diesel(sql_type = Bytea)]
    sha256: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    sha1: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    completed_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    recorded_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    recorded_by: Option<Uuid>,
    #[diesel(sql_type = Date)]
    issued_on: time::Date,
    #[diesel(sql_type = Nullable<Text>)]
    prescriber_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    prescriber_rpps: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    notes: Option<String>,
    #[diesel(sql_type = Text)]
    status: String,
}

const SELECT: &str = "SELECT d.id, d.prescription_id, d.patient_id, d.lab_id, d.media_type, d.size_bytes, d.sha256, \
     d.sha1, d.completed_at, p.recorded_at, p.recorded_by, p.issued_on, p.prescriber_name, p.prescriber_rpps, \
     p.notes, p.status FROM prescription_documents d JOIN paper_prescriptions p ON p.id = d.prescription_id \
     WHERE d.completed_at IS NOT NULL";

/// The DocumentReference `id`, once its document is complete.
pub async fn load_reference(conn: &mut AsyncPgConnection, id: Uuid) -> diesel::QueryResult<Option<Stored>> {
    let rows: Vec<DocumentRow> = diesel::sql_query(format!("{SELECT} AND d.id = $1"))
        .bind::<SqlUuid, _>(id)
        .load(conn)
        .await?;
    Ok(rows.as_slice().first().map(render))
}

/// The DocumentReferences with id `id`, of `patient`, completed after `since` (each when given),
/// oldest first, at most `count`.
pub async fn search(
    conn: &mut AsyncPgConnection,
    id: Option<Uuid>,
    patient: Option<Uuid>,
    since: Option<OffsetDateTime>,
    count: usize,
) -> diesel::QueryResult<Vec<Stored>> {
    let rows: Vec<DocumentRow> = diesel::sql_query(format!(
        "{SELECT} AND ($1::uuid IS NULL OR d.patient_id = $1) \
         AND ($2::timestamptz IS NULL OR d.completed_at > $2) AND ($4::uuid IS NULL OR d.id = $4) \
         ORDER BY d.completed_at, d.id LIMIT $3"
    ))
    .bind::<Nullable<SqlUuid>, _>(patient)
    .bind::<Nullable<Timestamptz>, _>(since)
    .bind::<diesel::sql_types::BigInt, _>(i64::try_from(count).unwrap_or(i64::MAX))
    .bind::<Nullable<SqlUuid>, _>(id)
    .load(conn)
    .await?;
    Ok(rows.iter().map(render).collect())
}

#[derive(diesel::QueryableByName)]
struct BinaryRow {
    #[diesel(sql_type = SqlUuid)]
    patient_id: Uuid,
    #[diesel(sql_type = Text)]
    media_type: String,
    #[diesel(sql_type = Bytea)]
    content: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    completed_at: OffsetDateTime,
}

/// The Binary `id` (the same id as its DocumentReference), once complete: `data` in base64.
/// `securityContext` is the patient, whose data it is.
pub async fn load_binary(conn: &mut AsyncPgConnection, id: Uuid) -> diesel::QueryResult<Option<Stored>> {
    let rows: Vec<BinaryRow> = diesel::sql_query(
        "SELECT patient_id, media_type, content, completed_at FROM prescription_documents \
         WHERE id = $1 AND completed_at IS NOT NULL",
    )
    .bind::<SqlUuid, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|row| Stored {
        id,
        version: 1,
        last_updated: row.completed_at,
        resource: json!({
            "resourceType": "Binary",
            "id": id.to_string(),
            "meta": meta(1, row.completed_at),
            "contentType": row.media_type,
            "securityContext": {"reference": format!("Patient/{}", row.patient_id)},
            "data": base64::engine::general_purpose::STANDARD.encode(&row.content),
        }),
    }))
}

fn render(row: &DocumentRow) -> Stored {
    let instant = |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
    let mut prescription = vec![
        json!({"url": "status", "valueCode": row.status}),
        json!({"url": "issuedOn", "valueDate": mobile_contracts::serde_date::format(row.issued_on).unwrap_or_default()}),
    ];
    if let Some(name) = &row.prescriber_name {
        prescription.push(json!({"url": "prescriberName", "valueString": name}));
    }
    if let Some(rpps) = &row.prescriber_rpps {
        prescription.push(json!({"url": "prescriberRpps", "valueIdentifier": {"system": RPPS_SYSTEM, "value": rpps}}));
    }
    if let Some(notes) = &row.notes {
        prescription.push(json!({"url": "notes", "valueString": notes}));
    }
    let mut resource = json!({
        "resourceType": "DocumentReference",
        "id": row.id.to_string(),
        "meta": meta(1, row.completed_at),
        "extension": [
            {"url": SHA256_URL, "valueString": hex::encode(&row.sha256)},
            {"url": PAPER_PRESCRIPTION_URL, "extension": prescription},
        ],
        "status": "current",
        // Provisional: the LIS has not transcribed it yet.
        "docStatus": "preliminary",
        "type": {"coding": [{
            "system": "http://loinc.org",
            "code": "57833-6",
            "display": "Prescription for requested item(s) or service(s)",
        }]},
        "subject": {"reference": format!("Patient/{}", row.patient_id)},
        "date": instant(row.completed_at),
        "custodian": {"reference": format!("Organization/{}", row.lab_id)},
        "content": [{"attachment": {
            "contentType": row.media_type,
            "url": format!("Binary/{}", row.id),
            "size": row.size_bytes,
            "hash": base64::engine::general_purpose::STANDARD.encode(&row.sha1),
            "creation": instant(row.recorded_at),
        }}],
        "context": {"related": [{"identifier": {
            "system": PAPER_PRESCRIPTION_SYSTEM,
            "value": row.prescription_id.to_string(),
        }}]},
    });
    if let Some(staff) = row.recorded_by {
        resource["author"] = json!([{"reference": format!("PractitionerRole/{staff}")}]);
    }
    Stored {
        id: row.id,
        version: 1,
        last_updated: row.completed_at,
        resource,
    }
}

/// Whether a read of a Binary asks for the FHIR resource rather than the raw bytes: an `Accept`
/// naming FHIR JSON or JSON, or `_format=json`.
pub fn wants_fhir_json(accept: Option<&str>, query: &str) -> bool {
    let accept = accept.unwrap_or("").to_ascii_lowercase();
    let format_json = form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "_format" && matches!(v.as_ref(), "json" | "application/fhir+json" | "application/json"));
    format_json || accept.contains("application/fhir+json") || accept.contains("application/json")
}

/// The raw bytes of a Binary as rendered (its `data`), with its content type.
pub fn raw(resource: &Value) -> Option<(String, Vec<u8>)> {
    let content_type = resource.get("contentType")?.as_str()?.to_owned();
    let data = base64::engine::general_purpose::STANDARD
        .decode(resource.get("data")?.as_str()?)
        .ok()?;
    Some((content_type, data))
}
