//! Backups (requirement S-8): a base backup plus the archived WAL of the cloud's cluster restores
//! into a fresh cluster with every row, including those written after the base backup; a gateway's
//! daily dump restores into a fresh database; the tape export carries both with checksums. The
//! scripts of `deploy/backup/` are run as they are in production.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_api::demo::SeedArgs;
use labedge_schema::db::{self, Database};
use labedge_schema::sync::{Entity, digest};
use labedge_tests::cluster::{PgCluster, PgDir, free_port};
use labedge_tests::db::TestDb;

fn script(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
        .to_str()
        .unwrap()
        .to_owned()
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}:\n{text}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The rows of the cloud's main tables in `cluster`, as psql prints the counts.
fn row_counts(cluster: &PgCluster) -> Vec<String> {
    [
        "labs",
        "staff",
        "patients",
        "prescriptions",
        "prescribed_exams",
        "appointments",
        "change_log",
    ]
    .iter()
    .map(|t| cluster.psql("labedge_cloud", &format!("SELECT count(*) FROM {t}")))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_backup_and_the_archived_wal_restore_every_row_into_a_fresh_cluster() {
    let root = PgDir::new();
    let archive = root.path().join("backups/wal");
    let backups = root.path().join("backups");
    std::fs::create_dir_all(&archive).unwrap();
    run(&["chown", "-R", "postgres:postgres", backups.to_str().unwrap()], &[]);
    let archive_command = format!(
        "ARCHIVE_DIR={} {} %p %f",
        archive.display(),
        script("backup/archive-wal.sh")
    );
    let primary = PgCluster::init(
        root.path(),
        "primary",
        &format!("wal_level = replica\narchive_mode = on\narchive_command = '{archive_command}'\nmax_wal_senders = 4"),
    );
    primary.psql("postgres", "CREATE DATABASE labedge_cloud");
    let url = primary.url("labedge_cloud");
    db::run_migrations(&url, Database::Cloud).await.unwrap();
    labedge_api::demo::seed_into(
        &mut AsyncPgConnection::establish(&url).await.unwrap(),
        &SeedArgs {
            patients: 120,
            proximity_labs: 1,
            ..SeedArgs::default()
        },
    )
    .await
    .unwrap();

    let base = run(
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &script("backup/base-backup.sh"),
            "127.0.0.1",
            &primary.port.to_string(),
            backups.to_str().unwrap(),
        ],
        &[],
    );
    // Written after the base backup: only the archived WAL can bring it back.
    primary.psql("labedge_cloud", "INSERT INTO labs (id, code, name, kind) VALUES (gen_random_uuid(), 'AFTER-BACKUP', 'Written after', 'proximity')");
    primary.psql("labedge_cloud", "SELECT pg_switch_wal()");
    let started = Instant::now();
    while primary.psql("postgres", "SELECT failed_count = 0 AND last_archived_wal IS NOT NULL AND last_archived_time > now() - interval '1 minute' FROM pg_stat_archiver") != "t" {
        assert!(started.elapsed() < Duration::from_secs(30), "the WAL was not archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = row_counts(&primary);

    // The primary is lost; restore into a new data directory.
    primary.stop("immediate");
    let port = free_port();
    let restored_dir = root.path().join("restored");
    run(
        &[
            &script("backup/restore-cloud.sh"),
            &base,
            archive.to_str().unwrap(),
            restored_dir.to_str().unwrap(),
            &port.to_string(),
        ],
        &[],
    );
    let restored = PgCluster::adopt(restored_dir, port);
    let started = Instant::now();
    while restored.psql("postgres", "SELECT pg_is_in_recovery()") != "f" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the restored cluster did not finish recovery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = row_counts(&restored);
    assert_eq!(got, expected, "every table restored whole");
    assert_eq!(
        restored.psql("labedge_cloud", "SELECT count(*) FROM labs WHERE code = 'AFTER-BACKUP'"),
        "1",
        "the WAL after the base backup was replayed"
    );
    // The restored cluster serves the API's schema: no migration pending.
    assert!(
        db::pending_migrations(&restored.url("labedge_cloud"), Database::Cloud)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_daily_dump_restores_into_a_fresh_database_and_the_tape_export_checks_out() {
    let gateway = labedge_tests::gateway::TestGateway::start().await;
    labedge_tests::edge_data::insert_catalog(&gateway).await;
    let today = labedge_tests::edge_data::local_today(&gateway).await;
    let patients: Vec<_> = (0..30)
        .map(|i| labedge_tests::edge_data::patient(&format!("Dupont{i}"), "Marie", time::macros::date!(1970 - 01 - 01)))
        .collect();
    labedge_tests::edge_data::upsert_patients(&gateway, &patients).await;
    let rx: Vec<_> = patients
        .iter()
        .map(|p| labedge_tests::edge_data::prescription(gateway.lab_id, p.id, today, &["NFS"]))
        .collect();
    labedge_tests::edge_data::upsert_prescriptions(&gateway, &rx).await;

    let root = tempfile::tempdir().unwrap();
    let edge_dir = root.path().join("backups/edge");
    let dump = run(
        &[
            &script("backup/dump-edge.sh"),
            gateway.db.url(),
            edge_dir.to_str().unwrap(),
            "villeurbanne",
        ],
        &[],
    );
    assert!(std::fs::metadata(&dump).unwrap().len() > 1000);

    let fresh = TestDb::empty().await;
    run(&[&script("backup/restore-edge.sh"), &dump, fresh.url()], &[]);
    let mut original = gateway.db.conn().await;
    let mut copy = fresh.conn().await;
    for entity in [
        Entity::Lab,
        Entity::Staff,
        Entity::TubeType,
        Entity::Exam,
        Entity::Patient,
        Entity::Prescription,
    ] {
        let from = format!("FROM {} t", entity.table());
        let (a, _) = digest(&mut original, entity, &from, false).await.unwrap();
        let (b, _) = digest(&mut copy, entity, &from, false).await.unwrap();
        assert_eq!(a, b, "{} restored identically", entity.table());
    }
    assert!(
        db::pending_migrations(fresh.url(), Database::Edge)
            .await
            .unwrap()
            .is_empty(),
        "the dump carries the schema and its migrations"
    );

    // The tape export: one tar with a checksum list that verifies after extraction.
    let base = root.path().join("backups/base/20261129T000000Z");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("base.tar.gz"), b"stand-in").unwrap();
    let tar_file = root.path().join("tape.tar");
    run(
        &[
            &script("backup/export-tape.sh"),
            root.path().join("backups").to_str().unwrap(),
            tar_file.to_str().unwrap(),
        ],
        &[],
    );
    let extracted = root.path().join("extracted");
    std::fs::create_dir_all(&extracted).unwrap();
    run(
        &[
            "tar",
            "-xf",
            tar_file.to_str().unwrap(),
            "-C",
            extracted.to_str().unwrap(),
        ],
        &[],
    );
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&extracted)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let listed = std::fs::read_to_string(extracted.join("SHA256SUMS")).unwrap();
    assert!(
        listed.contains("edge/villeurbanne-") && listed.contains("base/20261129T000000Z/base.tar.gz"),
        "{listed}"
    );
}
