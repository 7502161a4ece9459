//! Tidy checks: the house rules that neither the compiler nor clippy can see, as tests (the way
//! rust-analyzer keeps its own). `cargo test --workspace` runs them; each failure names the file
//! and the line.

use std::fs;
use std::path::{Path, PathBuf};

use crate::root;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `file:line: text` for every line of the lab's shared code (core and lab, sources only) that
/// `breaks` flags, outside the files `exempt` names (paths relative to the repository root).
fn offending_lines(breaks: impl Fn(&str) -> bool, exempt: &[&str]) -> Vec<String> {
    let root = root();
    let mut found = Vec::new();
    for file in [root.join("core/src"), root.join("lab/src")].iter().flat_map(|dir| rust_files(dir)) {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        if exempt.iter().any(|prefix| relative.starts_with(prefix)) {
            continue;
        }
        for (number, line) in fs::read_to_string(&file).unwrap().lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && breaks(code) {
                found.push(format!("{relative}:{}: {}", number + 1, code));
            }
        }
    }
    found
}

#[test]
fn atomics_locks_and_loom_enter_through_the_sync_shim() {
    // A type lint cannot see this rule: the shim re-exports std's very types. Imports are what
    // loom would miss; a std baseline (`std::sync::RwLock` in rwlock-mix) is written out in full
    // where it is used, on purpose.
    let found = offending_lines(
        |code| {
            code.contains("std::sync::atomic")
                || code.starts_with("use std::sync::")
                || code.contains("loom::thread_local")
                || code.contains("loom::sync")
        },
        &["core/src/sync.rs", "core/src/platform/"],
    );
    assert!(
        found.is_empty(),
        "atomics, locks and loom's switch go through `crate::sync` / `conlab_core::sync`:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_lab_room_holds_every_experiment_in_a_topic_folder() {
    let experiments = root().join("lab/src/experiments");
    for entry in fs::read_dir(&experiments).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let topic = fs::read_to_string(path.join("mod.rs"))
                .unwrap_or_else(|_| panic!("topic folder `{name}` has no mod.rs"));
            assert!(
                topic.contains("pub const NAME: &str = "),
                "`{name}/mod.rs` names its topic once (`pub const NAME`)"
            );
            assert!(
                topic.contains("pub const EXPERIMENTS: &[&dyn Experiment]"),
                "`{name}/mod.rs` lists its experiments"
            );
        } else {
            assert_eq!(name, "mod.rs", "lab/src/experiments/ holds topic folders only, not `{name}`");
        }
    }
    // And the primitives' room knows no experiment.
    let found = offending_lines(|code| code.contains("conlab_lab") || code.contains("crate::experiment"), &["lab/"]);
    assert!(found.is_empty(), "core must not name the lab:\n{}", found.join("\n"));
}

#[test]
fn the_architecture_codemap_reads_in_five_minutes() {
    let map = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let long: Vec<_> = map.lines().filter(|line| line.starts_with('|') && line.chars().count() > 140).collect();
    assert!(long.is_empty(), "table rows over 140 characters belong in the module docs:\n{}", long.join("\n"));
    for folder in ["core/", "lab/", "native/", "web/", "tests/", "xtask/"] {
        assert!(map.contains(&format!("| `{folder}` |")), "the crates table lists `{folder}`");
    }
}
