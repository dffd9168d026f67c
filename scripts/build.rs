//! Embeds the text of each migration (`migrations/<version>_<name>/{up,down}.sql`) for
//! `overseer migrate run --dry-run`, which prints what would run: diesel's own embedding keeps
//! the SQL private. The same files, so the two cannot disagree.

use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let dir =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the migrations directory")
        .flatten()
        .filter(|e| e.path().join("up.sql").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = String::from(
        "/// Every migration: (diesel's version, folder name, up.sql, down.sql).\n\
         pub const MIGRATION_SQL: &[(&str, &str, &str, &str)] = &[\n",
    );
    for name in names {
        // diesel's version: the folder name up to its first `_`, without dashes.
        let version: String = name
            .split('_')
            .next()
            .unwrap_or(&name)
            .chars()
            .filter(|c| *c != '-')
            .collect();
        let path = dir.join(&name);
        let up = path.join("up.sql");
        let down = path.join("down.sql");
        let _ = writeln!(
            out,
            "    ({version:?}, {name:?}, include_str!({:?}), include_str!({:?})),",
            up.display().to_string(),
            down.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets it")).join("migration_sql.rs");
    std::fs::write(dest, out).expect("write migration_sql.rs");
}
