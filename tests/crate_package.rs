//! The published crate: `cargo package --list` names exactly what a crate user needs (the
//! library's source, its build script and header configuration, the header, the example, the
//! protocol reference the docs cite, the README and both licence texts) and nothing else (no
//! tests, benches, fuzz targets, bindings, C examples or CI scripts); every file under `src/` is
//! in it. The licence files say what Cargo.toml declares, and docs.rs gets its metadata.
//!
//! The full `cargo package --locked` (which also builds the packaged crate on its own) runs in
//! `.ci/run`; this test stays fast: `--list` reads the manifest and the tree only.

#![cfg(not(miri))] // runs cargo

mod common;

use common::process::{output_within, text};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Files at the top of the crate, besides `src/**`, `examples/*.rs` and `include/*`.
const TOP_LEVEL: &[&str] = &[
    "Cargo.lock",
    "Cargo.toml",
    "Cargo.toml.orig",
    "LICENSE-APACHE",
    "LICENSE-MIT",
    "README.md",
    "build.rs",
    "cbindgen.toml",
    "docs/PROTOCOL.md",
    "include/isotcp.h",
    "include/isotcp.hpp",
];

/// What `cargo package --list` adds in a git checkout (absent in an unpacked source tree).
const OPTIONAL: &[&str] = &[".cargo_vcs_info.json"];

fn packaged_files() -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = output_within(
        Command::new(cargo).current_dir(ROOT).args([
            "package",
            "--list",
            "--locked",
            "--allow-dirty",
        ]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "cargo package --list failed:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 file list")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The files under `dir` (relative to the repository, `/`-separated), recursively.
fn tree(dir: &str) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut stack = vec![Path::new(ROOT).join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(ROOT).unwrap();
                files.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files
}

#[test]
fn crate_lists_only_what_belongs_in_it() {
    let listed = packaged_files();
    let mut expected: BTreeSet<String> = TOP_LEVEL.iter().map(|s| s.to_string()).collect();
    expected.extend(tree("src"));
    expected.extend(tree("examples").into_iter().filter(|f| f.ends_with(".rs")));
    let missing: Vec<&String> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "not in the crate: {missing:?}");
    let extra: Vec<&String> = listed
        .difference(&expected)
        .filter(|f| !OPTIONAL.contains(&f.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "in the crate but not meant for it: {extra:?}"
    );
    for dir in [
        "tests/",
        "benches/",
        "fuzz/",
        "bindings/",
        "examples-c/",
        ".ci/",
        "snap7/",
    ] {
        assert!(
            !listed.iter().any(|f| f.starts_with(dir)),
            "{dir} is packaged"
        );
    }
}

#[test]
fn licence_files_match_the_declared_licence() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("license = \"MIT OR Apache-2.0\"\n"),
        "Cargo.toml no longer declares MIT OR Apache-2.0: update the licence files and this test"
    );
    assert!(
        manifest.contains("[package.metadata.docs.rs]"),
        "no docs.rs metadata"
    );
    assert!(
        manifest.contains("readme = \"README.md\""),
        "no readme in Cargo.toml"
    );

    let mit = std::fs::read_to_string(Path::new(ROOT).join("LICENSE-MIT")).unwrap();
    assert!(mit.starts_with("MIT License\n"), "LICENSE-MIT: {mit:.80}");
    assert!(mit.contains("Copyright (c) 2026 The isotcp authors\n"));
    assert!(mit.contains("THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND"));

    let apache = std::fs::read_to_string(Path::new(ROOT).join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License\n                           Version 2.0, January 2004"));
    assert!(apache.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
    // The whole text, not an excerpt: the official file is 11358 bytes.
    assert_eq!(
        apache.len(),
        11358,
        "LICENSE-APACHE is not the full licence text"
    );
}
