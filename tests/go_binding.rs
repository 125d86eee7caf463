//! The Go binding (`bindings/go`): runs `go test -count=1 ./...` there and fails when it fails.
//!
//! The Go tests cover the binding against an in-process listener (messages, a segmented 10 KB
//! message at TPDU 1024, Poll, errors.Is for a refused port and a timeout (with the OS error
//! and the connect phase), Reconnect, the user-timeout and attempt-delay options, Close twice, use
//! after Close, concurrent Send and Recv) and against python-snap7's servers started from
//! `tests/peers/server.py` (venvs from ISOTCP_VENV_PY3 / ISOTCP_VENV_NATIVE, which this test
//! passes through), and TLS inside COTP against s7commplus's S7-1500 emulator
//! (`tests/peers/s7commplus_server.py` under ISOTCP_VENV_S7COMMPLUS): InitSSL in clear, StartTLS
//! pinned or with a CA file, encrypted requests, the exporter, a wrong pin (ErrTLS), and the
//! server role with the emulator's certificate and key.
//!
//! Go's build cache and GOPATH live under `<target>/go`, so the run needs no HOME and writes
//! nothing outside the target directory; GOPROXY=off, since the module has no dependencies.
//! The binding links the `libisotcp.a` cargo built for this run: the `isotcp_debug` build tag
//! when that is `target/debug`, otherwise the `isotcp_external` build tag with CGO_LDFLAGS
//! naming it. (Without a tag the package links the installed library through pkg-config;
//! tests/go_module.rs tests that.)
//!
//! No `go` on PATH (or at ISOTCP_GO): a SKIP, or a failure when ISOTCP_REQUIRE_PEERS=1
//! (`.ci/setup-go` installs Debian's golang-go).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn require_peers() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The `go` command: ISOTCP_GO, else `go` on PATH; None when it does not run.
fn find_go() -> Option<(PathBuf, String)> {
    let go = std::env::var_os("ISOTCP_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("go"));
    let out = Command::new(&go)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some((go, String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// The directory holding the libraries cargo built for this run (`<target>/<profile>`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf();
    assert!(
        dir.join("libisotcp.a").exists(),
        "{} missing: `cargo build` produces it (.ci/test builds before testing)",
        dir.join("libisotcp.a").display()
    );
    dir
}

/// A digest of the header, passed in CGO_CFLAGS: Go's build cache keys on CGO_CFLAGS but not on
/// headers outside the package, so a changed header recompiles the binding.
fn header_digest() -> String {
    let header = std::fs::read(Path::new(ROOT).join("include/isotcp.h")).expect("include/isotcp.h");
    let mut h = DefaultHasher::new();
    header.hash(&mut h);
    format!("{:016x}", h.finish())
}

#[test]
fn go_binding_tests_pass() {
    let Some((go, version)) = find_go() else {
        let msg = "`go` not found (install Debian's golang-go: bash .ci/setup-go)";
        if require_peers() {
            panic!("{msg}; ISOTCP_REQUIRE_PEERS=1 makes a missing tool a failure");
        }
        eprintln!("SKIP go_binding: {msg}");
        return;
    };
    let lib = lib_dir();
    let target = lib.parent().expect("<target>").to_path_buf();
    let go_home = target.join("go");
    let pkg = Path::new(ROOT).join("bindings/go");
    for dir in ["cache", "path", "tmp"] {
        std::fs::create_dir_all(go_home.join(dir)).unwrap();
    }

    let mut cmd = Command::new(&go);
    cmd.current_dir(&pkg)
        .env("GOCACHE", go_home.join("cache"))
        .env("GOPATH", go_home.join("path"))
        .env("GOMODCACHE", go_home.join("path/pkg/mod"))
        .env("GOTMPDIR", go_home.join("tmp"))
        .env("GOENV", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOTELEMETRY", "off")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "1")
        .env(
            "CGO_CFLAGS",
            format!("-g -O2 -DISOTCP_H_DIGEST={}", header_digest()),
        );
    if std::env::var_os("HOME").is_none() {
        cmd.env("HOME", &go_home);
    }
    let default_lib = Path::new(ROOT).join("target/debug");
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    cmd.arg("test");
    let link = if same(&lib, &default_lib) {
        cmd.arg("-tags=isotcp_debug").env_remove("CGO_LDFLAGS");
        "-tags=isotcp_debug (target/debug/libisotcp.a)".to_string()
    } else {
        let archive = lib.join("libisotcp.a");
        cmd.arg("-tags=isotcp_external").env(
            "CGO_LDFLAGS",
            format!("{} -lpthread -ldl -lm", archive.display()),
        );
        format!("-tags=isotcp_external, {}", archive.display())
    };
    cmd.args(["-count=1", "-timeout=300s", "-v", "./..."]);

    let out = cmd.output().expect("go test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{version}; {link}\n--- go test stdout\n{stdout}\n--- go test stderr\n{stderr}");
    assert!(
        out.status.success(),
        "go test ./... in bindings/go failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("ok  \tisotcp.example/isotcp"),
        "go test printed no ok line for the package:\n{stdout}"
    );
    for test in [
        "TestSegmented10KB",
        "TestPoll",
        "TestRefused",
        "TestDialTimeout",
        "TestCloseTwiceAndUseAfterClose",
        "TestConcurrentSendRecv",
        "TestTLSConfigErrors",
    ] {
        assert!(
            stdout.contains(&format!("--- PASS: {test} ")),
            "{test} did not pass:\n{stdout}"
        );
    }
    if require_peers() {
        for test in [
            "TestPythonSnap7Server",
            "TestNativeSnap7Server",
            "TestTLSPinnedSession",
            "TestTLSCAFileAndServerName",
            "TestTLSWrongPin",
            "TestTLSUnverified",
            "TestTLSServerRole",
        ] {
            assert!(
                stdout.contains(&format!("--- PASS: {test} ")),
                "{test} did not pass (ISOTCP_REQUIRE_PEERS=1):\n{stdout}"
            );
        }
    }
}
