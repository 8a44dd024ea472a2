//! Databases and rows: fresh databases with unique names (dropped at the end), small SQL helpers, the
//! backlog of collections queued in a gateway's outbox as its write path would, and the same rows as
//! `COPY` files for the cloud.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::wrk::VisitIds;

/// Prefix of every database the benchmark creates (`labedge_bench_<pid>_<name>`).
pub const DB_PREFIX: &str = "labedge_bench_";

/// The databases of this run; all dropped when this is dropped (also on failure).
#[derive(Debug)]
pub struct Databases {
    server: String,
    names: Vec<String>,
}

impl Databases {
    /// For the server at `server` (a URL without database name). Drops the databases of earlier
    /// runs whose process is gone.
    pub async fn new(server: &str) -> anyhow::Result<Self> {
        let this = Self {
            server: server.trim_end_matches('/').to_owned(),
            names: Vec::new(),
        };
        let mut conn = this.admin().await?;
        #[derive(diesel::QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            datname: String,
        }
        let names: Vec<Name> = diesel::sql_query(format!(
            "SELECT datname::text FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'"
        ))
        .load(&mut conn)
        .await?;
        for name in names.into_iter().map(|n| n.datname) {
            let pid = name
                .strip_prefix(DB_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
            }
        }
        Ok(this)
    }

    async fn admin(&self) -> anyhow::Result<AsyncPgConnection> {
        AsyncPgConnection::establish(&format!("{}/postgres", self.server))
            .await
            .context("connect to PostgreSQL on 127.0.0.1:5432")
    }

    /// A new empty database `labedge_bench_<pid>_<name>` (dropped first if it exists); its URL.
    pub async fn create(&mut self, name: &str) -> anyhow::Result<String> {
        let full = format!("{DB_PREFIX}{}_{name}", std::process::id());
        let mut conn = self.admin().await?;
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {full} WITH (FORCE)"))
            .await?;
        conn.batch_execute(&format!("CREATE DATABASE {full}")).await?;
        if !self.names.contains(&full) {
            self.names.push(full.clone());
        }
        Ok(format!("{}/{full}", self.server))
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("psql")
                .args(["-X", "-q", "-d", &format!("{}/postgres", self.server), "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .env("PGOPTIONS", "--client-min-messages=warning")
                .status();
        }
    }
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
}

/// `SELECT … AS n` (a bigint) on a connection.
pub async fn scalar(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    let row: N = diesel::sql_query(sql)
        .get_result(conn)
        .await
        .with_context(|| format!("query {sql}"))?;
    Ok(row.n.unwrap_or_default())
}

/// `SELECT … AS t` (text) on a connection: every row.
pub async fn texts(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct T {
        #[diesel(sql_type = Text)]
        t: String,
    }
    let rows: Vec<T> = diesel::sql_query(sql)
        .load(conn)
        .await
        .with_context(|| format!("query {sql}"))?;
    Ok(rows.into_iter().map(|r| r.t).collect())
}

/// A connection to `url`.
pub async fn connect(url: &str) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(url)
        .await
        .with_context(|| format!("connect to {}", url.rsplit('/').next().unwrap_or_default()))
}

