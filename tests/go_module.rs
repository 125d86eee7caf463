//! The Go binding as another module gets it: `go get` from a module proxy, linked against the
//! installed library through pkg-config, exactly the steps of README.md ("From Go"):
//!
//! 1. `make install PREFIX=<work>/prefix` (the GNUmakefile, with this test's target directory);
//! 2. `python3 packaging/go_module_proxy.py <work>/proxy`: the module version v<crate version> in
//!    a file-based module proxy (nothing is published, so this stands in for the public proxy);
//! 3. in a new module (`tests/go_module/main.go`) with a fresh GOPATH, GOMODCACHE and GOCACHE:
//!    `go mod init`, then `go get isotcp.example/isotcp@v<version>` with
//!    GOPROXY=file://<work>/proxy and PKG_CONFIG_PATH=<work>/prefix/lib/pkgconfig, then
//!    `go build` (no build tag: the package's default link is pkg-config);
//! 4. checks: go.mod requires the version, go.sum has its hashes, the package compiled from the
//!    module cache (not from this repository), the program NEEDs libisotcp.so.<major>;
//! 5. runs it with LD_LIBRARY_PATH=<work>/prefix/lib against python-snap7 3.3.0's server: the
//!    loader must take the installed library, and DB1.DBB0..15 must read 00 01 .. 0F.
//!
//! Needs go, make, gcc, pkg-config, readelf, python3 and the venv of ISOTCP_VENV_PY3; a missing
//! one is a SKIP, or a failure when ISOTCP_REQUIRE_PEERS=1. Everything goes to
//! `<target>/go-module-test/`.

#![cfg(not(miri))] // runs go, make and a python server

mod common;

use common::process::{output_within, run_ok, target_dir, text};
use common::py3_server::{self, Py3Server, DB1_FIRST_16_HEX};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");
const MODULE: &str = "isotcp.example/isotcp";

/// Writes past the test harness's output capture, so SKIP lines show in a plain `cargo test`.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn require_peers() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A `go` command with nothing from this machine's Go setup: its own GOPATH, module cache and
/// build cache under `work`, no GOFLAGS or CGO_* from the environment, the module proxy of
/// `proxy`, and pkg-config looking in `pkgconfig` first.
fn go(work: &Path, dir: &Path, proxy: &Path, pkgconfig: &Path) -> Command {
    let go = std::env::var_os("ISOTCP_GO").unwrap_or_else(|| "go".into());
    let mut cmd = Command::new(go);
    cmd.current_dir(dir)
        .env("GOPATH", work.join("gopath"))
        .env("GOMODCACHE", work.join("gopath/pkg/mod"))
        .env("GOCACHE", work.join("gocache"))
        .env("GOTMPDIR", work.join("tmp"))
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOTELEMETRY", "off")
        .env("GO111MODULE", "on")
        .env("GOPROXY", format!("file://{}", proxy.display()))
        .env("GONOSUMDB", "isotcp.example")
        .env("CGO_ENABLED", "1")
        .env("PKG_CONFIG_PATH", pkgconfig)
        .env("HOME", work.join("home"))
        .env_remove("GOFLAGS")
        .env_remove("GOPRIVATE")
        .env_remove("GONOPROXY")
        .env_remove("GOSUMDB")
        .env_remove("CGO_CFLAGS")
        .env_remove("CGO_LDFLAGS")
        .env_remove("PKG_CONFIG_LIBDIR");
    cmd
}

