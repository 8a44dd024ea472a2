//! The sync protocol between the cloud and a gateway: the rows a gateway keeps (one type per
//! replicated table, read from the cloud database and written to the edge database with the same
//! struct), the change feed and snapshot pages, and the checksums of the nightly reconciliation.
//!
//! Both services compile this one definition, so the wire format cannot drift between them.

use std::fmt;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// Rows a single multi-row statement carries (PostgreSQL allows 65,535 parameters).
pub const ROWS_PER_STATEMENT: usize = 1_000;

/// Declares a replicated row: its struct (serde for the wire, `Queryable` for the cloud's select,
/// `Insertable` for the edge), the cloud columns in field order, and the edge upsert.
macro_rules! replicated {
    ($(#[$doc:meta])* $name:ident, $table:ident, key: $key:ident, { $($(#[$fdoc:meta])* $field:ident : $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Serialize, Deserialize, Queryable, Insertable)]
        #[diesel(table_name = crate::edge::schema::$table)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty),+
        }

        impl $name {
            /// The cloud table's columns, in the struct's field order, for `select`.
            pub const CLOUD_COLUMNS: ($(crate::cloud::schema::$table::$field,)+) =
                ($(crate::cloud::schema::$table::$field,)+);

            /// The edge table's columns, in the struct's field order, for `select`.
            pub const EDGE_COLUMNS: ($(crate::edge::schema::$table::$field,)+) =
                ($(crate::edge::schema::$table::$field,)+);

            /// Inserts or replaces rows in the edge database.
            pub async fn upsert_edge(conn: &mut AsyncPgConnection, rows: &[Self]) -> QueryResult<usize> {
                use crate::edge::schema::$table as t;
                let mut written = 0;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    written += diesel::insert_into(t::table)
                        .values(chunk)
                        .on_conflict(t::$key)
                        .do_update()
                        .set(($(t::$field.eq(diesel::upsert::excluded(t::$field)),)+))
                        .execute(conn)
                        .await?;
                }
                Ok(written)
            }
        }

        // Rows carry names, NIRs and PIN hashes: their Debug shows the key only.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field(stringify!($key), &self.$key).finish_non_exhaustive()
            }
        }
    };
}

replicated!(
    /// A lab, with its booking rules (see `mobile_contracts::slots`): slot length and places of lab
    /// visits, opening hours and home-visit hours by weekday (`{"mon": [["07:00", "12:00"]], …}`).
    LabRow, labs, key: id, {
        id: Uuid, code: String, name: String, kind: String, version: i64,
        slot_minutes: i16, lab_places: i16, opening_hours: serde_json::Value, home_slot_minutes: i16,
        home_hours: serde_json::Value,
    }
);

replicated!(
    /// A staff member, with the hashes that let them log in offline.
    StaffRow, staff, key: id, {
        id: Uuid, lab_id: Uuid, login: String, display_name: String, role: String,
        pin_hash: String, password_hash: Option<String>, active: bool, version: i64,
    }
);

replicated!(
    /// A tube type.
    TubeTypeRow, tube_types, key: code, {
        code: String, label: String, cap_color: String, additive: Option<String>,
        capacity_ul: i32, draw_order: i16, version: i64,
    }
);

replicated!(
    /// An exam of the catalog.
    ExamRow, exam_catalog, key: code, {
        code: String, label: String, tube_type: String, volume_ul: i32, fasting: bool, active: bool, version: i64,
    }
);

replicated!(
    /// A patient.
    PatientRow, patients, key: id, {
        id: Uuid, nir: Option<String>, ins_oid: Option<String>, identity_status: String,
        birth_family_name: String, birth_given_names: String, first_given_name: String,
        used_family_name: Option<String>, used_given_name: Option<String>, birth_date: Date, sex: String,
        birth_place_code: Option<String>, phone: Option<String>, address_line: Option<String>,
        postal_code: Option<String>, city: Option<String>, version: i64,
        /// The patient this one was merged into by the LIS (reads of this id lead there).
        merged_into: Option<Uuid>,
    }
);

