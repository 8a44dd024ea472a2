//! `labedge-bench`: LabEdge measured against the limits of this machine and a real sync server, each
//! benchmark run several times with a bounded duration, alternating with its reference where it has
//! one. `deploy/bench.sh` builds everything in release mode, installs the tools and runs this; see
//! `docs/performance.md` for the figures and what limits them.
//!
//! Everything runs on 127.0.0.1: a cloud API on a seeded lab network, the lab's gateway bootstrapped
//! from it (a second process of the same gateway serves plain HTTP), nginx, pouchdb-server, wrk and
//! node. Databases are created for the run (`labedge_bench_<pid>_*`) and dropped at the end, Redis
//! keys live under `labedge:bench:<pid>:` and are deleted, and every process is stopped by its pid.
//!
//! ```text
//! labedge-bench [--smoke] [--out DIR] [--only read,rounds,drain,pouch,write,desk,fhir] [--runs N]
//!               [--duration SECONDS] [--patients N]
//! ```

mod bootstrap;
mod data;
mod desk;
mod drain;
mod fhir;
mod perf;
mod procs;
mod reads;
mod report;
mod rounds;
mod setup;
mod writes;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel_async::SimpleAsyncConnection;
use labedge_tests::fixtures::TestPki;
use labedge_tests::stack::{ApiFile, provision_args, upstream};
use report::{Goal, Report, Section, Target, target};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::data::{Author, Databases, connect, scalar, texts};
use crate::procs::{Proc, free_port, wait_http};
use crate::wrk::VisitIds;

/// Command-line options.
#[derive(Clone, Debug)]
struct Opts {
    smoke: bool,
    out: PathBuf,
    only: Option<Vec<String>>,
    runs: Option<usize>,
    duration_s: Option<u64>,
    patients: Option<u32>,
    root: PathBuf,
    command: String,
}

impl Opts {
    fn parse() -> anyhow::Result<Self> {
        let root = std::env::var_os("LABEDGE_BENCH_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
        let root_default = root.join("target/bench");
        let mut opts = Self {
            smoke: false,
            out: root_default.clone(),
            only: None,
            runs: None,
            duration_s: None,
            patients: None,
            command: std::env::var("LABEDGE_BENCH_COMMAND").unwrap_or_else(|_| "labedge-bench".into()),
            root,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--smoke" => {
                    opts.smoke = true;
                    // The smoke never overwrites the full benchmark's report.
                    if opts.out == root_default {
                        opts.out = root_default.join("smoke");
                    }
                }
                "--out" => opts.out = PathBuf::from(value("--out")?),
                "--only" => opts.only = Some(value("--only")?.split(',').map(str::to_owned).collect()),
                "--runs" => opts.runs = Some(value("--runs")?.parse()?),
                "--duration" => opts.duration_s = Some(value("--duration")?.parse()?),
                "--patients" => opts.patients = Some(value("--patients")?.parse()?),
                "-h" | "--help" => {
                    eprintln!(
                        "labedge-bench [--smoke] [--out DIR] [--only read,rounds,drain,pouch,write,desk,fhir] [--runs N] \
                         [--duration SECONDS] [--patients N]\n(run it through deploy/bench.sh, which builds and installs what it needs)"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (see --help)"),
            }
        }
        Ok(opts)
    }

    fn wants(&self, section: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|s| s == section))
    }
}

/// Sizes and repetitions.
#[derive(Clone, Debug)]
struct Sizes {
    /// Patients of the seeded network (one proximity lab gets a third of them).
    patients: u32,
    /// Runs of each wrk benchmark.
    runs: usize,
    /// Runs of the long ones (bootstrap, backlog drain, PouchDB replication).
    heavy_runs: usize,
    /// One wrk run.
    duration: Duration,
    /// Warm-up before the first run of each server.
    warmup: Duration,
    /// Mutations queued while the cloud is down.
    backlog: usize,
    /// How long the cloud stays down (from its stop to its start).
    outage: Duration,
    /// Gives up waiting for a bootstrap or a drain after this long.
    patience: Duration,
}

