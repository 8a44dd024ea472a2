//! The queries of walk-in registration: the patients a new one may duplicate, the lock that makes two
//! tablets registering the same person at once see each other, and the insert.

use diesel::prelude::*;
use diesel::sql_types::{Date as SqlDate, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::patients;
use labedge_schema::sync::PatientRow;
use time::Date;

/// Takes, until the transaction ends, the lock of everyone born on `birth_date` with `sex`: a
/// second registration of the same person waits for the first to commit, then finds it as a
/// probable duplicate. The two-key form keeps it apart from the other advisory locks.
pub async fn lock_birth(conn: &mut AsyncPgConnection, birth_date: Date, sex: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(1516, hashtext($1::text || '/' || $2))")
        .bind::<SqlDate, _>(birth_date)
        .bind::<Text, _>(sex)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Patients born on `birth_date` with `sex`, or holding `nir`: the pool probable duplicates are
/// picked from (by name, in the service).
pub async fn same_birth_or_nir(
    conn: &mut AsyncPgConnection,
    birth_date: Date,
    sex: &str,
    nir: Option<&str>,
) -> QueryResult<Vec<PatientRow>> {
    let same_birth = patients::birth_date.eq(birth_date).and(patients::sex.eq(sex));
    let mut query = patients::table
        .select(PatientRow::EDGE_COLUMNS)
        .filter(patients::merged_into.is_null())
        .into_boxed();
    query = match nir {
        Some(nir) => query.filter(same_birth.or(patients::nir.eq(nir))),
        None => query.filter(same_birth),
    };
    query.limit(500).load(conn).await
}

/// Stores a new patient.
pub async fn insert(conn: &mut AsyncPgConnection, row: &PatientRow) -> QueryResult<()> {
    diesel::insert_into(patients::table)
        .values(row)
        .execute(conn)
        .await
        .map(|_| ())
}
