//! The `api` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use labedge_schema::db::{self, Database};
use labedge_service::cli::{self, print_out};

use crate::config::Config;
use crate::startup::Application;
use crate::{manage, provision};

/// LabEdge cloud API.
#[derive(Debug, Parser)]
#[command(
    name = "api",
    version,
    about = "LabEdge cloud API: source of truth, change feeds, mutation intake"
)]
struct Cli {
    /// Configuration file (default: /etc/labedge-api/api.toml when it exists).
    #[arg(long, short, env = "LABEDGE_API_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (refuses to start while migrations are pending).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig,
    /// Create a lab.
    CreateLab(manage::CreateLabArgs),
    /// Create a staff member of a lab (PIN and password are hashed).
    CreateStaff(manage::CreateStaffArgs),
    /// Create the cloud CA (when missing) and the API's server certificate.
    InitPki(provision::InitPkiArgs),
    /// Create a lab's gateway credential and configuration file.
    ProvisionGateway(provision::ProvisionArgs),
    /// Create an integration client of the FHIR interface (the LIS): a client certificate and its scopes.
    CreateIntegrationClient(crate::fhir::client::CreateArgs),
    /// Load FHIR resources from NDJSON files (Bulk Data format): resumable, idempotent, a report of rejected lines.
    Import(crate::fhir::import::ImportArgs),
}

/// Runs the command line; exit status 2 for a bad configuration, 1 for any other failure.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let needs_files = matches!(cli.command, Command::Serve | Command::CheckConfig);
    let config: Config = match cli::load_config(cli.config.as_deref(), needs_files) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Command::CheckConfig = cli.command {
        return cli::check_config(&config, config.profile);
    }
    let Some(runtime) = cli::start::<Config>(None, &config.log) else {
        return ExitCode::FAILURE;
    };
    cli::finish::<Config>(&runtime, run(cli.command, config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until_stopped().await?;
        }
        // The central lab's instance runs `migrate` before `serve` like every other (one systemd
        // unit for all), but its database is the cloud's standby: the primary's migrations reach it
        // by replication, and it would refuse to apply them itself.
        Command::Migrate if db::in_recovery(config.database.migration_url()).await? => {
            let pending = db::pending_migrations(config.database.migration_url(), Database::Cloud).await?;
            print_out(&format!(
                "standby database: migrations are applied on the primary and replicated here ({} pending there)\n",
                pending.len()
            ));
        }
        Command::Migrate => {
            let applied = db::run_migrations(config.database.migration_url(), Database::Cloud).await?;
            print_out(&format!("{} migration(s) applied{}\n", applied.len(), list(&applied)));
        }
        Command::CreateLab(args) => print_out(&format!("{}\n", manage::create_lab(&config, &args).await?)),
        Command::CreateStaff(args) => print_out(&format!("{}\n", manage::create_staff(&config, &args).await?)),
        Command::InitPki(args) => {
            print_out(&format!("{}\n", provision::init_pki(&config, &args)?));
        }
        Command::ProvisionGateway(args) => {
            let summary = provision::provision(&config, &args).await?;
            print_out(&format!("{summary}\n"));
        }
        Command::CreateIntegrationClient(args) => {
            print_out(&format!("{}\n", crate::fhir::client::create(&config, &args).await?));
        }
        Command::Import(args) => print_out(&format!("{}\n", crate::fhir::import::run(&config, &args).await?)),
        Command::CheckConfig => {}
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join(", "))
    }
}
