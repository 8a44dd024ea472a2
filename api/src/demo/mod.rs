//! `labedge-demo` (its own binary, not a command of the production `api`): fills an empty cloud database with a synthetic French lab network (a central lab
//! in Lyon and its proximity labs, staff, catalog, patients, prescriptions, lab visits and home
//! rounds) for the demo and the benchmarks.
//!
//! The data set is a pure function of the arguments and of today's date in Paris ([`generate`]), so a
//! seed always gives the same patients; the database part only hashes the staff secrets and inserts
//! everything in one transaction, whose commit fills the change feed through the deferred triggers.

mod catalog;
mod clock;
mod generate;
mod names;
mod rng;
mod rows;

use std::fmt;
use std::num::NonZero;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{
    appointments, change_log, exam_catalog, labs, patients, prescribed_exams, prescriptions, staff, tube_types,
};
use labedge_service::secrets::hash_secret;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use self::generate::DataSet;
use self::rows::{Row, StaffRow};
use crate::config::Config;

/// Sizes of the synthetic network and the demo credentials.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Number of patients.
    #[arg(long, default_value_t = 3000)]
    pub patients: u32,
    /// Number of proximity labs besides the central lab (at most 8).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub proximity_labs: u8,
    /// Days of appointments after today.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=90))]
    pub days_ahead: u16,
    /// Days of past appointments before today.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(0..=366))]
    pub days_back: u16,
    /// Seed of the generator: the same seed gives the same network.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// PIN of every demo staff member (4 to 12 digits).
    #[arg(long, default_value = "1234")]
    pub pin: String,
    /// Console password of every lab admin.
    #[arg(long, default_value = "labedge-admin")]
    pub admin_password: String,
    /// Nurses per lab.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub nurses_per_lab: u16,
    /// Home samplers per lab.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub home_samplers_per_lab: u16,
}

impl Default for SeedArgs {
    fn default() -> Self {
        Self {
            patients: 3000,
            proximity_labs: 2,
            days_ahead: 3,
            days_back: 30,
            seed: 42,
            pin: "1234".to_owned(),
            admin_password: "labedge-admin".to_owned(),
            nurses_per_lab: 4,
            home_samplers_per_lab: 3,
        }
    }
}

impl SeedArgs {
    /// The rules clap checks, for callers that build the arguments in code.
    pub fn validate(&self) -> anyhow::Result<()> {
        if usize::from(self.proximity_labs) > names::PROXIMITY.len() {
            bail!("--proximity-labs: at most {} proximity labs", names::PROXIMITY.len());
        }
        if !(4..=12).contains(&self.pin.len()) || !self.pin.bytes().all(|b| b.is_ascii_digit()) {
            // The tablets only accept such PINs: any other would lock every demo account out.
            bail!("--pin: a PIN has 4 to 12 digits");
        }
        if self.admin_password.is_empty() {
            bail!("--admin-password: must not be empty");
        }
        if self.days_back > 366 || self.days_ahead > 90 {
            bail!("--days-back is at most 366 and --days-ahead at most 90");
        }
        Ok(())
    }
}

/// How many rows each table received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Labs.
    pub labs: usize,
    /// Staff members.
    pub staff: usize,
    /// Tube types.
    pub tube_types: usize,
    /// Exams of the catalog.
    pub exams: usize,
    /// Patients.
    pub patients: usize,
    /// Prescriptions.
    pub prescriptions: usize,
    /// Prescribed exams.
    pub prescribed_exams: usize,
    /// Appointments, lab and home.
    pub appointments: usize,
    /// Of which home visits.
    pub home_appointments: usize,
}

/// One example login of each role in a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLogins {
    /// A nurse (none when `--nurses-per-lab 0`).
    pub nurse: Option<String>,
    /// A home sampler (none when `--home-samplers-per-lab 0`).
    pub home_sampler: Option<String>,
    /// The lab admin.
    pub lab_admin: String,
}

/// A seeded lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededLab {
    /// Id.
    pub id: Uuid,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// `central` or `proximity`.
    pub kind: String,
    /// Logins to try the demo with.
    pub logins: DemoLogins,
}

/// What `labedge-demo` did; `Display` is what the command prints, demo credentials included (the data
/// is synthetic and printing them is the point).
#[derive(Debug, Clone)]
pub struct SeedSummary {
    /// The generator's seed.
    pub seed: u64,
    /// Today in Paris, day 0 of the appointments.
    pub today: Date,
    /// First day with appointments.
    pub first_day: Date,
    /// Last day with appointments.
    pub last_day: Date,
    /// Rows per table.
    pub counts: RowCounts,
    /// Change-feed entries after the commit (the triggers write one per row).
    pub change_log_entries: i64,
    /// The labs, central first.
    pub labs: Vec<SeededLab>,
    /// PIN of every staff member.
    pub pin: String,
    /// Console password of the lab admins.
    pub admin_password: String,
    /// Wall time of the whole seeding.
    pub elapsed: Duration,
}

