//! The intake of the lab desk's writes: bookings, reschedules, walk-in patients and collection voids
//! (issue 15). Each answers one ack, like the other mutations; the lab's scoping rules hold (every
//! row named is the lab's, an unknown row and another lab's get the same answer).
//!
//! - A booking (`appointment.create`) is inserted once by its id. A slot already full in the cloud
//!   (the LIS booked it through FHIR while the gateway was cut off) does not refuse it: the patient
//!   was told. The appointment is stored and the ack is a `conflict` with reason `slot_overbooked`
//!   and the slot's count, so that the lab admin's conflict queue shows it; resolving it is moving
//!   one of the patients (either resolution of the conflict leaves the booking in place).
//! - A reschedule is checked against the version it was made on, like a status change.
//! - A walk-in (`patient.create`) is inserted once by its id, registered at the lab (which keeps it
//!   in the lab's scope); an id already used by another patient is rejected, never overwritten.
//! - A void is recorded once; the Specimen then goes back to the LIS as `entered-in-error`.

use diesel::prelude::*;
use diesel::sql_types::{Int4, Int8, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::{AckOutcome, MutationAck, RegisteredPatient, RelayedMutation};
use labedge_schema::cloud::schema::{appointments, collection_voids, collections, patients, prescriptions, staff};
use mobile_contracts::{Appointment, AppointmentKind};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{applied, rejected, status_name};

pub(super) fn duplicate(mutation_id: Uuid, reason: &str) -> MutationAck {
    MutationAck {
        mutation_id,
        outcome: AckOutcome::Duplicate,
        current_version: None,
        current: None,
        reason: Some(reason.into()),
    }
}

/// Whether `staff_id` is an active home sampler of the lab (the only staff a visit is assigned to
/// at the desk).
async fn lab_staff(conn: &mut AsyncPgConnection, lab_id: Uuid, staff_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        staff::table
            .filter(staff::id.eq(staff_id))
            .filter(staff::lab_id.eq(lab_id)),
    ))
    .get_result(conn)
    .await
}

/// Why a booking names rows outside the lab (or a patient the cloud does not have), if it does.
async fn booking_refusal(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    appointment: &Appointment,
) -> QueryResult<Option<&'static str>> {
    let patient: bool = diesel::select(diesel::dsl::exists(patients::table.find(appointment.patient_id)))
        .get_result(conn)
        .await?;
    if !patient {
        return Ok(Some("unknown_reference: the patient is not known to the cloud"));
    }
    if let Some(prescription) = appointment.prescription_id {
        let found: Option<(Uuid, Uuid)> = prescriptions::table
            .find(prescription)
            .select((prescriptions::lab_id, prescriptions::patient_id))
            .first(conn)
            .await
            .optional()?;
        match found {
            Some((lab, _)) if lab != lab_id => {
                return Ok(Some("foreign_lab_reference: the prescription is not one of this lab's"));
            }
            None => return Ok(Some("foreign_lab_reference: the prescription is not one of this lab's")),
            Some((_, patient)) if patient != appointment.patient_id => {
                return Ok(Some("patient_out_of_scope: the patient is not the prescription's"));
            }
            Some(_) => {}
        }
    }
    if let Some(sampler) = appointment.assigned_staff_id
        && !lab_staff(conn, lab_id, sampler).await?
    {
        return Ok(Some("foreign_lab_reference: the staff member is not one of this lab's"));
    }
    Ok(None)
}

#[derive(QueryableByName)]
struct SlotCount {
    #[diesel(sql_type = Int8)]
    taken: i64,
    #[diesel(sql_type = Int4)]
    capacity: i32,
}

/// How full the slot of `appointment` is in the cloud, itself included: (taken, capacity). A lab
/// slot takes `lab_places`; a home visit's slot is its sampler's, who takes one visit at a time.
async fn slot_load(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    (id, kind, start, sampler): (Uuid, AppointmentKind, OffsetDateTime, Option<Uuid>),
) -> QueryResult<(i64, i32)> {
    let count: SlotCount = diesel::sql_query(
        "SELECT count(a.id) AS taken,
                CASE WHEN $3 THEN max(l.lab_places)::int ELSE 1 END AS capacity
         FROM labs l
         LEFT JOIN appointments a ON a.lab_id = l.id AND a.status <> 'cancelled'
              AND a.kind = CASE WHEN $3 THEN 'lab' ELSE 'home' END
              AND ($3 OR a.assigned_staff_id IS NOT DISTINCT FROM $5)
              AND a.scheduled_at >= $4
              AND a.scheduled_at < $4 + make_interval(mins => CASE WHEN $3 THEN l.slot_minutes ELSE l.home_slot_minutes END)
              AND a.id <> $2
         WHERE l.id = $1",
    )
    .bind::<SqlUuid, _>(lab_id)
    .bind::<SqlUuid, _>(id)
    .bind::<diesel::sql_types::Bool, _>(kind == AppointmentKind::Lab)
    .bind::<Timestamptz, _>(start)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(sampler)
    .get_result(conn)
    .await?;
    Ok((count.taken + 1, count.capacity))
}

