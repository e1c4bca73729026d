//! Build script: rebuilds when a migration is added or changed (they are embedded at compile time
//! by `sqlx::migrate!`, which cargo does not otherwise watch).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
