//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations/` directory at compile time, and stable Rust cannot track it by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