const READ_CONNECTIONS: u32 = 64;
const WRITE_CONNECTIONS: [u32; 2] = [16, 64];
const ROUND_CONNECTIONS: u32 = 8;
const ROUND_VISITS: i64 = 30;
const RELAY_BATCH: u32 = 500;
const DEMO_PASSWORD: &str = "labedge-admin";

impl Sizes {
    fn of(opts: &Opts) -> Self {
        let mut sizes = if opts.smoke {
            Self {
                patients: 1_500,
                runs: 1,
                heavy_runs: 1,
                duration: Duration::from_secs(2),
                warmup: Duration::from_secs(1),
                backlog: 2_000,
                outage: Duration::from_secs(2),
                patience: Duration::from_secs(120),
            }
        } else {
            Self {
                // A third of them at the proximity lab, of which about three quarters have a visit
                // or an open prescription in the sync window: about 100,000 patients to bootstrap.
                patients: 400_000,
                runs: 5,
                heavy_runs: 3,
                duration: Duration::from_secs(10),
                warmup: Duration::from_secs(3),
                backlog: 50_000,
                outage: Duration::from_secs(15),
                patience: Duration::from_secs(600),
            }
        };
        if let Some(runs) = opts.runs {
            sizes.runs = runs.max(1);
            sizes.heavy_runs = runs.clamp(1, 3);
        }
        if let Some(d) = opts.duration_s {
            sizes.duration = Duration::from_secs(d.max(1));
        }
        if let Some(p) = opts.patients {
            sizes.patients = p;
        }
        sizes
    }
}

fn say(text: &str) {
    eprintln!("\x1b[1;34m==>\x1b[0m {text}");
}

/// The lab under test.
#[derive(Clone, Debug, Default)]
struct Lab {
    code: String,
    id: Uuid,
    admin: String,
    nurse: String,
    sampler: String,
}

/// A tablet: an enrolled device and the staff member who logs in on it.
#[derive(Clone, Debug)]
struct Tablet {
    device_id: String,
    secret: String,
    login: String,
}

