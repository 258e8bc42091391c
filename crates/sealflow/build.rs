// `sqlx::migrate!` embeds the migration files when the crate compiles, but Cargo does not know it
// reads them: without this, a changed or added migration would leave a build with the old ones.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
