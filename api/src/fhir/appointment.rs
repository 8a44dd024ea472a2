//! `Appointment`: a lab or home visit. Participants name the patient, the lab (a `Location`, or its
//! `Organization`) and the assigned staff (a `PractitionerRole`, or a `Practitioner` whose role at
//! that lab is meant); `basedOn` the prescription. A home visit's address is an extension (R4's
//! Appointment has no address). Status changes made on tablets come back as new versions.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{appointments, prescriptions, staff};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::json::{Obj, concept_code, identifiers, printable, reference};
use super::outcome::FhirError;
use super::store::{Expect, Stored, Target, VersionedWrite, insert_or_bump, meta, precondition, require_target};
use super::{ADDRESS_URL, ROUND_URL, VISIT_SYSTEM};

/// An appointment as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppointmentRow {
    pub lab_id: Uuid,
    pub patient_id: Uuid,
    pub prescription_id: Option<Uuid>,
    pub kind: &'static str,
    pub scheduled_at: OffsetDateTime,
    pub duration_min: i16,
    pub address: Option<(String, Option<String>, Option<String>)>,
    pub access_notes: Option<String>,
    /// A role (staff id), or a practitioner to resolve to their role at the lab.
    pub assigned: Option<(String, Uuid)>,
    pub round_position: Option<i16>,
    pub status: &'static str,
    pub status_reason: Option<String>,
}

fn status_in(code: &str) -> Option<&'static str> {
    Some(match code {
        "booked" => "scheduled",
        "checked-in" | "arrived" => "checked_in",
        "fulfilled" => "collected",
        "noshow" => "no_show",
        "cancelled" => "cancelled",
        _ => return None,
    })
}

fn status_out(status: &str) -> &'static str {
    match status {
        "checked_in" => "checked-in",
        "collected" => "fulfilled",
        "no_show" => "noshow",
        "cancelled" => "cancelled",
        _ => "booked",
    }
}

/// Reads and checks an Appointment.
pub fn parse(value: &Value) -> Result<(AppointmentRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "Appointment")?;
    root.allow_only(
        &[
            "identifier",
            "status",
            "cancelationReason",
            "appointmentType",
            "start",
            "end",
            "minutesDuration",
            "participant",
            "basedOn",
            "comment",
            "extension",
            "description",
        ],
        true,
    )?;
    let (status, kind) = status_and_kind(&root)?;
    let start = root
        .instant("start")?
        .ok_or_else(|| FhirError::required(root.path_of("start")))?;
    let minutes = duration(&root, start)?;
    let (patient_id, lab_id, assigned) = participants(&root)?;
    let prescription_id = match root.array("basedOn")?.into_iter().next() {
        Some(based) => Some(reference(&based, &["ServiceRequest"])?.1),
        None => None,
    };
    let (address, round_position) = place(&root, kind)?;
    let status_reason = match root.obj("cancelationReason")? {
        Some(reason) => reason.str("text")?.map(str::to_owned),
        None => None,
    };
    let identifiers = identifiers(&root)?;
    let row = AppointmentRow {
        lab_id,
        patient_id,
        prescription_id,
        kind,
        scheduled_at: start,
        duration_min: minutes as i16,
        address,
        access_notes: root.str("comment")?.map(str::to_owned),
        assigned,
        round_position,
        status,
        status_reason,
    };
    Ok((row, identifiers))
}

