//! refinery embeds the migration files at compile time; without the rerun line, a new or edited
//! migration would not be noticed until an unrelated change forced a rebuild (refinery issue
//! #309). The newest version is also written out as a constant: commands that only check it
//! (every short read) then never build refinery's runner, which compiles a regular expression.
use std::path::Path;

fn latest(dialect: &str) -> i32 {
    let dir = Path::new("migrations").join(dialect);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix('V')?.split_once("__")?.0.parse::<i32>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// `sql/`'s queries, embedded with `include_str!`: a file added there is picked up at the next
/// build without a list to keep up to date.
fn sql_library(out_dir: &Path) {
    println!("cargo:rerun-if-changed=sql");
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("sql");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let mut text = String::from(
        "/// Every `.sql` file of `sql/`: its file name and its text.\npub const LIBRARY: &[(&str, &str)] = &[\n",
    );
    // The path is made when the crate compiles, not here: a build script's output found fresh in
    // a target directory copied from another checkout must not read that checkout's files.
    for name in names {
        let file = format!("/sql/{name}");
        text.push_str(&format!("    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {file:?}))),\n"));
    }
    text.push_str("];\n");
    std::fs::write(out_dir.join("sql_library.rs"), text).expect("write OUT_DIR");
}

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let (sqlite, postgres) = (latest("sqlite"), latest("postgres"));
    assert_eq!(sqlite, postgres, "both dialects must have the same newest migration");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("latest_migration.rs");
    let text =
        format!("/// The newest migration version of both dialects.\npub const LATEST_MIGRATION: i32 = {sqlite};\n");
    std::fs::write(out, text).expect("write OUT_DIR");
    sql_library(Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")));
}
