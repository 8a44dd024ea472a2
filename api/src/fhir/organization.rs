//! Labs, as `Organization` (written by the LIS: code, name, kind) and as `Location` (read only, same
//! id: where visits take place, named by appointments).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::labs;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::json::{Obj, concept_code, identifier, printable};
use super::outcome::FhirError;
use super::store::{Expect, Stored, VersionedWrite, insert_or_bump, meta, precondition};
use super::{LAB_KIND_SYSTEM, LAB_SYSTEM};

/// A lab as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabRow {
    pub code: String,
    pub name: String,
    pub kind: &'static str,
}

/// Reads and checks an Organization.
pub fn parse(value: &Value) -> Result<(LabRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "Organization")?;
    root.allow_only(
        &[
            "identifier",
            "active",
            "type",
            "name",
            "telecom",
            "address",
            "extension",
        ],
        true,
    )?;
    let mut code = None;
    for item in root.array("identifier")? {
        let (system, value) = identifier(&item)?;
        if system == LAB_SYSTEM {
            let ok = (2..=16).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
                && !value.starts_with('-');
            if !ok {
                return Err(FhirError::at(
                    item.path_of("value"),
                    "a lab code is 2 to 16 of A-Z 0-9 -",
                ));
            }
            code = Some(value.to_owned());
        }
    }
    let code = code.ok_or_else(|| {
        FhirError::at(root.path_of("identifier"), format!("needs the lab code ({LAB_SYSTEM})")).code("required")
    })?;
    let name = root.req_str("name")?;
    if name.chars().count() > 120 {
        return Err(FhirError::at(root.path_of("name"), "at most 120 characters"));
    }
    let types = root.array("type")?;
    let kind = match types
        .as_slice()
        .first()
        .map(|t| concept_code(t, LAB_KIND_SYSTEM))
        .transpose()?
    {
        None | Some("proximity") => "proximity",
        Some("central") => "central",
        Some(other) => {
            return Err(FhirError::at(
                root.path_of("type"),
                format!("`{}` is not central or proximity", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    if root.bool("active")? == Some(false) {
        return Err(FhirError::at(root.path_of("active"), "closing a lab is not supported here").code("not-supported"));
    }
    Ok((
        LabRow {
            code: code.clone(),
            name: name.to_owned(),
            kind,
        },
        // The lab code is a column of its own (labs.code), searched there.
        Vec::new(),
    ))
}

type Loaded = (Uuid, String, String, String, i64, OffsetDateTime);

async fn row(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Loaded>> {
    labs::table
        .find(id)
        .select((
            labs::id,
            labs::code,
            labs::name,
            labs::kind,
            labs::version,
            labs::updated_at,
        ))
        .first(conn)
        .await
        .optional()
}

/// The lab as an Organization.
pub async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    Ok(row(conn, id)
        .await?
        .map(|(id, code, name, kind, version, updated)| Stored {
            id,
            version,
            last_updated: updated,
            resource: json!({
                "resourceType": "Organization",
                "id": id.to_string(),
                "meta": meta(version, updated),
                "identifier": [{"system": LAB_SYSTEM, "value": code}],
                "active": true,
                "type": [{"coding": [{"system": LAB_KIND_SYSTEM, "code": kind}]}],
                "name": name,
            }),
        }))
}

/// The lab as a Location.
pub async fn load_location(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    Ok(row(conn, id)
        .await?
        .map(|(id, code, name, _, version, updated)| Stored {
            id,
            version,
            last_updated: updated,
            resource: json!({
                "resourceType": "Location",
                "id": id.to_string(),
                "meta": meta(version, updated),
                "identifier": [{"system": LAB_SYSTEM, "value": code}],
                "status": "active",
                "name": name,
                "managingOrganization": {"reference": format!("Organization/{id}")},
            }),
        }))
}

/// The lab with this code.
pub async fn by_code(conn: &mut AsyncPgConnection, code: &str) -> QueryResult<Option<Uuid>> {
    labs::table
        .filter(labs::code.eq(code))
        .select(labs::id)
        .first(conn)
        .await
        .optional()
}

/// Creates or replaces a lab.
pub async fn write(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    row: &LabRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let current: Option<i64> = labs::table
        .find(id)
        .select(labs::version)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current, expect, "Organization", id)?;
    let values = (
        labs::code.eq(&row.code),
        labs::name.eq(&row.name),
        labs::kind.eq(row.kind),
    );
    Ok(insert_or_bump!(conn, labs, id, current, values))
}