impl SeedSummary {
    /// The proximity labs, in the order they were made.
    pub fn proximity_labs(&self) -> impl Iterator<Item = &SeededLab> {
        self.labs.iter().filter(|l| l.kind == "proximity")
    }
}

impl fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "Demo lab network seeded in {:.1} s (seed {}; appointments {} to {}, today {} in Europe/Paris)",
            self.elapsed.as_secs_f64(),
            self.seed,
            self.first_day,
            self.last_day,
            self.today
        )?;
        writeln!(f, "\nRows")?;
        for (label, count) in [
            ("labs", c.labs),
            ("staff", c.staff),
            ("tube types", c.tube_types),
            ("exams in the catalog", c.exams),
            ("patients", c.patients),
            ("prescriptions", c.prescriptions),
            ("prescribed exams", c.prescribed_exams),
            ("appointments", c.appointments),
            ("  of which home visits", c.home_appointments),
        ] {
            writeln!(f, "  {label:<24}{count:>10}")?;
        }
        writeln!(f, "  {:<24}{:>10}", "change-feed entries", self.change_log_entries)?;
        writeln!(
            f,
            "\nLabs and demo logins (PIN of every staff member: {}; lab admin console password: {})",
            self.pin, self.admin_password
        )?;
        for lab in &self.labs {
            writeln!(f, "  {:<14}{:<11}{}  ({})", lab.code, lab.kind, lab.name, lab.id)?;
            let logins = &lab.logins;
            let nurse = logins.nurse.as_deref().unwrap_or("-");
            let sampler = logins.home_sampler.as_deref().unwrap_or("-");
            writeln!(
                f,
                "  {:<25}nurse {nurse} · home sampler {sampler} · lab admin {}",
                "", logins.lab_admin
            )?;
        }
        Ok(())
    }
}

/// `labedge-demo`: seeds the configured database and returns the summary to print.
pub async fn seed(config: &Config, args: &SeedArgs) -> anyhow::Result<String> {
    let mut conn = AsyncPgConnection::establish(config.database.url.expose_secret())
        .await
        .context("connect to the cloud database")?;
    let summary = seed_into(&mut conn, args).await?;
    Ok(summary.to_string())
}

/// Seeds an empty, migrated cloud database in one transaction; fails if it already holds labs.
pub async fn seed_into(conn: &mut AsyncPgConnection, args: &SeedArgs) -> anyhow::Result<SeedSummary> {
    let started = Instant::now();
    args.validate()?;
    // Checked before the slow part; the unique lab codes stop a concurrent seeding anyway.
    refuse_if_seeded(conn).await?;

    let today = clock::today(OffsetDateTime::now_utc());
    let mut data = generate::generate(args, today);
    let generated = started.elapsed();
    hash_secrets(&mut data.staff, &args.pin, &args.admin_password).await?;
    let hashed = started.elapsed();

    let inserted = conn
        .transaction(async |conn| {
            // The commit runs a deferred trigger per row (the change feed): far longer than a request's
            // statement timeout, should the role or database carry one.
            diesel::sql_query("SET LOCAL statement_timeout = 0")
                .execute(conn)
                .await
                .context("lift the statement timeout")?;
            refuse_if_seeded(conn).await?;
            insert_all(conn, &data).await?;
            Ok::<_, anyhow::Error>(started.elapsed())
        })
        .await?;
    let committed = started.elapsed();
    let change_log_entries: i64 = change_log::table
        .count()
        .get_result(conn)
        .await
        .context("count the change-feed entries")?;

    let summary = SeedSummary {
        seed: args.seed,
        today,
        first_day: today - time::Duration::days(i64::from(args.days_back)),
        last_day: today + time::Duration::days(i64::from(args.days_ahead)),
        counts: RowCounts {
            labs: data.labs.len(),
            staff: data.staff.len(),
            tube_types: data.tube_types.len(),
            exams: data.exams.len(),
            patients: data.patients.len(),
            prescriptions: data.prescriptions.len(),
            prescribed_exams: data.prescribed_exams.len(),
            appointments: data.appointments.len(),
            home_appointments: data.appointments.iter().filter(|a| a.kind == "home").count(),
        },
        change_log_entries,
        labs: seeded_labs(&data),
        pin: args.pin.clone(),
        admin_password: args.admin_password.clone(),
        elapsed: started.elapsed(),
    };
    tracing::info!(
        demo.patients = summary.counts.patients,
        demo.appointments = summary.counts.appointments,
        generate_ms = generated.as_millis(),
        hash_ms = (hashed - generated).as_millis(),
        insert_ms = (inserted - hashed).as_millis(),
        commit_ms = (committed - inserted).as_millis(),
        "demo lab network seeded"
    );
    Ok(summary)
}

