//! The `edge-gateway` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use labedge_schema::db::{self, Database};
use labedge_service::cli::{self, print_out};

use crate::config::Config;
use crate::startup::Application;
use crate::sync::Worker;
use crate::sync::upstream::Upstreams;

/// LabEdge edge gateway.
#[derive(Debug, Parser)]
#[command(name = "edge-gateway", version, about = "LabEdge gateway of a proximity lab")]
struct Cli {
    /// Configuration file (default: /etc/labedge-gateway/edge-gateway.toml when it exists).
    #[arg(long, short, env = "LABEDGE_GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve tablets (refuses to start while migrations are pending).
    Serve,
    /// Apply pending database migrations, as the schema's owner (`database.migration_url`).
    Migrate,
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig,
    /// Sign new access tokens with a new key; tokens signed by the old one stay valid until they expire.
    RotateSigningKey,
    /// A signing key leaked: retire it now (its tokens are refused from the next request, tablets
    /// refresh under a new key). `--all` retires every key (the key-encryption key leaked or changed).
    RetireSigningKey {
        /// The key's id (`kid` in the tokens' header, `kid` in `signing_keys`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        kid: Option<String>,
        /// Every key not yet retired; a new key signs from now on.
        #[arg(long)]
        all: bool,
    },
    /// Bring the lab's data up to date from the cloud now (`--full`: a complete bootstrap).
    Sync {
        /// Read the lab's whole scope again (replacing what is here), then follow the feed.
        #[arg(long)]
        full: bool,
    },
    /// The audit log: `verify` the hash chain, `purge` past retention, `checkpoint` for the cloud.
    Audit {
        #[command(subcommand)]
        command: crate::audit::command::AuditCommand,
    },
}

/// Runs the command line; exit status 2 for a bad configuration, 1 for any other failure.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let needs_files = matches!(cli.command, Command::Serve | Command::CheckConfig);
    let config: Config = match cli::load_config(cli.config.as_deref(), needs_files) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // The commands that open the signing keys (`serve` is checked with its files, above).
    if matches!(
        cli.command,
        Command::RotateSigningKey | Command::RetireSigningKey { .. } | Command::Sync { .. }
    ) && let Err(e) = crate::auth::keys::Kek::from_config(&config.auth)
    {
        return cli::config_error::<Config>(e);
    }
    if let Command::CheckConfig = cli.command {
        return cli::check_config(&config, config.profile);
    }
    let Some(runtime) = cli::start::<Config>(Some(config.lab.clone()), &config.log) else {
        return ExitCode::FAILURE;
    };
    match cli.command {
        Command::Audit { command } => runtime.block_on(audit(command, config)),
        command => cli::finish::<Config>(&runtime, run(command, config)),
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            crate::audit::roles::check_serving_role(&config).await?;
            let app = Application::build(config).await?;
            let state = app.state().clone();
            if state.config.sync.enabled || state.config.relay.enabled {
                let upstreams = Upstreams::from_config(&state.config.upstream, Arc::clone(&state.upstream_health))?;
                if state.config.sync.enabled {
                    tokio::spawn(Worker::new(state.clone(), upstreams.clone()).run());
                }
                if state.config.relay.enabled {
                    tokio::spawn(crate::relay::Relay::new(state.clone(), upstreams).run());
                }
            }
            app.run_until_stopped().await?;
        }
        Command::Sync { full } => sync_now(config, full).await?,
        Command::Migrate => {
            let url = config.database.migration_url();
            let applied = db::run_migrations(url, Database::Edge).await?;
            crate::audit::roles::record_retention(url, config.audit.retention_months).await?;
            print_out(&format!("{} migration(s) applied\n", applied.len()));
        }
        Command::RotateSigningKey => {
            use diesel_async::AsyncConnection;
            let mut conn = diesel_async::AsyncPgConnection::establish(config.database.url.expose_secret()).await?;
            let kek = crate::auth::keys::Kek::from_config(&config.auth)?;
            let lifetime = std::time::Duration::from_secs(config.auth.access_token_ttl_s + config.auth.leeway_s);
            let (kid, retired) = crate::auth::keys::rotate(&mut conn, &kek, lifetime).await?;
            print_out(&format!(
                "new signing key {kid}; {retired} old key(s) retired (a running gateway is told at once)\n"
            ));
        }
        Command::RetireSigningKey { kid, all } => {
            use diesel_async::AsyncConnection;
            let mut conn = diesel_async::AsyncPgConnection::establish(config.database.url.expose_secret()).await?;
            let kek = crate::auth::keys::Kek::from_config(&config.auth)?;
            let kids = kid.map(|kid| vec![kid]);
            let outcome = crate::auth::keys::retire(&mut conn, &kek, if all { None } else { kids.as_deref() }).await?;
            if outcome.retired.is_empty() {
                anyhow::bail!("no such signing key in use (unknown, or already retired)");
            }
            let mut text = format!(
                "retired: {} (their material erased; a running gateway refuses their tokens from its next request)\n",
                outcome.retired.join(", ")
            );
            if let Some(signer) = outcome.new_signer {
                text.push_str(&format!("new signing key {signer}\n"));
            }
            print_out(&text);
        }
        Command::CheckConfig | Command::Audit { .. } => {}
    }
    Ok(())
}

/// `edge-gateway audit …`: exit status 0 when done and the chain intact, 1 when the chain is broken
/// (the first bad record is named) or the command failed.
async fn audit(command: crate::audit::command::AuditCommand, config: Config) -> ExitCode {
    match crate::audit::command::run(command, &config).await {
        Ok(report) => {
            print_out(&report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("edge-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `edge-gateway sync [--full]`, with a progress bar per table.
async fn sync_now(config: Config, full: bool) -> anyhow::Result<()> {
    let state = crate::startup::build_state(config).await?;
    let upstreams = Upstreams::from_config(&state.config.upstream, Arc::clone(&state.upstream_health))?;
    let mut conn = state.pool.get().await?;
    let position = crate::sync::checkpoint(&mut conn).await?;
    drop(conn);
    let started = std::time::Instant::now();
    if full || position.is_none() {
        let progress = BarProgress::default();
        let head = crate::sync::bootstrap(&state, &upstreams, &progress).await?;
        progress.finish();
        print_out(&format!(
            "bootstrap done at position {head} in {:.1} s\n",
            started.elapsed().as_secs_f64()
        ));
    }
    let status = std::sync::RwLock::new(crate::sync::SyncStatus::default());
    let pages = crate::sync::pull(&state, &upstreams, &status).await?;
    let position = status.read().ok().and_then(|s| s.position).unwrap_or_default();
    print_out(&format!("{pages} feed page(s) applied; position {position}\n"));
    Ok(())
}

/// A progress bar per table of a bootstrap.
#[derive(Default)]
struct BarProgress {
    bar: std::sync::Mutex<Option<(indicatif::ProgressBar, u64)>>,
}

impl BarProgress {
    fn finish(&self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some((bar, _)) = bar.take()
        {
            bar.finish();
        }
    }
}

impl crate::sync::BootstrapProgress for BarProgress {
    fn table(&self, entity: labedge_schema::sync::Entity) {
        self.finish();
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix:>14} {pos:>9} rows  {per_sec:>12}  {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(entity.table());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some((bar, 0));
        }
    }

    fn rows(&self, _: labedge_schema::sync::Entity, rows: usize) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some((bar, count)) = slot.as_mut()
        {
            *count += rows as u64;
            bar.set_position(*count);
        }
    }
}
