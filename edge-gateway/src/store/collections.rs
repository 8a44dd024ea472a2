//! Specimen collections and their tubes, with the rows a collection refers to (its prescription,
//! the catalog's tube types).

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Date as SqlDate, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{collection_tubes, collection_voids, collections, patients, prescriptions};
use labedge_schema::prepared::KeepPrepared;
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

/// Inserts `rows` and their tubes with two statements whatever their number (the columns as
/// arrays): the group commit's rows.
pub async fn insert_many(conn: &mut AsyncPgConnection, rows: &[(&NewCollection, Recording)]) -> QueryResult<()> {
    let column = |f: fn(&(&NewCollection, Recording)) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let at = |f: fn(&(&NewCollection, Recording)) -> OffsetDateTime| rows.iter().map(f).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO collections (id, lab_id, patient_id, appointment_id, prescription_id, collected_at, \
                                  collected_by, device_id, identity_checked, identity_check_method, comments, \
                                  recorded_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], \
                              $7::uuid[], $8::uuid[], $9::bool[], $10::text[], $11::text[], $12::timestamptz[])",
    )
    .bind::<Array<SqlUuid>, _>(column(|(b, _)| b.id))
    .bind::<Array<SqlUuid>, _>(column(|(_, by)| by.lab_id))
    .bind::<Array<SqlUuid>, _>(column(|(b, _)| b.patient_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(rows.iter().map(|(b, _)| b.appointment_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(column(|(b, _)| b.prescription_id))
    .bind::<Array<Timestamptz>, _>(at(|(b, _)| b.collected_at))
    .bind::<Array<SqlUuid>, _>(column(|(_, by)| by.staff_id))
    .bind::<Array<SqlUuid>, _>(column(|(_, by)| by.device_id))
    .bind::<Array<Bool>, _>(rows.iter().map(|(b, _)| b.identity_checked).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|(b, _)| b.identity_check_method.map(method_name))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|(b, _)| b.comments.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(at(|(_, by)| by.recorded_at))
    .prepared()
    .execute(conn)
    .await?;
    let tubes = rows.iter().flat_map(|(b, _)| b.tubes.iter().map(move |t| (b.id, t)));
    let (ids, (barcodes, types)): (Vec<Uuid>, (Vec<&str>, Vec<&str>)) = tubes
        .map(|(id, t)| (id, (t.barcode.as_str(), t.tube_type.as_str())))
        .unzip();
    diesel::sql_query(
        "INSERT INTO collection_tubes (collection_id, barcode, tube_type) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Text>, _>(barcodes)
    .bind::<Array<Text>, _>(types)
    .prepared()
    .execute(conn)
    .await
    .map(|_| ())
}

/// What a collection's checks ask of the database.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// The collection.
    pub body: &'a NewCollection,
    /// Who records it.
    pub staff_id: Uuid,
    /// Whether they are a home sampler (who records only for the patients of their own visits).
    pub home_sampler: bool,
}

/// What the database answered for one [`Asked`].
#[derive(Debug, QueryableByName)]
pub struct Facts {
    /// The gateway knows the patient.
    #[diesel(sql_type = Bool)]
    pub patient_known: bool,
    /// A home sampler has an appointment with the patient at this lab (false for other roles).
    #[diesel(sql_type = Bool)]
    pub assigned: bool,
    /// The prescription's patient, lab and issue date.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub prescription_patient: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    #[allow(missing_docs)]
    pub prescription_lab: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlDate>)]
    #[allow(missing_docs)]
    pub issued_on: Option<Date>,
    /// The appointment's patient and lab, when one is named and known.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub appointment_patient: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    #[allow(missing_docs)]
    pub appointment_lab: Option<Uuid>,
    /// A collection with this id is already recorded.
    #[diesel(sql_type = Bool)]
    pub recorded: bool,
    /// Which of the tube types named anywhere in the group the catalog knows.
    #[diesel(sql_type = Array<Text>)]
    pub known_types: Vec<String>,
    /// Which of the barcodes named anywhere in the group are already recorded.
    #[diesel(sql_type = Array<Text>)]
    pub taken_barcodes: Vec<String>,
}

/// The [`Facts`] of each of `asked`, in its order, with one statement whatever their number: the
/// four look-ups of a collection's checks, its duplicate check and its barcodes' (the initplans
/// `known_types` and `taken_barcodes` run once per statement).
pub async fn facts(conn: &mut AsyncPgConnection, lab_id: Uuid, asked: &[Asked<'_>]) -> QueryResult<Vec<Facts>> {
    let column = |f: fn(&Asked<'_>) -> Uuid| asked.iter().map(f).collect::<Vec<_>>();
    let mut types: Vec<&str> = asked
        .iter()
        .flat_map(|a| a.body.tubes.iter().map(|t| t.tube_type.as_str()))
        .collect();
    types.sort_unstable();
    types.dedup();
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM patients p WHERE p.id = t.patient) AS patient_known, \
                t.home_sampler AND EXISTS (SELECT 1 FROM appointments a \
                                           WHERE a.patient_id = t.patient AND a.assigned_staff_id = t.staff \
                                             AND a.lab_id = $1) AS assigned, \
                pr.patient_id AS prescription_patient, pr.lab_id AS prescription_lab, pr.issued_on, \
                ap.patient_id AS appointment_patient, ap.lab_id AS appointment_lab, \
                EXISTS (SELECT 1 FROM collections c WHERE c.id = t.collection) AS recorded, \
                ARRAY(SELECT code FROM tube_types WHERE code = ANY ($8::text[])) AS known_types, \
                ARRAY(SELECT barcode FROM collection_tubes WHERE barcode = ANY ($9::text[])) AS taken_barcodes \
         FROM unnest($2::uuid[], $3::uuid[], $4::bool[], $5::uuid[], $6::uuid[], $7::uuid[]) \
              WITH ORDINALITY AS t(patient, staff, home_sampler, prescription, appointment, collection, i) \
         LEFT JOIN prescriptions pr ON pr.id = t.prescription \
         LEFT JOIN appointments ap ON ap.id = t.appointment \
         ORDER BY t.i",
    )
    .bind::<SqlUuid, _>(lab_id)
    .bind::<Array<SqlUuid>, _>(column(|a| a.body.patient_id))
    .bind::<Array<SqlUuid>, _>(column(|a| a.staff_id))
    .bind::<Array<Bool>, _>(asked.iter().map(|a| a.home_sampler).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(column(|a| a.body.prescription_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(asked.iter().map(|a| a.body.appointment_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(column(|a| a.body.id))
    .bind::<Array<Text>, _>(types)
    .bind::<Array<Text>, _>(
        asked
            .iter()
            .flat_map(|a| a.body.tubes.iter().map(|t| t.barcode.as_str()))
            .collect::<Vec<_>>(),
    )
    .load(conn)
    .await
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

/// Removes, with their tubes and their void, the collections taken before `before` that the cloud
/// holds: none of their outbox entries (the collection's, its void's) is pending, in conflict or
/// rejected. Statements of [`super::outbox::PURGE_BATCH`] collections, each a short transaction.
/// Answers how many.
pub async fn purge(conn: &mut AsyncPgConnection, before: OffsetDateTime) -> QueryResult<usize> {
    let mut purged = 0;
    loop {
        // One statement: the rows of a collection go together, and the foreign keys are checked
        // at its end, when the tubes and the void are gone too.
        let n = diesel::sql_query(
            "WITH doomed AS ( \
                 SELECT c.id FROM collections c \
                 WHERE c.collected_at < $1 \
                   AND NOT EXISTS (SELECT 1 FROM outbox o \
                                   WHERE o.entity_key = 'collection:' || c.id::text \
                                     AND (o.outcome IS NULL OR o.outcome NOT IN ('applied', 'duplicate'))) \
                 ORDER BY c.collected_at LIMIT $2), \
             tubes AS (DELETE FROM collection_tubes t USING doomed d WHERE t.collection_id = d.id), \
             voids AS (DELETE FROM collection_voids v USING doomed d WHERE v.collection_id = d.id) \
             DELETE FROM collections c USING doomed d WHERE c.id = d.id",
        )
        .bind::<Timestamptz, _>(before)
        .bind::<diesel::sql_types::BigInt, _>(super::outbox::PURGE_BATCH)
        .execute(conn)
        .await?;
        purged += n;
        if (n as i64) < super::outbox::PURGE_BATCH {
            return Ok(purged);
        }
    }
}
