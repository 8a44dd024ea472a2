//! Paths of the tablet-facing routes, shared by the server, the tests and the OpenAPI document.
//!
//! Placeholders use the `{id}` syntax of both actix-web and OpenAPI; [`with_id`] fills them in.

use uuid::Uuid;

/// `POST`: enroll a device with a one-time code.
pub const ENROLL: &str = "/v1/devices/enroll";
/// `POST`: staff login.
pub const LOGIN: &str = "/v1/auth/login";
/// `POST`: rotate the token pair.
pub const REFRESH: &str = "/v1/auth/refresh";
/// `POST`: end the session.
pub const LOGOUT: &str = "/v1/auth/logout";
/// `GET`: the session's staff, lab and device.
pub const ME: &str = "/v1/me";
/// `POST`: a staff member's own PIN change (bearer token).
pub const PIN: &str = "/v1/auth/pin";
/// `POST`: a new PIN with a lab admin's one-time reset code.
pub const PIN_RESET: &str = "/v1/auth/pin/reset";
/// `GET`: patient search.
pub const PATIENTS: &str = "/v1/patients";
/// `GET`: one patient.
pub const PATIENT: &str = "/v1/patients/{id}";
/// `GET`: a patient's prescriptions.
pub const PATIENT_PRESCRIPTIONS: &str = "/v1/patients/{id}/prescriptions";
/// `POST` (multipart): a paper prescription and its photo or scan.
pub const PRESCRIPTIONS: &str = "/v1/prescriptions";
/// `GET`: one prescription with its tube plan.
pub const PRESCRIPTION: &str = "/v1/prescriptions/{id}";
/// `GET`: the caller's home-sampling round of a day.
pub const ROUNDS: &str = "/v1/rounds";
/// `GET`: the lab's appointments of a day.
pub const APPOINTMENTS: &str = "/v1/appointments";
/// `PATCH`: change an appointment's status.
pub const APPOINTMENT: &str = "/v1/appointments/{id}";
/// `POST`: record a sample collection.
pub const COLLECTIONS: &str = "/v1/collections";
/// `POST`: push queued mutations.
pub const SYNC_PUSH: &str = "/v1/sync/push";
/// `GET`: pull changes since a cursor.
pub const SYNC_PULL: &str = "/v1/sync/pull";
/// `GET`: free slots of a day (`?date=&kind=`).
pub const SLOTS: &str = "/v1/slots";
/// `POST` with `If-Match`: move an appointment to another slot.
pub const APPOINTMENT_RESCHEDULE: &str = "/v1/appointments/{id}/reschedule";
/// `POST`: void a collection recorded by mistake (with a reason).
pub const COLLECTION_VOID: &str = "/v1/collections/{id}/void";
/// `GET`: liveness.
pub const HEALTHZ: &str = "/healthz";
/// `GET`: readiness.
pub const READYZ: &str = "/readyz";
/// `GET`: Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// `GET`: this API's OpenAPI document.
pub const OPENAPI_JSON: &str = "/openapi.json";

/// Every route path above, for exhaustive tests.
pub const ALL: [&str; 25] = [
    ENROLL,
    LOGIN,
    REFRESH,
    LOGOUT,
    ME,
    PIN,
    PIN_RESET,
    PATIENTS,
    PATIENT,
    PATIENT_PRESCRIPTIONS,
    PRESCRIPTION,
    ROUNDS,
    APPOINTMENTS,
    APPOINTMENT,
    COLLECTIONS,
    SYNC_PUSH,
    SYNC_PULL,
    SLOTS,
    APPOINTMENT_RESCHEDULE,
    COLLECTION_VOID,
    PRESCRIPTIONS,
    HEALTHZ,
    READYZ,
    METRICS,
    OPENAPI_JSON,
];

/// The path with `{id}` replaced, e.g. `with_id(PATIENT, id)` → `/v1/patients/0190…`.
pub fn with_id(template: &str, id: Uuid) -> String {
    template.replace("{id}", &id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_absolute() {
        let mut paths = ALL.to_vec();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ALL.len());
        assert!(ALL.iter().all(|path| path.starts_with('/') && !path.ends_with('/')));
    }

    #[test]
    fn with_id_fills_the_placeholder() {
        let id = Uuid::from_u128(1);
        assert_eq!(
            with_id(PATIENT_PRESCRIPTIONS, id),
            format!("/v1/patients/{id}/prescriptions")
        );
        assert_eq!(with_id(ME, id), ME);
    }
}