/// Everything a run holds.
#[derive(Debug)]
struct Bench {
    opts: Opts,
    sizes: Sizes,
    work: PathBuf,
    bins: PathBuf,
    dbs: Databases,
    redis_prefix: String,
    client: Option<reqwest::Client>,
    cloud_db: String,
    edge_db: String,
    api_toml: PathBuf,
    api_port: u16,
    gw_toml: PathBuf,
    gw_dir: PathBuf,
    lab: Lab,
    round_date: String,
    cloud: Option<Proc>,
    cloud_starts: u32,
    gateway: Option<Proc>,
    plain: Option<Proc>,
    gw_url: String,
    plain_url: String,
    nurse: Option<Tablet>,
    sampler: Option<Tablet>,
    nginx: Option<Proc>,
    nginx_ports: (u16, u16),
    pouch: Option<Proc>,
    pouch_port: u16,
    patient_id: String,
    patient_bytes: usize,
    /// The backlog's mutations of the first drain run, for PouchDB.
    documents: Option<PathBuf>,
    /// Our drain rates (mutations/s), for the PouchDB ratio.
    drain_rates: Vec<f64>,
    /// Gateway peak RSS per benchmark, MiB.
    memory: Vec<(String, Vec<f64>)>,
    targets: Vec<Target>,
    settings: Vec<(String, String)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("labedge-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match Box::pin(run(opts)).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("labedge-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: Opts) -> anyhow::Result<bool> {
    labedge_service::tls::install_crypto_provider();
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let sizes = Sizes::of(&opts);
    let pg = std::env::var("LABEDGE_PG").unwrap_or_else(|_| "postgres://labedge:labedge@127.0.0.1:5432".into());
    let work = opts.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let work = work.canonicalize()?;
    let bins = std::env::current_exe()?
        .parent()
        .context("the benchmark's folder")?
        .to_owned();
    for bin in ["api", "edge-gateway"] {
        if !bins.join(bin).is_file() {
            bail!(
                "{} is missing: build the binaries first (deploy/bench.sh does)",
                bins.join(bin).display()
            );
        }
    }
    let mut bench = Bench {
        sizes,
        work,
        bins,
        dbs: Databases::new(&pg).await?,
        redis_prefix: format!("labedge:bench:{}:", std::process::id()),
        client: None,
        cloud_db: String::new(),
        edge_db: String::new(),
        api_toml: PathBuf::new(),
        api_port: 0,
        gw_toml: PathBuf::new(),
        gw_dir: PathBuf::new(),
        lab: Lab::default(),
        round_date: String::new(),
        cloud: None,
        cloud_starts: 0,
        gateway: None,
        plain: None,
        gw_url: String::new(),
        plain_url: String::new(),
        nurse: None,
        sampler: None,
        nginx: None,
        nginx_ports: (0, 0),
        pouch: None,
        pouch_port: 0,
        patient_id: String::new(),
        patient_bytes: 0,
        documents: None,
        drain_rates: Vec::new(),
        memory: Vec::new(),
        targets: Vec::new(),
        settings: Vec::new(),
        opts,
    };
    let machine = machine(&bench).await;
    let mut sections = Vec::new();
    let outcome = Box::pin(bench.all(&mut sections)).await;
    let mut ok = true;
    if let Err(e) = &outcome {
        ok = false;
        let mut failed = Section::new(
            "setup",
            "Setup",
            "Preparing the cloud, the gateway and the peers.".into(),
        );
        failed.error = Some(format!("{e:#}"));
        sections.push(failed);
    }
    ok &= sections.iter().all(|s| s.error.is_none());
    bench.memory_section(&mut sections);
    bench.stop_all().await;
    bench.clean_redis();
    prune_work(&bench.work);

    let report = Report {
        mode: if bench.opts.smoke { "smoke" } else { "full" }.into(),
        command: bench.opts.command.clone(),
        started_at,
        duration_s: started.elapsed().as_secs_f64(),
        machine,
        settings: bench.settings.clone(),
        targets: bench.targets.clone(),
        sections,
    };
    std::fs::create_dir_all(&bench.opts.out)?;
    let json = bench.opts.out.join("report.json");
    let md = bench.opts.out.join("report.md");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(&md, report.markdown())?;
    say(&format!(
        "report written: {} and {} ({:.0} s)",
        md.display(),
        json.display(),
        started.elapsed().as_secs_f64()
    ));
    for t in &report.targets {
        eprintln!("    {:<10} {:<44} {:<20} {}", t.benchmark, t.what, t.verdict, t.margin);
    }
    Ok(ok)
}

async fn machine(bench: &Bench) -> report::Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let ram_gib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let version = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines().next().unwrap_or_default().trim().to_owned()
            })
            .unwrap_or_else(|| "absent".into())
    };
    let pouch_version = std::fs::read_to_string(bench.node_modules().join("pouchdb-server/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "absent".into());
    let pg_version = match data::connect(&format!("{}/postgres", bench.dbs_server())).await {
        Ok(mut conn) => texts(&mut conn, "SELECT version() AS t")
            .await
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|v| v.split(" on ").next().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        Err(_) => "unknown".into(),
    };
    report::Machine {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        ram_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        load_at_start: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        software: vec![
            ("PostgreSQL".into(), pg_version),
            ("nginx".into(), version("nginx", &["-v"])),
            ("wrk".into(), version("wrk", &["-v"])),
            ("node".into(), version("node", &["--version"])),
            ("pouchdb-server".into(), pouch_version),
        ],
    }
}

impl Bench {
    fn dbs_server(&self) -> String {
        std::env::var("LABEDGE_PG").unwrap_or_else(|_| "postgres://labedge:labedge@127.0.0.1:5432".into())
    }

    fn node_modules(&self) -> PathBuf {
        self.opts.root.join("tests/bench/node_modules")
    }

    fn client(&self) -> anyhow::Result<&reqwest::Client> {
        self.client.as_ref().context("no HTTPS client yet")
    }

    fn check(&self) -> bool {
        !self.opts.smoke
    }

    /// The whole sequence. Setup failures stop it; a benchmark's failure is recorded in its section
    /// and the next one runs.
    async fn all(&mut self, sections: &mut Vec<Section>) -> anyhow::Result<()> {
        Box::pin(self.setup_cloud()).await?;
        let load = LoadAverage::now();
        let result = Box::pin(self.bootstrap()).await;
        sections.push(load.note(Self::guard("bootstrap", result)));
        Box::pin(self.start_gateways()).await?;
        Box::pin(self.start_peers()).await?;
        for id in ["read", "rounds", "drain", "pouch", "write", "desk", "fhir"] {
            if !self.opts.wants(id) || (id == "pouch" && self.documents.is_none()) {
                continue;
            }
            let load = LoadAverage::now();
            // Fhir comes last: its Specimen page reads the collections the write benchmarks relayed.
            let result = match id {
                "read" => Box::pin(self.reads()).await,
                "rounds" => Box::pin(self.rounds()).await,
                "drain" => Box::pin(self.drain()).await,
                "pouch" => Box::pin(self.pouch_replication()).await,
                "write" => Box::pin(self.writes()).await,
                "desk" => Box::pin(self.desk()).await,
                _ => Box::pin(self.fhir()).await,
            };
            sections.push(load.note(Self::guard(id, result)));
        }
        Ok(())
    }

    fn guard(id: &str, result: anyhow::Result<Section>) -> Section {
        match result {
            Ok(section) => section,
            Err(e) => {
                say(&format!("{id} failed: {e:#}"));
                let mut s = Section::new(id, id, String::new());
                s.error = Some(format!("{e:#}"));
                s
            }
        }
    }

    /// Benchmark 7: the gateway's peak RSS in each benchmark.
    fn memory_section(&mut self, sections: &mut Vec<Section>) {
        let mut section = Section::new(
            "memory",
            "7. Gateway memory",
            "Peak resident set (`VmHWM` of /proc/<pid>/status, reset through /proc/<pid>/clear_refs before each run) \
             of the gateway process serving the run, MiB."
                .into(),
        );
        let mut all = Vec::new();
        for (name, values) in &self.memory {
            section.row(name, &[("peak RSS MiB", values.clone())]);
            all.extend(values.iter().copied().filter(|v| v.is_finite()));
        }
        let worst = all
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        if let Some(w) = worst {
            section.notes.push(format!("highest peak over every run: {w:.1} MiB"));
        }
        self.targets.push(target(
            "memory",
            "gateway peak RSS, worst run",
            Goal::Below,
            // Issue 16's floor (issue 8 asked for 100 MiB).
            64.0,
            worst,
            "MiB",
            self.check(),
        ));
        sections.push(section);
    }
}

/// The 1-, 5- and 15-minute load averages, read before a benchmark so that its report says how quiet
/// the machine was at its start and at its end (issue 16: figures from a busy machine are flagged,
/// not silently mixed with quiet ones).
struct LoadAverage(String);

impl LoadAverage {
    fn now() -> Self {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
    }

    fn note(self, mut section: Section) -> Section {
        let end = Self::now();
        section.notes.push(format!(
            "load average (1, 5, 15 min) at its start: {}; at its end: {}",
            self.0, end.0
        ));
        section
    }
}

/// Deletes the bulky leftovers of a run (data files, PouchDB databases, nginx's access log: hundreds
/// of megabytes after a full run); the services' logs and configurations stay for reading.
fn prune_work(work: &Path) {
    for dir in ["pouch-local", "pouchdb-server/db"] {
        let _ = std::fs::remove_dir_all(work.join(dir));
    }
    let _ = std::fs::remove_file(work.join("nginx/access.log"));
    let _ = std::fs::remove_file(work.join("mutations.ndjson"));
    if let Ok(entries) = std::fs::read_dir(work) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "csv") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The `Environment=` settings of a systemd unit of `deploy/systemd` (other than the config path),
/// so that the benchmark runs each service as it is deployed (the gateway's malloc tunable).
fn unit_env(unit: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(unit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !k.ends_with("_CONFIG"))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// Visits (lab appointments with a prescription) to record collections for.
async fn visits(edge: &mut diesel_async::AsyncPgConnection, limit: usize) -> anyhow::Result<Vec<VisitIds>> {
    let rows = texts(
        edge,
        &format!(
            "SELECT id::text || ' ' || patient_id::text || ' ' || prescription_id::text AS t FROM appointments \
             WHERE prescription_id IS NOT NULL AND kind = 'lab' ORDER BY scheduled_at, id LIMIT {limit}"
        ),
    )
    .await?;
    let visits: Vec<VisitIds> = rows
        .iter()
        .filter_map(|r| {
            let mut ids = r.split(' ').filter_map(|x| x.parse().ok());
            Some(VisitIds {
                appointment: ids.next()?,
                patient: ids.next()?,
                prescription: ids.next()?,
            })
        })
        .collect();
    if visits.is_empty() {
        bail!("no visit to record collections for");
    }
    Ok(visits)
}

async fn tube_types(edge: &mut diesel_async::AsyncPgConnection) -> anyhow::Result<(String, String)> {
    let codes = texts(edge, "SELECT code AS t FROM tube_types ORDER BY code LIMIT 2").await?;
    match codes.as_slice() {
        [a, b] => Ok((a.clone(), b.clone())),
        _ => bail!("the catalog has fewer than two tube types"),
    }
}

/// The lab admin's console session (cookie, CSRF token), once the gateway has its lab's data.
async fn admin_session(client: &reqwest::Client, gateway: &str, login: &str) -> anyhow::Result<(String, String)> {
    let started = Instant::now();
    loop {
        let response = client
            .post(format!("{gateway}/admin/v1/login"))
            .json(&serde_json::json!({"login": login, "password": DEMO_PASSWORD}))
            .send()
            .await?;
        if response.status().is_success() {
            let cookie = response
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .context("session cookie")?
                .to_owned();
            let body: serde_json::Value = response.json().await?;
            let csrf = body["csrf_token"].as_str().context("csrf token")?.to_owned();
            return Ok((cookie, csrf));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the lab admin cannot log in: {}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Enrolls a tablet for `login` with a code from the admin's session.
async fn enroll(
    client: &reqwest::Client,
    gateway: &str,
    admin: &(String, String),
    login: &str,
) -> anyhow::Result<Tablet> {
    let code: serde_json::Value = client
        .post(format!("{gateway}/admin/v1/enrollment-codes"))
        .header("cookie", &admin.0)
        .header("x-csrf-token", &admin.1)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let enrolled: serde_json::Value = client
        .post(format!("{gateway}/v1/devices/enroll"))
        .json(&serde_json::json!({"code": code["code"], "label": format!("Bench {login}")}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Tablet {
        device_id: enrolled["device_id"].as_str().context("device id")?.to_owned(),
        secret: enrolled["device_secret"].as_str().context("device secret")?.to_owned(),
        login: login.to_owned(),
    })
}

/// A PIN login on the tablet; the access token.
async fn login(client: &reqwest::Client, gateway: &str, tablet: &Tablet) -> anyhow::Result<String> {
    let tokens: serde_json::Value = client
        .post(format!("{gateway}/v1/auth/login"))
        .json(&serde_json::json!({
            "device_id": tablet.device_id, "device_secret": tablet.secret, "login": tablet.login, "pin": "1234"
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(tokens["access_token"].as_str().context("access token")?.to_owned())
}
