//! Dependencies failing under tablet load (issue 9, items 2 and 7), with the real binaries: the cloud
//! down, slow, answering 500 or 429 with `Retry-After`, or accepting part of a batch; Redis killed;
//! the gateway's PostgreSQL stopped or read-only; the gateway stopped with SIGTERM 20 times. For
//! each fault the tablets' p99 latency and error rate during it are printed as
//! `fault: <name> requests=<n> errors=<n> p99_ms=<x>` (copied into `docs/reliability.md`), the
//! expected behaviour is asserted, and once things recover every acknowledged write is checked to
//! have reached the cloud exactly once.
//!
//! Each test has its own processes and, where it breaks them, its own dependencies: a private
//! `redis-server` killed by its pid, a private PostgreSQL cluster (the shared servers on 5432 and
//! 6379 are never touched). The HTTP faults come from the fake upstream of `fake_upstream.rs`.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_tests::cluster::{PgCluster, PgDir, free_port};
use labedge_tests::db::{collections_among, count_at as count};
use labedge_tests::fake_upstream::{Behaviour, FakeUpstream};
use labedge_tests::fixtures::TestPki;
use labedge_tests::long_run;
use labedge_tests::stack::Stack;
use labedge_tests::tablet::{self, Figures, Load, Op, Outcome, Sample, Visit};
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// The ids `sql` selects (as `id`) in the database at `url`.
async fn ids_at(url: &str, sql: &str) -> HashSet<Uuid> {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    let rows: Vec<Id> = diesel::sql_query(sql).load(&mut conn).await.expect(sql);
    rows.into_iter().map(|row| row.id).collect()
}

#[derive(diesel::QueryableByName)]
struct Sent {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    mutation_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    entity_key: String,
}

/// How long each fault lasts: a few seconds in CI, longer in the long run.
fn fault_length() -> Duration {
    if long_run() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(6)
    }
}

/// A lab's gateway (real binary) beside the real cloud API, with a logged-in nurse's tablet: the
/// stack's fields and methods are the lab's.
struct Lab {
    stack: Stack,
    token: String,
    visits: Vec<Visit>,
}

impl std::ops::Deref for Lab {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl std::ops::DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }
}

impl Lab {
    /// Seeds the cloud, provisions and starts the gateway on `edge_url` (a fresh database of the
    /// shared server when `None`) with extra environment `env`, waits for its bootstrap and logs a
    /// nurse in on an enrolled tablet.
    async fn start(edge_url: Option<String>, env: &[(&str, &str)]) -> Self {
        let mut builder = Stack::builder();
        if let Some(url) = &edge_url {
            builder = builder.edge_database(url);
        }
        for (key, value) in env {
            builder = builder.gateway_env(key, value);
        }
        let stack = builder.start().await;
        let admin = stack.admin_session().await;
        let token = tablet::enroll_and_login(
            &stack.client,
            &stack.gateway_url,
            &admin,
            stack.lab.logins.nurse.as_deref().unwrap(),
        )
        .await;
        let visits = tablet::visits_at(&stack.edge_url).await;
        assert!(visits.len() >= 20, "the lab has visits to record");
        Self { stack, token, visits }
    }

    /// A load of about 50 requests a second (5 tablets, one request each every 100 ms), every
    /// second one a write.
    fn tablets(&self) -> Load {
        Load::start(
            self.client.clone(),
            self.gateway_url.clone(),
            self.token.clone(),
            self.visits.clone(),
            5,
            Duration::from_millis(100),
            2,
        )
    }

    /// Stops the gateway with SIGTERM and starts it with `config` and extra environment `env`.
    async fn restart_gateway(&mut self, config: &str, env: &[(&str, &str)]) {
        self.gateway.signal("TERM");
        assert!(
            self.gateway.wait_exit(Duration::from_secs(30)).await.is_some(),
            "the gateway stops on SIGTERM"
        );
        self.stack.gateway = self.stack.spawn_gateway(config, env);
        wait_ready(&self.client, &self.gateway_url).await;
    }

