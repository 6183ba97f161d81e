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

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let (sqlite, postgres) = (latest("sqlite"), latest("postgres"));
    assert_eq!(sqlite, postgres, "both dialects must have the same newest migration");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("latest_migration.rs");
    let text =
        format!("/// The newest migration version of both dialects.\npub const LATEST_MIGRATION: i32 = {sqlite};\n");
    std::fs::write(out, text).expect("write OUT_DIR");
}