#[test]
fn go_get_builds_against_the_installed_library_and_reads_a_plc() {
    let missing: Vec<&str> = [
        ("go", "version"),
        ("make", "--version"),
        ("gcc", "--version"),
        ("pkg-config", "--version"),
        ("readelf", "--version"),
        ("python3", "--version"),
    ]
    .into_iter()
    .filter(|(tool, arg)| {
        let tool = if *tool == "go" {
            std::env::var("ISOTCP_GO").unwrap_or_else(|_| "go".into())
        } else {
            tool.to_string()
        };
        !runs(&tool, arg)
    })
    .map(|(tool, _)| tool)
    .collect();
    let python = py3_server::python();
    let why = if !missing.is_empty() {
        Some(format!(
            "{} not found (.ci/setup-go, .ci/setup-packaging)",
            missing.join(", ")
        ))
    } else if !python.exists() {
        Some(format!(
            "no python-snap7 venv at {} (set ISOTCP_VENV_PY3)",
            python.display()
        ))
    } else {
        None
    };
    if let Some(why) = why {
        if require_peers() {
            panic!("{why}; ISOTCP_REQUIRE_PEERS=1 makes this a failure");
        }
        note(&format!("SKIP go_module: {why}"));
        return;
    }

    let target = target_dir();
    let work = target.join("go-module-test");
    // The module cache is written read-only by go; make it removable first.
    if work.join("gopath").exists() {
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(work.join("gopath"))
            .status();
    }
    let _ = std::fs::remove_dir_all(&work);
    for dir in ["app", "tmp", "home"] {
        std::fs::create_dir_all(work.join(dir)).unwrap();
    }
    let prefix = work.join("prefix");
    let proxy = work.join("proxy");
    let app = work.join("app");
    let pkgconfig = prefix.join("lib/pkgconfig");

    // 1. make install
    run_ok(
        Command::new("make")
            .arg("--no-print-directory")
            .arg("-C")
            .arg(ROOT)
            .arg("install")
            .arg(format!("PREFIX={}", prefix.display()))
            .env("CARGO_TARGET_DIR", &target)
            .env(
                "CARGO",
                std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into()),
            )
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL"),
        Duration::from_secs(1200),
    );

    // 2. the module proxy
    let out = run_ok(
        Command::new("python3")
            .arg(Path::new(ROOT).join("packaging/go_module_proxy.py"))
            .arg(&proxy),
        Duration::from_secs(60),
    );
    let version = format!("v{VERSION}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{MODULE} {version}: GOPROXY=")),
        "{}",
        text(&out)
    );

    // 3. another module: go mod init, go get, go build
    std::fs::copy(
        Path::new(ROOT).join("tests/go_module/main.go"),
        app.join("main.go"),
    )
    .unwrap();
    let limit = Duration::from_secs(600);
    run_ok(
        go(&work, &app, &proxy, &pkgconfig).args(["mod", "init", "example.com/s7read"]),
        limit,
    );
    let got = run_ok(
        go(&work, &app, &proxy, &pkgconfig).args(["get", &format!("{MODULE}@{version}")]),
        limit,
    );
    eprintln!("go get:\n{}", text(&got));
    run_ok(
        go(&work, &app, &proxy, &pkgconfig).args(["build", "-o", "s7read", "."]),
        limit,
    );

    // 4. what go get recorded, where the package came from, how the program links
    let gomod = std::fs::read_to_string(app.join("go.mod")).unwrap();
    assert!(
        gomod.contains(&format!("require {MODULE} {version}")),
        "go.mod:\n{gomod}"
    );
    let gosum = std::fs::read_to_string(app.join("go.sum")).unwrap();
    for line in [
        format!("{MODULE} {version} h1:"),
        format!("{MODULE} {version}/go.mod h1:"),
    ] {
        assert!(gosum.contains(&line), "go.sum has no {line:?}:\n{gosum}");
    }
    let listed = run_ok(
        go(&work, &app, &proxy, &pkgconfig).args([
            "list",
            "-f",
            "{{.Dir}} {{.Module.Version}} {{.CgoPkgConfig}}",
            MODULE,
        ]),
        limit,
    );
    let listed = String::from_utf8_lossy(&listed.stdout).trim().to_string();
    let cached = work.join(format!("gopath/pkg/mod/{MODULE}@{version}"));
    assert_eq!(
        listed,
        format!("{} {version} [isotcp]", cached.display()),
        "the package does not come from the module cache through pkg-config"
    );

    let program = app.join("s7read");
    let dynamic = output_within(
        Command::new("readelf").arg("-d").arg(&program),
        Duration::from_secs(60),
    );
    let dynamic = String::from_utf8_lossy(&dynamic.stdout).into_owned();
    assert!(
        dynamic.contains(&format!("Shared library: [libisotcp.so.{MAJOR}]")),
        "s7read does not NEED libisotcp.so.{MAJOR}:\n{dynamic}"
    );

    // 5. a round trip with python-snap7's server, through the installed library
    let server = Py3Server::start(&python);
    let mut cmd = Command::new(&program);
    cmd.arg(server.port.to_string())
        .env("LD_LIBRARY_PATH", prefix.join("lib"));
    if cfg!(target_env = "gnu") {
        cmd.env("LD_DEBUG", "libs");
    }
    let out = output_within(&mut cmd, Duration::from_secs(60));
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "s7read failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("find library") && !l.contains("search path"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stdout.contains(&format!("isotcp {VERSION}\n")),
        "version line: {stdout}"
    );
    assert!(
        stdout.contains(&format!("DB1 {DB1_FIRST_16_HEX}\n")),
        "DB1 bytes: {stdout}"
    );
    if cfg!(target_env = "gnu") {
        let loaded = format!(
            "init: {}",
            prefix.join(format!("lib/libisotcp.so.{MAJOR}")).display()
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&loaded),
            "s7read did not load the installed library ({loaded})"
        );
    }
    eprintln!("go_module: {}", stdout.trim().replace('\n', "; "));
}