    /// Waits until the outbox is empty (at most `limit`).
    async fn drained(&self, limit: Duration) {
        let started = Instant::now();
        while count(&self.edge_url, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await > 0 {
            assert!(
                started.elapsed() < limit,
                "the outbox did not drain in {limit:?}:\n{}",
                self.gateway
                    .output()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the outbox entries of these collections are all sent (at most `limit`), while
    /// the load may go on.
    async fn sent(&self, ids: &[Uuid], limit: Duration) {
        let keys = ids
            .iter()
            .map(|id| format!("'collection:{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("SELECT count(*) AS n FROM outbox WHERE entity_key IN ({keys}) AND sent_at IS NULL");
        let started = Instant::now();
        while count(&self.edge_url, &sql).await > 0 {
            assert!(started.elapsed() < limit, "not all sent in {limit:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asserts that each acknowledged collection was recorded once at the gateway and is in the
    /// cloud exactly once, and that the cloud has nothing else.
    async fn all_in_the_cloud_once(&self, acknowledged: &[Uuid]) {
        let among = collections_among(acknowledged);
        let n = i64::try_from(acknowledged.len()).unwrap();
        let edge = &self.edge_url;
        let cloud = &self.cloud_url;
        assert_eq!(
            count(edge, &among).await,
            n,
            "every acknowledged write is at the gateway"
        );
        assert_eq!(count(cloud, &among).await, n, "none lost");
        assert_eq!(
            count(cloud, "SELECT count(*) AS n FROM collections").await,
            count(edge, "SELECT count(*) AS n FROM collections").await,
            "the cloud has the gateway's collections, no more"
        );
        // Each mutation applied once: what the gateway saw acknowledged is applied, and nothing
        // is applied that the gateway did not queue. Read in that order, so that an entry queued
        // meanwhile (an audit checkpoint signed after the drain) cannot make either side differ.
        let sent = ids_at(edge, "SELECT mutation_id AS id FROM outbox WHERE sent_at IS NOT NULL").await;
        let applied = ids_at(cloud, "SELECT mutation_id AS id FROM applied_mutations").await;
        let queued = ids_at(edge, "SELECT mutation_id AS id FROM outbox").await;
        assert!(
            sent.is_subset(&applied),
            "acknowledged but not applied: {:?}",
            sent.difference(&applied).collect::<Vec<_>>()
        );
        assert!(
            applied.is_subset(&queued),
            "applied but never queued: {:?}",
            applied.difference(&queued).collect::<Vec<_>>()
        );
    }
}

/// Waits until `url/readyz` answers 200 (at most 30 s).
async fn wait_ready(client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    while !client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the load through a fault of `length`, prints its figures line and returns the samples sent
/// during it.
async fn through(load: &Load, name: &str, length: Duration) -> (Figures, Vec<Sample>) {
    let from = Instant::now();
    tokio::time::sleep(length).await;
    let samples = load.window(from, Instant::now());
    let figures = Figures::of(&samples);
    eprintln!("{}", figures.line(name));
    (figures, samples)
}

fn of(samples: &[Sample], op: Op) -> Vec<Sample> {
    samples.iter().filter(|s| s.op == op).cloned().collect()
}

// ------------------------------------------------------------------------------------------------
// The cloud.

/// The relay runs beside the tablets' requests, never in them: whatever the cloud does, a write is
/// acknowledged once it is committed at the gateway, and a read is served from the gateway's data.
/// Figures: during each fault, errors 0 and a p99 of a local write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tablets_do_not_feel_the_cloud_down_slow_failing_throttling_or_half_accepting() {
    let mut lab = Lab::start(None, &[]).await;
    let length = fault_length();
    let load = lab.tablets();
    let (baseline, _) = through(&load, "none (baseline, cloud online)", Duration::from_secs(3)).await;
    assert_eq!(baseline.errors, 0);

    // The cloud down (killed: connections refused), then back.
    lab.api.signal("KILL");
    assert!(lab.api.wait_exit(Duration::from_secs(10)).await.is_some());
    let (down, _) = through(&load, "cloud down", length).await;
    lab.api = lab.spawn_api();
    tablet::wait_healthy(&lab.client, &lab.api_url).await;
    // Backoff (at most 30 s) and the circuit's rest bound the time to drain.
    let before_fake = load.acknowledged();
    lab.sent(&before_fake, Duration::from_secs(90)).await;
    let among = collections_among(&before_fake);
    assert_eq!(
        count(&lab.cloud_url, &among).await,
        i64::try_from(before_fake.len()).unwrap(),
        "what was acknowledged while the cloud was down reached it"
    );

    // The HTTP faults come from the fake upstream, with the cloud's certificate authority: the
    // gateway is restarted towards it (its lab's data is already there; the fake has no change
    // feed, so the sync is off). The slow fault is 30 s long in the long run, against the default
    // 10 s upstream request timeout; in CI, the timeout is lowered to 2 s so that a fault of a few
    // seconds (5 s answers) still outlasts it: what matters is that an answer slower than the
    // timeout is a failure of the upstream, not of the tablets.
    let pki = TestPki::new(&lab.dir.path().join("pki"));
    let fake = FakeUpstream::start(&pki, "fake").await;
    let config = std::fs::read_to_string(&lab.gateway_config)
        .unwrap()
        .replace(&lab.api_url, &fake.url());
    let fake_config = lab.gateway_config_path().with_file_name("towards-fake.toml");
    std::fs::write(&fake_config, config).unwrap();
    let timeout_ms = if long_run() { "10000" } else { "2000" };
    let slow = if long_run() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    };
    lab.restart_gateway(
        fake_config.to_str().unwrap(),
        &[
            ("LABEDGE_GATEWAY_SYNC__ENABLED", "false"),
            ("LABEDGE_GATEWAY_UPSTREAM__REQUEST_TIMEOUT_MS", timeout_ms),
        ],
    )
    .await;
    let switched = Instant::now();

    // 429 first and a half-rejected batch next (neither is a failure of the upstream), then the
    // slow answers and the 500s (failures: the circuit rests the upstream), so that each fault
    // meets the relay trying.
    let mut figures = vec![("baseline", baseline), ("down", down)];
    for (name, behaviour) in [
        ("cloud answers 429 Retry-After: 2", Behaviour::Status(429, Some(2))),
        ("cloud accepts half of each batch", Behaviour::RejectOdd),
        (
            if long_run() {
                "cloud slow (30 s answers, 10 s timeout)"
            } else {
                "cloud slow (5 s answers, 2 s timeout)"
            },
            Behaviour::Slow(slow),
        ),
        ("cloud answers 500", Behaviour::Status(500, None)),
    ] {
        let batches_before = fake.state.lock().unwrap().batches.len();
        fake.set(behaviour.clone());
        let (f, _) = through(&load, name, length).await;
        // After the slow answers the circuit may rest the upstream for up to its longest backoff
        // (15 s plus jitter), longer than a phase on a loaded machine: wait for the relay's next try
        // rather than lose the fault it must meet.
        let rest = Instant::now() + Duration::from_secs(20);
        while fake.state.lock().unwrap().batches.len() == batches_before && Instant::now() < rest {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let batches = fake.state.lock().unwrap().batches.len() - batches_before;
        assert!(batches > 0, "{name}: the relay met the fault ({batches} batches)");
        figures.push((name, f));
    }
    fake.set(Behaviour::Accept);
    let (_, acknowledged) = load.stop().await;
    lab.drained(Duration::from_secs(90)).await;

    for (name, f) in &figures {
        assert_eq!(f.errors, 0, "{name}: no tablet request failed");
        assert!(f.requests > 0, "{name}: the load ran");
        // A local commit, whatever the upstream does; generous for two shared cores.
        assert!(f.p99_ms < 2_000.0, "{name}: p99 {} ms", f.p99_ms);
    }

    // Nothing acknowledged lost: before the switch, in the cloud once; after it, applied by the
    // fake once, or (rejected by it) kept in the dead letters for the lab admin.
    let (applied, twice) = fake.applied();
    assert!(applied > 0);
    assert!(!twice, "no mutation applied twice by the fake");
    let mut conn = AsyncPgConnection::establish(&lab.edge_url).await.unwrap();
    let sent: Vec<Sent> = diesel::sql_query(
        "SELECT mutation_id, entity_key FROM outbox WHERE kind = 'collection.create' AND sent_at IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Dead {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        mutation_id: Uuid,
    }
    let dead: HashSet<Uuid> = diesel::sql_query("SELECT mutation_id FROM dead_letters")
        .load::<Dead>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.mutation_id)
        .collect();
    assert!(!dead.is_empty(), "the half-rejected batches left dead letters");
    let fake_applied: HashSet<Uuid> = fake.state.lock().unwrap().applied.keys().copied().collect();
    let sent_by_key: std::collections::HashMap<String, Uuid> =
        sent.into_iter().map(|s| (s.entity_key, s.mutation_id)).collect();
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    // The real cloud got what was sent before the switch (its ids are unique: no collection twice).
    let in_cloud: HashSet<Uuid> = diesel::sql_query("SELECT id FROM collections")
        .load::<Id>(&mut AsyncPgConnection::establish(&lab.cloud_url).await.unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(before_fake.iter().all(|id| in_cloud.contains(id)));
    let mut after = 0;
    for id in &acknowledged {
        let mutation = sent_by_key
            .get(&format!("collection:{id}"))
            .unwrap_or_else(|| panic!("collection {id} acknowledged but never sent"));
        let upstream = fake_applied.contains(mutation) || dead.contains(mutation);
        assert!(
            in_cloud.contains(id) != upstream,
            "collection {id}: in the cloud, or applied by the fake or kept as a dead letter, one of them"
        );
        if upstream {
            after += 1;
        }
    }
    assert!(after > 0);
    eprintln!(
        "{} writes acknowledged ({} before the fake, {after} after, {} dead letters); {:?} on the fake",
        acknowledged.len(),
        before_fake.len(),
        dead.len(),
        switched.elapsed()
    );
    fake.stop().await;
}

// ------------------------------------------------------------------------------------------------
// Redis.

/// A `redis-server` of the test's own on a free port, without persistence, killed by its pid.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn keys(&self) -> usize {
        let mut conn = redis::Client::open(self.url()).unwrap().get_connection().unwrap();
        redis::cmd("DBSIZE").query::<usize>(&mut conn).unwrap()
    }

    /// SIGKILL, by its own pid.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Redis is a cache: killed during the load, reads are served from PostgreSQL and writes go on; when
/// it returns, the gateway uses it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_served_and_writes_acknowledged_while_redis_is_down() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let url = redis.url();
    let lab = Lab::start(None, &[("LABEDGE_GATEWAY_REDIS__URL", &url)]).await;
    let length = fault_length();
    let load = lab.tablets();
    let (baseline, _) = through(&load, "none (baseline, Redis up)", Duration::from_secs(3)).await;
    assert_eq!(baseline.errors, 0);
    assert!(redis.keys() > 0, "the gateway uses this Redis (reads are cached)");

    redis.kill();
    let (down, samples) = through(&load, "Redis killed", length).await;
    let reads = of(&samples, Op::Read);
    let writes = of(&samples, Op::Write);
    assert!(!reads.is_empty() && !writes.is_empty());
    assert!(
        reads.iter().all(|s| s.outcome == Outcome::Status(200, false)),
        "reads served from PostgreSQL: {:?}",
        reads.iter().find(|s| !s.outcome.is_success())
    );
    assert!(
        writes.iter().all(|s| s.outcome.is_success()),
        "writes acknowledged: {:?}",
        writes.iter().find(|s| !s.outcome.is_success())
    );
    eprintln!("{}", Figures::of(&reads).line("Redis killed (reads)"));
    assert_eq!(down.errors, 0);

    // Back on the same port: the gateway reconnects by itself and caches again.
    let mut redis = PrivateRedis::start(port);
    let (back, _) = through(&load, "Redis back", Duration::from_secs(4)).await;
    assert_eq!(back.errors, 0);
    let started = Instant::now();
    while redis.keys() == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the gateway caches again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, acknowledged) = load.stop().await;
    lab.drained(Duration::from_secs(60)).await;
    lab.all_in_the_cloud_once(&acknowledged).await;
    redis.kill();
}

// ------------------------------------------------------------------------------------------------
// The gateway's PostgreSQL.

/// With its database stopped (an immediate stop: a crash) or read-only, the gateway cannot make a
/// write durable: every write gets 503 with `Retry-After`, never a 2xx, and the tablets' retries
/// (same key) are acknowledged once it is back. Nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_get_503_never_2xx_while_the_gateways_postgresql_is_stopped_or_read_only() {
    let pg_dir = PgDir::new();
    let cluster = PgCluster::init(pg_dir.path(), "edge", "");
    cluster.psql("postgres", "CREATE DATABASE edge");
    let lab = Lab::start(
        Some(cluster.url("edge")),
        // Fail fast when the database is gone, rather than hold the tablet for the default timeouts.
        &[
            ("LABEDGE_GATEWAY_DATABASE__ACQUIRE_TIMEOUT_MS", "1000"),
            ("LABEDGE_GATEWAY_DATABASE__CONNECT_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let length = fault_length();
    let load = lab.tablets();
    let (baseline, _) = through(&load, "none (baseline, PostgreSQL up)", Duration::from_secs(3)).await;
    assert_eq!(baseline.errors, 0);

    // Stopped. `pg_ctl -w stop` returns once the server is down: from then on, no write may be
    // acknowledged.
    cluster.stop("immediate");
    let (stopped, samples) = through(&load, "gateway PostgreSQL stopped", length).await;
    let writes = of(&samples, Op::Write);
    assert!(!writes.is_empty());
    for s in &writes {
        assert_eq!(
            s.outcome,
            Outcome::Status(503, true),
            "a write with the database stopped gets 503 + Retry-After"
        );
    }
    reads_refused_cleanly(&samples, "gateway PostgreSQL stopped (reads)");
    assert!(stopped.errors >= writes.len());

    // Back: the retried writes go through.
    cluster.start();
    let before = load.acknowledged().len();
    let started = Instant::now();
    while load.acknowledged().len() < before + 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "writes acknowledged again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Read-only: new transactions of every session (the gateway's pooled ones too, at the reload).
    cluster.psql("postgres", "ALTER SYSTEM SET default_transaction_read_only = on");
    cluster.psql("postgres", "SELECT pg_reload_conf()");
    // A write whose transaction began before the reload may still commit: settle first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (read_only, samples) = through(&load, "gateway PostgreSQL read-only", length).await;
    let writes = of(&samples, Op::Write);
    assert!(!writes.is_empty());
    for s in &writes {
        assert_eq!(
            s.outcome,
            Outcome::Status(503, true),
            "a write with the database read-only gets 503 + Retry-After"
        );
    }
    reads_refused_cleanly(&samples, "gateway PostgreSQL read-only (reads)");
    assert!(read_only.errors >= writes.len());
    cluster.psql("postgres", "ALTER SYSTEM RESET default_transaction_read_only");
    cluster.psql("postgres", "SELECT pg_reload_conf()");

    let (_, acknowledged) = load.stop().await;
    lab.drained(Duration::from_secs(60)).await;
    lab.all_in_the_cloud_once(&acknowledged).await;
    // The relay's own failures while the database was away did not lose or double anything either.
    assert_eq!(count(&lab.edge_url, "SELECT count(*) AS n FROM dead_letters").await, 0);
}

/// Prints the figures of the reads in `samples` with the answers they got; a read that cannot be
/// served (patient data is read only with its audit record written) is a 503 to retry, never
/// another failure.
fn reads_refused_cleanly(samples: &[Sample], name: &str) {
    let reads = of(samples, Op::Read);
    let mut answers: Vec<String> = reads.iter().map(|s| format!("{:?}", s.outcome)).collect();
    answers.sort();
    answers.dedup();
    eprintln!("{} answers={answers:?}", Figures::of(&reads).line(name));
    for s in &reads {
        assert!(
            s.outcome.is_success() || s.outcome.is_retryable(),
            "{name}: a read gets its data or a 503 with Retry-After: {:?}",
            s.outcome
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Graceful restart.

/// What `/readyz` said at a moment.
#[derive(Clone, Debug, PartialEq)]
enum Said {
    Ready,
    /// 503 naming the shutdown.
    Stopping,
    /// 503 for another reason.
    NotReady,
    Refused,
    Other(String),
}

/// SIGTERM under load, 20 times: `/readyz` turns 503 first while requests are still served, then the
/// listener closes, in-flight requests finish, the gateway exits cleanly; the tablets see only
/// refused connections (or 503s), which they retry, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_first_and_loses_nothing() {
    // One second of drain is enough for the poller here (every 25 ms); production keeps the default.
    let mut lab = Lab::start(None, &[("LABEDGE_GATEWAY_SHUTDOWN__DRAIN_DELAY_MS", "1000")]).await;
    let cycles = if long_run() { 100 } else { 20 };
    let load = lab.tablets();

    // The watcher: a fresh connection for every poll, as a health-checking proxy does.
    let watcher = reqwest::Client::builder()
        .tls_backend_preconfigured(
            labedge_service::tls::client_config(&lab.dir.path().join("pki/ca.pem"), None).unwrap(),
        )
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, Said)>::new()));
    let polling = {
        let seen = std::sync::Arc::clone(&seen);
        let url = format!("{}/readyz", lab.gateway_url);
        tokio::spawn(async move {
            loop {
                let at = Instant::now();
                let said = match watcher.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Said::Ready,
                    Ok(r) => {
                        let body = r.text().await.unwrap_or_default();
                        if body.contains("\"shutdown\"") {
                            Said::Stopping
                        } else {
                            Said::NotReady
                        }
                    }
                    Err(e) if e.is_connect() => Said::Refused,
                    Err(e) => Said::Other(format!("{e:?}")),
                };
                seen.lock().unwrap().push((at, said));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let started = Instant::now();
    let mut moments = Vec::new();
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let term = Instant::now();
        lab.gateway.signal("TERM");
        let status = lab.gateway.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "cycle {cycle}: a clean exit on SIGTERM ({status:?}):\n{}",
            lab.gateway.output()
        );
        let exited = Instant::now();
        moments.push((term, exited));

        // Readiness went false before anything was refused, and while the gateway still answered.
        let after: Vec<(Instant, Said)> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= term && *at <= exited)
            .cloned()
            .collect();
        let first_stopping = after.iter().position(|(_, s)| *s == Said::Stopping);
        let first_refused = after.iter().position(|(_, s)| *s == Said::Refused);
        assert!(
            first_stopping.is_some(),
            "cycle {cycle}: /readyz said stopping before the exit: {after:?}"
        );
        assert!(
            after[..first_stopping.unwrap()].iter().all(|(_, s)| *s == Said::Ready),
            "cycle {cycle}: ready until it said stopping: {after:?}"
        );
        if let Some(refused) = first_refused {
            assert!(
                refused > first_stopping.unwrap(),
                "cycle {cycle}: not ready before refusing"
            );
        }
        lab.gateway = lab.spawn_gateway(&lab.gateway_config, &[]);
        wait_ready(&lab.client, &lab.gateway_url).await;
    }
    let elapsed = started.elapsed();
    polling.abort();
    let (samples, acknowledged) = load.stop().await;

    // Only retryable failures: a refused connection, or a 503 with Retry-After; never a connection
    // broken mid-request, never another status.
    let failures: Vec<&Sample> = samples.iter().filter(|s| !s.outcome.is_success()).collect();
    let unretryable: Vec<&&Sample> = failures.iter().filter(|s| !s.outcome.is_retryable()).collect();
    let figures = Figures::of(&samples);
    eprintln!(
        "{} ({} refused, {} other failures)",
        figures.line(&format!("{cycles} SIGTERMs under ~50 req/s")),
        failures.iter().filter(|s| s.outcome == Outcome::Refused).count(),
        unretryable.len()
    );
    // Where each unretryable failure fell: (since the SIGTERM, since the exit) of the last stop.
    let when: Vec<(Duration, Duration)> = unretryable
        .iter()
        .filter_map(|s| {
            moments
                .iter()
                .rev()
                .find(|(term, _)| *term <= s.at)
                .map(|(term, exited)| (s.at - *term, s.at.saturating_duration_since(*exited)))
        })
        .collect();
    assert!(
        unretryable.is_empty(),
        "only retryable errors: {:?} at {when:?}",
        unretryable.iter().take(5).collect::<Vec<_>>()
    );
    let rate = samples.len() as f64 / elapsed.as_secs_f64();
    assert!(rate > 30.0, "the load ran at about 50 requests a second ({rate:.1}/s)");

    lab.drained(Duration::from_secs(60)).await;
    lab.all_in_the_cloud_once(&acknowledged).await;
    eprintln!(
        "{cycles} SIGTERMs in {elapsed:?}: {} requests, {} writes acknowledged, all in the cloud once",
        samples.len(),
        acknowledged.len()
    );
}
