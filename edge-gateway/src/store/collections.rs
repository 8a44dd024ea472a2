//! Specimen collections and their tubes, with the rows a collection refers to (its prescription,
//! the catalog's tube types).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{
    collection_tubes, collection_voids, collections, patients, prescriptions, tube_types,
};
use mobile_contracts::{IdentityCheckMethod, NewCollection};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Who recorded a collection, where and when.
#[derive(Clone, Copy, Debug)]
pub struct Recording {
    /// The lab.
    pub lab_id: Uuid,
    /// The staff member who took the sample.
    pub staff_id: Uuid,
    /// Their tablet.
    pub device_id: Uuid,
    /// When the gateway stored it.
    pub recorded_at: OffsetDateTime,
}

/// Inserts `body` and its tubes.
pub async fn insert(conn: &mut AsyncPgConnection, body: &NewCollection, by: Recording) -> QueryResult<()> {
    diesel::insert_into(collections::table)
        .values((
            collections::id.eq(body.id),
            collections::lab_id.eq(by.lab_id),
            collections::patient_id.eq(body.patient_id),
            collections::appointment_id.eq(body.appointment_id),
            collections::prescription_id.eq(body.prescription_id),
            collections::collected_at.eq(body.collected_at),
            collections::collected_by.eq(by.staff_id),
            collections::device_id.eq(by.device_id),
            collections::identity_checked.eq(body.identity_checked),
            collections::identity_check_method.eq(body.identity_check_method.map(method_name)),
            collections::comments.eq(&body.comments),
            collections::recorded_at.eq(by.recorded_at),
        ))
        .execute(conn)
        .await?;
    let tubes: Vec<_> = body
        .tubes
        .iter()
        .map(|t| {
            (
                collection_tubes::collection_id.eq(body.id),
                collection_tubes::barcode.eq(t.barcode.as_str().to_owned()),
                collection_tubes::tube_type.eq(t.tube_type.clone()),
            )
        })
        .collect();
    diesel::insert_into(collection_tubes::table)
        .values(&tubes)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A collection as stored.
#[derive(Debug, Queryable)]
pub struct Recorded {
    /// The patient.
    pub patient_id: Uuid,
    /// The appointment, if any.
    pub appointment_id: Option<Uuid>,
    /// The prescription.
    pub prescription_id: Uuid,
    /// When the sample was taken.
    pub collected_at: OffsetDateTime,
    /// The tablet that sent it.
    pub device_id: Uuid,
    /// Whether the patient's identity was checked.
    pub identity_checked: bool,
    /// How (its stored name).
    pub identity_check_method: Option<String>,
    /// Free text.
    pub comments: Option<String>,
    /// When the gateway stored it.
    pub recorded_at: OffsetDateTime,
}

/// The collection `id`, if recorded.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Recorded>> {
    collections::table
        .find(id)
        .select((
            collections::patient_id,
            collections::appointment_id,
            collections::prescription_id,
            collections::collected_at,
            collections::device_id,
            collections::identity_checked,
            collections::identity_check_method,
            collections::comments,
            collections::recorded_at,
        ))
        .first(conn)
        .await
        .optional()
}

/// The tubes of collection `id`, as (barcode, tube type), sorted.
pub async fn tubes(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Vec<(String, String)>> {
    let mut tubes: Vec<(String, String)> = collection_tubes::table
        .filter(collection_tubes::collection_id.eq(id))
        .select((collection_tubes::barcode, collection_tubes::tube_type))
        .load(conn)
        .await?;
    tubes.sort();
    Ok(tubes)
}

/// A prescription's patient, lab and issue date.
pub async fn prescription(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<(Uuid, Uuid, Date)>> {
    prescriptions::table
        .find(id)
        .select((
            prescriptions::patient_id,
            prescriptions::lab_id,
            prescriptions::issued_on,
        ))
        .first(conn)
        .await
        .optional()
}

/// Which of `codes` the tube catalog knows.
pub async fn known_tube_types(conn: &mut AsyncPgConnection, codes: &[String]) -> QueryResult<Vec<String>> {
    tube_types::table
        .filter(tube_types::code.eq_any(codes))
        .select(tube_types::code)
        .load(conn)
        .await
}

/// Whether the gateway knows patient `id`.
pub async fn patient_exists(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(patients::table.find(id)))
        .get_result(conn)
        .await
}

/// The stored name of an identity check method.
pub fn method_name(method: IdentityCheckMethod) -> &'static str {
    use IdentityCheckMethod as M;
    match method {
        M::IdDocument => "id_document",
        M::HealthCard => "health_card",
        M::KnownPatient => "known_patient",
        M::ThirdParty => "third_party",
    }
}

/// Collection `id`'s lab, patient and recorder, locked until the transaction ends (a void and its
/// check happen under the lock).
pub async fn lock_owner(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<(Uuid, Uuid, Uuid)>> {
    collections::table
        .find(id)
        .select((collections::lab_id, collections::patient_id, collections::collected_by))
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// When collection `id` was voided, if it was.
pub async fn voided_at(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<OffsetDateTime>> {
    collection_voids::table
        .find(id)
        .select(collection_voids::voided_at)
        .first(conn)
        .await
        .optional()
}

/// Records the void of collection `id`.
pub async fn insert_void(conn: &mut AsyncPgConnection, id: Uuid, reason: &str, by: Recording) -> QueryResult<()> {
    diesel::insert_into(collection_voids::table)
        .values((
            collection_voids::collection_id.eq(id),
            collection_voids::reason.eq(reason),
            collection_voids::voided_by.eq(by.staff_id),
            collection_voids::device_id.eq(by.device_id),
            collection_voids::voided_at.eq(by.recorded_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
