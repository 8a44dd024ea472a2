//! Applying the cloud's rows to the edge database: a feed page or a snapshot page in one
//! transaction, with the checkpoint when there is one.

use std::collections::{BTreeMap, HashSet};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{
    appointments, collections, exam_catalog, labs, outbox, patients, prescriptions, staff, sync_checkpoints, tube_types,
};
use labedge_schema::sync::{
    AppointmentRow, Entity, ExamRow, FeedChange, LabRow, PatientRow, PrescriptionRecord, Record, StaffRow, TubeTypeRow,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The checkpoint stream of the cloud's change feed.
pub const CLOUD_STREAM: &str = "cloud";

/// What a page changed, so that caches and revocations can follow.
#[derive(Debug, Default)]
pub struct Touched {
    /// Rows written or removed.
    pub rows: usize,
    /// Patients written or removed.
    pub patients: HashSet<Uuid>,
    /// Prescriptions written or removed, with their patients when known.
    pub prescriptions: HashSet<(Uuid, Option<Uuid>)>,
    /// Staff written or removed, and whether they are active now.
    pub staff: Vec<(Uuid, bool)>,
    /// Tube types or exams changed: every tube plan may have changed.
    pub catalog: bool,
    /// Rows left alone because a local write of theirs is still on its way to the cloud.
    pub held_back: usize,
}

/// The stream holding the timeline of the cloud's database last seen in a feed page.
pub const TIMELINE_STREAM: &str = "cloud_timeline";

/// The gateway's position in the cloud's feed, if it has bootstrapped.
pub async fn checkpoint(conn: &mut AsyncPgConnection) -> QueryResult<Option<i64>> {
    stream_value(conn, CLOUD_STREAM).await
}

/// The value kept for `stream`, if any.
pub async fn stream_value(conn: &mut AsyncPgConnection, stream: &str) -> QueryResult<Option<i64>> {
    sync_checkpoints::table
        .find(stream)
        .select(sync_checkpoints::position)
        .first(conn)
        .await
        .optional()
}

async fn set_checkpoint(conn: &mut AsyncPgConnection, position: i64) -> QueryResult<usize> {
    set_stream(conn, CLOUD_STREAM, position).await
}

/// Keeps `value` for `stream`.
pub async fn set_stream(conn: &mut AsyncPgConnection, stream: &str, value: i64) -> QueryResult<usize> {
    diesel::insert_into(sync_checkpoints::table)
        .values((
            sync_checkpoints::stream.eq(stream),
            sync_checkpoints::position.eq(value),
        ))
        .on_conflict(sync_checkpoints::stream)
        .do_update()
        .set((
            sync_checkpoints::position.eq(value),
            sync_checkpoints::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

/// Applies a feed page and moves the checkpoint to `next`, in one transaction. Several changes of one
/// row in a page count once: the feed sends each row's current state, so the last one wins.
pub async fn apply_feed_page(
    conn: &mut AsyncPgConnection,
    changes: &[FeedChange],
    next: i64,
    window_ends: Option<OffsetDateTime>,
) -> QueryResult<Touched> {
    let mut latest: BTreeMap<(u8, String), &FeedChange> = BTreeMap::new();
    for change in changes {
        let order = Entity::ALL.iter().position(|e| *e == change.entity).unwrap_or(0);
        latest.insert((u8::try_from(order).unwrap_or(0), change.key.clone()), change);
    }
    let mut upserts = Vec::new();
    let mut removals = Vec::new();
    for change in latest.into_values() {
        match &change.record {
            Some(record) => upserts.push(record.clone()),
            None => removals.push((change.entity, change.key.clone())),
        }
    }
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        let mut touched = upsert_records(conn, upserts).await?;
        remove(conn, &removals, &mut touched).await?;
        set_checkpoint(conn, next).await?;
        if let Some(ends) = window_ends {
            crate::store::booking::set_window_ends(conn, ends).await?;
        }
        Ok(touched)
    })
    .await
}

/// Applies snapshot rows (a bootstrap or a reconciliation) in one transaction.
pub async fn apply_records(conn: &mut AsyncPgConnection, records: Vec<Record>) -> QueryResult<Touched> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| upsert_records(conn, records).await)
        .await
}