/// The ack of a booking or move into a slot already full in the cloud: applied, but shown to the lab
/// admin as a conflict.
fn overbooked(mutation_id: Uuid, (taken, capacity): (i64, i32), version: i64) -> MutationAck {
    MutationAck {
        mutation_id,
        outcome: AckOutcome::Conflict,
        current_version: Some(version),
        current: Some(serde_json::json!({"slot_taken": taken, "slot_capacity": capacity, "version": version})),
        reason: Some(format!(
            "slot_overbooked: the slot holds {taken} appointments for {capacity} places in the cloud; the booking is kept, move one patient"
        )),
    }
}

/// `appointment.create`.
pub async fn create_appointment(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    appointment: &Appointment,
) -> QueryResult<MutationAck> {
    let existing: Option<Uuid> = appointments::table
        .find(appointment.id)
        .select(appointments::lab_id)
        .first(conn)
        .await
        .optional()?;
    match existing {
        Some(lab) if lab == lab_id => return Ok(duplicate(mutation.mutation_id, "appointment_already_recorded")),
        Some(_) => {
            return Ok(rejected(
                mutation.mutation_id,
                "appointment_id_taken: the appointment id is already used",
            ));
        }
        None => {}
    }
    if let Some(reason) = booking_refusal(conn, lab_id, appointment).await? {
        return Ok(rejected(mutation.mutation_id, reason));
    }
    let address = appointment.address.as_ref();
    diesel::insert_into(appointments::table)
        .values((
            appointments::id.eq(appointment.id),
            appointments::lab_id.eq(lab_id),
            appointments::patient_id.eq(appointment.patient_id),
            appointments::prescription_id.eq(appointment.prescription_id),
            appointments::kind.eq(match appointment.kind {
                AppointmentKind::Lab => "lab",
                AppointmentKind::Home => "home",
            }),
            appointments::scheduled_at.eq(appointment.scheduled_at),
            appointments::duration_min.eq(i16::try_from(appointment.duration_min).unwrap_or(15)),
            appointments::address_line.eq(address.map(|a| a.line.clone())),
            appointments::postal_code.eq(address.map(|a| a.postal_code.clone())),
            appointments::city.eq(address.map(|a| a.city.clone())),
            appointments::access_notes.eq(&appointment.access_notes),
            appointments::assigned_staff_id.eq(appointment.assigned_staff_id),
            appointments::status.eq(status_name(appointment.status)),
            appointments::version.eq(1_i64),
        ))
        .execute(conn)
        .await?;
    let slot = (
        appointment.id,
        appointment.kind,
        appointment.scheduled_at,
        appointment.assigned_staff_id,
    );
    let load = slot_load(conn, lab_id, slot).await?;
    if load.0 > i64::from(load.1) {
        return Ok(overbooked(mutation.mutation_id, load, 1));
    }
    Ok(applied(mutation.mutation_id))
}

