//! The resource types of the interface and what each supports: one dispatch from a type's name to
//! its module's parse, write, read and search.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{appointments, change_log, patients, practitioners, prescriptions, staff};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::outcome::FhirError;
use super::store::{self, Expect, Stored, VersionedWrite};
use super::{LAB_SYSTEM, LOGIN_SYSTEM, RPPS_SYSTEM};
use super::{appointment, document, organization, patient, request, specimen, staff as staff_fhir, subscription};

/// A resource type of the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Patient,
    Practitioner,
    PractitionerRole,
    ServiceRequest,
    Appointment,
    Organization,
    Location,
    Specimen,
    Subscription,
    DocumentReference,
    Binary,
}

impl Kind {
    /// Every type, as the CapabilityStatement lists them.
    pub const ALL: [Kind; 11] = [
        Kind::Patient,
        Kind::Practitioner,
        Kind::PractitionerRole,
        Kind::ServiceRequest,
        Kind::Appointment,
        Kind::Organization,
        Kind::Location,
        Kind::Specimen,
        Kind::Subscription,
        Kind::DocumentReference,
        Kind::Binary,
    ];

    /// The type of this name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The FHIR name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Patient => "Patient",
            Kind::Practitioner => "Practitioner",
            Kind::PractitionerRole => "PractitionerRole",
            Kind::ServiceRequest => "ServiceRequest",
            Kind::Appointment => "Appointment",
            Kind::Organization => "Organization",
            Kind::Location => "Location",
            Kind::Specimen => "Specimen",
            Kind::Subscription => "Subscription",
            Kind::DocumentReference => "DocumentReference",
            Kind::Binary => "Binary",
        }
    }

    /// Whether the LIS may create and update it (Locations mirror labs; Specimens and the paper
    /// prescriptions' documents come from tablets).
    pub fn writable(self) -> bool {
        !matches!(
            self,
            Kind::Location | Kind::Specimen | Kind::DocumentReference | Kind::Binary
        )
    }

    /// Whether it can be searched (a Binary is only read, by the url of its DocumentReference).
    pub fn searchable(self) -> bool {
        self != Kind::Binary
    }

    /// The search parameters it supports, beside `_id`, `_count`.
    pub fn search_params(self) -> &'static [&'static str] {
        match self {
            Kind::Patient | Kind::Practitioner | Kind::Organization | Kind::Location => &["identifier"],
            Kind::PractitionerRole => &["identifier", "practitioner"],
            Kind::ServiceRequest => &["identifier", "patient"],
            Kind::Appointment => &["identifier", "patient", "_cursor", "_lastUpdated"],
            Kind::Specimen => &["_cursor", "_lastUpdated"],
            Kind::DocumentReference => &["patient", "_lastUpdated"],
            Kind::Subscription | Kind::Binary => &[],
        }
    }
}

/// A checked resource, ready to write.
#[derive(Clone, Debug)]
pub enum Parsed {
    Patient(patient::PatientRow),
    Practitioner(staff_fhir::PractitionerRow),
    PractitionerRole(staff_fhir::RoleRow),
    ServiceRequest(request::RequestRow),
    Appointment(appointment::AppointmentRow),
    Organization(organization::LabRow),
    Subscription(subscription::SubscriptionRow),
}

/// Reads and checks a resource of `kind`; also returns its identifiers.
pub fn parse(kind: Kind, value: &Value) -> Result<(Parsed, Vec<(String, String)>), FhirError> {
    Ok(match kind {
        Kind::Patient => patient::parse(value).map(|(r, i)| (Parsed::Patient(r), i))?,
        Kind::Practitioner => staff_fhir::parse_practitioner(value).map(|(r, i)| (Parsed::Practitioner(r), i))?,
        Kind::PractitionerRole => staff_fhir::parse_role(value).map(|(r, i)| (Parsed::PractitionerRole(r), i))?,
        Kind::ServiceRequest => request::parse(value).map(|(r, i)| (Parsed::ServiceRequest(r), i))?,
        Kind::Appointment => appointment::parse(value).map(|(r, i)| (Parsed::Appointment(r), i))?,
        Kind::Organization => organization::parse(value).map(|(r, i)| (Parsed::Organization(r), i))?,
        Kind::Subscription => subscription::parse(value).map(|(r, i)| (Parsed::Subscription(r), i))?,
        Kind::Location | Kind::Specimen | Kind::DocumentReference | Kind::Binary => {
            return Err(FhirError::new(
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                format!("{} is read only here", kind.name()),
            ));
        }
    })
}

