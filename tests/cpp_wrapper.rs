//! The C++ wrapper `include/isotcp.hpp`: `tests/cpp/wrapper_test.cpp` compiled with
//! `-Wall -Wextra -Werror -pedantic` (and -Wshadow -Wconversion -Wsign-conversion
//! -Wold-style-cast, so the header stays quiet in strict projects) as C++17 and as C++20,
//! linked against `libisotcp.a` (and once against `libisotcp.so`), and run: a Listener and
//! Connections in one process exchanging messages (one of 10 KB, segmented), the exceptions for
//! a refused connection (with ECONNREFUSED and the TCP phase), a timeout and other errors, a CR
//! filter, five reconnects in a row, the user-timeout and attempt-delay setters, inert
//! moved-from objects. `tests/cpp/tls_test.cpp` (C++17 and C++20) tests the TLS part against
//! s7commplus's S7-1500 emulator (tests/peers/s7commplus_server.py; its venv missing is a SKIP
//! unless ISOTCP_REQUIRE_PEERS=1).
//!
//! The libraries are the ones cargo built for this test run (`target/debug`); binaries go to
//! `target/cpp-tests/`. The compiler is $CXX or g++; without one the test is a SKIP unless
//! ISOTCP_REQUIRE_PEERS=1.

mod common;

use common::process::{output_within as run_limited, text};
use common::s7commplus_peer::{self, S7CommPlusServer};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const CXX_FLAGS: &[&str] = &[
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wshadow",
    "-Wconversion",
    "-Wsign-conversion",
    "-Wold-style-cast",
    "-O1",
    "-g",
    "-pthread",
];

fn peers_required() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() == Ok("1")
}

fn compiler() -> Option<String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let found = Command::new(&cxx)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(cxx);
    }
    let msg = format!("C++ compiler {cxx} not found (bash .ci/setup-packaging installs g++)");
    if std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{msg}; ISOTCP_REQUIRE_PEERS=1 makes this a failure");
    }
    eprintln!("SKIP: {msg}");
    None
}

/// `<target>/<profile>`, where cargo put the libraries for this run.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf();
    for lib in ["libisotcp.a", "libisotcp.so"] {
        assert!(
            dir.join(lib).exists(),
            "{} missing: `cargo build` produces it (.ci/test builds before testing)",
            dir.join(lib).display()
        );
    }
    dir
}

#[derive(Clone, Copy)]
enum Link {
    Static,
    Shared,
}

/// Builds the wrapper test for `std` with `link`, runs it, and checks its report.
fn build_and_run(std: &str, link: Link) {
    build_and_run_program("wrapper_test", std, link, &[]);
}

/// Builds `tests/cpp/<program>.cpp` for `std` with `link`, runs it with `env`, and checks that
/// it reports "checks passed".
fn build_and_run_program(program: &str, std: &str, link: Link, env: &[(&str, String)]) {
    let Some(cxx) = compiler() else { return };
    let libs = lib_dir();
    let out_dir = libs.parent().unwrap().join("cpp-tests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (suffix, link_args): (&str, Vec<String>) = match link {
        Link::Static => (
            "static",
            vec![
                libs.join("libisotcp.a").display().to_string(),
                "-lpthread".into(),
                "-ldl".into(),
                "-lm".into(),
            ],
        ),
        Link::Shared => (
            "shared",
            vec![
                format!("-L{}", libs.display()),
                "-lisotcp".into(),
                format!("-Wl,-rpath,{}", libs.display()),
            ],
        ),
    };
    let bin = out_dir.join(format!("{program}-{std}-{suffix}"));
    let built = run_limited(
        Command::new(&cxx)
            .arg(format!("-std={std}"))
            .args(CXX_FLAGS)
            .arg("-I")
            .arg(Path::new(ROOT).join("include"))
            .arg("-o")
            .arg(&bin)
            .arg(Path::new(ROOT).join(format!("tests/cpp/{program}.cpp")))
            .args(&link_args),
        Duration::from_secs(300),
    );
    assert!(
        built.status.success(),
        "building {program} ({std}, {suffix}) failed:\n{}",
        text(&built)
    );

    let ran = run_limited(
        Command::new(&bin)
            .env_remove("LD_LIBRARY_PATH")
            .envs(env.iter().map(|(k, v)| (k, v))),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success() && stdout.contains("checks passed"),
        "{program} ({std}, {suffix}) failed ({}):\n{}",
        ran.status,
        text(&ran)
    );
    eprintln!("{std} {suffix}: {}", stdout.trim());
}

#[test]
fn cpp17_static() {
    build_and_run("c++17", Link::Static);
}

#[test]
fn cpp20_static() {
    build_and_run("c++20", Link::Static);
}

#[test]
fn cpp17_shared() {
    build_and_run("c++17", Link::Shared);
}

/// TlsConfig, start_tls, the exporter and the peer's certificate against s7commplus's
/// emulator: InitSSL in clear, then encrypted requests; a wrong pin is a TlsError.
fn tls_against_s7commplus(std: &str) {
    let python = match s7commplus_peer::python() {
        Ok(p) => p,
        Err(why) if peers_required() => panic!("ISOTCP_REQUIRE_PEERS=1 and {why}"),
        Err(why) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let server = S7CommPlusServer::start(&python);
    build_and_run_program("tls_test", std, Link::Static, &server.env());
}

#[test]
fn cpp17_tls_against_s7commplus() {
    tls_against_s7commplus("c++17");
}

#[test]
fn cpp20_tls_against_s7commplus() {
    tls_against_s7commplus("c++20");
}

/// Compiled as C++14, the header stops with a message naming the standard it needs.
#[test]
fn header_requires_cpp17() {
    let Some(cxx) = compiler() else { return };
    let source = "#include \"isotcp.hpp\"\nint main() { return 0; }\n";
    let dir = lib_dir().parent().unwrap().join("cpp-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("only_header.cpp");
    std::fs::write(&file, source).unwrap();
    let out = run_limited(
        Command::new(&cxx)
            .arg("-std=c++14")
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(Path::new(ROOT).join("include"))
            .arg(&file),
        Duration::from_secs(120),
    );
    assert!(!out.status.success(), "isotcp.hpp compiled as C++14");
    assert!(
        text(&out).contains("isotcp.hpp needs C++17 or later"),
        "no clear message for C++14:\n{}",
        text(&out)
    );
}