/// Runs a psql script in one transaction; returns how long psql took, start to exit.
pub fn psql_script(url: &str, script: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = Command::new("psql")
        .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(script)
        .env("PGOPTIONS", "--client-min-messages=warning")
        .output()
        .context("run psql")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "psql {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

/// Who records the backlog's collections.
#[derive(Clone, Debug)]
pub struct Author {
    /// The lab.
    pub lab_id: Uuid,
    /// The nurse.
    pub staff_id: Uuid,
    /// Her tablet.
    pub device_id: Uuid,
    /// The lab's code (the cloud's audit actor is `gateway:<code>`).
    pub lab_code: String,
}

/// A set of collections, as relayed mutations: `<nonce>-<set>-4000-8000-<i>` mutation ids,
/// `<nonce>-<set>-4000-a000-<i>` collection ids, two tubes each.
pub fn collections(
    count: usize,
    nonce: &str,
    set: u16,
    visits: &[VisitIds],
    tube_types: (&str, &str),
    author: &Author,
) -> anyhow::Result<Vec<RelayedMutation>> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.nanosecond() / 1000 * 1000)?;
    let collected_at = (now - time::Duration::minutes(30)).format(&Rfc3339)?;
    let code = nonce.to_uppercase();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let visit = &visits[(i * 7) % visits.len()];
        let mutation_id: Uuid = format!("{nonce}-{set:04x}-4000-8000-{i:012x}").parse()?;
        let id: Uuid = format!("{nonce}-{set:04x}-4000-a000-{i:012x}").parse()?;
        let collection = serde_json::from_value(serde_json::json!({
            "id": id, "patient_id": visit.patient, "appointment_id": visit.appointment,
            "prescription_id": visit.prescription, "collected_at": collected_at,
            "identity_checked": true, "identity_check_method": "health_card",
            "tubes": [
                {"barcode": format!("Q{code}{set:02X}{i:07X}A"), "tube_type": tube_types.0},
                {"barcode": format!("Q{code}{set:02X}{i:07X}B"), "tube_type": tube_types.1}
            ]
        }))?;
        out.push(RelayedMutation {
            mutation_id,
            recorded_at: now,
            staff_id: Some(author.staff_id),
            device_id: Some(author.device_id),
            op: RelayedOp::CollectionCreate { collection },
        });
    }
    Ok(out)
}

/// A CSV field (quoted when needed); `None` is an unquoted empty field, which `COPY … csv` reads as NULL.
fn csv(field: Option<&str>) -> String {
    match field {
        None => String::new(),
        Some(f) if f.contains([',', '"', '\n', '\r']) || f.is_empty() => format!("\"{}\"", f.replace('"', "\"\"")),
        Some(f) => f.to_owned(),
    }
}

fn line(fields: &[Option<&str>]) -> String {
    let mut s = fields.iter().map(|f| csv(*f)).collect::<Vec<_>>().join(",");
    s.push('\n');
    s
}

struct Files {
    collections: String,
    tubes: String,
    /// The cloud's tubes carry their lab too (barcodes are unique per lab there).
    cloud_tubes: String,
}

fn collection_files(mutations: &[RelayedMutation], author: &Author) -> anyhow::Result<Files> {
    let mut collections = String::new();
    let mut tubes = String::new();
    let mut cloud_tubes = String::new();
    for m in mutations {
        let RelayedOp::CollectionCreate { collection: c } = &m.op else {
            continue;
        };
        let v = serde_json::to_value(c)?;
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        collections.push_str(&line(&[
            Some(&c.id.to_string()),
            Some(&author.lab_id.to_string()),
            Some(&c.patient_id.to_string()),
            c.appointment_id.map(|a| a.to_string()).as_deref(),
            Some(&c.prescription_id.to_string()),
            text("collected_at").as_deref(),
            Some(&author.staff_id.to_string()),
            Some(&author.device_id.to_string()),
            Some("t"),
            text("identity_check_method").as_deref(),
            None,
            Some(&m.recorded_at.format(&Rfc3339)?),
        ]));
        for t in &c.tubes {
            tubes.push_str(&line(&[
                Some(&c.id.to_string()),
                Some(t.barcode.as_str()),
                Some(&t.tube_type),
            ]));
            cloud_tubes.push_str(&line(&[
                Some(&c.id.to_string()),
                Some(&author.lab_id.to_string()),
                Some(t.barcode.as_str()),
                Some(&t.tube_type),
            ]));
        }
    }
    Ok(Files {
        collections,
        tubes,
        cloud_tubes,
    })
}

const COLLECTION_COLUMNS: &str = "id, lab_id, patient_id, appointment_id, prescription_id, collected_at, collected_by, \
     device_id, identity_checked, identity_check_method, comments, recorded_at";