/// Sets the checkpoint (after a bootstrap).
pub async fn commit_checkpoint(conn: &mut AsyncPgConnection, position: i64) -> QueryResult<()> {
    set_checkpoint(conn, position).await.map(|_| ())
}

/// Keys of appointments with a local write not yet accepted by the cloud: the cloud's older state
/// must not overwrite them (the relay brings them up to date, then the feed sends the new version).
/// The records of `ids` (of kind `prefix`: `appointment`, `patient`) with a local write still on its
/// way to the cloud: the feed must not overwrite or remove them before the cloud has the write.
async fn pending(conn: &mut AsyncPgConnection, prefix: &str, ids: &[Uuid]) -> QueryResult<HashSet<Uuid>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| format!("{prefix}:{id}")).collect();
    let pending: Vec<String> = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::entity_key.eq_any(&keys))
        .select(outbox::entity_key)
        .load(conn)
        .await?;
    Ok(pending
        .iter()
        .filter_map(|k| k.strip_prefix(prefix)?.strip_prefix(':')?.parse().ok())
        .collect())
}

async fn pending_appointments(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<HashSet<Uuid>> {
    pending(conn, "appointment", ids).await
}

/// A patient the LIS merged into another: the collections recorded here under the old id move to
/// the survivor, as the cloud moved its own (appointments and prescriptions come moved by the feed).
/// The survivor's cached entries go too, since its collections changed.
async fn follow_merges(
    conn: &mut AsyncPgConnection,
    patients: &[PatientRow],
    touched: &mut Touched,
) -> QueryResult<()> {
    for (old, survivor) in patients.iter().filter_map(|p| Some((p.id, p.merged_into?))) {
        touched.rows += diesel::update(collections::table.filter(collections::patient_id.eq(old)))
            .set(collections::patient_id.eq(survivor))
            .execute(conn)
            .await?;
        touched.patients.insert(survivor);
    }
    Ok(())
}

async fn upsert_records(conn: &mut AsyncPgConnection, records: Vec<Record>) -> QueryResult<Touched> {
    let mut touched = Touched::default();
    let (mut lab_rows, mut staff_rows, mut tube_rows, mut exam_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut patient_rows, mut prescription_rows, mut appointment_rows) = (Vec::new(), Vec::new(), Vec::new());
    for record in records {
        match record {
            Record::Lab(r) => lab_rows.push(r),
            Record::Staff(r) => staff_rows.push(r),
            Record::TubeType(r) => tube_rows.push(r),
            Record::Exam(r) => exam_rows.push(r),
            Record::Patient(r) => patient_rows.push(r),
            Record::Prescription(r) => prescription_rows.push(r),
            Record::Appointment(r) => appointment_rows.push(r),
        }
    }
    touched.rows += LabRow::upsert_edge(conn, &lab_rows).await?;
    // A PIN or an activation changed here and not yet relayed stands until the cloud has it: the
    // feed's older copy of the member (say, after a PIN change relayed a moment earlier) would
    // otherwise reactivate a member the lab admin just deactivated. The cloud's copy comes back by
    // the feed once it has applied the change.
    let ids: Vec<Uuid> = staff_rows.iter().map(|s| s.id).collect();
    let pending_staff = pending(conn, "staff", &ids).await?;
    let before = staff_rows.len();
    staff_rows.retain(|s| !pending_staff.contains(&s.id));
    touched.held_back += before - staff_rows.len();
    touched.staff.extend(staff_rows.iter().map(|s| (s.id, s.active)));
    touched.rows += StaffRow::upsert_edge(conn, &staff_rows).await?;
    touched.catalog |= !tube_rows.is_empty() || !exam_rows.is_empty();
    touched.rows += TubeTypeRow::upsert_edge(conn, &tube_rows).await?;
    touched.rows += ExamRow::upsert_edge(conn, &exam_rows).await?;
    touched.patients.extend(patient_rows.iter().map(|p| p.id));
    touched.rows += PatientRow::upsert_edge(conn, &patient_rows).await?;
    follow_merges(conn, &patient_rows, &mut touched).await?;
    touched.prescriptions.extend(
        prescription_rows
            .iter()
            .map(|p| (p.prescription.id, Some(p.prescription.patient_id))),
    );
    touched.rows += PrescriptionRecord::upsert_edge(conn, &prescription_rows).await?;
    let ids: Vec<Uuid> = appointment_rows.iter().map(|a| a.id).collect();
    let pending = pending_appointments(conn, &ids).await?;
    let before = appointment_rows.len();
    appointment_rows.retain(|a| !pending.contains(&a.id));
    touched.held_back += before - appointment_rows.len();
    touched.rows += AppointmentRow::upsert_edge(conn, &appointment_rows).await?;
    Ok(touched)
}

async fn remove(conn: &mut AsyncPgConnection, removals: &[(Entity, String)], touched: &mut Touched) -> QueryResult<()> {
    for (entity, key) in removals {
        let uuid = key.parse::<Uuid>().ok();
        touched.rows += match (entity, uuid) {
            (Entity::TubeType, _) => {
                touched.catalog = true;
                diesel::delete(tube_types::table.find(key)).execute(conn).await?
            }
            (Entity::Exam, _) => {
                touched.catalog = true;
                diesel::delete(exam_catalog::table.find(key)).execute(conn).await?
            }
            (Entity::Lab, Some(id)) => diesel::delete(labs::table.find(id)).execute(conn).await?,
            (Entity::Staff, Some(id)) => {
                touched.staff.push((id, false));
                diesel::delete(staff::table.find(id)).execute(conn).await?
            }
            (Entity::Patient, Some(id)) => {
                // A walk-in registered here is not in the cloud's scope until the cloud has it.
                if pending(conn, "patient", &[id]).await?.is_empty() {
                    touched.patients.insert(id);
                    diesel::delete(patients::table.find(id)).execute(conn).await?
                } else {
                    touched.held_back += 1;
                    0
                }
            }
            (Entity::Prescription, Some(id)) => {
                let patient: Option<Uuid> = prescriptions::table
                    .find(id)
                    .select(prescriptions::patient_id)
                    .first(conn)
                    .await
                    .optional()?;
                touched.prescriptions.insert((id, patient));
                diesel::delete(prescriptions::table.find(id)).execute(conn).await?
            }
            (Entity::Appointment, Some(id)) => {
                if pending_appointments(conn, &[id]).await?.is_empty() {
                    diesel::delete(appointments::table.find(id)).execute(conn).await?
                } else {
                    touched.held_back += 1;
                    0
                }
            }
            _ => 0,
        };
    }
    Ok(())
}

/// Deletes the rows of `entity` whose key is not in `keep` (after a full snapshot, or a
/// reconciliation bucket: `bucket` limits the sweep to that bucket). Returns how many went.
pub async fn sweep(
    conn: &mut AsyncPgConnection,
    entity: Entity,
    keep: &HashSet<String>,
    bucket: Option<&str>,
) -> QueryResult<usize> {
    let table = entity.table();
    let key = entity.key();
    let bucket_filter = match bucket {
        Some(b) if b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()) => {
            format!(" AND {} = '{b}'", entity.bucket_sql())
        }
        _ => String::new(),
    };
    let keep: Vec<String> = keep.iter().cloned().collect();
    // Appointments and walk-in patients with a local write on its way are kept, as when applying.
    let pending = match entity {
        Entity::Appointment => {
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sent_at IS NULL AND o.entity_key = 'appointment:' || t.id::text)"
        }
        Entity::Patient => {
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sent_at IS NULL AND o.entity_key = 'patient:' || t.id::text)"
        }
        _ => "",
    };
    diesel::sql_query(format!(
        "DELETE FROM {table} t WHERE NOT (t.{key}::text = ANY($1)){bucket_filter}{pending}"
    ))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keep)
    .execute(conn)
    .await
}
