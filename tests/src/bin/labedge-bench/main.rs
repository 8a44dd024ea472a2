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
//! labedge-bench [--smoke] [--out DIR] [--only read,rounds,drain,pouch,write] [--runs N]
//!               [--duration SECONDS] [--patients N]
//! ```

mod data;
mod procs;
mod report;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel_async::SimpleAsyncConnection;
use labedge_tests::fixtures::TestPki;
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
                        "labedge-bench [--smoke] [--out DIR] [--only read,rounds,drain,pouch,write] [--runs N] \
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
        let result = Box::pin(self.bootstrap()).await;
        sections.push(Self::guard("bootstrap", result));
        Box::pin(self.start_gateways()).await?;
        Box::pin(self.start_peers()).await?;
        if self.opts.wants("read") {
            let result = Box::pin(self.reads()).await;
            sections.push(Self::guard("read", result));
        }
        if self.opts.wants("rounds") {
            let result = Box::pin(self.rounds()).await;
            sections.push(Self::guard("rounds", result));
        }
        if self.opts.wants("drain") {
            let result = Box::pin(self.drain()).await;
            sections.push(Self::guard("drain", result));
        }
        if self.opts.wants("pouch") && self.documents.is_some() {
            let result = Box::pin(self.pouch_replication()).await;
            sections.push(Self::guard("pouch", result));
        }
        if self.opts.wants("write") {
            let result = Box::pin(self.writes()).await;
            sections.push(Self::guard("write", result));
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

    async fn tool(&self, program: &Path, args: &[&str], envs: &[(String, String)]) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_remove("LABEDGE_API_CONFIG")
            .env_remove("LABEDGE_GATEWAY_CONFIG");
        for (k, v) in envs {
            command.env(k, v);
        }
        let output = command
            .output()
            .await
            .with_context(|| format!("run {}", program.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            bail!("{} {} failed:\n{text}", program.display(), args.join(" "));
        }
        Ok(text)
    }

    fn api(&self) -> PathBuf {
        self.bins.join("api")
    }

    fn edge_gateway(&self) -> PathBuf {
        self.bins.join("edge-gateway")
    }

    /// The cloud database, the synthetic network, the 30-visit round, the gateway's credential.
    async fn setup_cloud(&mut self) -> anyhow::Result<()> {
        let w = self.work.display().to_string();
        self.cloud_db = self.dbs.create("cloud").await?;
        self.edge_db = self.dbs.create("edge").await?;
        self.api_port = free_port()?;
        self.api_toml = self.work.join("api.toml");
        std::fs::write(
            &self.api_toml,
            format!(
                "# The benchmark's cloud API.\nprofile = \"sandbox\"\n[http]\naddr = \"127.0.0.1:{port}\"\nshutdown_timeout_s = 1\n\
                 tls = {{ cert = \"{w}/api/server.pem\", key = \"{w}/api/server.key\", client_ca = \"{w}/pki/ca.pem\", client_auth = \"optional\" }}\n\
                 [database]\nurl = \"{db}\"\n[pki]\ndir = \"{w}/pki\"\n\
                 [provisioning]\nupstreams = [{{ name = \"cloud\", url = \"https://localhost:{port}\" }}]\n",
                port = self.api_port,
                db = self.cloud_db
            ),
        )?;
        let cfg = self.api_toml.display().to_string();
        self.tool(&self.api(), &["--config", &cfg, "init-pki"], &[]).await?;
        self.tool(&self.api(), &["--config", &cfg, "migrate"], &[]).await?;
        say(&format!(
            "seeding a network of {} patients with one proximity lab (not timed)",
            self.sizes.patients
        ));
        let seeded = Instant::now();
        let summary = self
            .tool(
                &self.api(),
                &[
                    "--config",
                    &cfg,
                    "seed-demo",
                    "--patients",
                    &self.sizes.patients.to_string(),
                    "--proximity-labs",
                    "1",
                ],
                &[],
            )
            .await?;
        std::fs::write(self.work.join("seed.txt"), &summary)?;
        let seed_s = seeded.elapsed().as_secs_f64();

        let mut cloud = connect(&self.cloud_db).await?;
        let first = |rows: Vec<String>, what: &str| rows.into_iter().next().with_context(|| format!("no {what}"));
        let code = first(
            texts(
                &mut cloud,
                "SELECT code AS t FROM labs WHERE kind = 'proximity' ORDER BY code LIMIT 1",
            )
            .await?,
            "proximity lab",
        )?;
        let id = first(
            texts(
                &mut cloud,
                &format!("SELECT id::text AS t FROM labs WHERE code = '{code}'"),
            )
            .await?,
            "lab id",
        )?;
        let login = |role: &str| {
            format!(
                "SELECT s.login AS t FROM staff s JOIN labs l ON l.id = s.lab_id WHERE l.code = '{code}' AND s.role = '{role}' \
                 ORDER BY s.login LIMIT 1"
            )
        };
        self.lab = Lab {
            id: id.parse()?,
            admin: first(texts(&mut cloud, &login("lab_admin")).await?, "lab admin")?,
            nurse: first(texts(&mut cloud, &login("nurse")).await?, "nurse")?,
            sampler: first(texts(&mut cloud, &login("home_sampler")).await?, "home sampler")?,
            code,
        };
        // A round of 30 visits for one home sampler tomorrow (the seeded rounds have 8 to 15): her own
        // visits of that day go to a colleague, and 30 home visits of the lab are copied into her round.
        self.round_date = first(
            texts(
                &mut cloud,
                "SELECT ((now() AT TIME ZONE 'Europe/Paris')::date + 1)::text AS t",
            )
            .await?,
            "date",
        )?;
        let (lab, sampler, day) = (self.lab.id, self.lab.sampler.clone(), self.round_date.clone());
        cloud
            .batch_execute(&format!(
                "UPDATE appointments SET assigned_staff_id = (SELECT id FROM staff WHERE lab_id = '{lab}' AND role = 'home_sampler' \
                   AND login <> '{sampler}' ORDER BY login LIMIT 1), version = version + 1, updated_at = now() \
                 WHERE assigned_staff_id = (SELECT id FROM staff WHERE login = '{sampler}') AND kind = 'home' \
                   AND (scheduled_at AT TIME ZONE 'Europe/Paris')::date = '{day}'; \
                 INSERT INTO appointments (id, lab_id, patient_id, prescription_id, kind, scheduled_at, duration_min, address_line, \
                   postal_code, city, access_notes, assigned_staff_id, round_position, status) \
                 SELECT gen_random_uuid(), a.lab_id, a.patient_id, a.prescription_id, 'home', \
                   (('{day}'::date + time '07:00') AT TIME ZONE 'Europe/Paris') + make_interval(mins => (12 * (a.n - 1))::int), \
                   a.duration_min, a.address_line, a.postal_code, a.city, a.access_notes, \
                   (SELECT id FROM staff WHERE login = '{sampler}'), a.n::smallint, 'scheduled' \
                 FROM (SELECT *, row_number() OVER (ORDER BY scheduled_at DESC, id) AS n FROM appointments \
                       WHERE lab_id = '{lab}' AND kind = 'home' AND prescription_id IS NOT NULL \
                       ORDER BY scheduled_at DESC, id LIMIT {ROUND_VISITS}) a;"
            ))
            .await
            .context("make the 30-visit round")?;
        let round = scalar(
            &mut cloud,
            &format!(
                "SELECT count(*) AS n FROM appointments WHERE assigned_staff_id = (SELECT id FROM staff WHERE login = '{sampler}') \
                 AND kind = 'home' AND (scheduled_at AT TIME ZONE 'Europe/Paris')::date = '{day}'"
            ),
        )
        .await?;
        if round != ROUND_VISITS {
            bail!("the round of {day} has {round} visits, not {ROUND_VISITS}");
        }
        let lab_patients = scalar(
            &mut cloud,
            &format!(
                "SELECT count(DISTINCT patient_id) AS n FROM (SELECT patient_id FROM appointments WHERE lab_id = '{lab}' \
                 UNION ALL SELECT patient_id FROM prescriptions WHERE lab_id = '{lab}') x"
            ),
        )
        .await?;

        self.gw_dir = self.work.join("gateway");
        let gw_port = free_port()?;
        self.tool(
            &self.api(),
            &[
                "--config",
                &cfg,
                "provision-gateway",
                "--lab",
                &self.lab.code,
                "--out",
                &self.gw_dir.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{gw_port}"),
                "--database-url",
                &self.edge_db,
                "--tablet-range",
                "127.0.0.0/8",
            ],
            &[],
        )
        .await?;
        self.gw_toml = self.gw_dir.join("edge-gateway.toml");
        self.client = Some(TestPki::new(&self.work.join("pki")).client_for(None));
        self.start_cloud().await?;

        self.settings = vec![
            ("mode".into(), if self.opts.smoke { "smoke" } else { "full" }.into()),
            (
                "build".into(),
                if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
            ),
            ("seeded patients".into(), self.sizes.patients.to_string()),
            ("seeding (not timed)".into(), format!("{seed_s:.0} s")),
            ("lab".into(), self.lab.code.clone()),
            (
                "patients with a visit or prescription at the lab".into(),
                lab_patients.to_string(),
            ),
            ("runs".into(), self.sizes.runs.to_string()),
            ("long runs".into(), self.sizes.heavy_runs.to_string()),
            ("wrk run".into(), format!("{} s", self.sizes.duration.as_secs())),
            ("backlog".into(), self.sizes.backlog.to_string()),
            ("relay batch".into(), RELAY_BATCH.to_string()),
            (
                "gateway environment (deploy/systemd/labedge-gateway.service)".into(),
                unit_env(&self.opts.root.join("deploy/systemd/labedge-gateway.service"))
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ];
        Ok(())
    }

    async fn start_cloud(&mut self) -> anyhow::Result<()> {
        self.cloud_starts += 1;
        let cfg = self.api_toml.display().to_string();
        let proc = Proc::start(
            &format!("api-{}", self.cloud_starts),
            &self.api(),
            &["--config", &cfg, "serve"],
            &unit_env(&self.opts.root.join("deploy/systemd/labedge-api.service")),
            &self.work,
            None,
        )?;
        let url = format!("https://localhost:{}/healthz", self.api_port);
        self.cloud = Some(proc);
        wait_http(self.client()?, &url, Duration::from_secs(60))
            .await
            .with_context(|| self.cloud.as_ref().map(Proc::tail).unwrap_or_default())
    }

    async fn stop_cloud(&mut self) {
        if let Some(mut cloud) = self.cloud.take() {
            cloud.stop().await;
        }
    }

    /// The gateway's environment: its database, address, Redis prefix, and whether it serves plain
    /// HTTP without sync or relay (the second process of the plain-HTTP comparisons).
    fn gateway_env(&self, db: &str, port: u16, prefix: &str, plain: bool) -> Vec<(String, String)> {
        let mut env = unit_env(&self.opts.root.join("deploy/systemd/labedge-gateway.service"));
        for (k, v) in [
            ("LABEDGE_GATEWAY_DATABASE__URL", db.to_owned()),
            ("LABEDGE_GATEWAY_HTTP__ADDR", format!("127.0.0.1:{port}")),
            ("LABEDGE_GATEWAY_REDIS__KEY_PREFIX", prefix.to_owned()),
            ("LABEDGE_GATEWAY_RELAY__BATCH_SIZE", RELAY_BATCH.to_string()),
        ] {
            env.push((k.into(), v));
        }
        if plain {
            env.push(("LABEDGE_GATEWAY_SYNC__ENABLED".into(), "false".into()));
            env.push(("LABEDGE_GATEWAY_RELAY__ENABLED".into(), "false".into()));
        }
        env
    }

    fn gateway(&self, name: &str, db: &str, port: u16, prefix: &str, plain: bool) -> anyhow::Result<Proc> {
        let cfg = if plain {
            // The provisioned file with its listener's TLS swapped for plain HTTP (sandbox profile).
            let text = std::fs::read_to_string(&self.gw_toml)?;
            let plain_text: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("tls = ") {
                        "plain_http = true"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let path = self.gw_dir.join("edge-gateway-plain.toml");
            std::fs::write(&path, plain_text + "\n")?;
            path
        } else {
            self.gw_toml.clone()
        };
        let cfg = cfg.display().to_string();
        let gateway = self.edge_gateway().display().to_string();
        let mut args: Vec<&str> = vec![&gateway, "--config", &cfg, "serve"];
        // `LABEDGE_BENCH_GATEWAY_WRAP="valgrind --tool=callgrind …"` runs the measured gateway under a
        // profiler (docs/performance.md); the pid stays the gateway's.
        let wrap = std::env::var("LABEDGE_BENCH_GATEWAY_WRAP").unwrap_or_default();
        if name == "gateway" && !wrap.trim().is_empty() {
            let mut wrapped: Vec<&str> = wrap.split_whitespace().collect();
            wrapped.extend(args);
            args = wrapped;
        }
        Proc::start(
            name,
            Path::new(args[0]),
            &args[1..],
            &self.gateway_env(db, port, prefix, plain),
            &self.work,
            None,
        )
    }

    /// With `LABEDGE_BENCH_PERF=<dir>`, profiles a run: the gateway alone (`perf record -e cpu-clock`
    /// with DWARF call graphs, `<dir>/<name>.perf.data`) and the whole machine (frame-pointer call
    /// graphs, `<dir>/<name>.sys.perf.data`), for docs/performance.md. The figures of a profiled run
    /// are lower: do not report them.
    fn perf_start(&self, name: &str) -> Vec<Proc> {
        let pid = self.gateway.as_ref().map(Proc::pid);
        self.perf_start_for(name, pid)
    }

    fn perf_start_for(&self, name: &str, pid: Option<u32>) -> Vec<Proc> {
        let Some(dir) = std::env::var_os("LABEDGE_BENCH_PERF") else {
            return Vec::new();
        };
        let dir = PathBuf::from(dir);
        let mut started = Vec::new();
        let system = dir.join(format!("{name}.sys.perf.data")).display().to_string();
        let mut runs: Vec<(String, Vec<String>)> = vec![(
            format!("perf-{name}-system"),
            ["record", "-e", "cpu-clock", "-F", "99", "-g", "-a", "-o", &system]
                .map(str::to_owned)
                .to_vec(),
        )];
        if let Some(pid) = pid {
            let out = dir.join(format!("{name}.perf.data")).display().to_string();
            let pid = pid.to_string();
            runs.push((
                format!("perf-{name}"),
                [
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "99",
                    "--call-graph",
                    "dwarf,16384",
                    "-p",
                    &pid,
                    "-o",
                    &out,
                ]
                .map(str::to_owned)
                .to_vec(),
            ));
        }
        for (label, args) in runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Ok(proc) = Proc::start(&label, Path::new("perf"), &args, &[], &self.work, None) {
                started.push(proc);
            }
        }
        started
    }

    async fn perf_stop(perf: Vec<Proc>) {
        for mut proc in perf {
            proc.stop_with("INT", Duration::from_secs(60)).await;
        }
    }

    /// Benchmark 4: a new gateway bootstrapping the lab from empty, several times, each into a fresh database.
    async fn bootstrap(&mut self) -> anyhow::Result<Section> {
        say("bootstrap: starting");
        let mut section = Section::new(
            "bootstrap",
            "4. Bootstrap of a new gateway",
            "`edge-gateway serve` started on an empty, migrated database of its own each run; timed from the \
             process start to its `bootstrap done` log line (the whole scope read from the cloud's snapshot \
             routes over mutual TLS and applied). The cloud API and both PostgreSQL databases share the machine."
                .into(),
        );
        let (mut wall, mut own, mut rss, mut rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let cfg = self.gw_toml.display().to_string();
        for run in 0..self.sizes.heavy_runs {
            self.edge_db = self.dbs.create("edge").await?;
            self.tool(
                &self.edge_gateway(),
                &["--config", &cfg, "migrate"],
                &[("LABEDGE_GATEWAY_DATABASE__URL".into(), self.edge_db.clone())],
            )
            .await?;
            let prefix = format!("{}boot{run}:", self.redis_prefix);
            let started = Instant::now();
            let mut gw = self.gateway(
                &format!("gateway-boot-{run}"),
                &self.edge_db,
                free_port()?,
                &prefix,
                false,
            )?;
            let perf = if run == 0 {
                self.perf_start_for("bootstrap", Some(gw.pid()))
            } else {
                Vec::new()
            };
            let line = gw.wait_message("bootstrap done", self.sizes.patience).await?;
            let seconds = started.elapsed().as_secs_f64();
            let peak = gw.peak_rss_mib();
            Self::perf_stop(perf).await;
            gw.stop().await;
            let mut edge = connect(&self.edge_db).await?;
            let mut counts = serde_json::Map::new();
            for table in ["patients", "prescriptions", "prescribed_exams", "appointments", "staff"] {
                counts.insert(
                    table.into(),
                    scalar(&mut edge, &format!("SELECT count(*) AS n FROM {table}"))
                        .await?
                        .into(),
                );
            }
            let patients = counts["patients"].as_i64().unwrap_or_default();
            say(&format!(
                "bootstrap {}/{}: {patients} patients in {seconds:.1} s, peak RSS {:.0} MiB",
                run + 1,
                self.sizes.heavy_runs,
                peak.unwrap_or_default()
            ));
            wall.push(seconds);
            own.push(line["duration_s"].as_f64().unwrap_or(f64::NAN));
            rss.push(peak.unwrap_or(f64::NAN));
            rows.push(patients as f64);
            section.runs.push(serde_json::json!({
                "seconds": seconds, "gateway_reported_s": line["duration_s"], "peak_rss_mib": peak, "rows": counts
            }));
        }
        section.row(
            "bootstrap",
            &[
                ("seconds (start → done)", wall.clone()),
                ("seconds (gateway's own figure)", own),
                ("patients", rows.clone()),
                ("patients/s", rows.iter().zip(&wall).map(|(r, s)| r / s).collect()),
            ],
        );
        if let Some(first) = section.runs.first() {
            section.notes.push(format!("rows bootstrapped: {}", first["rows"]));
        }
        self.memory.push(("bootstrap".into(), rss));
        self.targets.push(target(
            "bootstrap",
            "lab bootstrap, s",
            Goal::Below,
            60.0,
            section.median("bootstrap", "seconds (start → done)"),
            "s",
            self.check(),
        ));
        Ok(section)
    }

    /// The lab's gateway over HTTPS (sync and relay on), a second process of it on plain HTTP on the
    /// same database (sync and relay off), and two tablets: a nurse's and a home sampler's.
    async fn start_gateways(&mut self) -> anyhow::Result<()> {
        let (tls_port, plain_port) = (free_port()?, free_port()?);
        let prefix = format!("{}main:", self.redis_prefix);
        self.gateway = Some(self.gateway("gateway", &self.edge_db, tls_port, &prefix, false)?);
        self.plain = Some(self.gateway("gateway-plain", &self.edge_db, plain_port, &prefix, true)?);
        self.gw_url = format!("https://localhost:{tls_port}");
        self.plain_url = format!("http://127.0.0.1:{plain_port}");
        let client = self.client()?.clone();
        wait_http(&client, &format!("{}/healthz", self.gw_url), Duration::from_secs(60))
            .await
            .with_context(|| self.gateway.as_ref().map(Proc::tail).unwrap_or_default())?;
        wait_http(&client, &format!("{}/healthz", self.plain_url), Duration::from_secs(60))
            .await
            .with_context(|| self.plain.as_ref().map(Proc::tail).unwrap_or_default())?;
        let admin = admin_session(&client, &self.gw_url, &self.lab.admin).await?;
        self.nurse = Some(enroll(&client, &self.gw_url, &admin, &self.lab.nurse).await?);
        self.sampler = Some(enroll(&client, &self.gw_url, &admin, &self.lab.sampler).await?);
        Ok(())
    }

    async fn token(&self, tablet: &Tablet) -> anyhow::Result<String> {
        login(self.client()?, &self.gw_url, tablet).await
    }

    fn nurse(&self) -> anyhow::Result<&Tablet> {
        self.nurse.as_ref().context("no nurse tablet")
    }

    /// nginx serving the patient's response bytes as a static file (HTTPS with the gateway's own
    /// certificate, and plain HTTP), and pouchdb-server holding it as a document.
    async fn start_peers(&mut self) -> anyhow::Result<()> {
        let client = self.client()?.clone();
        let token = self.token(self.nurse()?).await?;
        // A patient whose answer weighs about 1.5 KB, as the issue's document.
        let mut edge = connect(&self.edge_db).await?;
        let candidates = texts(
            &mut edge,
            "SELECT id::text AS t FROM patients WHERE address_line IS NOT NULL AND phone IS NOT NULL ORDER BY id LIMIT 40",
        )
        .await?;
        let mut best: Option<(String, Vec<u8>)> = None;
        for id in candidates {
            let response = client
                .get(format!("{}/v1/patients/{id}", self.gw_url))
                .bearer_auth(&token)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("GET /v1/patients/{id}: {}", response.status());
            }
            let body = response.bytes().await?.to_vec();
            let distance = |b: &[u8]| (b.len() as i64 - 1536).abs();
            if best.as_ref().is_none_or(|(_, b)| distance(&body) < distance(b)) {
                best = Some((id, body));
            }
        }
        let (id, body) = best.context("no patient to read")?;
        self.patient_id = id.clone();
        self.patient_bytes = body.len();

        let nginx_dir = self.work.join("nginx");
        let file = nginx_dir.join(format!("root/v1/patients/{id}"));
        std::fs::create_dir_all(file.parent().context("root")?)?;
        std::fs::create_dir_all(nginx_dir.join("tmp"))?;
        std::fs::write(&file, &body)?;
        self.nginx_ports = (free_port()?, free_port()?);
        let n = nginx_dir.display();
        let w = self.gw_dir.display();
        std::fs::write(
            nginx_dir.join("nginx.conf"),
            format!(
                "# The static-file reference of the read benchmark: the patient's bytes, as the gateway sends them.\n\
                 worker_processes {workers};\ndaemon off;\npid {n}/nginx.pid;\nerror_log {n}/error.log warn;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log {n}/access.log;\n  default_type application/json;\n  sendfile on;\n  tcp_nopush on;\n\
                 \x20 keepalive_requests 1000000;\n  keepalive_timeout 75s;\n\
                 \x20 client_body_temp_path {n}/tmp/body;\n  proxy_temp_path {n}/tmp/proxy;\n  fastcgi_temp_path {n}/tmp/fastcgi;\n\
                 \x20 uwsgi_temp_path {n}/tmp/uwsgi;\n  scgi_temp_path {n}/tmp/scgi;\n\
                 \x20 server {{\n    listen 127.0.0.1:{https} ssl;\n    ssl_certificate {w}/tablet-server.pem;\n\
                 \x20   ssl_certificate_key {w}/tablet-server.key;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    root {n}/root;\n  }}\n\
                 \x20 server {{\n    listen 127.0.0.1:{http};\n    root {n}/root;\n  }}\n}}\n",
                workers = std::thread::available_parallelism().map_or(1, usize::from),
                https = self.nginx_ports.0,
                http = self.nginx_ports.1,
            ),
        )?;
        let conf = nginx_dir.join("nginx.conf").display().to_string();
        let prefix = format!("{n}/");
        let error_log = format!("{n}/error.log");
        self.nginx = Some(Proc::start(
            "nginx",
            Path::new("nginx"),
            &["-p", &prefix, "-e", &error_log, "-c", &conf],
            &[],
            &self.work,
            None,
        )?);
        let nginx_url = format!("http://127.0.0.1:{}/v1/patients/{id}", self.nginx_ports.1);
        wait_http(&client, &nginx_url, Duration::from_secs(20))
            .await
            .with_context(|| self.nginx.as_ref().map(Proc::tail).unwrap_or_default())?;
        let served = client.get(&nginx_url).send().await?.bytes().await?;
        if served.as_ref() != body.as_slice() {
            bail!("nginx does not serve the gateway's bytes");
        }

        // pouchdb-server on LevelDB in the work folder (it writes its config and log to its cwd).
        let pouch_dir = self.work.join("pouchdb-server");
        std::fs::create_dir_all(pouch_dir.join("db"))?;
        self.pouch_port = free_port()?;
        let server = self.node_modules().join("pouchdb-server/bin/pouchdb-server");
        if !server.is_file() {
            bail!(
                "{} is missing: npm ci --omit=optional --prefix tests/bench",
                server.display()
            );
        }
        let port = self.pouch_port.to_string();
        let db_dir = pouch_dir.join("db").display().to_string();
        let config = pouch_dir.join("config.json").display().to_string();
        self.pouch = Some(Proc::start(
            "pouchdb-server",
            Path::new("node"),
            &[
                &server.display().to_string(),
                "--port",
                &port,
                "--host",
                "127.0.0.1",
                "--dir",
                &db_dir,
                "--config",
                &config,
                "--no-stdout-logs",
            ],
            &[],
            &self.work,
            Some(&pouch_dir),
        )?);
        let pouch = format!("http://127.0.0.1:{}", self.pouch_port);
        wait_http(&client, &format!("{pouch}/"), Duration::from_secs(60))
            .await
            .with_context(|| self.pouch.as_ref().map(Proc::tail).unwrap_or_default())?;
        let created = client.put(format!("{pouch}/bench")).send().await?;
        if !created.status().is_success() {
            bail!("pouchdb-server: create the database: {}", created.status());
        }
        let stored = client
            .put(format!("{pouch}/bench/{id}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        if !stored.status().is_success() {
            bail!("pouchdb-server: store the patient: {}", stored.status());
        }
        Ok(())
    }

    fn gateway_peak(&self, plain: bool) -> Option<f64> {
        let gw = if plain { &self.plain } else { &self.gateway };
        gw.as_ref().and_then(Proc::peak_rss_mib)
    }

    fn reset_gateway_peaks(&self) {
        for gw in [&self.gateway, &self.plain].into_iter().flatten() {
            gw.reset_peak();
        }
    }

    /// Benchmarks 1 and 6a: the cached patient read against nginx's static file and pouchdb-server's document,
    /// alternating, same wrk, same connections.
    async fn reads(&mut self) -> anyhow::Result<Section> {
        let id = self.patient_id.clone();
        say("read: starting");
        let mut section = Section::new(
            "read",
            "1 and 6. Cached patient read vs nginx (static file) and pouchdb-server (document)",
            format!(
                "`wrk -t2 -c{READ_CONNECTIONS} -d{}s`, runs alternating server by server, {} runs each after a warm-up. \
                 The gateway answers `GET /v1/patients/{{id}}` with a nurse's bearer token (JWT check, revocation check \
                 and the patient from Redis, the read's audit record committed to PostgreSQL before the answer); nginx \
                 serves the same {} bytes as a static file (HTTPS with the gateway's own certificate, and plain HTTP); \
                 pouchdb-server has no TLS, so it is compared with a second gateway process serving plain HTTP. wrk, \
                 the servers, PostgreSQL and Redis share the 2 cores.",
                self.sizes.duration.as_secs(),
                self.sizes.runs,
                self.patient_bytes
            ),
        );
        let script = wrk::get_script(&self.work)?;
        let servers: Vec<(&str, String, bool)> = vec![
            (
                "gateway https",
                format!("https://127.0.0.1:{}/v1/patients/{id}", self.gw_port()?),
                true,
            ),
            (
                "nginx https",
                format!("https://127.0.0.1:{}/v1/patients/{id}", self.nginx_ports.0),
                false,
            ),
            ("gateway http", format!("{}/v1/patients/{id}", self.plain_url), true),
            (
                "nginx http",
                format!("http://127.0.0.1:{}/v1/patients/{id}", self.nginx_ports.1),
                false,
            ),
            (
                "pouchdb-server http",
                format!("http://127.0.0.1:{}/bench/{id}", self.pouch_port),
                false,
            ),
        ];
        let mut results: Vec<Vec<wrk::WrkRun>> = vec![Vec::new(); servers.len()];
        let (mut rss_tls, mut rss_plain) = (Vec::new(), Vec::new());
        let token = self.token(self.nurse()?).await?;
        for (name, url, _) in &servers {
            say(&format!("read: warming up {name}"));
            let auth = vec![format!("Authorization: Bearer {token}")];
            wrk::run(url, READ_CONNECTIONS, self.sizes.warmup, &script, &auth).await?;
        }
        for run in 0..self.sizes.runs {
            // A fresh token each round: a full run outlasts an access token.
            let token = self.token(self.nurse()?).await?;
            let auth = vec![format!("Authorization: Bearer {token}")];
            for (i, (name, url, is_gateway)) in servers.iter().enumerate() {
                self.reset_gateway_peaks();
                let perf = if run == 0 && i == 0 {
                    self.perf_start("read")
                } else {
                    Vec::new()
                };
                let result = wrk::run(url, READ_CONNECTIONS, self.sizes.duration, &script, &auth).await?;
                Self::perf_stop(perf).await;
                if *is_gateway {
                    let plain = url.starts_with("http:");
                    let peak = self.gateway_peak(plain).unwrap_or(f64::NAN);
                    if plain { &mut rss_plain } else { &mut rss_tls }.push(peak);
                }
                say(&format!(
                    "read {}/{} {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms{}",
                    run + 1,
                    self.sizes.runs,
                    result.ok_per_s,
                    result.p50_ms,
                    result.p99_ms,
                    if result.non_2xx + result.socket_errors > 0 {
                        format!(", {} errors", result.non_2xx + result.socket_errors)
                    } else {
                        String::new()
                    }
                ));
                section
                    .runs
                    .push(serde_json::json!({"server": name, "run": run + 1, "wrk": result}));
                results[i].push(result);
            }
        }
        for (i, (name, _, _)) in servers.iter().enumerate() {
            let r = &results[i];
            section.row(
                name,
                &[
                    ("req/s", r.iter().map(|x| x.ok_per_s).collect()),
                    ("p50 ms", r.iter().map(|x| x.p50_ms).collect()),
                    ("p99 ms", r.iter().map(|x| x.p99_ms).collect()),
                    ("bytes/response", r.iter().map(|x| x.bytes_per_response).collect()),
                ],
            );
            let errors: u64 = r.iter().map(|x| x.non_2xx + x.socket_errors).sum();
            if errors > 0 {
                section
                    .notes
                    .push(format!("{name}: {errors} error answers or socket errors over the runs"));
            }
        }
        let ratio = |a: &str, b: &str| Some(section.median(a, "req/s")? / section.median(b, "req/s")?);
        let https = ratio("gateway https", "nginx https");
        let http = ratio("gateway http", "nginx http");
        let pouch = ratio("gateway http", "pouchdb-server http");
        for (name, value) in [
            ("gateway / nginx, HTTPS (req/s)", https),
            ("gateway / nginx, plain HTTP (req/s)", http),
            ("gateway / pouchdb-server, plain HTTP (req/s)", pouch),
        ] {
            if let Some(v) = value {
                section.ratios.push((name.into(), v));
            }
        }
        self.memory.push(("read, HTTPS gateway".into(), rss_tls));
        self.memory.push(("read, plain-HTTP gateway".into(), rss_plain));
        let check = self.check();
        self.targets.push(target(
            "read",
            "gateway / nginx req/s (HTTPS)",
            Goal::AtLeast,
            0.5,
            https,
            "×",
            check,
        ));
        self.targets.push(target(
            "read",
            "gateway p99 at 64 connections",
            Goal::Below,
            10.0,
            section.median("gateway https", "p99 ms"),
            "ms",
            check,
        ));
        self.targets.push(report::info(
            "peer read",
            "gateway / pouchdb-server req/s (HTTP)",
            pouch,
            "×",
        ));
        Ok(section)
    }

    fn gw_port(&self) -> anyhow::Result<u16> {
        self.gw_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("gateway port")
    }

    /// Benchmark 5: a home sampler's round of 30 visits.
    async fn rounds(&mut self) -> anyhow::Result<Section> {
        let sampler = self.sampler.clone().context("no sampler tablet")?;
        let url = format!(
            "https://127.0.0.1:{}/v1/rounds?date={}",
            self.gw_port()?,
            self.round_date
        );
        say("rounds: starting");
        let mut section = Section::new(
            "rounds",
            "5. Round pull",
            format!(
                "`GET /v1/rounds?date={}` by the home sampler whose round has {ROUND_VISITS} visits (each with patient, \
                 address, prescriptions and tube plan; one audit record per visit committed before the answer), \
                 `wrk -t2 -c{ROUND_CONNECTIONS} -d{}s` (a lab's home samplers pulling at once), {} runs over HTTPS.",
                self.round_date,
                self.sizes.duration.as_secs(),
                self.sizes.runs
            ),
        );
        let token = self.token(&sampler).await?;
        let round: serde_json::Value = self
            .client()?
            .get(format!("{}/v1/rounds?date={}", self.gw_url, self.round_date))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let visits = round["visits"].as_array().map_or(0, Vec::len);
        if visits as i64 != ROUND_VISITS {
            bail!("the round has {visits} visits, not {ROUND_VISITS}");
        }
        let script = wrk::get_script(&self.work)?;
        wrk::run(
            &url,
            ROUND_CONNECTIONS,
            self.sizes.warmup,
            &script,
            &[format!("Authorization: Bearer {token}")],
        )
        .await?;
        let (mut results, mut rss) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.runs {
            let token = self.token(&sampler).await?;
            self.reset_gateway_peaks();
            let perf = if run == 0 {
                self.perf_start("rounds")
            } else {
                Vec::new()
            };
            let r = wrk::run(
                &url,
                ROUND_CONNECTIONS,
                self.sizes.duration,
                &script,
                &[format!("Authorization: Bearer {token}")],
            )
            .await?;
            Self::perf_stop(perf).await;
            rss.push(self.gateway_peak(false).unwrap_or(f64::NAN));
            say(&format!(
                "round {}/{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} B",
                run + 1,
                self.sizes.runs,
                r.ok_per_s,
                r.p50_ms,
                r.p99_ms,
                r.bytes_per_response as u64
            ));
            if r.non_2xx + r.socket_errors > 0 {
                section
                    .notes
                    .push(format!("run {}: {} errors", run + 1, r.non_2xx + r.socket_errors));
            }
            section.runs.push(serde_json::json!({"run": run + 1, "wrk": r}));
            results.push(r);
        }
        section.row(
            "round of 30 visits",
            &[
                ("req/s", results.iter().map(|x| x.ok_per_s).collect()),
                ("p50 ms", results.iter().map(|x| x.p50_ms).collect()),
                ("p99 ms", results.iter().map(|x| x.p99_ms).collect()),
                ("bytes/response", results.iter().map(|x| x.bytes_per_response).collect()),
            ],
        );
        self.memory.push(("rounds".into(), rss));
        self.targets.push(target(
            "rounds",
            "round pull p99",
            Goal::Below,
            5.0,
            section.median("round of 30 visits", "p99 ms"),
            "ms",
            self.check(),
        ));
        Ok(section)
    }

    async fn pending(&self, edge: &mut diesel_async::AsyncPgConnection) -> anyhow::Result<i64> {
        scalar(edge, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await
    }

    /// Benchmark 3: the backlog drain after an outage, against a bulk COPY of the same rows into the
    /// same cloud database.
    async fn drain(&mut self) -> anyhow::Result<Section> {
        let n = self.sizes.backlog;
        say("drain: starting");
        let mut section = Section::new(
            "drain",
            "3. Backlog drain vs bulk COPY",
            format!(
                "Each run: the cloud API is stopped; {n} collections (2 tubes each) are committed in the gateway's \
                 database as its write path leaves them (collection, tubes, outbox entry); the cloud stays down {} s \
                 in all (the relay backs off and its circuit opens, as in an outage); then the API starts and the run \
                 is timed until the outbox is empty. Every mutation must then be in the cloud exactly once (its \
                 `applied_mutations` row, its collection, outcome `applied` in the outbox, no dead letter). The \
                 reference copies the same rows (own ids and barcodes: the originals are taken) into the same cloud \
                 database with `psql \\copy` in one transaction: collections, tubes, `applied_mutations` and audit \
                 records, as the intake writes them. \"Drain\" counts from the first batch the cloud applied; \
                 \"total\" from the API's start. Relay batches of {RELAY_BATCH}.",
                self.sizes.outage.as_secs()
            ),
        );
        let mut edge = connect(&self.edge_db).await?;
        let mut cloud = connect(&self.cloud_db).await?;
        // Start from an empty outbox.
        let waited = Instant::now();
        while self.pending(&mut edge).await? > 0 {
            if waited.elapsed() > self.sizes.patience {
                bail!("the outbox did not empty before the drain benchmark");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let nurse = self.nurse()?.clone();
        let staff_id: Uuid = texts(
            &mut edge,
            &format!("SELECT id::text AS t FROM staff WHERE login = '{}'", nurse.login),
        )
        .await?
        .into_iter()
        .next()
        .context("nurse")?
        .parse()?;
        let author = Author {
            lab_id: self.lab.id,
            staff_id,
            device_id: nurse.device_id.parse()?,
            lab_code: self.lab.code.clone(),
        };
        let visits = visits(&mut edge, 2_000).await?;
        let tubes = tube_types(&mut edge).await?;
        let nonce = &Uuid::new_v4().simple().to_string()[..8];
        let mut figures: Vec<[f64; 7]> = Vec::new();
        let mut rss = Vec::new();
        for run in 0..self.sizes.heavy_runs {
            let set = u16::try_from(run)?;
            let queued = data::collections(n, nonce, set, &visits, (&tubes.0, &tubes.1), &author)?;
            let copied = data::collections(n, nonce, set + 0x100, &visits, (&tubes.0, &tubes.1), &author)?;
            if run == 0 {
                let file = self.work.join("mutations.ndjson");
                data::documents_file(&file, &queued)?;
                self.documents = Some(file);
            }
            let edge_script = data::edge_backlog_script(&self.work, &queued, &author)?;
            drop(queued);

            say(&format!(
                "drain {}/{}: stopping the cloud, queueing {n} collections",
                run + 1,
                self.sizes.heavy_runs
            ));
            self.stop_cloud().await;
            let stopped = Instant::now();
            let queue_s = data::psql_script(&self.edge_db, &edge_script)?.as_secs_f64();
            let pending = self.pending(&mut edge).await?;
            if pending < n as i64 {
                bail!("only {pending} entries pending after queueing {n}");
            }
            let rest = self
                .sizes
                .outage
                .saturating_sub(stopped.elapsed())
                .max(Duration::from_secs(1));
            tokio::time::sleep(rest).await;

            self.reset_gateway_peaks();
            let perf = if run == 0 { self.perf_start("drain") } else { Vec::new() };
            let started_wall = OffsetDateTime::now_utc();
            let started = Instant::now();
            self.start_cloud().await?;
            let ready_s = started.elapsed().as_secs_f64();
            loop {
                if self.pending(&mut edge).await? == 0 {
                    break;
                }
                if started.elapsed() > self.sizes.patience {
                    bail!("the outbox did not drain in {:?}", self.sizes.patience);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let total_s = started.elapsed().as_secs_f64();
            rss.push(self.gateway_peak(false).unwrap_or(f64::NAN));
            Self::perf_stop(perf).await;

            let prefix = format!("{nonce}-{set:04x}");
            let applied_cloud = scalar(
                &mut cloud,
                &format!("SELECT count(*) AS n FROM applied_mutations WHERE mutation_id::text LIKE '{prefix}-4000-8000-%' AND outcome = 'applied'"),
            )
            .await?;
            let collections_cloud = scalar(
                &mut cloud,
                &format!("SELECT count(*) AS n FROM collections WHERE id::text LIKE '{prefix}-4000-a000-%'"),
            )
            .await?;
            let applied_edge = scalar(
                &mut edge,
                &format!(
                    "SELECT count(*) AS n FROM outbox WHERE mutation_id::text LIKE '{prefix}-%' AND outcome = 'applied'"
                ),
            )
            .await?;
            let dead = scalar(&mut edge, "SELECT count(*) AS n FROM dead_letters").await?;
            let first_applied_us = scalar(
                &mut cloud,
                &format!(
                    "SELECT (extract(epoch FROM min(applied_at)) * 1000000)::bigint AS n FROM applied_mutations \
                     WHERE mutation_id::text LIKE '{prefix}-%'"
                ),
            )
            .await?;
            let last_sent_us = scalar(
                &mut edge,
                &format!(
                    "SELECT (extract(epoch FROM max(sent_at)) * 1000000)::bigint AS n FROM outbox WHERE mutation_id::text LIKE '{prefix}-%'"
                ),
            )
            .await?;
            let start_us = (started_wall.unix_timestamp_nanos() / 1000) as i64;
            let wait_s = (first_applied_us - start_us) as f64 / 1e6;
            let drain_s = (last_sent_us - first_applied_us) as f64 / 1e6;
            let once =
                applied_cloud == n as i64 && collections_cloud == n as i64 && applied_edge == n as i64 && dead == 0;
            if !once {
                section.notes.push(format!(
                    "run {}: NOT exactly once: {applied_cloud} applied in the cloud, {collections_cloud} collections, \
                     {applied_edge} `applied` outcomes at the gateway, {dead} dead letters (expected {n})",
                    run + 1
                ));
            }

            let copy_script = data::cloud_copy_script(&self.work, &copied, &author)?;
            drop(copied);
            let copy_s = data::psql_script(&self.cloud_db, &copy_script)?.as_secs_f64();
            let copied_rows = scalar(
                &mut cloud,
                &format!(
                    "SELECT count(*) AS n FROM applied_mutations WHERE mutation_id::text LIKE '{nonce}-{:04x}-%'",
                    set + 0x100
                ),
            )
            .await?;
            if copied_rows != n as i64 {
                bail!("COPY stored {copied_rows} of {n} mutations");
            }
            say(&format!(
                "drain {}/{}: total {total_s:.1} s (cloud ready {ready_s:.1} s, first batch after {wait_s:.1} s, drain \
                 {drain_s:.1} s = {:.0}/s); COPY {copy_s:.1} s = {:.0}/s; exactly once: {once}",
                run + 1,
                self.sizes.heavy_runs,
                n as f64 / drain_s,
                n as f64 / copy_s
            ));
            section.runs.push(serde_json::json!({
                "run": run + 1, "mutations": n, "queue_s": queue_s, "cloud_ready_s": ready_s, "wait_before_first_batch_s": wait_s,
                "drain_s": drain_s, "total_s": total_s, "copy_s": copy_s, "applied_in_cloud": applied_cloud,
                "collections_in_cloud": collections_cloud, "applied_outcomes_at_gateway": applied_edge, "dead_letters": dead,
                "exactly_once": once
            }));
            figures.push([
                total_s,
                wait_s,
                drain_s,
                n as f64 / drain_s,
                copy_s,
                n as f64 / copy_s,
                queue_s,
            ]);
            self.drain_rates.push(n as f64 / drain_s);
        }
        let col = |i: usize| figures.iter().map(|f| f[i]).collect::<Vec<_>>();
        section.row(
            "relay drain",
            &[
                ("total s (API start → outbox empty)", col(0)),
                ("wait s (API start → first batch applied)", col(1)),
                ("drain s (first batch → last)", col(2)),
                ("mutations/s (drain)", col(3)),
            ],
        );
        section.row("bulk COPY", &[("seconds", col(4)), ("mutations/s", col(5))]);
        section.row(
            "queueing at the gateway (psql, not the write path)",
            &[("seconds", col(6))],
        );
        let ratio = Some(
            section.median("relay drain", "mutations/s (drain)").unwrap_or_default()
                / section.median("bulk COPY", "mutations/s").unwrap_or(f64::NAN),
        );
        let total_ratio = Some(
            (n as f64
                / section
                    .median("relay drain", "total s (API start → outbox empty)")
                    .unwrap_or(f64::NAN))
                / section.median("bulk COPY", "mutations/s").unwrap_or(f64::NAN),
        );
        if let Some(r) = ratio {
            section.ratios.push(("drain rate / COPY rate".into(), r));
        }
        if let Some(r) = total_ratio {
            section.ratios.push(("rate over the total time / COPY rate".into(), r));
        }
        if section.notes.is_empty() {
            section.notes.push(format!(
                "every run: all {n} mutations applied exactly once in the cloud, none quarantined"
            ));
        }
        self.memory.push(("drain".into(), rss));
        let check = self.check();
        self.targets.push(target(
            "drain",
            &format!("{n} mutations, API start → outbox empty, s"),
            Goal::Below,
            15.0,
            section.median("relay drain", "total s (API start → outbox empty)"),
            "s",
            check,
        ));
        self.targets.push(target(
            "drain",
            "drain rate / COPY rate",
            Goal::AtLeast,
            0.25,
            ratio,
            "×",
            check,
        ));
        Ok(section)
    }

    /// Benchmark 6b: the same mutations replicated as documents from a local PouchDB to pouchdb-server.
    async fn pouch_replication(&mut self) -> anyhow::Result<Section> {
        let documents = self.documents.clone().context("no documents")?;
        let n = self.sizes.backlog;
        say("pouchdb replication: starting");
        let mut section = Section::new(
            "pouch",
            "6. Replication to pouchdb-server vs the relay drain",
            format!(
                "The first drain run's {n} mutations, as documents (`_id` = mutation id), loaded into a local PouchDB \
                 on LevelDB (not timed), then `PouchDB.replicate(local, remote, {{batch_size: {RELAY_BATCH}}})` to a new \
                 database of pouchdb-server (LevelDB, plain HTTP), timed until it resolves; every document must arrive. \
                 Compared with the relay's drain rate (which also applies each mutation: inserts, audit, \
                 exactly-once record, durable commits)."
            ),
        );
        let script = self.opts.root.join("tests/bench/replicate.js");
        let local = self.work.join("pouch-local");
        std::fs::create_dir_all(&local)?;
        let (mut seconds, mut rates) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.heavy_runs {
            let output = tokio::process::Command::new("node")
                .arg(&script)
                .arg(&documents)
                .arg(&local)
                .arg(format!("http://127.0.0.1:{}", self.pouch_port))
                .arg(format!("mutations_{run}"))
                .arg(RELAY_BATCH.to_string())
                .env("NODE_PATH", self.node_modules())
                .current_dir(self.opts.root.join("tests/bench"))
                .output()
                .await
                .context("run node")?;
            if !output.status.success() {
                bail!("replicate.js failed: {}", String::from_utf8_lossy(&output.stderr));
            }
            let v: serde_json::Value = serde_json::from_slice(&output.stdout).context("replicate.js output")?;
            let s = v["replicate_s"].as_f64().unwrap_or(f64::NAN);
            let arrived = v["remote_doc_count"].as_u64().unwrap_or_default();
            if arrived != n as u64 {
                section
                    .notes
                    .push(format!("run {}: only {arrived} of {n} documents arrived", run + 1));
            }
            say(&format!(
                "pouchdb replication {}/{}: {n} documents in {s:.1} s = {:.0}/s",
                run + 1,
                self.sizes.heavy_runs,
                n as f64 / s
            ));
            seconds.push(s);
            rates.push(n as f64 / s);
            section.runs.push(v);
        }
        section.row(
            "PouchDB → pouchdb-server",
            &[("seconds", seconds), ("documents/s", rates)],
        );
        if let (Some(ours), Some(pouch)) = (
            report::Stat::of(&self.drain_rates),
            section.median("PouchDB → pouchdb-server", "documents/s"),
        ) {
            section.ratios.push((
                "relay drain rate / PouchDB replication rate".into(),
                ours.median / pouch,
            ));
            self.targets.push(report::info(
                "peer sync",
                "relay drain rate / PouchDB replication rate",
                Some(ours.median / pouch),
                "×",
            ));
        }
        Ok(section)
    }

    /// Benchmark 2: acknowledged writes with unique ids at 16 and 64 connections, each checked durable.
    async fn writes(&mut self) -> anyhow::Result<Section> {
        say("write: starting");
        let mut section = Section::new(
            "write",
            "2. Write acknowledgement",
            format!(
                "`POST /v1/collections` (2 tubes) with a unique collection id, idempotency key and barcodes per request \
                 (wrk's `request()` hook: a counter and a per-thread number behind a per-run random prefix), \
                 `wrk -t2 -cN -d{}s`, {} runs per connection count, alternating 16 and 64. Each 201 means one \
                 PostgreSQL transaction committed with `synchronous_commit = on` (collection, tubes, outbox entry, \
                 idempotency record, audit record). After each run the collections under the run's prefix are counted: \
                 at least every acknowledged one must be there. The cloud API is stopped meanwhile, as in an outage \
                 (the cloud runs elsewhere in production; here it would take the same 2 cores).",
                self.sizes.duration.as_secs(),
                self.sizes.runs
            ),
        );
        self.stop_cloud().await;
        let mut edge = connect(&self.edge_db).await?;
        let visits = visits(&mut edge, 500).await?;
        let tubes = tube_types(&mut edge).await?;
        let nurse = self.nurse()?.clone();
        let collected_at = (OffsetDateTime::now_utc() - time::Duration::minutes(10)).format(&Rfc3339)?;
        let mut results: Vec<Vec<wrk::WrkRun>> = vec![Vec::new(); WRITE_CONNECTIONS.len()];
        let mut rss: Vec<Vec<f64>> = vec![Vec::new(); WRITE_CONNECTIONS.len()];
        let mut durable_ok = true;
        let url = format!("https://127.0.0.1:{}/v1/collections", self.gw_port()?);
        for run in 0..=self.sizes.runs {
            // Run 0 is the warm-up.
            for (i, &connections) in WRITE_CONNECTIONS.iter().enumerate() {
                let token = self.token(&nurse).await?;
                let nonce = Uuid::new_v4().simple().to_string()[..8].to_owned();
                let script = wrk::post_script(
                    &self.work,
                    &format!("post-{connections}"),
                    &token,
                    &nonce,
                    &visits,
                    (&tubes.0, &tubes.1),
                    &collected_at,
                )?;
                let duration = if run == 0 {
                    self.sizes.warmup
                } else {
                    self.sizes.duration
                };
                self.reset_gateway_peaks();
                let perf = if run == 1 {
                    self.perf_start(&format!("write-{connections}"))
                } else {
                    Vec::new()
                };
                let r = wrk::run(&url, connections, duration, &script, &[]).await?;
                Self::perf_stop(perf).await;
                let peak = self.gateway_peak(false).unwrap_or(f64::NAN);
                let acknowledged = r.requests.saturating_sub(r.non_2xx);
                let committed = scalar(
                    &mut edge,
                    &format!("SELECT count(*) AS n FROM collections WHERE id::text LIKE '{nonce}-%'"),
                )
                .await?;
                let durable = committed >= acknowledged as i64;
                if run == 0 {
                    continue;
                }
                durable_ok &= durable;
                say(&format!(
                    "write {}/{} at {connections} connections: {:.0} acknowledged/s, p50 {:.2} ms, p99 {:.2} ms; \
                     {acknowledged} acknowledged, {committed} committed{}",
                    run,
                    self.sizes.runs,
                    r.ok_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    if r.non_2xx + r.socket_errors > 0 {
                        format!(", {} errors", r.non_2xx + r.socket_errors)
                    } else {
                        String::new()
                    }
                ));
                if r.non_2xx + r.socket_errors > 0 {
                    section.notes.push(format!(
                        "run {run} at {connections} connections: {} error answers, {} socket errors",
                        r.non_2xx, r.socket_errors
                    ));
                }
                section.runs.push(serde_json::json!({
                    "run": run, "connections": connections, "wrk": r, "acknowledged": acknowledged, "committed": committed,
                    "durable": durable
                }));
                results[i].push(r);
                rss[i].push(peak);
            }
        }
        for (i, connections) in WRITE_CONNECTIONS.iter().enumerate() {
            let r = &results[i];
            let label = format!("{connections} connections");
            section.row(
                &label,
                &[
                    ("acknowledged writes/s", r.iter().map(|x| x.ok_per_s).collect()),
                    ("p50 ms", r.iter().map(|x| x.p50_ms).collect()),
                    ("p99 ms", r.iter().map(|x| x.p99_ms).collect()),
                ],
            );
            let check = self.check();
            self.targets.push(target(
                "write",
                &format!("acknowledged writes/s at {connections} connections"),
                Goal::AtLeast,
                2000.0,
                section.median(&label, "acknowledged writes/s"),
                "/s",
                check,
            ));
            self.targets.push(target(
                "write",
                &format!("write p99 at {connections} connections"),
                Goal::Below,
                20.0,
                section.median(&label, "p99 ms"),
                "ms",
                check,
            ));
            self.memory
                .push((format!("write, {connections} connections"), rss[i].clone()));
        }
        section.notes.push(if durable_ok {
            "every acknowledged write was found committed after its run".into()
        } else {
            "DURABILITY CHECK FAILED: fewer collections committed than acknowledged (see runs)".into()
        });
        if !durable_ok {
            bail!("acknowledged writes missing from the database");
        }
        Ok(section)
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
            100.0,
            worst,
            "MiB",
            self.check(),
        ));
        sections.push(section);
    }

    async fn stop_all(&mut self) {
        for proc in [
            self.gateway.take(),
            self.plain.take(),
            self.pouch.take(),
            self.cloud.take(),
        ]
        .into_iter()
        .flatten()
        {
            let mut proc = proc;
            proc.stop().await;
        }
        if let Some(mut nginx) = self.nginx.take() {
            nginx.stop_with("QUIT", Duration::from_secs(10)).await;
        }
    }

    /// Deletes this run's Redis keys.
    fn clean_redis(&self) {
        let url = std::env::var("LABEDGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let Ok(client) = redis::Client::open(url) else { return };
        let Ok(mut conn) = client.get_connection() else { return };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _ = redis::cmd("DEL").arg(chunk).query::<i64>(&mut conn);
        }
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
