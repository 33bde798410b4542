//! Declares every `.rs` file in `src/tools/` as a module of `tools`, so that adding a tool is
//! adding one file: no list of modules (or of tools) is kept by hand.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("src/tools");
    println!("cargo:rerun-if-changed=src/tools");
    let mut modules: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .expect("src/tools exists")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.extension()? == "rs" && stem != "mod").then_some((stem, path))
        })
        .collect();
    modules.sort();
    let mut code = String::new();
    for (name, path) in modules {
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "src/tools/{name}.rs: module names are snake_case");
        writeln!(code, "#[path = {:?}]\npub mod {name};", path.display().to_string()).expect("writing to a string");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("tool_modules.rs");
    std::fs::write(out, code).expect("write the module list");
}