/// Writes a checked resource as `id`, then its identifiers; `owner` is the calling client (a
/// Subscription is its own).
pub async fn write(
    conn: &mut AsyncPgConnection,
    kind: Kind,
    id: Uuid,
    owner: Uuid,
    parsed: &Parsed,
    identifiers: &[(String, String)],
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let written = match parsed {
        Parsed::Patient(row) => patient::write(conn, id, row, expect).await?,
        Parsed::Practitioner(row) => staff_fhir::write_practitioner(conn, id, row, expect).await?,
        Parsed::PractitionerRole(row) => staff_fhir::write_role(conn, id, row, expect).await?,
        Parsed::ServiceRequest(row) => request::write(conn, id, row, expect).await?,
        Parsed::Appointment(row) => appointment::write(conn, id, row, expect).await?,
        Parsed::Organization(row) => organization::write(conn, id, row, expect).await?,
        Parsed::Subscription(row) => subscription::write(conn, id, owner, row, expect).await?,
    };
    if !matches!(kind, Kind::Organization | Kind::Subscription) {
        store::set_identifiers(conn, kind.name(), id, identifiers).await?;
    }
    Ok(written)
}

/// Reads one resource.
pub async fn read(conn: &mut AsyncPgConnection, kind: Kind, id: &str) -> Result<Option<Stored>, FhirError> {
    if kind == Kind::Specimen {
        return Ok(specimen::load(conn, id).await?);
    }
    let Ok(uuid) = Uuid::parse_str(id) else { return Ok(None) };
    Ok(match kind {
        Kind::Patient => patient::load(conn, uuid).await?,
        Kind::Practitioner => staff_fhir::load_practitioner(conn, uuid).await?,
        Kind::PractitionerRole => staff_fhir::load_role(conn, uuid).await?,
        Kind::ServiceRequest => request::load(conn, uuid).await?,
        Kind::Appointment => appointment::load(conn, uuid).await?,
        Kind::Organization => organization::load(conn, uuid).await?,
        Kind::Location => organization::load_location(conn, uuid).await?,
        Kind::Subscription => subscription::load(conn, uuid).await?,
        Kind::DocumentReference => document::load_reference(conn, uuid).await?,
        Kind::Binary => document::load_binary(conn, uuid).await?,
        Kind::Specimen => None,
    })
}

/// The ids of the resources of `kind` with this identifier (`system|value`).
pub async fn by_identifier(conn: &mut AsyncPgConnection, kind: Kind, token: &str) -> Result<Vec<Uuid>, FhirError> {
    let (system, value) = token.split_once('|').ok_or_else(|| {
        FhirError::bad_request("identifier: give system|value (a value alone is ambiguous across systems)")
    })?;
    let mut found = Vec::new();
    match (kind, system) {
        (Kind::Patient, s) if s.starts_with("urn:oid:1.2.250.1.213.1.4.") => {
            let oid = &s["urn:oid:".len()..];
            let ids: Vec<Uuid> = patients::table
                .filter(patients::nir.eq(value))
                .filter(patients::ins_oid.eq(oid))
                .select(patients::id)
                .load(conn)
                .await?;
            found.extend(ids);
        }
        (Kind::Practitioner, LOGIN_SYSTEM) => {
            let ids: Vec<Uuid> = practitioners::table
                .filter(practitioners::login.eq(value))
                .select(practitioners::id)
                .load(conn)
                .await?;
            found.extend(ids);
        }
        (Kind::Practitioner, RPPS_SYSTEM) => {
            let ids: Vec<Uuid> = practitioners::table
                .filter(practitioners::rpps.eq(value))
                .select(practitioners::id)
                .load(conn)
                .await?;
            found.extend(ids);
        }
        (Kind::Organization | Kind::Location, LAB_SYSTEM) => {
            found.extend(organization::by_code(conn, value).await?);
        }
        _ => {}
    }
    if let Some(id) = store::find_by_identifier(conn, kind.name(), system, value).await?
        && !found.contains(&id)
    {
        found.push(id);
    }
    Ok(found)
}

