//! Outbound: each tablet collection as FHIR `Specimen` resources, one per tube (id
//! `{collection}-{n}`, n the tube's rank by barcode), in the commit-safe order of `specimen_feed`:
//! a LIS that pages with `_cursor` never misses a collection that committed late.

use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::store::{Stored, meta};
use super::{BARCODE_SYSTEM, IDENTITY_CHECK_URL, TUBE_SYSTEM};

#[derive(diesel::QueryableByName, Debug)]
struct TubeRow {
    #[diesel(sql_type = BigInt)]
    position: i64,
    #[diesel(sql_type = Timestamptz)]
    committed_at: OffsetDateTime,
    #[diesel(sql_type = SqlUuid)]
    collection_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    patient_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    prescription_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    collected_at: OffsetDateTime,
    #[diesel(sql_type = SqlUuid)]
    collected_by: Uuid,
    #[diesel(sql_type = Bool)]
    identity_checked: bool,
    #[diesel(sql_type = Nullable<Text>)]
    identity_check_method: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    comments: Option<String>,
    #[diesel(sql_type = Text)]
    barcode: String,
    #[diesel(sql_type = Text)]
    tube_type: String,
    #[diesel(sql_type = BigInt)]
    rank: i64,
    #[diesel(sql_type = Nullable<Text>)]
    void_reason: Option<String>,
}

const SELECT: &str = "SELECT f.position, f.committed_at, c.id AS collection_id, c.patient_id, c.prescription_id, \
     c.collected_at, c.collected_by, c.identity_checked, c.identity_check_method, c.comments, t.barcode, \
     t.tube_type, row_number() OVER (PARTITION BY f.position ORDER BY t.barcode) AS rank, v.reason AS void_reason \
     FROM specimen_feed f JOIN collections c ON c.id = f.collection_id \
     JOIN collection_tubes t ON t.collection_id = c.id \
     LEFT JOIN collection_voids v ON v.collection_id = c.id";

/// A page of Specimens after `cursor`, committed after `since` when given: at most `count`
/// Specimens, never splitting a collection's tubes across pages (unless one collection alone has
/// more tubes than `count`). Returns the Specimens and the cursor of the next page.
pub async fn page(
    conn: &mut AsyncPgConnection,
    cursor: i64,
    since: Option<OffsetDateTime>,
    count: usize,
) -> diesel::QueryResult<(Vec<Stored>, i64)> {
    let sql = format!(
        "SELECT * FROM ({SELECT} WHERE f.position > $1 AND ($2::timestamptz IS NULL OR f.committed_at > $2) \
         AND f.position IN (SELECT position FROM specimen_feed WHERE position > $1 \
         AND ($2::timestamptz IS NULL OR committed_at > $2) ORDER BY position LIMIT $3)) p \
         ORDER BY position, rank"
    );
    let rows: Vec<TubeRow> = diesel::sql_query(sql)
        .bind::<BigInt, _>(cursor)
        .bind::<Nullable<Timestamptz>, _>(since)
        .bind::<BigInt, _>(count as i64)
        .load(conn)
        .await?;
    // Whole collections only: keep tubes up to `count`, then drop the last collection's if cut.
    let mut kept: Vec<&TubeRow> = Vec::new();
    for row in &rows {
        if kept.len() >= count && kept.last().is_some_and(|last| last.position != row.position) {
            break;
        }
        kept.push(row);
    }
    let next = kept.last().map_or(cursor, |r| r.position);
    Ok((kept.into_iter().map(render).collect(), next))
}

/// The Specimen `{collection}-{n}`.
pub async fn load(conn: &mut AsyncPgConnection, id: &str) -> diesel::QueryResult<Option<Stored>> {
    let Some((collection, rank)) = split_id(id) else {
        return Ok(None);
    };
    // A voided collection is in the feed twice: its latest position dates the current version.
    let sql = format!("SELECT * FROM ({SELECT} WHERE c.id = $1) p WHERE rank = $2 ORDER BY position DESC LIMIT 1");
    let rows: Vec<TubeRow> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(collection)
        .bind::<BigInt, _>(rank)
        .load(conn)
        .await?;
    Ok(rows.as_slice().first().map(render))
}

/// The current end of the specimen feed (a LIS starting from now).
pub async fn head(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i64> {
    #[derive(diesel::QueryableByName)]
    struct Head {
        #[diesel(sql_type = BigInt)]
        head: i64,
    }
    let head: Head = diesel::sql_query("SELECT COALESCE(max(position), 0) AS head FROM specimen_feed")
        .get_result(conn)
        .await?;
    Ok(head.head)
}

fn split_id(id: &str) -> Option<(Uuid, i64)> {
    let (collection, rank) = id.rsplit_once('-')?;
    Some((Uuid::parse_str(collection).ok()?, rank.parse().ok().filter(|r| *r > 0)?))
}

fn render(row: &TubeRow) -> Stored {
    let barcode = json!({"system": BARCODE_SYSTEM, "value": row.barcode});
    let method = if row.identity_checked {
        row.identity_check_method
            .clone()
            .unwrap_or_else(|| "unspecified".into())
    } else {
        "not_checked".into()
    };
    // A void (a collection recorded by mistake) is the Specimen's second version.
    let version = if row.void_reason.is_some() { 2 } else { 1 };
    let mut resource = json!({
        "resourceType": "Specimen",
        "id": format!("{}-{}", row.collection_id, row.rank),
        "meta": meta(version, row.committed_at),
        "identifier": [barcode.clone()],
        "accessionIdentifier": barcode.clone(),
        "status": if row.void_reason.is_some() { "entered-in-error" } else { "available" },
        "type": {"coding": [{"system": TUBE_SYSTEM, "code": row.tube_type}]},
        "subject": {"reference": format!("Patient/{}", row.patient_id)},
        "request": [{"reference": format!("ServiceRequest/{}", row.prescription_id)}],
        "collection": {
            "collector": {"reference": format!("PractitionerRole/{}", row.collected_by)},
            "collectedDateTime": row.collected_at.format(&Rfc3339).unwrap_or_default(),
        },
        "container": [{"identifier": [barcode]}],
        "extension": [{"url": IDENTITY_CHECK_URL, "valueCode": method}],
    });
    let notes: Vec<Value> = [
        row.comments.clone(),
        row.void_reason.as_ref().map(|r| format!("voided: {r}")),
    ]
    .into_iter()
    .flatten()
    .map(|text| json!({"text": text}))
    .collect();
    if !notes.is_empty() {
        resource["note"] = Value::Array(notes);
    }
    Stored {
        id: row.collection_id,
        version,
        last_updated: row.committed_at,
        resource,
    }
}

/// The patient a rendered resource is about (for the audit).
pub fn patient_of(resource: &Value) -> Option<Uuid> {
    let reference = resource
        .get("subject")
        .or_else(|| resource.get("patient"))
        // A Binary's security context is the patient whose document it is.
        .or_else(|| resource.get("securityContext"))
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str)?;
    Uuid::parse_str(reference.strip_prefix("Patient/")?).ok()
}
