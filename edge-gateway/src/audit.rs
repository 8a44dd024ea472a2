//! The audit log of patient data: who read or wrote what, when, from which device.
//!
//! Interface (implemented in this module): `AuditLog::start(pool)` spawns the writer and the chainer;
//! `record(entries)` resolves once the entries are committed (reads: many requests share one commit);
//! `insert_in(conn, entries)` appends within a caller's own transaction (writes).

use uuid::Uuid;

/// One audit record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The lab.
    pub lab_id: Uuid,
    /// The staff member.
    pub staff_id: Option<Uuid>,
    /// The device.
    pub device_id: Option<Uuid>,
    /// What was done: `patient.read`, `patient.search`, `prescription.read`, `round.read`, …
    pub action: &'static str,
    /// The patient whose data it was.
    pub patient_id: Option<Uuid>,
    /// The resource (`prescription:<id>`, …).
    pub resource: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}