/// The status and the kind of visit.
fn status_and_kind(root: &Obj<'_>) -> Result<(&'static str, &'static str), FhirError> {
    let code = root.req_str("status")?;
    let status = status_in(code).ok_or_else(|| {
        FhirError::at(
            root.path_of("status"),
            format!(
                "`{}`: supported are booked, checked-in, arrived, fulfilled, noshow, cancelled",
                printable(code)
            ),
        )
        .code("code-invalid")
    })?;
    let kind = match concept_code(&root.req_obj("appointmentType")?, VISIT_SYSTEM)? {
        "lab" => "lab",
        "home" => "home",
        other => {
            return Err(FhirError::at(
                root.path_of("appointmentType"),
                format!("`{}` is not lab or home", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    Ok((status, kind))
}

/// The visit's length in minutes, from `end` or `minutesDuration` (15 when neither is given).
fn duration(root: &Obj<'_>, start: OffsetDateTime) -> Result<i64, FhirError> {
    let minutes = match (root.instant("end")?, root.uint("minutesDuration")?) {
        (Some(end), _) => (end - start).whole_minutes(),
        (None, Some(m)) => i64::try_from(m).unwrap_or(i64::MAX),
        (None, None) => 15,
    };
    if !(5..=240).contains(&minutes) {
        return Err(FhirError::at(root.path_of("end"), "a visit lasts 5 to 240 minutes"));
    }
    Ok(minutes)
}

type Place = (Option<(String, Option<String>, Option<String>)>, Option<i16>);

/// Where a home visit takes place, and its rank in the sampler's round.
fn place(root: &Obj<'_>, kind: &str) -> Result<Place, FhirError> {
    let address = match root.extension(ADDRESS_URL)? {
        Some(ext) => {
            let address = ext.req_obj("valueAddress")?;
            let line = address.str_array("line")?.join(", ");
            if line.is_empty() {
                return Err(FhirError::required(address.path_of("line")));
            }
            Some((
                line,
                address.str("postalCode")?.map(str::to_owned),
                address.str("city")?.map(str::to_owned),
            ))
        }
        None => None,
    };
    if kind == "home" && address.is_none() {
        return Err(FhirError::at(
            format!("{}.extension('{ADDRESS_URL}')", root.path()),
            "a home visit needs the visit's address",
        )
        .code("required"));
    }
    let round_position = match root.extension(ROUND_URL)? {
        Some(ext) => Some(
            ext.uint("valuePositiveInt")?
                .and_then(|p| i16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| FhirError::at(ext.path_of("valuePositiveInt"), "a position from 1"))?,
        ),
        None => None,
    };
    Ok((address, round_position))
}

type Participants = (Uuid, Uuid, Option<(String, Uuid)>);

fn participants(root: &Obj<'_>) -> Result<Participants, FhirError> {
    let (mut patient, mut lab, mut assigned) = (None, None, None);
    for participant in root.array("participant")? {
        participant.allow_only(&["actor", "status", "required", "type"], false)?;
        let actor = participant.req_obj("actor")?;
        let (kind, id) = reference(
            &actor,
            &[
                "Patient",
                "Location",
                "Organization",
                "PractitionerRole",
                "Practitioner",
            ],
        )?;
        let slot = match kind.as_str() {
            "Patient" => &mut patient,
            "Location" | "Organization" => &mut lab,
            _ => &mut assigned,
        };
        if slot.is_some() {
            return Err(FhirError::at(actor.path(), format!("one {kind} participant at most")));
        }
        *slot = Some((kind, id));
    }
    let patient = patient
        .ok_or_else(|| FhirError::at(root.path_of("participant"), "the patient is a participant").code("required"))?;
    let lab = lab.ok_or_else(|| {
        FhirError::at(root.path_of("participant"), "the lab (Location) is a participant").code("required")
    })?;
    Ok((patient.1, lab.1, assigned))
}

type Loaded = (
    (Uuid, Uuid, Uuid, Option<Uuid>, String, OffsetDateTime, i16),
    (Option<String>, Option<String>, Option<String>, Option<String>),
    (Option<Uuid>, Option<i16>, String, Option<String>, i64, OffsetDateTime),
);

/// The Appointment of this id, rendered.
pub async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    let row: Option<Loaded> = appointments::table
        .find(id)
        .select((
            (
                appointments::id,
                appointments::lab_id,
                appointments::patient_id,
                appointments::prescription_id,
                appointments::kind,
                appointments::scheduled_at,
                appointments::duration_min,
            ),
            (
                appointments::address_line,
                appointments::postal_code,
                appointments::city,
                appointments::access_notes,
            ),
            (
                appointments::assigned_staff_id,
                appointments::round_position,
                appointments::status,
                appointments::status_reason,
                appointments::version,
                appointments::updated_at,
            ),
        ))
        .first(conn)
        .await
        .optional()?;
    let Some(((id, lab, patient, prescription, kind, start, minutes), place, rest)) = row else {
        return Ok(None);
    };
    let (assigned, round, status, reason, version, updated) = rest;
    let rfc = time::format_description::well_known::Rfc3339;
    let end = start + Duration::minutes(i64::from(minutes));
    let mut participants = vec![
        json!({"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}),
        json!({"actor": {"reference": format!("Location/{lab}")}, "status": "accepted"}),
    ];
    if let Some(staff) = assigned {
        participants.push(json!({"actor": {"reference": format!("PractitionerRole/{staff}")}, "status": "accepted"}));
    }
    let mut resource = json!({
        "resourceType": "Appointment",
        "id": id.to_string(),
        "meta": meta(version, updated),
        "status": status_out(&status),
        "appointmentType": {"coding": [{"system": VISIT_SYSTEM, "code": kind}]},
        "start": start.format(&rfc).unwrap_or_default(),
        "end": end.format(&rfc).unwrap_or_default(),
        "minutesDuration": minutes,
        "participant": participants,
    });
    let notes = place.3.clone();
    let extensions = visit_extensions(place, round);
    if !extensions.is_empty() {
        resource["extension"] = Value::Array(extensions);
    }
    if let Some(notes) = notes {
        resource["comment"] = json!(notes);
    }
    if let Some(p) = prescription {
        resource["basedOn"] = json!([{"reference": format!("ServiceRequest/{p}")}]);
    }
    if let Some(r) = reason {
        resource["cancelationReason"] = json!({"text": r});
    }
    if let Some(identifiers) = super::store::identifier_elements(conn, "Appointment", id).await? {
        resource["identifier"] = identifiers;
    }
    Ok(Some(Stored {
        id,
        version,
        last_updated: updated,
        resource,
    }))
}

/// The extensions of a rendered appointment: the home visit's address, the round position.
fn visit_extensions(
    place: (Option<String>, Option<String>, Option<String>, Option<String>),
    round: Option<i16>,
) -> Vec<Value> {
    let mut extensions = Vec::new();
    if let (Some(line), postal, city) = (place.0, place.1, place.2) {
        let mut address = json!({"line": [line]});
        if let Some(p) = postal {
            address["postalCode"] = json!(p);
        }
        if let Some(c) = city {
            address["city"] = json!(c);
        }
        extensions.push(json!({"url": ADDRESS_URL, "valueAddress": address}));
    }
    if let Some(position) = round {
        extensions.push(json!({"url": ROUND_URL, "valuePositiveInt": position}));
    }
    extensions
}

/// Creates or replaces an appointment.
pub async fn write(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    row: &AppointmentRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let assigned = check_references(conn, row).await?;
    let current: Option<i64> = appointments::table
        .find(id)
        .select(appointments::version)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current, expect, "Appointment", id)?;
    let (line, postal, city) = match &row.address {
        Some((l, p, c)) => (Some(l.clone()), p.clone(), c.clone()),
        None => (None, None, None),
    };
    let values = (
        appointments::lab_id.eq(row.lab_id),
        appointments::patient_id.eq(row.patient_id),
        appointments::prescription_id.eq(row.prescription_id),
        appointments::kind.eq(row.kind),
        appointments::scheduled_at.eq(row.scheduled_at),
        appointments::duration_min.eq(row.duration_min),
        appointments::address_line.eq(line),
        appointments::postal_code.eq(postal),
        appointments::city.eq(city),
        appointments::access_notes.eq(&row.access_notes),
        appointments::assigned_staff_id.eq(assigned),
        appointments::round_position.eq(row.round_position),
        appointments::status.eq(row.status),
        appointments::status_reason.eq(&row.status_reason),
    );
    Ok(insert_or_bump!(conn, appointments, id, current, values))
}

/// Checks the references and resolves the assigned staff member (a role at the appointment's lab).
async fn check_references(conn: &mut AsyncPgConnection, row: &AppointmentRow) -> Result<Option<Uuid>, FhirError> {
    require_target(
        conn,
        Target::Patient,
        row.patient_id,
        "Appointment.participant",
        "Patient",
    )
    .await?;
    require_target(
        conn,
        Target::Lab,
        row.lab_id,
        "Appointment.participant",
        "Location (lab)",
    )
    .await?;
    if let Some(prescription) = row.prescription_id {
        let found: Option<(Uuid, Uuid)> = prescriptions::table
            .find(prescription)
            .select((prescriptions::patient_id, prescriptions::lab_id))
            .first(conn)
            .await
            .optional()?;
        match found {
            None => {
                return Err(FhirError::at(
                    "Appointment.basedOn[0].reference",
                    "names no ServiceRequest of this server",
                )
                .code("not-found"));
            }
            Some((p, l)) if p != row.patient_id || l != row.lab_id => {
                return Err(FhirError::at(
                    "Appointment.basedOn[0].reference",
                    "the ServiceRequest is of another patient or lab than the appointment",
                ));
            }
            Some(_) => {}
        }
    }
    let Some((kind, id)) = &row.assigned else {
        return Ok(None);
    };
    let query = staff::table
        .filter(staff::lab_id.eq(row.lab_id))
        .select(staff::id)
        .into_boxed();
    let query = if kind == "Practitioner" {
        query.filter(staff::practitioner_id.eq(id))
    } else {
        query.filter(staff::id.eq(id))
    };
    let found: Option<Uuid> = query.first(conn).await.optional()?;
    found.map(Some).ok_or_else(|| {
        FhirError::at(
            "Appointment.participant",
            format!("the {kind} has no role at the appointment's lab"),
        )
        .code("not-found")
    })
}
