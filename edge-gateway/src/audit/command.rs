//! `edge-gateway audit verify | purge | checkpoint`.

use std::time::Instant;

use anyhow::Context;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::db::{self, Database};
use labedge_schema::edge::schema::labs;
use uuid::Uuid;

use super::checkpoint::{Signer, checkpoint_head};
use super::retention::{PurgeError, purge_expired};
use super::verify::verify;
use crate::config::Config;

/// The audit log's commands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain from the retention anchor: prints OK with the record count and the
    /// head, or names the first bad record and exits with status 1.
    Verify,
    /// Purge now the records older than `audit.retention_months` (the gateway does it daily).
    Purge,
    /// Sign the chain's head now and queue it for the cloud (the gateway does it every
    /// `audit.checkpoint_interval_minutes`; a running gateway sends it).
    Checkpoint,
}

/// What a command prints, and whether it found everything in order.
#[derive(Debug)]
pub struct Report {
    /// The text for standard output.
    pub text: String,
    /// False when the chain is broken (exit status 1).
    pub ok: bool,
}

/// Runs an audit command against the gateway's database.
pub async fn run(command: AuditCommand, config: &Config) -> anyhow::Result<Report> {
    let url = config.database.url.expose_secret();
    let pending = db::pending_migrations(url, Database::Edge).await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "{} migration(s) pending ({}): run `edge-gateway migrate` first",
            pending.len(),
            pending.join(", ")
        );
    }
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .context("connect to the gateway's database")?;
    match command {
        AuditCommand::Verify => verify_command(&mut conn).await,
        AuditCommand::Purge => match purge_expired(&mut conn, config.audit.retention_months).await {
            Ok(purged) => Ok(Report {
                text: match purged.anchor {
                    Some((chain_seq, hash)) => format!(
                        "{} audit record(s) older than {} month(s) purged; the chain now starts after position {chain_seq} (hash {})\n",
                        purged.records,
                        config.audit.retention_months,
                        hex::encode(hash)
                    ),
                    None => format!(
                        "no audit record older than {} month(s) to purge\n",
                        config.audit.retention_months
                    ),
                },
                ok: true,
            }),
            Err(PurgeError::Broken(bad)) => Ok(Report {
                text: format!(
                    "audit purge refused: the records due for purging do not verify, so they are kept: {bad}\n"
                ),
                ok: false,
            }),
            Err(e) => Err(e.into()),
        },
        AuditCommand::Checkpoint => {
            let lab_id: Uuid = labs::table
                .filter(labs::code.eq(&config.lab))
                .select(labs::id)
                .first(&mut conn)
                .await
                .optional()?
                .with_context(|| {
                    format!(
                        "lab {} is not in this gateway's database yet (run `edge-gateway sync`)",
                        config.lab
                    )
                })?;
            let signer = Signer::load(&config.upstream.cert, &config.upstream.key)?;
            Ok(Report {
                text: match checkpoint_head(&mut conn, lab_id, &signer).await? {
                    Some(queued) => format!(
                        "checkpoint of position {} (hash {}) signed and queued for the cloud (mutation {})\n",
                        queued.head.chain_seq,
                        hex::encode(queued.head.chain_hash),
                        queued.mutation_id
                    ),
                    None => "no checkpoint needed: the chain is empty or its head has one already\n".into(),
                },
                ok: true,
            })
        }
    }
}

async fn verify_command(conn: &mut AsyncPgConnection) -> anyhow::Result<Report> {
    let started = Instant::now();
    let outcome = verify(conn).await.context("read the audit log")?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(match outcome {
        Ok(summary) => {
            let mut text = format!("audit chain OK: {} record(s) verified", summary.records);
            match summary.head {
                Some((chain_seq, hash)) => {
                    text.push_str(&format!(", head at position {chain_seq}, hash {}\n", hex::encode(hash)))
                }
                None => text.push_str(", the chain is empty\n"),
            }
            match &summary.anchor {
                Some(anchor) => text.push_str(&format!(
                    "starts after the retention anchor at position {} (hash {}, purged {})\n",
                    anchor.chain_seq,
                    hex::encode(anchor.hash),
                    anchor.purged_at.date()
                )),
                None => text.push_str("starts at the beginning of the chain (nothing purged)\n"),
            }
            text.push_str(&format!(
                "{} signed checkpoint(s) found in the chain; {} record(s) appended and not chained yet; {seconds:.1} s\n",
                summary.checkpoints, summary.unchained
            ));
            Report { text, ok: true }
        }
        Err(bad) => Report {
            text: format!("audit chain BROKEN at {bad}\n"),
            ok: false,
        },
    })
}
