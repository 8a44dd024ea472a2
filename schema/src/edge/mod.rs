//! The edge database: one lab's share of the data, its local writes, outbox and audit chain.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub mod schema;

/// The edge's migrations, embedded in the binary so `edge-gateway migrate` needs no files beside it.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/edge");