/// `appointment.reschedule`.
pub async fn reschedule_appointment(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    (id, if_version, start, sampler): (Uuid, i64, OffsetDateTime, Option<Uuid>),
) -> QueryResult<MutationAck> {
    let current: Option<(String, String, i64)> = appointments::table
        .filter(appointments::id.eq(id))
        .filter(appointments::lab_id.eq(lab_id))
        .select((appointments::kind, appointments::status, appointments::version))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some((kind, status, version)) = current else {
        return Ok(rejected(
            mutation.mutation_id,
            "not_found: no such appointment at this lab",
        ));
    };
    if version != if_version {
        return Ok(MutationAck {
            mutation_id: mutation.mutation_id,
            outcome: AckOutcome::Conflict,
            current_version: Some(version),
            current: Some(serde_json::json!({"status": status, "version": version})),
            reason: Some("version_mismatch: the appointment changed in the cloud".into()),
        });
    }
    if status != "scheduled" {
        return Ok(rejected(
            mutation.mutation_id,
            format!("invalid_transition: a {status} appointment cannot move"),
        ));
    }
    if let Some(sampler) = sampler
        && !lab_staff(conn, lab_id, sampler).await?
    {
        return Ok(rejected(
            mutation.mutation_id,
            "foreign_lab_reference: the staff member is not one of this lab's",
        ));
    }
    diesel::update(appointments::table.find(id))
        .set((
            appointments::scheduled_at.eq(start),
            appointments::assigned_staff_id.eq(sampler),
            appointments::round_position.eq(None::<i16>),
            appointments::version.eq(version + 1),
            appointments::updated_at.eq(OffsetDateTime::now_utc()),
        ))
        .execute(conn)
        .await?;
    let kind = if kind == "lab" {
        AppointmentKind::Lab
    } else {
        AppointmentKind::Home
    };
    let load = slot_load(conn, lab_id, (id, kind, start, sampler)).await?;
    if load.0 > i64::from(load.1) {
        return Ok(overbooked(mutation.mutation_id, load, version + 1));
    }
    Ok(applied(mutation.mutation_id))
}

/// `patient.create`.
pub async fn create_patient(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    patient: &RegisteredPatient,
) -> QueryResult<MutationAck> {
    let inserted = diesel::insert_into(patients::table)
        .values((
            patients::id.eq(patient.id),
            patients::nir.eq(&patient.nir),
            patients::ins_oid.eq(None::<String>),
            patients::identity_status.eq(&patient.identity_status),
            patients::birth_family_name.eq(&patient.birth_family_name),
            patients::birth_given_names.eq(&patient.birth_given_names),
            patients::first_given_name.eq(&patient.first_given_name),
            patients::used_family_name.eq(&patient.used_family_name),
            patients::used_given_name.eq(&patient.used_given_name),
            patients::birth_date.eq(patient.birth_date),
            patients::sex.eq(&patient.sex),
            patients::birth_place_code.eq(&patient.birth_place_code),
            patients::phone.eq(&patient.phone),
            patients::address_line.eq(&patient.address_line),
            patients::postal_code.eq(&patient.postal_code),
            patients::city.eq(&patient.city),
            patients::version.eq(1_i64),
            patients::identity_method.eq(&patient.identity_method),
            patients::identity_validation_mode.eq(&patient.validation_mode),
            patients::registered_lab_id.eq(Some(lab_id)),
            patients::registered_at.eq(Some(mutation.recorded_at)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(applied(mutation.mutation_id));
    }
    let registered: Option<Option<Uuid>> = patients::table
        .find(patient.id)
        .select(patients::registered_lab_id)
        .first(conn)
        .await
        .optional()?;
    Ok(match registered {
        Some(Some(lab)) if lab == lab_id => duplicate(mutation.mutation_id, "patient_already_recorded"),
        // Another patient's id, or one the NIR unique index refused: never overwritten.
        _ => rejected(
            mutation.mutation_id,
            "patient_id_taken: the patient id or NIR is already another patient's",
        ),
    })
}

/// `collection.void`.
pub async fn void_collection(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    (collection_id, reason, voided_at): (Uuid, &str, OffsetDateTime),
) -> QueryResult<MutationAck> {
    let lab: Option<Uuid> = collections::table
        .find(collection_id)
        .select(collections::lab_id)
        .first(conn)
        .await
        .optional()?;
    if lab != Some(lab_id) {
        return Ok(rejected(
            mutation.mutation_id,
            "foreign_lab_reference: the collection is not one of this lab's",
        ));
    }
    if !(3..=500).contains(&reason.chars().count()) {
        return Ok(rejected(
            mutation.mutation_id,
            "invalid: a void's reason has 3 to 500 characters",
        ));
    }
    let Some(staff_id) = mutation.staff_id else {
        return Ok(rejected(mutation.mutation_id, "invalid: a void needs its staff member"));
    };
    let inserted = diesel::insert_into(collection_voids::table)
        .values((
            collection_voids::collection_id.eq(collection_id),
            collection_voids::lab_id.eq(lab_id),
            collection_voids::reason.eq(reason),
            collection_voids::voided_by.eq(staff_id),
            collection_voids::device_id.eq(mutation.device_id),
            collection_voids::voided_at.eq(voided_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(if inserted == 1 {
        applied(mutation.mutation_id)
    } else {
        duplicate(mutation.mutation_id, "collection_already_voided")
    })
}
