// refinery embeds the migration files at compile time; without this, a new or edited migration
// would not be noticed until an unrelated change forced a rebuild (refinery issue #309).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
