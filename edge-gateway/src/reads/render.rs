//! Stored rows as the contract shows them: enums by their wire names, NIRs masked by role, addresses
//! and tube plans assembled.

use labedge_schema::sync::{AppointmentRow, PatientRow, PrescriptionRow};
use labedge_service::error::ApiError;
use mobile_contracts::{
    Address, Appointment, BirthDate, Contact, ExamWithTube, Nir, NirView, Patient, PatientIdentity, PatientSummary,
    PersonName, PhoneNumber, PrescribedExam, Prescriber, Prescription, Role, tube_plan,
};
use serde::de::{DeserializeOwned, IntoDeserializer};

use crate::store::reads::ExamLine;

/// A stored text column holding one of a contract enum's wire names.
pub fn parse_enum<T: DeserializeOwned>(column: &'static str, value: &str) -> Result<T, ApiError> {
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(value))
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("{column} holds a value the contract does not know")))
}

fn nir_view(stored: Option<&str>, role: Role) -> Option<NirView> {
    let stored = stored?;
    Some(match Nir::parse(stored) {
        Ok(nir) => NirView::for_role(&nir, role),
        // The cloud checks NIRs; one that does not parse here is still shown to those who may see
        // it, and hidden whole from those who see masked NIRs.
        Err(_) if matches!(role, Role::HomeSampler) => NirView {
            value: "** ** ** ** *** *** **".into(),
            masked: true,
        },
        Err(_) => NirView {
            value: stored.to_owned(),
            masked: false,
        },
    })
}

fn address(line: Option<&str>, postal_code: Option<&str>, city: Option<&str>) -> Option<Address> {
    if line.is_none() && postal_code.is_none() && city.is_none() {
        return None;
    }
    Some(Address::new(
        line.unwrap_or_default(),
        postal_code.unwrap_or_default(),
        city.unwrap_or_default(),
    ))
}

/// A patient as `role` may see it.
pub fn render_patient(row: &PatientRow, role: Role) -> Result<Patient, ApiError> {
    let identity_status = parse_enum("patients.identity_status", &row.identity_status)?;
    Ok(Patient {
        id: row.id,
        version: row.version,
        identity_status,
        identity: PatientIdentity {
            birth_family_name: PersonName::new(row.birth_family_name.clone()),
            birth_given_names: PersonName::new(row.birth_given_names.clone()),
            first_given_name: PersonName::new(row.first_given_name.clone()),
            used_family_name: row.used_family_name.clone().map(PersonName::new),
            used_given_name: row.used_given_name.clone().map(PersonName::new),
            birth_date: BirthDate::new(row.birth_date),
            sex: parse_enum("patients.sex", &row.sex)?,
            birth_place_code: row.birth_place_code.clone(),
            nir: nir_view(row.nir.as_deref(), role),
            ins_oid: row.ins_oid.clone(),
        },
        contact: Contact {
            phone: row.phone.clone().map(PhoneNumber::new),
            address: address(
                row.address_line.as_deref(),
                row.postal_code.as_deref(),
                row.city.as_deref(),
            ),
        },
        read_only: PatientIdentity::read_only_fields(identity_status),
    })
}

/// A search hit as `role` may see it.
pub fn render_summary(row: &PatientRow, role: Role) -> Result<PatientSummary, ApiError> {
    Ok(PatientSummary {
        id: row.id,
        identity_status: parse_enum("patients.identity_status", &row.identity_status)?,
        birth_family_name: PersonName::new(row.birth_family_name.clone()),
        used_family_name: row.used_family_name.clone().map(PersonName::new),
        first_given_name: PersonName::new(row.first_given_name.clone()),
        birth_date: BirthDate::new(row.birth_date),
        sex: parse_enum("patients.sex", &row.sex)?,
        nir: nir_view(row.nir.as_deref(), role),
    })
}