replicated!(
    /// A prescription (its exams travel beside it, in [`PrescriptionRecord`]).
    PrescriptionRow, prescriptions, key: id, {
        id: Uuid, patient_id: Uuid, lab_id: Uuid, prescriber_name: String, prescriber_rpps: String,
        issued_on: Date, fasting: bool, status: String, notes: Option<String>, version: i64,
    }
);

replicated!(
    /// An appointment: a lab visit or a home visit of a round.
    AppointmentRow, appointments, key: id, {
        id: Uuid, lab_id: Uuid, patient_id: Uuid, prescription_id: Option<Uuid>, kind: String,
        #[serde(with = "time::serde::rfc3339")]
        scheduled_at: OffsetDateTime,
        duration_min: i16, address_line: Option<String>, postal_code: Option<String>, city: Option<String>,
        access_notes: Option<String>, assigned_staff_id: Option<Uuid>, round_position: Option<i16>,
        status: String, status_reason: Option<String>, version: i64,
    }
);

/// A prescription and the codes of its exams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrescriptionRecord {
    /// The prescription.
    #[serde(flatten)]
    pub prescription: PrescriptionRow,
    /// Its exams' catalog codes.
    pub exams: Vec<String>,
}

impl PrescriptionRecord {
    /// Inserts or replaces prescriptions and replaces their exam lists, in the edge database.
    pub async fn upsert_edge(conn: &mut AsyncPgConnection, records: &[Self]) -> QueryResult<usize> {
        use crate::edge::schema::prescribed_exams as pe;
        let rows: Vec<PrescriptionRow> = records.iter().map(|r| r.prescription.clone()).collect();
        let written = PrescriptionRow::upsert_edge(conn, &rows).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            diesel::delete(pe::table.filter(pe::prescription_id.eq_any(chunk)))
                .execute(conn)
                .await?;
        }
        let exams: Vec<_> = records
            .iter()
            .flat_map(|r| {
                r.exams
                    .iter()
                    .map(move |code| (pe::prescription_id.eq(r.prescription.id), pe::exam_code.eq(code)))
            })
            .collect();
        for chunk in exams.chunks(ROWS_PER_STATEMENT) {
            diesel::insert_into(pe::table).values(chunk).execute(conn).await?;
        }
        Ok(written)
    }
}

/// The kinds of replicated rows, in the order a bootstrap applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// `labs`.
    Lab,
    /// `staff`.
    Staff,
    /// `tube_types`.
    TubeType,
    /// `exam_catalog`.
    Exam,
    /// `patients`.
    Patient,
    /// `prescriptions` (with `prescribed_exams`).
    Prescription,
    /// `appointments`.
    Appointment,
}

impl Entity {
    /// Every kind, in bootstrap order.
    pub const ALL: [Entity; 7] = [
        Entity::Lab,
        Entity::Staff,
        Entity::TubeType,
        Entity::Exam,
        Entity::Patient,
        Entity::Prescription,
        Entity::Appointment,
    ];

