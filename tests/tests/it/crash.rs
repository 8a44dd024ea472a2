//! Crash safety of the real binaries (issues 5, 9 and 16): the gateway is killed with SIGKILL at
//! random moments — at a random time, while a group of writes is inside its transaction, while the
//! relay waits for the cloud's answer to a batch, while the audit journal flushes — across at least
//! 50 cycles (and the cloud API itself a few times, mid-batch), while two tablets write with retries
//! (the same idempotency key for each retry) and the relay sends to the real cloud, and a third
//! tablet reads patients. At the end every acknowledged write is in the cloud exactly once, and
//! nothing else is; every read answered has its audit record. The long run (`deploy/test.sh
//! --long`) goes on until at least 10,000 writes were acknowledged.

use std::time::{Duration, Instant};

use labedge_tests::db::{collections_among, count_at as count};
use labedge_tests::long_run;
use labedge_tests::stack::Stack;
use labedge_tests::tablet;

/// A small deterministic generator, seeded from the clock (the seed is printed to replay a run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_or_doubled_across_50_sigkills_of_the_gateway_and_the_cloud() {
    let mut stack = Stack::builder().patients(200).start().await;
    let (client, gw) = (stack.client.clone(), stack.gateway_url.clone());
    let (edge_url, cloud_url) = (stack.edge_url.clone(), stack.cloud_url.clone());

    // The lab's data arrives; the admin enrolls a tablet and a nurse logs in; the tablet writes.
    let admin = stack.admin_session().await;
    let token = tablet::enroll_and_login(&client, &gw, &admin, stack.lab.logins.nurse.as_deref().unwrap()).await;
    let visits = tablet::visits_at(&edge_url).await;
    assert!(visits.len() >= 20);
    // Two tablets, the second one through the visits the other way round.
    let mut reversed = visits.clone();
    reversed.reverse();
    let reader = tablet::Reader::start(client.clone(), gw.clone(), token.clone(), visits.clone());
    // A desk books lab visits meanwhile (the bookings' own group writer).
    let patients: Vec<_> = visits.iter().map(|v| v.patient).collect();
    let booker = tablet::Booker::start(client.clone(), gw.clone(), token.clone(), patients);
    let writers = [
        tablet::Writer::start(client.clone(), gw.clone(), token.clone(), visits),
        tablet::Writer::start(client.clone(), gw.clone(), token, reversed),
    ];

    let seed = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007).unwrap();
    eprintln!("crash test seed {seed}");
    let mut random = Lcg(seed);
    // What the gateway's backends are doing, seen from PostgreSQL: the relay keeps its pass's
    // transaction (under its advisory lock) open while it waits for the cloud's answer, its last
    // statement the read of the batch's payloads; a write inserts inside its transaction before the
    // commit.
    let mut watch = stack.edge_conn().await;
    let relay_waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state = 'idle in transaction' \
         AND query ILIKE 'SELECT %\"outbox\".\"payload\"%FROM \"outbox\"%'";
    // A group of writes between its first statement and its commit (the group writers' statements:
    // keys, slots, rows of collections or bookings, outbox, stored answers).
    let write_in_transaction = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state <> 'idle' \
         AND (query ILIKE '%pg_try_advisory_xact_lock%unnest%' OR query ILIKE 'INSERT INTO collection%' \
              OR query ILIKE '%pg_advisory_xact_lock(1515, h)%' OR query ILIKE 'INSERT INTO \"appointments\"%' \
              OR query ILIKE 'INSERT INTO outbox%unnest%' OR query ILIKE 'INSERT INTO idempotency_keys%unnest%')";
    // The audit journal's statement for the reads queued at that moment, running.
    let audit_flushing = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE 'INSERT INTO audit_log%'";
    let wait_for = async |watch: &mut diesel_async::AsyncPgConnection, sql: &str| -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if labedge_tests::db::count(watch, sql).await > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    };
    let min_cycles = 50;
    let target_writes = if long_run() { 10_000 } else { 0 };
    let (mut cycle, mut mid_relay, mut mid_commit, mut mid_audit, mut at_random, mut cloud_kills) = (0, 0, 0, 0, 0, 0);
    let started = Instant::now();
    while cycle < min_cycles || count(&edge_url, "SELECT count(*) AS n FROM collections").await < target_writes {
        // Every tenth cycle the cloud API is killed too, while the relay waits for its answer when
        // that can be caught, and started again a moment later.
        if cycle % 10 == 5 {
            wait_for(&mut watch, relay_waiting).await;
            stack.api.signal("KILL");
            assert!(
                stack.api.wait_exit(Duration::from_secs(10)).await.is_some(),
                "the API did not die"
            );
            cloud_kills += 1;
            tokio::time::sleep(Duration::from_millis(200 + random.next() % 800)).await;
            stack.api = stack.spawn_api();
            tablet::wait_healthy(&client, &stack.api_url).await;
        }
        match random.next() % 4 {
            0 => {
                if wait_for(&mut watch, relay_waiting).await {
                    mid_relay += 1;
                }
            }
            1 => {
                if wait_for(&mut watch, write_in_transaction).await {
                    mid_commit += 1;
                }
            }
            2 => {
                if wait_for(&mut watch, audit_flushing).await {
                    mid_audit += 1;
                }
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(100 + random.next() % 600)).await;
                at_random += 1;
            }
        }
        stack.gateway.signal("KILL");
        assert!(
            stack.gateway.wait_exit(Duration::from_secs(10)).await.is_some(),
            "cycle {cycle}: the gateway did not die"
        );
        stack.gateway = stack.spawn_gateway(&stack.gateway_config, &[]);
        tablet::wait_healthy(&client, &gw).await;
        cycle += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = reader.stop().await;
    let booked = booker.stop().await;
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.stop().await);
    }
    assert!(booked.len() >= 20, "the desk kept booking: {} bookings", booked.len());
    assert!(
        acknowledged.len() >= 100.max(target_writes as usize),
        "the tablets kept writing: {} writes",
        acknowledged.len()
    );
    eprintln!(
        "{cycle} SIGKILLs of the gateway in {:?}: {mid_relay} while the relay waited for the cloud, \
         {mid_commit} while a group of writes was in its transaction, {mid_audit} while the audit journal flushed, \
         {at_random} at a random moment; {cloud_kills} SIGKILLs of the cloud API; {} reads answered",
        started.elapsed(),
        answered.len()
    );
    // The targeted moments were reached, not just hoped for.
    assert!(
        mid_relay > 0 && mid_commit > 0 && mid_audit > 0,
        "kills mid-relay, mid-commit and mid-flush of the audit happened"
    );

    // Every read answered has its audit record, chained (reads are never pending).
    assert!(
        answered.len() >= 100,
        "the reader kept reading: {} reads",
        answered.len()
    );
    let ids: Vec<String> = answered.iter().map(|id| format!("'{id}'")).collect();
    let audited = count(
        &edge_url,
        &format!(
            "SELECT count(DISTINCT request_id) AS n FROM audit_log WHERE action = 'patient.read' \
             AND request_id IN ({})",
            ids.join(",")
        ),
    )
    .await;
    assert_eq!(
        audited,
        answered.len() as i64,
        "a read was answered without its audit record"
    );
    let chain = labedge_edge_gateway::audit::verify_chain(&mut watch).await.unwrap();
    assert!(chain.is_ok(), "the audit chain is intact after the kills: {chain:?}");

    // Let the relay finish, then compare.
    let started = Instant::now();
    while count(&edge_url, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(90), "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let among = collections_among(&acknowledged);
    let expected = acknowledged.len() as i64;
    assert_eq!(count(&edge_url, &among).await, expected);
    assert_eq!(
        count(&edge_url, "SELECT count(*) AS n FROM collections").await,
        expected,
        "no write the tablet was not told about"
    );
    assert_eq!(
        // Besides: the audit checkpoints signed when the cloud came back (lane 1).
        count(
            &edge_url,
            "SELECT count(*) AS n FROM outbox WHERE kind = 'collection.create'"
        )
        .await,
        expected,
        "one outbox entry per write"
    );
    assert_eq!(count(&cloud_url, &among).await, expected, "none lost");
    assert_eq!(
        count(&cloud_url, "SELECT count(*) AS n FROM collections").await,
        expected,
        "none doubled"
    );
    assert_eq!(
        count(
            &cloud_url,
            "SELECT count(*) AS n FROM applied_mutations WHERE kind = 'collection.create'"
        )
        .await,
        expected,
        "each mutation applied once"
    );
    assert_eq!(
        count(&cloud_url, "SELECT count(*) AS n FROM applied_mutations").await,
        count(&edge_url, "SELECT count(*) AS n FROM outbox").await,
        "every outbox entry, checkpoints included, applied once"
    );
    assert_eq!(
        count(&cloud_url, "SELECT count(*) AS n FROM collection_tubes").await,
        expected
    );
    // The bookings likewise: each acknowledged one stored once here and applied once in the cloud,
    // none the desk was not told about.
    let list = booked.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let bookings_among = format!("SELECT count(*) AS n FROM appointments WHERE id IN ({list})");
    let expected_bookings = booked.len() as i64;
    assert_eq!(count(&edge_url, &bookings_among).await, expected_bookings);
    assert_eq!(
        count(&cloud_url, &bookings_among).await,
        expected_bookings,
        "no booking lost"
    );
    for url in [&edge_url, &cloud_url] {
        let kind = if *url == edge_url {
            "outbox"
        } else {
            "applied_mutations"
        };
        assert_eq!(
            count(
                url,
                &format!("SELECT count(*) AS n FROM {kind} WHERE kind = 'appointment.create'")
            )
            .await,
            expected_bookings,
            "one {kind} row per booking, none the desk was not told about"
        );
    }
    eprintln!(
        "{} writes and {} bookings acknowledged across {cycle} SIGKILLs of the gateway and {cloud_kills} of the cloud; \
         all in the cloud exactly once",
        acknowledged.len(),
        booked.len()
    );
}
