//! The C# bindings (`bindings/csharp`) under Mono: compiles the binding assembly
//! (`Isotcp.dll`, from `bindings/csharp/src/*.cs`) and the test program
//! (`BindingTests.exe`, from `bindings/csharp/tests/*.cs`) with `mcs -warnaserror`, then runs
//! it with `mono`, LD_LIBRARY_PATH pointing at the library cargo built for this run so that
//! `[DllImport("isotcp")]` resolves to `libisotcp.so`.
//!
//! The program tests our listener and client in one process, and talks S7 to python-snap7's
//! server (tests/peers/server.py under ISOTCP_VENV_PY3, default /opt/venv-snap7-3/bin/python).
//! Missing mcs/mono or venv: a SKIP, unless ISOTCP_REQUIRE_PEERS=1 (then a failure;
//! `.ci/setup-bindings` installs Mono). Outputs go to `<target>/csharp-tests/`.
//!
//! The TLS tests (`tests/TlsTests.cs`) run against s7commplus's S7-1500 emulator
//! (tests/peers/s7commplus_server.py under ISOTCP_VENV_S7COMMPLUS), started here and passed on
//! as ISOTCP_S7CP_PORT / _PIN / _CERT; without its venv they SKIP, or fail with
//! ISOTCP_REQUIRE_PEERS=1.

#![cfg(not(miri))] // runs compilers and other processes

mod common;

use common::process;
use common::s7commplus_peer::{self, S7CommPlusServer};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The program runs in about 4 s; this only stops a hang.
const DEADLINE: Duration = Duration::from_secs(300);

fn peers_required() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Writes past the test harness's output capture, so SKIP lines show in a plain `cargo test`.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `<target>/<profile>`: the test binary is in `<target>/<profile>/deps/`.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf();
    assert!(
        dir.join("libisotcp.so").exists(),
        "{} missing: `cargo build` produces it (.ci/test builds before testing)",
        dir.join("libisotcp.so").display()
    );
    dir
}

fn tool_works(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` to completion with DEADLINE; returns (success, stdout + stderr).
fn run(mut cmd: Command) -> (bool, String) {
    let done = process::run_limited(&mut cmd, DEADLINE);
    (done.success(), done.text())
}

/// The .cs files of a folder of bindings/csharp, sorted.
fn sources(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(ROOT).join("bindings/csharp").join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .cs files in {}", dir.display());
    files
}

fn compile(args: &[String], what: &str) {
    let mut cmd = Command::new("mcs");
    cmd.args(args);
    let (ok, output) = run(cmd);
    assert!(ok, "mcs ({what}) failed:\n{output}");
}

#[test]
fn csharp_binding_under_mono() {
    let missing: Vec<&str> = ["mcs", "mono"]
        .into_iter()
        .filter(|t| !tool_works(t))
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} not found (Debian: mono-mcs, mono-runtime; run .ci/setup-bindings)",
            missing.join(" and ")
        );
        if peers_required() {
            panic!("ISOTCP_REQUIRE_PEERS=1 and {why}");
        }
        note(&format!("SKIP csharp_binding: {why}"));
        return;
    }

    let libs = lib_dir();
    let out = libs.parent().expect("<target>").join("csharp-tests");
    std::fs::create_dir_all(&out).unwrap();
    let dll = out.join("Isotcp.dll");
    let exe = out.join("BindingTests.exe");

    let mut lib_args = vec![
        "-target:library".to_string(),
        "-warnaserror".to_string(),
        format!("-out:{}", dll.display()),
    ];
    lib_args.extend(sources("src").iter().map(|p| p.display().to_string()));
    compile(&lib_args, "Isotcp.dll");

    let mut exe_args = vec![
        "-warnaserror".to_string(),
        "-r:System.Core.dll".to_string(),
        format!("-r:{}", dll.display()),
        format!("-out:{}", exe.display()),
    ];
    exe_args.extend(sources("tests").iter().map(|p| p.display().to_string()));
    compile(&exe_args, "BindingTests.exe");

    let mut cmd = Command::new("mono");
    cmd.arg("--debug").arg(&exe).current_dir(&out);
    let python = match std::env::var_os("ISOTCP_VENV_PY3") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("/opt/venv-snap7-3/bin/python"),
    };
    if python.exists() {
        cmd.arg("--python")
            .arg(&python)
            .arg("--server")
            .arg(Path::new(ROOT).join("tests/peers/server.py"));
    } else if !peers_required() {
        note(&format!(
            "SKIP csharp_binding (python-snap7 server part): no python at {} (set ISOTCP_VENV_PY3)",
            python.display()
        ));
    }
    if peers_required() {
        cmd.arg("--require-peers");
    }
    let _secure_peer = match s7commplus_peer::python() {
        Ok(python) => {
            let server = S7CommPlusServer::start(&python);
            cmd.envs(server.env());
            Some(server)
        }
        Err(why) => {
            note(&format!("SKIP csharp_binding (TLS part): {why}"));
            None
        }
    };
    let ld_path = match std::env::var_os("LD_LIBRARY_PATH") {
        Some(old) if !old.is_empty() => {
            let mut paths = vec![libs.clone()];
            paths.extend(std::env::split_paths(&old));
            std::env::join_paths(paths).unwrap()
        }
        _ => libs.clone().into_os_string(),
    };
    cmd.env("LD_LIBRARY_PATH", ld_path);

    let (ok, output) = run(cmd);
    assert!(ok, "mono {} failed:\n{output}", exe.display());
    let summary = output
        .lines()
        .rev()
        .find(|l| l.contains(" passed, ") && l.contains(" failed"))
        .unwrap_or_else(|| panic!("no summary line in:\n{output}"));
    assert!(summary.contains(" 0 failed"), "{output}");
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 10, "only {passed} C# tests passed:\n{output}");
    note(&format!("csharp_binding: {summary}"));
}

/// Every function of include/isotcp.h has a `[DllImport]` declaration in Native.cs (checked
/// without Mono, so a new export without a C# declaration fails everywhere).
#[test]
fn csharp_declares_every_header_function() {
    let header = std::fs::read_to_string(Path::new(ROOT).join("include/isotcp.h")).unwrap();
    let native =
        std::fs::read_to_string(Path::new(ROOT).join("bindings/csharp/src/Native.cs")).unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    for name in function_names(&header) {
        count += 1;
        if !declares(&native, &name) {
            missing.push(name);
        }
    }
    assert!(count > 40, "only {count} functions found in the header");
    assert!(
        missing.is_empty(),
        "functions of include/isotcp.h without a DllImport in bindings/csharp/src/Native.cs: {missing:?}"
    );
}

/// The `iso_*` names followed by `(` in the header: the exported functions.
fn function_names(header: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = header.as_bytes();
    let mut i = 0;
    while let Some(pos) = header[i..].find("iso_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let mut after = end;
        while after < bytes.len() && bytes[after] == b' ' {
            after += 1;
        }
        // A typedef of a function pointer, `(*iso_cr_filter)(`, is preceded by `*`.
        let pointer_typedef = start > 0 && bytes[start - 1] == b'*';
        if boundary && !pointer_typedef && after < bytes.len() && bytes[after] == b'(' {
            names.insert(header[start..end].to_string());
        }
        i = end.max(start + 4);
    }
    names
}

/// Whether Native.cs has a DllImport'ed `extern` method of that name.
fn declares(native: &str, name: &str) -> bool {
    native.lines().any(|l| {
        let l = l.trim();
        l.starts_with("public static extern ") && l.contains(&format!(" {name}("))
    })
}
