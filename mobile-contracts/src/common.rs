//! Small shared types and the enums of the domain, with their wire names.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The lab a device, a staff member or a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabRef {
    /// Lab id.
    pub id: Uuid,
    /// Short code, e.g. `LAB-NORD`.
    pub code: String,
    /// Name shown to staff.
    pub name: String,
}

/// An enrolled tablet as shown to its user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceRef {
    /// Device id received at enrollment.
    pub id: Uuid,
    /// Label given at enrollment, e.g. "Tablette tournée 3".
    pub label: String,
}

/// What a staff member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Samples patients at a proximity lab.
    Nurse,
    /// Samples patients at home, often offline; sees masked NIRs.
    HomeSampler,
    /// Administers the lab gateway (enrollment, devices, conflicts).
    LabAdmin,
}

/// Status of a patient identity in the INS (identifiant national de santé) referential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IdentityStatus {
    /// Entered locally, neither checked against a document nor retrieved from INSi.
    Provisional,
    /// Retrieved from the INSi teleservice, not yet checked against an identity document.
    Recovered,
    /// Checked against an identity document, not retrieved from INSi.
    Validated,
    /// Retrieved from INSi and checked against a document: the only status where the INS may be shared.
    Qualified,
}

impl IdentityStatus {
    /// Whether the strict identity traits came from an authority and must not be edited on a tablet.
    pub fn traits_are_locked(self) -> bool {
        !matches!(self, Self::Provisional)
    }
}

/// Sex as in the INS referential: `F`, `M` or `I` (indeterminate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
    /// Indeterminate.
    I,
}

/// Where an appointment takes place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AppointmentKind {
    /// At the lab's sampling room.
    Lab,
    /// At the patient's address, part of a home-sampling round.
    Home,
}

/// Life cycle of an appointment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AppointmentStatus {
    /// Booked, patient not yet seen.
    Scheduled,
    /// The patient arrived at the lab desk.
    CheckedIn,
    /// Samples were taken (final).
    Collected,
    /// The patient did not come or was not home (final).
    NoShow,
    /// Cancelled by the patient or the lab (final).
    Cancelled,
}

impl AppointmentStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [Self; 5] = [
        Self::Scheduled,
        Self::CheckedIn,
        Self::Collected,
        Self::NoShow,
        Self::Cancelled,
    ];

    /// Whether a tablet may move an appointment from `self` to `next`.
    ///
    /// `scheduled → collected` is allowed because home visits have no check-in desk: the sampler
    /// goes straight from the booked visit to the collection. Staying in the same status is not a
    /// transition.
    pub fn can_transition_to(self, next: Self) -> bool {
        use AppointmentStatus::{Cancelled, CheckedIn, Collected, NoShow, Scheduled};
        matches!(
            (self, next),
            (Scheduled, CheckedIn | Collected | NoShow | Cancelled) | (CheckedIn, Collected | Cancelled)
        )
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Collected | Self::NoShow | Self::Cancelled)
    }
}

/// Life cycle of a prescription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PrescriptionStatus {
    /// Nothing sampled yet.
    Open,
    /// At least one collection recorded.
    Sampled,
    /// All results delivered.
    Completed,
    /// Withdrawn by the prescriber or the lab.
    Cancelled,
}

/// How the sampler checked who the patient is, as the identity-vigilance rules require.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IdentityCheckMethod {
    /// Identity card, passport or residence permit.
    IdDocument,
    /// Carte Vitale or another health insurance card.
    HealthCard,
    /// The patient is personally known to the sampler.
    KnownPatient,
    /// A relative or carer vouched for the patient.
    ThirdParty,
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppointmentStatus::{Cancelled, CheckedIn, Collected, NoShow, Scheduled};

    #[test]
    fn transition_table() {
        let allowed = [
            (Scheduled, CheckedIn),
            (Scheduled, Collected),
            (Scheduled, NoShow),
            (Scheduled, Cancelled),
            (CheckedIn, Collected),
            (CheckedIn, Cancelled),
        ];
        for from in AppointmentStatus::ALL {
            for to in AppointmentStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
            let has_exit = AppointmentStatus::ALL.iter().any(|to| from.can_transition_to(*to));
            assert_eq!(from.is_final(), !has_exit, "{from:?}");
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!(serde_json::to_value(Role::HomeSampler).expect("role"), "home_sampler");
        assert_eq!(serde_json::to_value(Sex::I).expect("sex"), "I");
        assert_eq!(serde_json::to_value(CheckedIn).expect("status"), "checked_in");
        assert_eq!(
            serde_json::to_value(IdentityCheckMethod::IdDocument).expect("method"),
            "id_document"
        );
        assert!(serde_json::from_str::<Sex>(r#""f""#).is_err());
    }
}