/// A search's result: the matches, and the cursor of the next page for feed searches.
#[derive(Debug, Default)]
pub struct Found {
    pub resources: Vec<Stored>,
    pub next_cursor: Option<i64>,
}

/// Parsed search parameters.
#[derive(Debug, Default)]
pub struct Search {
    pub id: Option<String>,
    pub identifier: Option<String>,
    pub patient: Option<Uuid>,
    pub practitioner: Option<Uuid>,
    pub cursor: Option<i64>,
    pub since: Option<OffsetDateTime>,
    pub count: usize,
}

/// The largest page.
pub const MAX_COUNT: usize = 1_000;

impl Search {
    /// Reads a query string; unknown or unsupported parameters are refused by name.
    pub fn parse(kind: Kind, query: &str) -> Result<Self, FhirError> {
        let mut search = Search {
            count: 100,
            ..Search::default()
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let supported =
                kind.search_params().contains(&name.as_ref()) || matches!(name.as_ref(), "_id" | "_count" | "_format");
            if !supported {
                return Err(FhirError::bad_request(format!(
                    "search parameter `{}` is not supported on {} (see the CapabilityStatement)",
                    super::json::printable(&name),
                    kind.name()
                ))
                .code("not-supported"));
            }
            let bad = |what: &str| FhirError::bad_request(format!("{name}: {what}")).code("value");
            match name.as_ref() {
                "_id" => search.id = Some(value.into_owned()),
                "_format" => {}
                "_count" => {
                    search.count = value
                        .parse::<usize>()
                        .ok()
                        .filter(|c| (1..=MAX_COUNT).contains(c))
                        .ok_or_else(|| bad("a number from 1 to 1000"))?;
                }
                "identifier" => search.identifier = Some(value.into_owned()),
                "patient" | "practitioner" => {
                    let id = value
                        .strip_prefix(if name == "patient" { "Patient/" } else { "Practitioner/" })
                        .unwrap_or(&value);
                    let id = Uuid::parse_str(id).map_err(|_| bad("a reference Type/id or an id"))?;
                    if name == "patient" {
                        search.patient = Some(id);
                    } else {
                        search.practitioner = Some(id);
                    }
                }
                "_cursor" => {
                    search.cursor = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|c: &i64| *c >= 0)
                            .ok_or_else(|| bad("a position from 0"))?,
                    )
                }
                "_lastUpdated" => {
                    let instant = value
                        .strip_prefix("gt")
                        .or_else(|| value.strip_prefix("ge"))
                        .ok_or_else(|| bad("gt or ge then an instant (gt2026-12-06T08:00:00Z)"))?;
                    search.since = Some(
                        OffsetDateTime::parse(instant, &time::format_description::well_known::Rfc3339)
                            .map_err(|_| bad("an instant with its time zone"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(search)
    }
}

/// Runs a search.
pub async fn search(conn: &mut AsyncPgConnection, kind: Kind, search: &Search) -> Result<Found, FhirError> {
    if kind == Kind::Specimen {
        let (resources, next) = specimen::page(conn, search.cursor.unwrap_or(0), search.since, search.count).await?;
        return Ok(Found {
            resources,
            next_cursor: Some(next),
        });
    }
    if kind == Kind::DocumentReference {
        if search.patient.is_none() && search.since.is_none() && search.id.is_none() {
            return Err(
                FhirError::bad_request("a search of DocumentReference needs patient, _lastUpdated or _id")
                    .code("too-costly"),
            );
        }
        // An `_id` that is not a UUID names nothing.
        let id = match &search.id {
            Some(text) => match Uuid::parse_str(text) {
                Ok(id) => Some(id),
                Err(_) => return Ok(Found::default()),
            },
            None => None,
        };
        let resources = document::search(conn, id, search.patient, search.since, search.count).await?;
        return Ok(Found {
            resources,
            next_cursor: None,
        });
    }
    if !kind.searchable() {
        return Err(FhirError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("{} is read by id only (the url of its DocumentReference)", kind.name()),
        ));
    }
    if kind == Kind::Appointment && (search.cursor.is_some() || search.since.is_some()) {
        return appointment_feed(conn, search).await;
    }
    let mut ids: Option<Vec<Uuid>> = None;
    let mut narrow = |found: Vec<Uuid>| {
        ids = Some(match ids.take() {
            None => found,
            Some(before) => before.into_iter().filter(|i| found.contains(i)).collect(),
        });
    };
    if let Some(id) = &search.id {
        narrow(Uuid::parse_str(id).map(|u| vec![u]).unwrap_or_default());
    }
    if let Some(token) = &search.identifier {
        narrow(by_identifier(conn, kind, token).await?);
    }
    if let Some(patient) = search.patient {
        let found: Vec<Uuid> = match kind {
            Kind::ServiceRequest => {
                prescriptions::table
                    .filter(prescriptions::patient_id.eq(patient))
                    .select(prescriptions::id)
                    .limit(search.count as i64)
                    .load(conn)
                    .await?
            }
            _ => {
                appointments::table
                    .filter(appointments::patient_id.eq(patient))
                    .select(appointments::id)
                    .limit(search.count as i64)
                    .load(conn)
                    .await?
            }
        };
        narrow(found);
    }
    if let Some(practitioner) = search.practitioner {
        let found: Vec<Uuid> = staff::table
            .filter(staff::practitioner_id.eq(practitioner))
            .select(staff::id)
            .load(conn)
            .await?;
        narrow(found);
    }
    let Some(ids) = ids else {
        return Err(FhirError::bad_request(format!(
            "a search of {} needs one of: {}",
            kind.name(),
            kind.search_params().join(", ")
        ))
        .code("too-costly"));
    };
    let mut resources = Vec::new();
    for id in ids.into_iter().take(search.count) {
        if let Some(found) = read(conn, kind, &id.to_string()).await? {
            resources.push(found);
        }
    }
    Ok(Found {
        resources,
        next_cursor: None,
    })
}

/// Appointments in the change feed's commit-safe order: status changes from tablets come back to
/// the LIS as new versions.
async fn appointment_feed(conn: &mut AsyncPgConnection, search: &Search) -> Result<Found, FhirError> {
    let mut query = change_log::table
        .filter(change_log::entity.eq("appointment"))
        .filter(change_log::position.gt(search.cursor.unwrap_or(0)))
        .select((change_log::position, change_log::entity_id))
        .order(change_log::position)
        .limit(search.count as i64)
        .into_boxed();
    if let Some(since) = search.since {
        query = query.filter(change_log::changed_at.gt(since));
    }
    let changes: Vec<(i64, String)> = query.load(conn).await?;
    let next = changes.last().map_or(search.cursor.unwrap_or(0), |c| c.0);
    let mut seen = Vec::new();
    let mut resources = Vec::new();
    for (_, id) in changes {
        if seen.contains(&id) {
            continue;
        }
        if let Some(found) = read(conn, Kind::Appointment, &id).await? {
            resources.push(found);
        }
        seen.push(id);
    }
    Ok(Found {
        resources,
        next_cursor: Some(next),
    })
}
