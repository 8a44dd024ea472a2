//! The tablet reads: patients, prescriptions with their tube plans, rounds and the appointments of
//! a day, from the gateway's own data (Redis first when it answers, then PostgreSQL). They never wait
//! on the cloud.
//!
//! ## Who reads what
//!
//! - Everything is scoped to this gateway's lab: prescriptions and appointments of another lab, and
//!   patients the gateway does not hold (its lab's scope only), are answered 404, as unknown ids are.
//! - **Nurses and lab admins** read any patient of the lab, with the NIR in full.
//! - **Home samplers** read only the patients that have an appointment of this lab assigned to them
//!   (whatever its date or status), and those patients' prescriptions; any other id is a 404, not a
//!   403, so ids outside their scope cannot be probed. A patient search of theirs only finds those
//!   patients. They see the NIR masked (`NirView::for_role`).
//! - Every patient payload carries the INS `identity_status`, and `read_only` lists the strict
//!   identity traits once the identity is no longer provisional: tablets show them read-only.
//! - `GET /v1/rounds` is the caller's own round (home visits assigned to them), whatever their role;
//!   `GET /v1/appointments` is the lab's whole day for nurses and admins, and a home sampler's own
//!   appointments for them.
//!
//! ## Audit
//!
//! Each read builds its [`AuditEntry`]s (one per patient it shows: the patient read, each hit of a
//! search page (one entry without a patient for an empty page), each visit of a round, each
//! appointment of a day, each prescription), and the handler answers only once they are committed
//! ([`crate::audit::AuditLog::record`]), cache hits and `304 Not Modified` answers included. A read
//! refused (404) showed nothing and is not audited.
//!
//! | route | action | resource |
//! |---|---|---|
//! | `GET /v1/patients?q=` | `patient.search` | `patient:<id>` |
//! | `GET /v1/patients/{id}` | `patient.read` | `patient:<id>` |
//! | `GET /v1/patients/{id}/prescriptions` | `prescription.list` | `patient:<id>/prescriptions` |
//! | `GET /v1/prescriptions/{id}` | `prescription.read` | `prescription:<id>` |
//! | `GET /v1/rounds?date=` | `round.read` | `appointment:<id>` |
//! | `GET /v1/appointments?date=` | `appointments.read` | `appointment:<id>` |
//! | `GET /v1/sync/pull` | `sync.pull` | `appointment:<id>`, `patient:<id>`, `prescription:<id>` |
//!
//! ## Cache
//!
//! Redis holds the stored data, never a rendering for one role: a patient's row
//! ([`crate::cache::keys::patient`]), a prescription with its exams and tube plan and its lab
//! ([`crate::cache::keys::prescription`]) and a patient's prescription list at this lab
//! ([`crate::cache::keys::patient_prescriptions`]), for [`cached::CACHE_TTL_S`] seconds. The sync
//! evicts them when the rows behind them change. A Redis that is down or slow is a cache miss.
//! Searches, rounds, appointments and pulls always read PostgreSQL.

use mobile_contracts::Role;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::auth::Principal;

pub mod appointments;
pub mod cached;
pub mod patients;
pub mod prescriptions;
pub mod render;
pub mod rounds;

/// Who is reading, in which lab, under which request: what scoping and the audit need.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The staff member.
    pub staff_id: Uuid,
    /// The device.
    pub device_id: Uuid,
    /// Their role.
    pub role: Role,
    /// This gateway's lab.
    pub lab_id: Uuid,
    /// The request id, for the audit.
    pub request_id: Option<String>,
}

impl Caller {
    /// The caller of an authenticated request to this gateway's lab.
    pub fn new(principal: &Principal, lab_id: Uuid, request_id: String) -> Self {
        Self {
            staff_id: principal.staff_id,
            device_id: principal.device_id,
            role: principal.role,
            lab_id,
            request_id: (!request_id.is_empty()).then_some(request_id),
        }
    }

    /// Whether the caller only sees the patients of their own appointments.
    pub fn is_home_sampler(&self) -> bool {
        matches!(self.role, Role::HomeSampler)
    }

    /// An audit entry of this caller.
    pub fn audit(&self, action: &'static str, patient_id: Option<Uuid>, resource: Option<String>) -> AuditEntry {
        AuditEntry {
            lab_id: self.lab_id,
            staff_id: Some(self.staff_id),
            device_id: Some(self.device_id),
            action,
            patient_id,
            resource,
            request_id: self.request_id.clone(),
        }
    }
}

/// A read's answer and the audit entries to commit before it is sent.
#[derive(Debug)]
pub struct Audited<T> {
    /// The answer.
    pub body: T,
    /// Its audit.
    pub audit: Vec<AuditEntry>,
}
