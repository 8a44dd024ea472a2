//! The cloud database: source of truth for every lab, its change feed and the mutation intake.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub mod schema;

/// The cloud's migrations, embedded in the binary so `api migrate` needs no files beside it.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/cloud");
