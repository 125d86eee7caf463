//! Building the C programs of examples-c/ for a test: gcc with the project's warning flags,
//! linked statically against target/debug/libisotcp.a (which `cargo build` produces; .ci/test
//! builds before testing), into target/c-tests/.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Builds `examples-c/<sources>` into `target/c-tests/<name>` and returns its path.
pub fn build(name: &str, sources: &[&str]) -> PathBuf {
    let target = Path::new(ROOT).join("target");
    let lib = target.join("debug/libisotcp.a");
    assert!(
        lib.exists(),
        "{} missing: build the library first (cargo build)",
        lib.display()
    );
    let out = target.join("c-tests").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("gcc")
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O1",
        ])
        .arg("-I")
        .arg(Path::new(ROOT).join("include"))
        .arg("-o")
        .arg(&out)
        .args(
            sources
                .iter()
                .map(|s| Path::new(ROOT).join("examples-c").join(s)),
        )
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .status()
        .expect("gcc runs");
    assert!(status.success(), "building {name} failed");
    out
}
