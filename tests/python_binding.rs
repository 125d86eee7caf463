//! The Python bindings (`bindings/python`, package `isotcp`): runs their unittest file
//! `bindings/python/tests/test_swap.py` with the python of the python-snap7 3.3.0 venv
//! (ISOTCP_VENV_PY3, default /opt/venv-snap7-3/bin/python) against the library cargo built for
//! this run (`<target>/debug/libisotcp.so`, given as ISOTCP_LIBRARY).
//!
//! The file swaps python-snap7's `snap7.client.Client` onto `isotcp.ISOTCPConnection` and runs
//! it against python-snap7's server, and compares error and state behaviour with python-snap7's
//! own connection class. A missing venv is a SKIP (the tests that need no python-snap7 then run
//! with `python3` from PATH if there is one), unless ISOTCP_REQUIRE_PEERS=1, which makes it a
//! failure and is passed on to the file, where a missing python-snap7 fails too.
//!
//! `test_tls.py` (in the same run) starts TLS against s7commplus's S7-1500 emulator
//! (tests/peers/s7commplus_server.py, run with the s7commplus venv's python). A second test runs
//! `test_s7commplus_client.py` with that venv's python: s7commplus 0.3.0's own client, its
//! transport and TLS replaced by `isotcp.s7commplus`, in a whole V2 session against the emulator.

#![cfg(not(miri))] // runs other processes

mod common;

use common::process;
use common::s7commplus_peer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The whole file runs in about 5 s; this only stops a hang.
const DEADLINE: Duration = Duration::from_secs(300);

fn peers_required() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Writes past the test harness's output capture, so SKIP lines show in a plain `cargo test`.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The shared library cargo built for this run: the test binary is in `<target>/<profile>/deps/`.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>");
    let lib = dir.join(if cfg!(target_os = "macos") {
        "libisotcp.dylib"
    } else {
        "libisotcp.so"
    });
    assert!(
        lib.exists(),
        "{} missing: `cargo build` produces it (.ci/test builds before testing)",
        lib.display()
    );
    lib
}

fn venv_python() -> PathBuf {
    match std::env::var_os("ISOTCP_VENV_PY3") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("/opt/venv-snap7-3/bin/python"),
    }
}

fn python3_on_path() -> Option<PathBuf> {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from("python3"))
}

/// Runs `cmd` to completion with DEADLINE; returns (success, stdout + stderr).
fn run(mut cmd: Command) -> (bool, String) {
    let done = process::run_limited(&mut cmd, DEADLINE);
    (done.success(), done.text())
}

#[test]
fn python_binding_unittests() {
    let venv = venv_python();
    let python = if venv.exists() {
        venv
    } else {
        let why = format!(
            "no python-snap7 3.3.0 python at {} (set ISOTCP_VENV_PY3 or run .ci/setup)",
            venv.display()
        );
        if peers_required() {
            panic!("ISOTCP_REQUIRE_PEERS=1 and {why}");
        }
        match python3_on_path() {
            Some(p) => {
                note(&format!(
                    "SKIP python_binding (python-snap7 parts): {why}; running the rest with python3"
                ));
                p
            }
            None => {
                note(&format!(
                    "SKIP python_binding: {why}, and no python3 on PATH"
                ));
                return;
            }
        }
    };

    let tests = Path::new(ROOT).join("bindings/python/tests");
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(&tests)
        .arg("-t")
        .arg(&tests)
        .current_dir(ROOT)
        .env("ISOTCP_LIBRARY", library())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "ISOTCP_REQUIRE_PEERS",
            if peers_required() { "1" } else { "0" },
        );
    if let Ok(s7commplus) = s7commplus_peer::python() {
        cmd.env("ISOTCP_VENV_S7COMMPLUS", s7commplus);
    }
    let (ok, output) = run(cmd);
    assert!(
        ok,
        "{} -m unittest bindings/python/tests failed:\n{output}",
        python.display()
    );

    // unittest prints "Ran N tests" and "OK" / "OK (skipped=K)".
    let ran: usize = output
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no 'Ran N tests' line in:\n{output}"));
    assert!(ran >= 20, "only {ran} tests ran:\n{output}");
    let skipped: usize = output
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("OK (")?;
            rest.split(['=', ')']).nth(1)?.parse().ok()
        })
        .unwrap_or(0);
    if peers_required() {
        assert_eq!(
            skipped, 0,
            "tests skipped with ISOTCP_REQUIRE_PEERS=1:\n{output}"
        );
    }
    note(&format!(
        "python_binding: {ran} unittest tests passed with {} ({skipped} skipped)",
        python.display()
    ));
}

/// s7commplus's client on isotcp (`isotcp.s7commplus`), run by the s7commplus venv's python.
#[test]
fn python_binding_runs_s7commplus_client() {
    let python = match s7commplus_peer::python() {
        Ok(p) => p,
        Err(why) if peers_required() => panic!("ISOTCP_REQUIRE_PEERS=1 and {why}"),
        Err(why) => {
            note(&format!("SKIP python_binding (s7commplus client): {why}"));
            return;
        }
    };
    let tests = Path::new(ROOT).join("bindings/python/tests");
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "unittest", "-v", "test_s7commplus_client"])
        .current_dir(&tests)
        .env("ISOTCP_LIBRARY", library())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (ok, output) = run(cmd);
    assert!(
        ok,
        "{} -m unittest test_s7commplus_client failed:\n{output}",
        python.display()
    );
    // Under a python without s7commplus the module contributes no tests: make sure they ran.
    assert!(
        output.contains("Ran 7 tests"),
        "test_s7commplus_client did not run its 7 tests:\n{output}"
    );
    note(&format!(
        "python_binding: s7commplus client on isotcp, 7 tests passed with {}",
        python.display()
    ));
}
