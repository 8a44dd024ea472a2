//! `api seed-demo`: a synthetic lab network.

use crate::config::Config;

/// Sizes of the synthetic network.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Number of patients.
    #[arg(long, default_value_t = 5000)]
    pub patients: usize,
}

/// Seeds the database.
pub async fn seed(_config: &Config, _args: &SeedArgs) -> anyhow::Result<String> {
    anyhow::bail!("not yet")
}
