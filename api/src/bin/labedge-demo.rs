//! `labedge-demo`: fills an empty cloud database with the synthetic lab network of the demo and the
//! benchmarks (see `labedge_api::demo`). A binary of its own so that the production `api` has no
//! command that writes made-up patients into a database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use labedge_api::config::Config;
use labedge_api::demo::{self, SeedArgs};
use labedge_service::cli::{self, print_out};

/// Fill a LabEdge cloud database with a synthetic lab network (demo, benchmarks).
#[derive(Debug, Parser)]
#[command(name = "labedge-demo", version)]
struct Cli {
    /// The cloud API's configuration file, for its database (default:
    /// /etc/labedge-api/api.toml when it exists).
    #[arg(long, short, env = "LABEDGE_API_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    seed: SeedArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: Config = match cli::load_config(cli.config.as_deref(), false) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(runtime) = cli::start::<Config>(None, &config.log) else {
        return ExitCode::FAILURE;
    };
    cli::finish::<Config>(&runtime, async {
        let summary = demo::seed(&config, &cli.seed).await?;
        print_out(&format!("{summary}\n"));
        Ok(())
    })
}
