//! `api create-lab` and `api create-staff`: adding a lab and its staff by hand (a new proximity lab
//! before its staff come from the lab information system's import; the demo's third lab).

use anyhow::{Context, bail};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{labs, staff};
use labedge_service::secrets::hash_secret;
use uuid::Uuid;

use crate::config::Config;

/// `api create-lab`.
#[derive(Debug, clap::Args)]
pub struct CreateLabArgs {
    /// Code (2 to 16 of A-Z, 0-9 and '-'), as in paths and certificates.
    #[arg(long)]
    pub code: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// `proximity` (default) or `central`.
    #[arg(long, default_value = "proximity")]
    pub kind: String,
}

/// `api create-staff`.
#[derive(Debug, clap::Args)]
pub struct CreateStaffArgs {
    /// The lab's code.
    #[arg(long)]
    pub lab: String,
    /// Login (3 to 32 of a-z, 0-9, '.', '_', '-').
    #[arg(long)]
    pub login: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// `nurse`, `home_sampler` or `lab_admin`.
    #[arg(long)]
    pub role: String,
    /// The tablet PIN (4 to 12 digits); read from `LABEDGE_PIN` when absent, so it stays out of the
    /// shell history.
    #[arg(long, env = "LABEDGE_PIN", hide_env_values = true)]
    pub pin: String,
    /// The admin console password (lab admins only); from `LABEDGE_PASSWORD` when absent.
    #[arg(long, env = "LABEDGE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

async fn connect(config: &Config) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(config.database.url.expose_secret())
        .await
        .context("connect to the cloud database")
}

/// Creates a lab; its change reaches every gateway through the feed.
pub async fn create_lab(config: &Config, args: &CreateLabArgs) -> anyhow::Result<String> {
    if !matches!(args.kind.as_str(), "proximity" | "central") {
        bail!("--kind must be proximity or central");
    }
    let mut conn = connect(config).await?;
    let id = Uuid::now_v7();
    diesel::insert_into(labs::table)
        .values((
            labs::id.eq(id),
            labs::code.eq(&args.code),
            labs::name.eq(&args.name),
            labs::kind.eq(&args.kind),
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| {
            constraint_message(
                e,
                "a lab with this code exists already, or the code is not 2 to 16 of A-Z, 0-9 and '-'",
            )
        })?;
    Ok(format!(
        "lab {} ({}) created: {id}\nnext: api provision-gateway --lab {}",
        args.code, args.name, args.code
    ))
}

/// Creates a staff member of a lab, with a hashed PIN (and password for a lab admin).
pub async fn create_staff(config: &Config, args: &CreateStaffArgs) -> anyhow::Result<String> {
    if !matches!(args.role.as_str(), "nurse" | "home_sampler" | "lab_admin") {
        bail!("--role must be nurse, home_sampler or lab_admin");
    }
    if !(4..=12).contains(&args.pin.len()) || !args.pin.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--pin must be 4 to 12 digits");
    }
    if args.password.is_some() && args.role != "lab_admin" {
        bail!("--password is for lab admins only");
    }
    if args.role == "lab_admin" && args.password.as_deref().is_none_or(|p| p.len() < 12) {
        bail!("a lab admin needs a console password of at least 12 characters (--password or LABEDGE_PASSWORD)");
    }
    let mut conn = connect(config).await?;
    let lab_id: Uuid = labs::table
        .filter(labs::code.eq(&args.lab))
        .select(labs::id)
        .first(&mut conn)
        .await
        .optional()?
        .with_context(|| format!("no lab with code {}", args.lab))?;
    let pin_hash = hash_secret(&args.pin)?;
    let password_hash = args.password.as_deref().map(hash_secret).transpose()?;
    let id = Uuid::now_v7();
    diesel::insert_into(staff::table)
        .values((
            staff::id.eq(id),
            staff::lab_id.eq(lab_id),
            staff::login.eq(&args.login),
            staff::display_name.eq(&args.name),
            staff::role.eq(&args.role),
            staff::pin_hash.eq(pin_hash),
            staff::password_hash.eq(password_hash),
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| {
            constraint_message(
                e,
                "this login exists already in this lab, or it is not 3 to 32 of a-z, 0-9, '.', '_', '-'",
            )
        })?;
    Ok(format!("{} {} of {} created: {id}", args.role, args.login, args.lab))
}

fn constraint_message(error: diesel::result::Error, message: &str) -> anyhow::Error {
    match error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation | diesel::result::DatabaseErrorKind::CheckViolation,
            _,
        ) => anyhow::anyhow!("{message}"),
        other => other.into(),
    }
}
