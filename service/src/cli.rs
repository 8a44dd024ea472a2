//! What every LabEdge command line does around its own commands: load the configuration (exit
//! status 2 when it is bad), `check-config`, logs, the async runtime, and exit status 1 when a
//! command fails. Each binary keeps its own `clap` commands and what they do.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{LogConfig, Profile, ServiceConfig, render};
use crate::telemetry::{self, ServiceFields};
use crate::tls;

/// Installs the TLS crypto provider and loads the configuration; with `check_files`, also what
/// `serve` needs from the machine. A bad configuration is printed, every problem with its key, and
/// gives exit status 2.
pub fn load_config<C: ServiceConfig>(file: Option<&Path>, check_files: bool) -> Result<C, ExitCode> {
    tls::install_crypto_provider();
    C::load_checked(file, check_files).map_err(|e| config_error::<C>(e))
}

/// A configuration problem found after loading (exit status 2), printed like [`load_config`]'s.
pub fn config_error<C: ServiceConfig>(error: impl std::fmt::Display) -> ExitCode {
    eprint!("{}: {error}", C::SERVICE);
    ExitCode::from(2)
}

/// `check-config`: prints the effective configuration, secrets redacted, and that it is valid.
pub fn check_config<C: ServiceConfig>(config: &C, profile: Profile) -> ExitCode {
    print_out(&format!(
        "{}# configuration is valid (profile {})\n",
        render(config),
        profile.as_str()
    ));
    ExitCode::SUCCESS
}

/// Starts the logs (tagged with the service and, for a gateway, its `lab`), then the async runtime
/// (two workers: the commands are I/O-bound, and `serve` sizes its own HTTP workers). `None` (after
/// saying why) when the runtime cannot start.
pub fn start<C: ServiceConfig>(lab: Option<String>, log: &LogConfig) -> Option<tokio::runtime::Runtime> {
    telemetry::init(
        ServiceFields {
            service: C::SERVICE,
            lab,
        },
        log,
    );
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", C::SERVICE);
            None
        }
    }
}

/// Runs a command to its end: exit status 0, or 1 with the error logged and printed.
pub fn finish<C: ServiceConfig>(
    runtime: &tokio::runtime::Runtime,
    command: impl Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{} stopped on an error", C::SERVICE);
            eprintln!("{}: {e:#}", C::SERVICE);
            ExitCode::FAILURE
        }
    }
}

/// Command output (the one place a CLI writes to standard output).
#[expect(clippy::print_stdout, reason = "a command's output is its job")]
pub fn print_out(text: &str) {
    print!("{text}");
}
