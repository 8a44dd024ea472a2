//! `Practitioner` (the person) and `PractitionerRole` (their role at a lab: a `staff` row, same id).
//! A practitioner's `active = false` deactivates every role, which the change feed carries to each
//! lab's gateway: their tablet sessions end at the next refresh and their PIN no longer opens one.
//!
//! A role created here has no PIN yet (an unusable hash): the lab admin sets one (`api create-staff`
//! for a new login, the console's PIN reset once issue 15 lands); a PIN is never carried by FHIR.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{practitioners, staff};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::json::{Obj, concept_code, identifier, identifiers, printable, reference};
use super::outcome::FhirError;
use super::store::{Expect, Stored, Target, VersionedWrite, insert_or_bump, meta, precondition, require_target};
use super::{LOGIN_SYSTEM, ROLE_SYSTEM, RPPS_SYSTEM};

/// The PIN hash of a role created by the LIS: not a PHC string, so no PIN verifies against it.
pub const NO_PIN: &str = "!no-pin-set";

/// A practitioner as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PractitionerRow {
    pub login: String,
    pub rpps: Option<String>,
    pub display_name: String,
    pub active: bool,
}

/// Reads and checks a Practitioner; also returns its other identifiers.
pub fn parse_practitioner(value: &Value) -> Result<(PractitionerRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "Practitioner")?;
    root.allow_only(
        &["identifier", "active", "name", "telecom", "qualification", "extension"],
        true,
    )?;
    let mut login = None;
    let mut rpps = None;
    let mut others = Vec::new();
    for item in root.array("identifier")? {
        let (system, value) = identifier(&item)?;
        match system {
            LOGIN_SYSTEM => {
                let ok = (3..=32).contains(&value.len())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
                if !ok {
                    return Err(FhirError::at(
                        item.path_of("value"),
                        "a login is 3 to 32 of a-z 0-9 . _ -",
                    ));
                }
                login = Some(value.to_owned());
            }
            RPPS_SYSTEM => {
                if value.len() != 11 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FhirError::at(item.path_of("value"), "an RPPS number has 11 digits"));
                }
                rpps = Some(value.to_owned());
            }
            _ => {}
        }
        others.push((system.to_owned(), value.to_owned()));
    }
    let login = login.ok_or_else(|| {
        FhirError::at(
            root.path_of("identifier"),
            format!("needs the tablet login ({LOGIN_SYSTEM})"),
        )
        .code("required")
    })?;
    let display_name = display_name(&root)?;
    let row = PractitionerRow {
        login,
        rpps,
        display_name,
        active: root.bool("active")?.unwrap_or(true),
    };
    Ok((row, others))
}

fn display_name(root: &Obj<'_>) -> Result<String, FhirError> {
    let names = root.array("name")?;
    let name = names
        .as_slice()
        .first()
        .ok_or_else(|| FhirError::required(root.path_of("name")))?;
    name.allow_only(&["use", "text", "family", "given", "prefix", "suffix", "period"], false)?;
    let text = match name.str("text")? {
        Some(t) => t.to_owned(),
        None => {
            let mut parts: Vec<&str> = name.str_array("given")?;
            parts.extend(name.str("family")?);
            parts.join(" ")
        }
    };
    if text.is_empty() || text.chars().count() > 120 {
        return Err(FhirError::at(
            name.path(),
            "a name (text, or given and family) of 1 to 120 characters",
        ));
    }
    Ok(text)
}

type PractitionerLoaded = (Uuid, String, Option<String>, String, bool, i64, OffsetDateTime);