/// An appointment as stored.
pub fn render_appointment(row: &AppointmentRow) -> Result<Appointment, ApiError> {
    Ok(Appointment {
        id: row.id,
        patient_id: row.patient_id,
        prescription_id: row.prescription_id,
        kind: parse_enum("appointments.kind", &row.kind)?,
        scheduled_at: row.scheduled_at,
        duration_min: u16::try_from(row.duration_min).unwrap_or(0),
        address: address(
            row.address_line.as_deref(),
            row.postal_code.as_deref(),
            row.city.as_deref(),
        ),
        access_notes: row.access_notes.clone(),
        assigned_staff_id: row.assigned_staff_id,
        round_position: row.round_position.and_then(|p| u16::try_from(p).ok()),
        status: parse_enum("appointments.status", &row.status)?,
        status_reason: row.status_reason.clone(),
        version: row.version,
    })
}

pub(crate) fn render_prescription(
    row: PrescriptionRow,
    lines: &[&ExamLine],
) -> Result<(Prescription, Vec<ExamWithTube>), ApiError> {
    let mut exams = Vec::with_capacity(lines.len());
    let mut with_tubes = Vec::with_capacity(lines.len());
    for &(_, code, label, tube_type, volume_ul, fasting, tube_label, cap_color, additive, capacity_ul, draw_order) in
        lines
    {
        let exam = PrescribedExam {
            code: code.clone(),
            label: label.clone().unwrap_or_else(|| code.clone()),
            tube_type: tube_type.clone().unwrap_or_default(),
            volume_ul: volume_ul.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            fasting: fasting.unwrap_or(false),
        };
        match (tube_label, cap_color) {
            (Some(tube_label), Some(cap_color)) => with_tubes.push(ExamWithTube {
                exam: exam.clone(),
                label: tube_label.clone(),
                cap_color: cap_color.clone(),
                additive: additive.clone(),
                capacity_ul: capacity_ul.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                draw_order: draw_order.and_then(|v| u16::try_from(v).ok()).unwrap_or(u16::MAX),
            }),
            // The cloud keeps the catalog whole; an exam or tube type missing here is shown but
            // left out of the tube plan (the sampler sees the exam and asks the lab).
            _ => tracing::warn!(
                prescription_id = %row.id,
                exam_code = %code,
                "exam or tube type missing from the catalog; left out of the tube plan"
            ),
        }
        exams.push(exam);
    }
    let fasting_required = row.fasting || exams.iter().any(|e| e.fasting);
    let prescription = Prescription {
        id: row.id,
        patient_id: row.patient_id,
        prescriber: Prescriber {
            name: row.prescriber_name,
            rpps: row.prescriber_rpps,
        },
        issued_on: row.issued_on,
        status: parse_enum("prescriptions.status", &row.status)?,
        fasting_required,
        notes: row.notes,
        tube_plan: tube_plan(&with_tubes),
        exams,
        version: row.version,
    };
    Ok((prescription, with_tubes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mobile_contracts::{AppointmentStatus, IdentityStatus};

    #[test]
    fn stored_enums_parse_by_wire_name() {
        assert_eq!(
            parse_enum::<IdentityStatus>("c", "qualified").ok(),
            Some(IdentityStatus::Qualified)
        );
        assert_eq!(
            parse_enum::<AppointmentStatus>("c", "checked_in").ok(),
            Some(AppointmentStatus::CheckedIn)
        );
        assert!(parse_enum::<AppointmentStatus>("c", "lost").is_err());
    }

    #[test]
    fn an_unparsable_nir_is_hidden_from_home_samplers() {
        let masked = nir_view(Some("123"), Role::HomeSampler).expect("view");
        assert!(masked.masked && !masked.value.contains("123"));
        let nurse = nir_view(Some("123"), Role::Nurse).expect("view");
        assert_eq!((nurse.value.as_str(), nurse.masked), ("123", false));
        assert_eq!(nir_view(None, Role::Nurse), None);
    }
}