    /// The name used in `change_log.entity` and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Lab => "lab",
            Entity::Staff => "staff",
            Entity::TubeType => "tube_type",
            Entity::Exam => "exam",
            Entity::Patient => "patient",
            Entity::Prescription => "prescription",
            Entity::Appointment => "appointment",
        }
    }

    /// Parses [`Entity::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The table (same name in both databases).
    pub fn table(self) -> &'static str {
        match self {
            Entity::Lab => "labs",
            Entity::Staff => "staff",
            Entity::TubeType => "tube_types",
            Entity::Exam => "exam_catalog",
            Entity::Patient => "patients",
            Entity::Prescription => "prescriptions",
            Entity::Appointment => "appointments",
        }
    }

    /// The key column.
    pub fn key(self) -> &'static str {
        match self {
            Entity::TubeType | Entity::Exam => "code",
            _ => "id",
        }
    }

    /// An SQL expression that digests one row of the table (aliased `t`) from the replicated
    /// columns only, identically in both databases: timestamps as epoch seconds (independent of the
    /// session's time zone), a prescription's exams included. Reconciliation compares these.
    pub fn row_digest_sql(self) -> &'static str {
        match self {
            Entity::Lab => "md5(ROW(t.id, t.code, t.name, t.kind, t.version)::text)",
            Entity::Staff => {
                "md5(ROW(t.id, t.lab_id, t.login, t.display_name, t.role, t.pin_hash, t.password_hash, t.active, t.version)::text)"
            }
            Entity::TubeType => {
                "md5(ROW(t.code, t.label, t.cap_color, t.additive, t.capacity_ul, t.draw_order, t.version)::text)"
            }
            Entity::Exam => "md5(ROW(t.code, t.label, t.tube_type, t.volume_ul, t.fasting, t.active, t.version)::text)",
            Entity::Patient => {
                "md5(ROW(t.id, t.nir, t.ins_oid, t.identity_status, t.birth_family_name, t.birth_given_names, \
                 t.first_given_name, t.used_family_name, t.used_given_name, t.birth_date, t.sex, t.birth_place_code, \
                 t.phone, t.address_line, t.postal_code, t.city, t.version)::text)"
            }
            Entity::Prescription => {
                "md5(ROW(t.id, t.patient_id, t.lab_id, t.prescriber_name, t.prescriber_rpps, t.issued_on, t.fasting, \
                 t.status, t.notes, t.version, (SELECT string_agg(e.exam_code, ',' ORDER BY e.exam_code) \
                 FROM prescribed_exams e WHERE e.prescription_id = t.id))::text)"
            }
            Entity::Appointment => {
                "md5(ROW(t.id, t.lab_id, t.patient_id, t.prescription_id, t.kind, extract(epoch FROM t.scheduled_at), \
                 t.duration_min, t.address_line, t.postal_code, t.city, t.access_notes, t.assigned_staff_id, \
                 t.round_position, t.status, t.status_reason, t.version)::text)"
            }
        }
    }

    /// The reconciliation bucket of a row: the first two hex digits of the md5 of its key.
    pub fn bucket_sql(self) -> String {
        format!("left(md5(t.{}::text), 2)", self.key())
    }
}

/// One replicated row on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
pub enum Record {
    /// A lab.
    Lab(LabRow),
    /// A staff member.
    Staff(StaffRow),
    /// A tube type.
    TubeType(TubeTypeRow),
    /// An exam.
    Exam(ExamRow),
    /// A patient.
    Patient(PatientRow),
    /// A prescription with its exams.
    Prescription(PrescriptionRecord),
    /// An appointment.
    Appointment(AppointmentRow),
}

impl Record {
    /// Its kind.
    pub fn entity(&self) -> Entity {
        match self {
            Record::Lab(_) => Entity::Lab,
            Record::Staff(_) => Entity::Staff,
            Record::TubeType(_) => Entity::TubeType,
            Record::Exam(_) => Entity::Exam,
            Record::Patient(_) => Entity::Patient,
            Record::Prescription(_) => Entity::Prescription,
            Record::Appointment(_) => Entity::Appointment,
        }
    }

    /// Its key as text.
    pub fn key(&self) -> String {
        match self {
            Record::Lab(r) => r.id.to_string(),
            Record::Staff(r) => r.id.to_string(),
            Record::TubeType(r) => r.code.clone(),
            Record::Exam(r) => r.code.clone(),
            Record::Patient(r) => r.id.to_string(),
            Record::Prescription(r) => r.prescription.id.to_string(),
            Record::Appointment(r) => r.id.to_string(),
        }
    }
}

/// One entry of the change feed: the row as it is now, or its removal from the lab's scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedChange {
    /// Position in the cloud's change sequence.
    pub position: i64,
    /// Kind of row.
    pub entity: Entity,
    /// Key of the row.
    pub key: String,
    /// The row, or `None` when it left the lab's scope (or was deleted): the gateway removes it.
    pub record: Option<Record>,
}

