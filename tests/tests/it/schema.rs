//! The schema crate's contract with its migrations: `schema.rs` is what the migrations produce, and
//! every migration runs both ways.

use labedge_schema::db::{self, Database};
use labedge_schema::introspect::print_schema;
use labedge_tests::db::TestDb;

fn schema_file(database: Database) -> std::path::PathBuf {
    let set = match database {
        Database::Cloud => "cloud",
        Database::Edge => "edge",
    };
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../schema/src/{set}/schema.rs"))
}

async fn check_schema_rs(database: Database) {
    let test_db = TestDb::migrated(database).await;
    let printed = print_schema(&mut test_db.conn().await).await.unwrap();
    let path = schema_file(database);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &printed).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == printed,
        "{} does not match the migrations; regenerate it with \
         UPDATE_SCHEMA=1 cargo nextest run -p labedge-tests -E 'test(schema_rs)'\n--- printed ---\n{printed}",
        path.display()
    );
}

#[tokio::test]
async fn cloud_schema_rs_matches_the_migrations() {
    check_schema_rs(Database::Cloud).await;
}

#[tokio::test]
async fn edge_schema_rs_matches_the_migrations() {
    check_schema_rs(Database::Edge).await;
}

async fn migrations_run_both_ways(database: Database) {
    let test_db = TestDb::empty().await;
    let applied = db::run_migrations(test_db.url(), database).await.unwrap();
    assert!(applied.len() >= 3, "applied {applied:?}");
    let first = print_schema(&mut test_db.conn().await).await.unwrap();
    assert!(
        db::pending_migrations(test_db.url(), database)
            .await
            .unwrap()
            .is_empty()
    );

    let reverted = db::revert_all_migrations(test_db.url(), database).await.unwrap();
    assert_eq!(reverted.len(), applied.len());
    let after_revert = print_schema(&mut test_db.conn().await).await.unwrap();
    assert_eq!(
        after_revert.trim(),
        "// @generated automatically by Diesel CLI.",
        "down.sql files leave tables behind"
    );
    assert_eq!(
        db::pending_migrations(test_db.url(), database).await.unwrap().len(),
        applied.len()
    );

    db::run_migrations(test_db.url(), database).await.unwrap();
    let second = print_schema(&mut test_db.conn().await).await.unwrap();
    assert_eq!(first, second, "migrating again gives another schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_migrations_run_both_ways() {
    migrations_run_both_ways(Database::Cloud).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_migrations_run_both_ways() {
    migrations_run_both_ways(Database::Edge).await;
}

#[derive(diesel::QueryableByName)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How many statements this connection holds prepared whose text starts with `start`.
async fn prepared_here(conn: &mut diesel_async::AsyncPgConnection, start: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    let found: Prepared = diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE $1")
        .bind::<diesel::sql_types::Text, _>(format!("{start}%"))
        .get_result(conn)
        .await
        .unwrap();
    found.n
}

/// `.prepared()` keeps a hand-written statement prepared on its connection, reused with new values;
/// a bare `sql_query` is planned again at each call and never kept.
#[tokio::test]
async fn a_prepared_sql_query_is_prepared_once_per_connection_and_a_bare_one_never() {
    use diesel_async::RunQueryDsl;
    use labedge_schema::prepared::KeepPrepared;
    let test_db = TestDb::migrated(Database::Edge).await;
    let mut conn = test_db.conn().await;
    for i in 0..3_i64 {
        let kept: Prepared = diesel::sql_query("SELECT $1::bigint + 1 AS n")
            .bind::<diesel::sql_types::BigInt, _>(i)
            .prepared()
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(kept.n, i + 1, "the kept statement answers for the values of this call");
        let bare: Prepared = diesel::sql_query("SELECT $1::bigint + 2 AS n")
            .bind::<diesel::sql_types::BigInt, _>(i)
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(bare.n, i + 2);
    }
    assert_eq!(prepared_here(&mut conn, "SELECT $1::bigint + 1").await, 1);
    assert_eq!(prepared_here(&mut conn, "SELECT $1::bigint + 2").await, 0);
}

/// The tablets' change log is written by statement triggers (migration `…_change_log_by_statement`):
/// every row a statement inserts, updates or deletes gets its entry, an exam's change gives its
/// prescription one entry however many of its exams the statement touched, and every entry of a
/// transaction carries that transaction's id.
#[tokio::test]
async fn the_change_log_has_an_entry_for_every_row_a_statement_changes() {
    use diesel_async::SimpleAsyncConnection;
    use labedge_tests::db::count;
    let test_db = TestDb::migrated(Database::Edge).await;
    let mut conn = test_db.conn().await;
    let lab = "00000000-0000-4000-8000-00000000000a";
    conn.batch_execute(&format!(
        "BEGIN;
         INSERT INTO appointments (id, lab_id, patient_id, kind, scheduled_at, duration_min, status, version)
         SELECT gen_random_uuid(), '{lab}', gen_random_uuid(), 'lab', now() + g * interval '15 minutes', 15,
                'scheduled', 1
         FROM generate_series(1, 40) g;
         UPDATE appointments SET status = 'cancelled', version = 2
         WHERE id IN (SELECT id FROM appointments ORDER BY scheduled_at LIMIT 5);
         INSERT INTO appointments (id, lab_id, patient_id, kind, scheduled_at, duration_min, status, version)
         SELECT id, lab_id, patient_id, kind, scheduled_at, duration_min, 'scheduled', 3
         FROM appointments ORDER BY scheduled_at LIMIT 3
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version;
         DELETE FROM appointments WHERE id IN (SELECT id FROM appointments ORDER BY scheduled_at DESC LIMIT 2);
         COMMIT;"
    ))
    .await
    .unwrap();
    let entries = |sql: &str| format!("SELECT count(*) AS n FROM change_log WHERE entity = 'appointment' AND {sql}");
    assert_eq!(count(&mut conn, &entries("op = 'upsert'")).await, 40 + 5 + 3);
    assert_eq!(count(&mut conn, &entries("op = 'delete'")).await, 2);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM (SELECT DISTINCT entity_id FROM change_log WHERE op = 'upsert') AS d"
        )
        .await,
        40
    );
    assert_eq!(
        count(&mut conn, "SELECT count(DISTINCT xid) AS n FROM change_log").await,
        1
    );
    conn.batch_execute(&format!(
        "INSERT INTO prescriptions (id, patient_id, lab_id, prescriber_name, prescriber_rpps, issued_on, fasting,
                                    status, version)
         VALUES ('00000000-0000-4000-8000-0000000000b1', gen_random_uuid(), '{lab}', 'Dr A', '10000000001',
                 current_date, false, 'open', 1);
         INSERT INTO prescribed_exams (prescription_id, exam_code)
         VALUES ('00000000-0000-4000-8000-0000000000b1', 'GLY'), ('00000000-0000-4000-8000-0000000000b1', 'NFS'),
                ('00000000-0000-4000-8000-0000000000b1', 'CRP');"
    ))
    .await
    .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM change_log \
             WHERE entity = 'prescription' AND entity_id = '00000000-0000-4000-8000-0000000000b1' AND op = 'upsert'"
        )
        .await,
        2,
        "the prescription's own row, then one entry for its three exams"
    );
    // Nothing changed, nothing logged.
    conn.batch_execute("UPDATE appointments SET version = version WHERE false")
        .await
        .unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM change_log").await, 52);
}