async fn refuse_if_seeded(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    let existing: i64 = labs::table.count().get_result(conn).await.context("count the labs")?;
    if existing > 0 {
        bail!(
            "the database is already seeded: it holds {existing} lab(s), and labedge-demo only fills an empty database"
        );
    }
    Ok(())
}

/// Hashes every PIN (each with its own salt, as a real enrolment would) and the admins' passwords.
/// argon2id is deliberately slow (tens of milliseconds): the hashes are spread over the cores, off
/// the async threads.
async fn hash_secrets(staff: &mut [StaffRow], pin: &str, admin_password: &str) -> anyhow::Result<()> {
    let mut jobs: Vec<(usize, bool)> = (0..staff.len()).map(|i| (i, false)).collect();
    jobs.extend(
        staff
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role == "lab_admin")
            .map(|(i, _)| (i, true)),
    );
    let workers = std::thread::available_parallelism().map_or(2, NonZero::get).clamp(1, 8);
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let mine: Vec<(usize, bool)> = jobs.iter().copied().skip(worker).step_by(workers).collect();
        let (pin, password) = (pin.to_owned(), admin_password.to_owned());
        handles.push(tokio::task::spawn_blocking(move || {
            mine.into_iter()
                .map(|(index, is_password)| {
                    let secret = if is_password { &password } else { &pin };
                    hash_secret(secret).map(|hash| (index, is_password, hash))
                })
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    for handle in handles {
        for (index, is_password, hash) in handle.await.context("the hashing task failed")?? {
            if is_password {
                staff[index].password_hash = Some(hash);
            } else {
                staff[index].pin_hash = hash;
            }
        }
    }
    Ok(())
}

/// Inserts `$rows` into `$table` in statements of as many rows as the bind limit allows.
macro_rules! insert_chunks {
    ($conn:expr, $table:expr, $rows:expr, $what:literal) => {
        for chunk in $rows.chunks(row_chunk($rows)) {
            diesel::insert_into($table)
                .values(chunk)
                .execute($conn)
                .await
                .context(concat!("insert ", $what))?;
        }
    };
}

fn row_chunk<R: Row>(_rows: &[R]) -> usize {
    R::rows_per_statement()
}

async fn insert_all(conn: &mut AsyncPgConnection, data: &DataSet) -> anyhow::Result<()> {
    insert_chunks!(conn, labs::table, &data.labs, "labs");
    insert_chunks!(conn, staff::table, &data.staff, "staff");
    insert_chunks!(conn, tube_types::table, &data.tube_types, "tube types");
    insert_chunks!(conn, exam_catalog::table, &data.exams, "the exam catalog");
    insert_chunks!(conn, patients::table, &data.patients, "patients");
    insert_chunks!(conn, prescriptions::table, &data.prescriptions, "prescriptions");
    insert_chunks!(
        conn,
        prescribed_exams::table,
        &data.prescribed_exams,
        "prescribed exams"
    );
    insert_chunks!(conn, appointments::table, &data.appointments, "appointments");
    Ok(())
}

fn seeded_labs(data: &DataSet) -> Vec<SeededLab> {
    let first_login = |lab: Uuid, role: &str| {
        data.staff
            .iter()
            .find(|s| s.lab_id == lab && s.role == role)
            .map(|s| s.login.clone())
    };
    data.labs
        .iter()
        .map(|lab| SeededLab {
            id: lab.id,
            code: lab.code.clone(),
            name: lab.name.clone(),
            kind: lab.kind.to_owned(),
            logins: DemoLogins {
                nurse: first_login(lab.id, "nurse"),
                home_sampler: first_login(lab.id, "home_sampler"),
                lab_admin: first_login(lab.id, "lab_admin").unwrap_or_default(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SeedArgs,
    }

    #[test]
    fn default_matches_the_command_line_defaults() {
        let parsed = Cli::try_parse_from(["seed-demo"])
            .expect("no argument is required")
            .args;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", SeedArgs::default()));
        assert!(SeedArgs::default().validate().is_ok());
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(Cli::try_parse_from(["seed-demo", "--proximity-labs", "9"]).is_err());
        let bad_pin = SeedArgs {
            pin: "12a4".to_owned(),
            ..SeedArgs::default()
        };
        assert!(bad_pin.validate().is_err());
        let too_many = SeedArgs {
            proximity_labs: 9,
            ..SeedArgs::default()
        };
        assert!(too_many.validate().is_err());
    }
}
