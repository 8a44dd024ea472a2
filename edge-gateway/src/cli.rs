//! The `edge-gateway` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use labedge_schema::db::{self, Database};
use labedge_schema::runtime::config::render;
use labedge_schema::runtime::telemetry::{self, ServiceFields};
use labedge_schema::runtime::tls;

use crate::config::Config;
use crate::startup::Application;

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
    /// Apply pending database migrations.
    Migrate,
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig,
    /// Sign new access tokens with a new key; tokens signed by the old one stay valid until they expire.
    RotateSigningKey,
}

/// Runs the command line; exit status 2 for a bad configuration, 1 for any other failure.
pub fn main() -> ExitCode {
    tls::install_crypto_provider();
    let cli = Cli::parse();
    let needs_files = matches!(cli.command, Command::Serve | Command::CheckConfig);
    let config = match Config::load(cli.config.as_deref(), needs_files) {
        Ok(config) => config,
        Err(e) => {
            eprint!("edge-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = cli.command {
        print_out(&format!(
            "{}# configuration is valid (profile {})\n",
            render(&config),
            config.profile.as_str()
        ));
        return ExitCode::SUCCESS;
    }
    telemetry::init(
        ServiceFields {
            service: "edge-gateway",
            lab: Some(config.lab.clone()),
        },
        &config.log,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "edge gateway stopped on an error");
            eprintln!("edge-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let applied = db::run_migrations(config.database.url.expose(), Database::Edge).await?;
            print_out(&format!("{} migration(s) applied\n", applied.len()));
        }
        Command::RotateSigningKey => {
            use diesel_async::AsyncConnection;
            let mut conn = diesel_async::AsyncPgConnection::establish(config.database.url.expose()).await?;
            let lifetime = std::time::Duration::from_secs(config.auth.access_token_ttl_s + config.auth.leeway_s);
            let (kid, retired) = crate::auth::keys::rotate(&mut conn, lifetime).await?;
            print_out(&format!(
                "new signing key {kid}; {retired} old key(s) retired (a running gateway picks it up within 30 s)\n"
            ));
        }
        Command::CheckConfig => {}
    }
    Ok(())
}

/// Command output (the one place the CLI writes to standard output).
#[allow(clippy::print_stdout)]
fn print_out(text: &str) {
    print!("{text}");
}
