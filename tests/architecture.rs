//! The layering of `src/`, held to the table in docs/ARCHITECTURE.md ("Layers"): every
//! `crate::` path in the source is an import its module may make, every module is in the
//! table, and the table has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The table: module → what it may import (`kinds` or `api::session`).
fn table() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers\n")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a \"## Layers\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let module = cells[0].trim_matches('`').to_string();
        let allowed: BTreeSet<String> = cells[1]
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| !c.is_empty() && c != "—")
            .collect();
        assert!(
            table.insert(module.clone(), allowed).is_none(),
            "{module} twice in the table"
        );
    }
    assert!(
        table.len() > 10,
        "the Layers table did not parse: {table:?}"
    );
    table
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text without comments and string literals (their `crate::` is not an import).
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// The `crate::` paths of `text` (a file of `module`) that `allowed` does not allow.
fn violations(module: &str, file: &str, text: &str, allowed: &BTreeSet<String>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line);
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .collect();
            let target = match path[0] {
                "supervised_actor" => "supervisor",
                t => t,
            };
            if target == module || target.is_empty() {
                continue;
            }
            let with_sub = path.get(1).map(|s| format!("{target}::{s}"));
            let ok =
                allowed.contains(target) || with_sub.as_ref().is_some_and(|s| allowed.contains(s));
            if !ok {
                wrong.push(format!(
                    "{file}:{}: `{module}` imports `{}`: {}",
                    n + 1,
                    with_sub.unwrap_or_else(|| target.to_string()),
                    line.trim()
                ));
            }
        }
    }
    wrong
}

#[test]
fn every_import_is_one_the_layers_allow() {
    let table = table();
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let Some(allowed) = table.get(&module) else {
            wrong.push(format!(
                "src/{}: module `{module}` is not in the Layers table",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        wrong.extend(violations(
            &module,
            &format!("src/{}", rel.display()),
            &text,
            allowed,
        ));
    }
    assert!(
        wrong.is_empty(),
        "imports the Layers table does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layers_table_has_no_cycle_and_names_only_its_modules() {
    let table = table();
    let module_of = |dep: &str| dep.split("::").next().unwrap().to_string();
    for (m, deps) in &table {
        for d in deps {
            assert!(
                table.contains_key(&module_of(d)),
                "{m} may import {d}, which is not in the table"
            );
        }
    }
    // Depth-first search for a cycle over module-level edges.
    fn visit(
        m: &str,
        table: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            panic!("cycle in the Layers table: {}", stack[i..].join(" → "));
        }
        stack.push(m.to_string());
        for d in &table[m] {
            visit(d.split("::").next().unwrap(), table, stack, done);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in table.keys() {
        visit(m, &table, &mut Vec::new(), &mut done);
    }
}

/// The checker itself catches what it should: an import up, a submodule not allowed; not a
/// comment, a string or an allowed submodule.
#[test]
fn the_checker_reads_code_not_comments_or_strings() {
    let code = code_of(r#"let s = "crate::ui"; crate::x // crate::api"#);
    assert!(code.contains("crate::x") && !code.contains("crate::ui") && !code.contains("api"));
    let allowed: BTreeSet<String> = ["db", "api::session"].map(String::from).into();
    let text = "use crate::db::jobs;\nuse crate::api::session::COOKIE;\n\
                use crate::api::jobs::write; // up\n// use crate::app;\nlet x = crate::app::serve;";
    let wrong = violations("ui", "src/ui/x.rs", text, &allowed);
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(
        wrong[0].starts_with("src/ui/x.rs:3: `ui` imports `api::jobs`"),
        "{wrong:?}"
    );
    assert!(
        wrong[1].starts_with("src/ui/x.rs:5: `ui` imports `app::serve`"),
        "{wrong:?}"
    );
}
