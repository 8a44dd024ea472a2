//! Sample values shared by the unit tests.

use time::macros::{date, datetime};
use uuid::Uuid;

use crate::appointments::Appointment;
use crate::collections::{NewCollection, Tube, TubeBarcode};
use crate::common::{AppointmentKind, AppointmentStatus, IdentityCheckMethod, IdentityStatus, PrescriptionStatus, Sex};
use crate::nir::Nir;
use crate::patients::{Contact, NirView, Patient, PatientIdentity};
use crate::personal::{Address, BirthDate, PersonName, PhoneNumber};
use crate::prescriptions::{ExamWithTube, PrescribedExam, Prescriber, Prescription, tube_plan};

pub(crate) fn patient() -> Patient {
    let nir = Nir::parse("295109912611193").expect("nir");
    Patient {
        id: Uuid::from_u128(0x42),
        version: 3,
        identity_status: IdentityStatus::Qualified,
        identity: PatientIdentity {
            birth_family_name: PersonName::new("Lefebvre-Quentin"),
            birth_given_names: PersonName::new("Amandine Rose"),
            first_given_name: PersonName::new("Amandine"),
            used_family_name: Some(PersonName::new("Moreau-Vidal")),
            used_given_name: Some(PersonName::new("Mandy")),
            birth_date: BirthDate::new(date!(1995 - 10 - 21)),
            sex: Sex::F,
            birth_place_code: Some("99126".into()),
            nir: Some(NirView::new(&nir, false)),
            ins_oid: Some("1.2.250.1.213.1.4.8".into()),
        },
        contact: Contact {
            phone: Some(PhoneNumber::new("+33655443322")),
            address: Some(Address::new("4 chemin des Glycines", "13090", "Aixville")),
        },
        read_only: PatientIdentity::read_only_fields(IdentityStatus::Qualified),
    }
}

pub(crate) fn appointment() -> Appointment {
    Appointment {
        id: Uuid::from_u128(0x51),
        patient_id: Uuid::from_u128(0x42),
        prescription_id: Some(Uuid::from_u128(0x61)),
        kind: AppointmentKind::Home,
        scheduled_at: datetime!(2025-03-14 08:30 +01:00),
        duration_min: 20,
        address: Some(Address::new("4 chemin des Glycines", "13090", "Aixville")),
        access_notes: Some("digicode 4821B, 2e étage".into()),
        assigned_staff_id: Some(Uuid::from_u128(7)),
        round_position: Some(1),
        status: AppointmentStatus::Scheduled,
        status_reason: None,
        version: 4,
    }
}

pub(crate) fn prescription() -> Prescription {
    let exam = |code: &str, tube: &str, volume_ul, fasting| PrescribedExam {
        code: code.into(),
        label: format!("{code} label"),
        tube_type: tube.into(),
        volume_ul,
        fasting,
    };
    let exams = vec![exam("NFS", "EDTA", 1_000, false), exam("GLY", "FLUO", 500, true)];
    let plan = tube_plan(
        &exams
            .iter()
            .map(|exam| ExamWithTube {
                exam: exam.clone(),
                label: format!("{} 4 mL", exam.tube_type),
                cap_color: "lavender".into(),
                additive: None,
                capacity_ul: 4_000,
                draw_order: 1,
            })
            .collect::<Vec<_>>(),
    );
    Prescription {
        id: Uuid::from_u128(0x61),
        patient_id: Uuid::from_u128(0x42),
        prescriber: Prescriber {
            name: "Dr Paul Durand".into(),
            rpps: "10003456789".into(),
        },
        issued_on: date!(2025 - 03 - 10),
        status: PrescriptionStatus::Open,
        fasting_required: true,
        notes: Some("contrôle post-opératoire".into()),
        exams,
        tube_plan: plan,
        version: 1,
    }
}

pub(crate) fn collection() -> NewCollection {
    let tube = |barcode: &str, tube_type: &str| Tube {
        barcode: TubeBarcode::parse(barcode).expect("barcode"),
        tube_type: tube_type.into(),
    };
    NewCollection {
        id: Uuid::from_u128(0x0195_9f00_0000_7000_8000_0000_0000_00c1),
        patient_id: Uuid::from_u128(0x42),
        appointment_id: Some(Uuid::from_u128(0x51)),
        prescription_id: Uuid::from_u128(0x61),
        collected_at: datetime!(2025-03-14 08:41:07 +01:00),
        identity_checked: true,
        identity_check_method: Some(IdentityCheckMethod::IdDocument),
        tubes: vec![tube("LAB25-0000001", "EDTA"), tube("LAB25-0000002", "FLUO")],
        comments: None,
    }
}
