//! Migrates an empty database and prints its `schema.rs`, like `diesel print-schema`:
//!
//! ```text
//! cargo run -p labedge-schema --example print_schema -- cloud postgres://labedge:labedge@127.0.0.1/scratch
//! ```
//! (The drift test does the same on a fresh database of its own and can rewrite the files.)

#![expect(clippy::print_stdout, reason = "the example prints the schema")]

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_schema::db::{self, Database};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let database = match args.next().as_deref() {
        Some("cloud") => Database::Cloud,
        Some("edge") => Database::Edge,
        _ => anyhow::bail!("usage: print_schema cloud|edge DATABASE_URL"),
    };
    let url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: print_schema cloud|edge DATABASE_URL"))?;
    db::run_migrations(&url, database).await?;
    let mut conn = AsyncPgConnection::establish(&url).await?;
    print!("{}", labedge_schema::introspect::print_schema(&mut conn).await?);
    Ok(())
}