/// The Practitioner of this id, rendered.
pub async fn load_practitioner(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    let row: Option<PractitionerLoaded> = practitioners::table
        .find(id)
        .select((
            practitioners::id,
            practitioners::login,
            practitioners::rpps,
            practitioners::display_name,
            practitioners::active,
            practitioners::version,
            practitioners::updated_at,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((id, login, rpps, name, active, version, updated)) = row else {
        return Ok(None);
    };
    let mut identifiers = vec![json!({"system": LOGIN_SYSTEM, "value": login})];
    if let Some(rpps) = rpps {
        identifiers.push(json!({"system": RPPS_SYSTEM, "value": rpps}));
    }
    for (system, value) in super::store::identifiers(conn, "Practitioner", id).await? {
        if system != LOGIN_SYSTEM && system != RPPS_SYSTEM {
            identifiers.push(json!({"system": system, "value": value}));
        }
    }
    Ok(Some(Stored {
        id,
        version,
        last_updated: updated,
        resource: json!({
            "resourceType": "Practitioner",
            "id": id.to_string(),
            "meta": meta(version, updated),
            "identifier": identifiers,
            "active": active,
            "name": [{"text": name}],
        }),
    }))
}

/// Creates or replaces a Practitioner; its roles follow its login, name and deactivation.
pub async fn write_practitioner(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    row: &PractitionerRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let current: Option<i64> = practitioners::table
        .find(id)
        .select(practitioners::version)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current, expect, "Practitioner", id)?;
    let values = (
        practitioners::login.eq(&row.login),
        practitioners::rpps.eq(&row.rpps),
        practitioners::display_name.eq(&row.display_name),
        practitioners::active.eq(row.active),
    );
    let written = insert_or_bump!(conn, practitioners, id, current, values);
    // Every role takes the person's login and name; an inactive person has no active role. Only rows
    // that change get a new version, so that the feed carries nothing for nothing.
    let roles = staff::table.filter(staff::practitioner_id.eq(id));
    diesel::update(
        roles.filter(
            staff::login
                .ne(&row.login)
                .or(staff::display_name.ne(&row.display_name)),
        ),
    )
    .set((
        staff::login.eq(&row.login),
        staff::display_name.eq(&row.display_name),
        staff::version.eq(staff::version + 1),
        staff::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if !row.active {
        diesel::update(roles.filter(staff::active))
            .set((
                staff::active.eq(false),
                staff::version.eq(staff::version + 1),
                staff::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(written)
}

/// A role as stored (the practitioner's login and name are copied in at write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRow {
    pub practitioner_id: Uuid,
    pub lab_id: Uuid,
    pub role: &'static str,
    pub active: bool,
}

/// Reads and checks a PractitionerRole.
pub fn parse_role(value: &Value) -> Result<(RoleRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "PractitionerRole")?;
    root.allow_only(
        &[
            "identifier",
            "active",
            "practitioner",
            "organization",
            "code",
            "extension",
        ],
        true,
    )?;
    let practitioner = root.req_obj("practitioner")?;
    let (_, practitioner_id) = reference(&practitioner, &["Practitioner"])?;
    let organization = root.req_obj("organization")?;
    let (_, lab_id) = reference(&organization, &["Organization"])?;
    let codes = root.array("code")?;
    let code = codes
        .as_slice()
        .first()
        .ok_or_else(|| FhirError::required(root.path_of("code")))?;
    let role = match concept_code(code, ROLE_SYSTEM)? {
        "nurse" => "nurse",
        "home_sampler" => "home_sampler",
        "lab_admin" => "lab_admin",
        other => {
            return Err(FhirError::at(
                format!("{}.coding", code.path()),
                format!("`{}` is not nurse, home_sampler or lab_admin", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    let identifiers = identifiers(&root)?;
    Ok((
        RoleRow {
            practitioner_id,
            lab_id,
            role,
            active: root.bool("active")?.unwrap_or(true),
        },
        identifiers,
    ))
}

type RoleLoaded = (Uuid, Uuid, Option<Uuid>, String, bool, String, i64, OffsetDateTime);

/// The PractitionerRole of this id, rendered.
pub async fn load_role(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    let row: Option<RoleLoaded> = staff::table
        .find(id)
        .select((
            staff::id,
            staff::lab_id,
            staff::practitioner_id,
            staff::role,
            staff::active,
            staff::display_name,
            staff::version,
            staff::updated_at,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((id, lab, practitioner, role, active, name, version, updated)) = row else {
        return Ok(None);
    };
    let practitioner = match practitioner {
        Some(p) => json!({"reference": format!("Practitioner/{p}"), "display": name}),
        // Staff created by `api create-staff` have no Practitioner: the role still names the person.
        None => json!({"display": name}),
    };
    let mut resource = json!({
        "resourceType": "PractitionerRole",
        "id": id.to_string(),
        "meta": meta(version, updated),
        "active": active,
        "practitioner": practitioner,
        "organization": {"reference": format!("Organization/{lab}")},
        "code": [{"coding": [{"system": ROLE_SYSTEM, "code": role}]}],
    });
    if let Some(identifiers) = super::store::identifier_elements(conn, "PractitionerRole", id).await? {
        resource["identifier"] = identifiers;
    }
    Ok(Some(Stored {
        id,
        version,
        last_updated: updated,
        resource,
    }))
}

/// Creates or replaces a PractitionerRole: the staff row `id`.
pub async fn write_role(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    row: &RoleRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let person: Option<(String, String, bool)> = practitioners::table
        .find(row.practitioner_id)
        .select((practitioners::login, practitioners::display_name, practitioners::active))
        .first(conn)
        .await
        .optional()?;
    let (login, name, person_active) = person.ok_or_else(|| {
        FhirError::at(
            "PractitionerRole.practitioner.reference",
            "names no Practitioner of this server",
        )
        .code("not-found")
    })?;
    require_target(
        conn,
        Target::Lab,
        row.lab_id,
        "PractitionerRole.organization.reference",
        "Organization (lab)",
    )
    .await?;
    let current: Option<(i64, Option<Uuid>)> = staff::table
        .find(id)
        .select((staff::version, staff::practitioner_id))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current.map(|c| c.0), expect, "PractitionerRole", id)?;
    if let Some((_, Some(p))) = current
        && p != row.practitioner_id
    {
        return Err(FhirError::at(
            "PractitionerRole.practitioner",
            "a role cannot move to another practitioner: end it (active = false) and create another",
        ));
    }
    let values = (
        staff::lab_id.eq(row.lab_id),
        staff::practitioner_id.eq(Some(row.practitioner_id)),
        staff::login.eq(&login),
        staff::display_name.eq(&name),
        staff::role.eq(row.role),
        staff::active.eq(row.active && person_active),
    );
    Ok(insert_or_bump!(conn, staff, id, current.map(|c| c.0), values, insert_only: staff::pin_hash.eq(NO_PIN)))
}
