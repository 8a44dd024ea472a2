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
