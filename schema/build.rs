//! `embed_migrations!` reads `migrations/` at compile time, but cargo does not know it: without this,
//! a new migration folder is not embedded until something else rebuilds the crate.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
