// sqlx::migrate! embeds the migrations when this crate compiles: compile it
// again when one is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
