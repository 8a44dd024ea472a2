//! Reading replicated rows as they are now, restricted to a lab's scope: by key (the feed) or by
//! key range and bucket (snapshots).

use std::collections::HashMap;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::prescribed_exams;
use labedge_schema::sync::{
    AppointmentRow, Entity, ExamRow, LabRow, PatientRow, PrescriptionRecord, PrescriptionRow, Record, StaffRow,
    TubeTypeRow,
};
use uuid::Uuid;

use super::scope::Scope;

/// Which rows of a table to read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Selection<'a> {
    /// These keys (those that do not exist or are out of scope are simply not returned).
    Keys(&'a [String]),
    /// Up to `limit` rows by key after `after` (exclusive), optionally only from one bucket.
    Page {
        /// The last key already read.
        after: Option<&'a str>,
        /// Two lower-case hex digits, as [`Entity::bucket_sql`] computes them.
        bucket: Option<&'a str>,
        /// Rows at most.
        limit: i64,
    },
}

fn uuid_key(key: &str) -> Option<Uuid> {
    Uuid::parse_str(key).ok()
}

fn text_key(key: &str) -> Option<String> {
    Some(key.to_owned())
}

/// Whether `key` can be a key of `entity` (a UUID, or a catalog code).
pub(crate) fn valid_key(entity: Entity, key: &str) -> bool {
    match entity {
        Entity::TubeType | Entity::Exam => !key.is_empty() && key.len() <= 64,
        _ => uuid_key(key).is_some(),
    }
}

/// Loads the rows of one table in `scope` selected by `selection`, by key. The bucket condition is
/// [`Entity::bucket_sql`] with the table's own name for `t`.
macro_rules! load_rows {
    ($conn:expr, $scope:expr, $selection:expr, $entity:expr, $table:ident, $row:ident, $key:ident, $parse:expr) => {{
        use labedge_schema::cloud::schema::$table as tbl;
        let name = stringify!($table);
        let mut query = tbl::table
            .select($row::CLOUD_COLUMNS)
            .filter(sql::<Bool>(&$scope.predicate($entity, name)))
            .order(tbl::$key.asc())
            .into_boxed();
        match $selection {
            Selection::Keys(keys) => {
                let keys: Vec<_> = keys.iter().filter_map(|k| $parse(k.as_str())).collect();
                if keys.is_empty() {
                    Vec::new()
                } else {
                    query.filter(tbl::$key.eq_any(keys)).load::<$row>($conn).await?
                }
            }
            Selection::Page { after, bucket, limit } => {
                if let Some(after) = after.and_then($parse) {
                    query = query.filter(tbl::$key.gt(after));
                }
                if let Some(bucket) = bucket {
                    let condition = format!("left(md5({name}.{}::text), 2) = ", stringify!($key));
                    query = query.filter(sql::<Bool>(&condition).bind::<Text, _>(bucket.to_owned()));
                }
                query.limit(limit).load::<$row>($conn).await?
            }
        }
    }};
}

/// The rows of `entity` in `scope` that `selection` names, by key.
pub(crate) async fn load(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    entity: Entity,
    selection: Selection<'_>,
) -> QueryResult<Vec<Record>> {
    Ok(match entity {
        Entity::Lab => load_rows!(conn, scope, selection, entity, labs, LabRow, id, uuid_key)
            .into_iter()
            .map(Record::Lab)
            .collect(),
        Entity::Staff => load_rows!(conn, scope, selection, entity, staff, StaffRow, id, uuid_key)
            .into_iter()
            .map(Record::Staff)
            .collect(),
        Entity::TubeType => load_rows!(conn, scope, selection, entity, tube_types, TubeTypeRow, code, text_key)
            .into_iter()
            .map(Record::TubeType)
            .collect(),
        Entity::Exam => load_rows!(conn, scope, selection, entity, exam_catalog, ExamRow, code, text_key)
            .into_iter()
            .map(Record::Exam)
            .collect(),
        Entity::Patient => load_rows!(conn, scope, selection, entity, patients, PatientRow, id, uuid_key)
            .into_iter()
            .map(Record::Patient)
            .collect(),
        Entity::Prescription => {
            let rows = load_rows!(
                conn,
                scope,
                selection,
                entity,
                prescriptions,
                PrescriptionRow,
                id,
                uuid_key
            );
            with_exams(conn, rows)
                .await?
                .into_iter()
                .map(Record::Prescription)
                .collect()
        }
        Entity::Appointment => load_rows!(
            conn,
            scope,
            selection,
            entity,
            appointments,
            AppointmentRow,
            id,
            uuid_key
        )
        .into_iter()
        .map(Record::Appointment)
        .collect(),
    })
}

/// Attaches each prescription's exam codes.
async fn with_exams(conn: &mut AsyncPgConnection, rows: Vec<PrescriptionRow>) -> QueryResult<Vec<PrescriptionRecord>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let pairs: Vec<(Uuid, String)> = prescribed_exams::table
        .filter(prescribed_exams::prescription_id.eq_any(&ids))
        .select((prescribed_exams::prescription_id, prescribed_exams::exam_code))
        .order((prescribed_exams::prescription_id, prescribed_exams::exam_code))
        .load(conn)
        .await?;
    let mut exams: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (id, code) in pairs {
        exams.entry(id).or_default().push(code);
    }
    Ok(rows
        .into_iter()
        .map(|prescription| PrescriptionRecord {
            exams: exams.remove(&prescription.id).unwrap_or_default(),
            prescription,
        })
        .collect())
}