/// Writes the edge's rows of `mutations` (collections, tubes, outbox entries: what the write path
/// commits) as CSV files and a psql script loading them; returns the script.
pub fn edge_backlog_script(dir: &Path, mutations: &[RelayedMutation], author: &Author) -> anyhow::Result<PathBuf> {
    let files = collection_files(mutations, author)?;
    let mut outbox = String::new();
    for m in mutations {
        outbox.push_str(&line(&[
            Some(&m.mutation_id.to_string()),
            Some(&m.op.lane().to_string()),
            Some(m.op.kind()),
            Some(&m.op.entity_key()),
            Some(&serde_json::to_string(m)?),
        ]));
    }
    write_script(
        dir,
        "edge-backlog",
        &[
            ("collections", COLLECTION_COLUMNS, files.collections),
            ("collection_tubes", "collection_id, barcode, tube_type", files.tubes),
            ("outbox", "mutation_id, lane, kind, entity_key, payload", outbox),
        ],
        "",
    )
}

/// Writes what the cloud's intake stores for `mutations` (collections, tubes, `applied_mutations`,
/// audit records) as CSV files and a psql script copying them in, durably; returns the script.
pub fn cloud_copy_script(dir: &Path, mutations: &[RelayedMutation], author: &Author) -> anyhow::Result<PathBuf> {
    let files = collection_files(mutations, author)?;
    let detail = r#"{"current_version":null,"current":null,"reason":null}"#;
    let actor = format!("gateway:{}", author.lab_code);
    let mut applied = String::new();
    let mut audit = String::new();
    for m in mutations {
        let RelayedOp::CollectionCreate { collection: c } = &m.op else {
            continue;
        };
        let mutation = m.mutation_id.to_string();
        applied.push_str(&line(&[
            Some(&mutation),
            Some(&author.lab_id.to_string()),
            Some(m.op.kind()),
            Some("applied"),
            Some(detail),
        ]));
        audit.push_str(&line(&[
            Some(&author.lab_id.to_string()),
            Some(&actor),
            Some(&author.staff_id.to_string()),
            Some(&author.device_id.to_string()),
            Some(m.op.kind()),
            Some(&c.patient_id.to_string()),
            Some(&format!("collection:{}", c.id)),
            Some(&mutation),
        ]));
    }
    write_script(
        dir,
        "cloud-copy",
        &[
            ("collections", COLLECTION_COLUMNS, files.collections),
            (
                "collection_tubes",
                "collection_id, lab_id, barcode, tube_type",
                files.cloud_tubes,
            ),
            (
                "applied_mutations",
                "mutation_id, lab_id, kind, outcome, detail",
                applied,
            ),
            (
                "audit_log",
                "lab_id, actor, staff_id, device_id, action, patient_id, resource, request_id",
                audit,
            ),
        ],
        // As the intake commits a batch of collections.
        "SET LOCAL synchronous_commit TO on;\n",
    )
}

fn write_script(dir: &Path, name: &str, tables: &[(&str, &str, String)], preamble: &str) -> anyhow::Result<PathBuf> {
    let mut script = preamble.to_owned();
    for (table, columns, rows) in tables {
        let file = dir.join(format!("{name}-{table}.csv"));
        std::fs::write(&file, rows)?;
        let _ = writeln!(
            script,
            "\\copy {table} ({columns}) FROM '{}' WITH (FORMAT csv)",
            file.display()
        );
    }
    let path = dir.join(format!("{name}.sql"));
    std::fs::write(&path, script)?;
    Ok(path)
}

/// The mutations as newline-delimited JSON documents (`_id` = mutation id), for PouchDB.
pub fn documents_file(path: &Path, mutations: &[RelayedMutation]) -> anyhow::Result<()> {
    let mut out = String::new();
    for m in mutations {
        out.push_str(&serde_json::to_string(m)?);
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}