/// `GET /v1/labs/{lab}/changes?after=N&limit=M`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    /// The lab code.
    pub lab: String,
    /// The position asked for.
    pub after: i64,
    /// Where to continue from: the last position of this page while more wait; on the last page,
    /// the head (every position up to it is committed and was read), so that a quiet lab's gateway
    /// shows no lag while other labs write.
    pub next: i64,
    /// Whether more changes wait after `next`.
    pub has_more: bool,
    /// The newest committed position the cloud knows of (for lag).
    pub head: i64,
    /// The end of the lab's appointment window when the page was read (exclusive): with this page
    /// applied, the gateway holds every appointment of its lab scheduled before it, and books only
    /// before it. `None` from a cloud that predates it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub window_ends: Option<OffsetDateTime>,
    /// The timeline of the cloud's database when the page was read: PostgreSQL starts a new one
    /// when a database is restored to a point in time or a standby is promoted, and either may
    /// have lost the last commits, including mutations the gateway saw acknowledged and positions
    /// of the feed it had read. On a new one the gateway checks what the cloud lost. `None` from a
    /// cloud that predates it.
    #[serde(default)]
    pub timeline: Option<i64>,
    /// The changes, by position.
    pub changes: Vec<FeedChange>,
}

/// `GET /v1/labs/{lab}/changes/head`: the newest committed position, where a bootstrap's snapshot starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedHead {
    /// Position.
    pub position: i64,
    /// The end of the lab's appointment window now (as [`FeedPage::window_ends`]): a bootstrap
    /// that starts at this head holds every appointment before it. `None` from an older cloud.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub window_ends: Option<OffsetDateTime>,
}

/// `GET /v1/labs/{lab}/snapshot/{entity}?after=KEY&limit=M[&bucket=xx]`: the lab's scope, table by
/// table, by key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPage {
    /// Kind of rows.
    pub entity: Entity,
    /// The rows, by key.
    pub records: Vec<Record>,
    /// The key to continue after, when more rows wait.
    pub next_after: Option<String>,
}

/// Count and digest of a set of rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Rows.
    pub count: i64,
    /// md5 of the rows' digests in key order (empty for no rows).
    pub checksum: String,
}

/// One table's digest, and per bucket when asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChecksum {
    /// Kind of rows.
    pub entity: Entity,
    /// The whole table (in scope).
    #[serde(flatten)]
    pub digest: Digest,
    /// Per bucket (`00`…`ff`), when asked with `?buckets=true`; absent buckets hold no row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<(String, Digest)>,
}

/// `GET /v1/labs/{lab}/checksums[?entity=E&buckets=true]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// The lab code.
    pub lab: String,
    /// The position the digests were taken at.
    pub position: i64,
    /// Per table.
    pub tables: Vec<TableChecksum>,
}

#[derive(QueryableByName)]
struct DigestRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    bucket: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    checksum: String,
}

/// Digests `entity`'s rows selected by `from_where` (an SQL `FROM … WHERE …` naming the table `t`),
/// whole and, with `buckets`, per bucket. The same function runs in both databases.
pub async fn digest(
    conn: &mut AsyncPgConnection,
    entity: Entity,
    from_where: &str,
    buckets: bool,
) -> QueryResult<(Digest, Vec<(String, Digest)>)> {
    let row = entity.row_digest_sql();
    let key = entity.key();
    let whole: DigestRow = diesel::sql_query(format!(
        "SELECT ''::text AS bucket, count(*)::bigint AS count, \
                coalesce(md5(string_agg({row}, '' ORDER BY t.{key})), '') AS checksum {from_where}"
    ))
    .get_result(conn)
    .await?;
    let mut per_bucket = Vec::new();
    if buckets {
        let bucket = entity.bucket_sql();
        let rows: Vec<DigestRow> = diesel::sql_query(format!(
            "SELECT {bucket} AS bucket, count(*)::bigint AS count, \
                    coalesce(md5(string_agg({row}, '' ORDER BY t.{key})), '') AS checksum {from_where} \
             GROUP BY 1 ORDER BY 1"
        ))
        .load(conn)
        .await?;
        per_bucket = rows
            .into_iter()
            .map(|r| {
                (
                    r.bucket,
                    Digest {
                        count: r.count,
                        checksum: r.checksum,
                    },
                )
            })
            .collect();
    }
    Ok((
        Digest {
            count: whole.count,
            checksum: whole.checksum,
        },
        per_bucket,
    ))
}
