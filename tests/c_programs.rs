//! The C side of the library, built and run the way C programmers use it:
//!
//! - every program of `examples-c/` compiled with `gcc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall
//!   -Wextra -Werror -pedantic`, once against `libisotcp.a` and once against `libisotcp.so`;
//! - `demo` run with both links;
//! - `include/isotcp.h` compiled as C++17 (and run), as C99 and as C89;
//! - `s7_read` against python-snap7 3.3.0's server, the native snap7 1.4.2 server, our own
//!   `s7_server`, and a closed port;
//! - `tests/c/abuse.c` (caller abuse through the C ABI) run with both links; the functions it
//!   covers are compared with the `ISO_API` declarations of the header, so a new export that
//!   abuse.c does not exercise fails here.
//!
//! Binaries go to `target/c-tests/`. The libraries are the ones cargo built for this test run
//! (`target/debug`). The python venvs of the S7 peers come from ISOTCP_VENV_PY3 /
//! ISOTCP_VENV_NATIVE (defaults under /opt); a missing one is a SKIP unless
//! ISOTCP_REQUIRE_PEERS=1.

#![cfg(not(miri))] // runs compilers and other processes

mod common;

use common::process;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const C_FLAGS: &[&str] = &[
    "-std=c11",
    "-D_POSIX_C_SOURCE=200809L",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O1",
    "-g",
];

/// The directory holding the libraries cargo built for this run: the test binary lives in
/// `<target>/<profile>/deps/`, the libraries in `<target>/<profile>/`.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
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

fn out_dir() -> PathBuf {
    let dir = lib_dir().parent().expect("<target>").join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Link {
    Static,
    Shared,
}

impl Link {
    fn suffix(self) -> &'static str {
        match self {
            Link::Static => "static",
            Link::Shared => "shared",
        }
    }

    /// The link arguments after the sources: the archive plus what Rust's std needs, or -l with
    /// an rpath so the program finds the shared library without LD_LIBRARY_PATH.
    fn args(self) -> Vec<String> {
        let dir = lib_dir();
        match self {
            Link::Static => vec![
                dir.join("libisotcp.a").display().to_string(),
                "-lpthread".into(),
                "-ldl".into(),
                "-lm".into(),
            ],
            Link::Shared => vec![
                format!("-L{}", dir.display()),
                "-lisotcp".into(),
                format!("-Wl,-rpath,{}", dir.display()),
                "-lpthread".into(),
            ],
        }
    }
}

/// The C programs this file builds: name and sources (relative to the repository).
fn sources(program: &str) -> &'static [&'static str] {
    match program {
        "demo" => &["examples-c/demo.c", "examples-c/s7_responder.c"],
        "s7_server" => &["examples-c/s7_server.c", "examples-c/s7_responder.c"],
        "s7_read" => &["examples-c/s7_read.c"],
        "abuse" => &["tests/c/abuse.c"],
        other => panic!("unknown program {other}"),
    }
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Compiles `program` against the library (once per run and link), returns the binary.
fn built(program: &str, link: Link) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<(String, Link), PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cache.get(&(program.to_string(), link)) {
        return p.clone();
    }
    let out = out_dir().join(format!("{program}-{}", link.suffix()));
    let result = Command::new("gcc")
        .args(C_FLAGS)
        .arg("-I")
        .arg(Path::new(ROOT).join("include"))
        .arg("-o")
        .arg(&out)
        .args(sources(program).iter().map(|s| Path::new(ROOT).join(s)))
        .args(link.args())
        .output()
        .expect("gcc runs");
    assert!(
        result.status.success(),
        "building {program} ({}) failed:\n{}",
        link.suffix(),
        output_text(&result)
    );
    cache.insert((program.to_string(), link), out.clone());
    out
}

/// What a finished program printed.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `bin args` with stdin closed, killing it after `limit` (which fails the test).
fn run(bin: &Path, args: &[&str], limit: Duration) -> Run {
    // A library abort prints its message and location; a full backtrace per abort would bury
    // the program's own report.
    let done = process::run_limited(
        Command::new(bin).args(args).env("RUST_BACKTRACE", "0"),
        limit,
    );
    let Some(status) = done.status else {
        panic!(
            "{} {args:?} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
            bin.display(),
            done.stdout,
            done.stderr
        );
    };
    Run {
        status,
        stdout: done.stdout,
        stderr: done.stderr,
        elapsed: done.elapsed,
    }
}

/// The shared build must really load libisotcp.so, the static one must not.
fn assert_linkage(bin: &Path, link: Link) {
    let Ok(out) = Command::new("readelf").arg("-d").arg(bin).output() else {
        eprintln!(
            "readelf not found: linkage of {} not checked",
            bin.display()
        );
        return;
    };
    let needs = String::from_utf8_lossy(&out.stdout).contains("[libisotcp.so");
    assert_eq!(
        needs,
        link == Link::Shared,
        "{}: NEEDED libisotcp.so is {needs}",
        bin.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Building and running the examples
// ---------------------------------------------------------------------------------------------

#[test]
fn examples_compile_against_static_and_shared_library() {
    for program in ["demo", "s7_server", "s7_read"] {
        for link in [Link::Static, Link::Shared] {
            let bin = built(program, link);
            assert_linkage(&bin, link);
        }
    }
}

#[test]
fn demo_runs_with_both_links() {
    for link in [Link::Static, Link::Shared] {
        let bin = built("demo", link);
        let r = run(&bin, &[], Duration::from_secs(60));
        assert!(
            r.status.success() && r.stdout.contains("demo finished"),
            "demo ({}): {}",
            link.suffix(),
            r.describe()
        );
        assert!(
            r.stdout.contains("DB1.DBB0..3 = 00 01 02 03"),
            "{}",
            r.describe()
        );
        // At TPDU 256 the 418-byte answer comes in several DTs.
        let r = run(&bin, &["--tpdu", "256"], Duration::from_secs(60));
        assert!(
            r.status.success()
                && r.stdout.contains("demo finished")
                && r.stdout.contains("negotiated 256")
                && r.stdout.contains("reassembled from several DTs"),
            "demo --tpdu 256 ({}): {}",
            link.suffix(),
            r.describe()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The header in other languages
// ---------------------------------------------------------------------------------------------

const CPP_TU: &str = r#"// Includes isotcp.h from C++ and calls a few functions of each kind.
#include "isotcp.h"

#include <cstdio>
#include <cstring>

static int32_t refuse_all(void *user, const uint8_t *calling, size_t calling_len,
                          const uint8_t *called, size_t called_len) {
    (void)user; (void)calling; (void)calling_len; (void)called; (void)called_len;
    return 0x03;
}

int main() {
    iso_conn *c = nullptr;
    iso_listener *l = nullptr;
    uint16_t tsap = 0;
    char msg[128];
    size_t needed = 0;
    if (iso_create("127.0.0.1", 102, &c) != ISO_OK || c == nullptr) return 1;
    if (iso_s7_tsap(1, 0, 2, &tsap) != ISO_OK || tsap != 0x0102) return 2;
    if (iso_set_tsap(c, 0x0100, tsap) != ISO_OK) return 3;
    if (iso_set_tpdu_size(c, 1000) != ISO_E_INVALID) return 4;
    if (iso_last_error(c, msg, sizeof msg, &needed) != ISO_OK || needed != std::strlen(msg) + 1) return 5;
    if (iso_listen("127.0.0.1", 0, &l) != ISO_OK) return 6;
    iso_cr_filter filter = refuse_all;
    if (iso_listener_set_filter(l, filter, nullptr) != ISO_OK) return 7;
    std::printf("C++ ok: isotcp %s (%u), %s: %s\n", iso_version(), (unsigned)iso_version_number(),
                iso_strerror(ISO_E_INVALID), msg);
    iso_listener_destroy(l);
    iso_destroy(c);
    return std::strcmp(iso_version(), ISO_VERSION) == 0 && iso_version_number() == ISO_VERSION_NUMBER ? 0 : 8;
}
"#;

#[test]
fn header_compiles_and_links_as_cpp() {
    let dir = out_dir();
    let src = dir.join("header_check.cpp");
    std::fs::write(&src, CPP_TU).unwrap();
    for (std, link) in [("-std=c++17", Link::Static), ("-std=c++11", Link::Shared)] {
        let bin = dir.join(format!("header_check_cpp-{}", link.suffix()));
        let out = Command::new("g++")
            .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(Path::new(ROOT).join("include"))
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .args(link.args())
            .output()
            .expect("g++ runs");
        assert!(
            out.status.success(),
            "isotcp.h as C++ ({std}):\n{}",
            output_text(&out)
        );
        let r = run(&bin, &[], Duration::from_secs(30));
        assert!(
            r.status.success() && r.stdout.contains("C++ ok: isotcp 0.1.0"),
            "{}",
            r.describe()
        );
    }
}

const C_TU: &str = "/* Includes isotcp.h and uses its types and macros. */\n\
#include \"isotcp.h\"\n\
int main(void) {\n\
    iso_conn *c = 0;\n\
    iso_cr_filter f = 0;\n\
    int32_t rc = iso_create(\"127.0.0.1\", 102, &c);\n\
    (void)f;\n\
    iso_destroy(c);\n\
    return rc == ISO_OK && iso_version_number() == ISO_VERSION_NUMBER ? 0 : 1;\n\
}\n";

/// The header as C99 with every warning an error, and as C89. cbindgen writes
/// `#endif // __cplusplus`, which C89 calls extra tokens after #endif (a warning, not an error);
/// that one diagnostic is allowed, everything else in the header must be C89.
#[test]
fn header_compiles_as_c99_and_c89() {
    let dir = out_dir();
    let src = dir.join("header_check.c");
    std::fs::write(&src, C_TU).unwrap();
    for flags in [
        &["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"][..],
        &[
            "-std=c89",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-endif-labels",
        ][..],
    ] {
        let out = Command::new("gcc")
            .args(flags)
            .arg("-I")
            .arg(Path::new(ROOT).join("include"))
            .args(["-fsyntax-only"])
            .arg(&src)
            .output()
            .expect("gcc runs");
        assert!(
            out.status.success(),
            "isotcp.h with {flags:?}:\n{}",
            output_text(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// s7_read against real S7 servers
// ---------------------------------------------------------------------------------------------

fn venv(var: &str, default: &str) -> Option<PathBuf> {
    let p = match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(default),
    };
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{} missing and ISOTCP_REQUIRE_PEERS=1 (set {var} or run .ci/setup)",
        p.display()
    );
    eprintln!("SKIP c_programs: {} not found (set {var})", p.display());
    None
}

/// A running server that prints "READY <port> ..." first and stops when its stdin closes
/// (tests/peers/server.py, examples-c/s7_server).
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    stderr: std::sync::Arc<Mutex<String>>,
}

impl Server {
    fn start(mut cmd: Command, expect_flavor: Option<&str>) -> Server {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stdin = child.stdin.take();
        let stderr = std::sync::Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            lines.for_each(drop);
        });
        let mut server = Server {
            child,
            stdin,
            port: 0,
            stderr,
        };
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(Ok(line))) => line,
            other => {
                server.stop();
                panic!(
                    "no READY line ({other:?}); stderr: {}",
                    server.stderr.lock().unwrap()
                );
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() >= 2 && words[0] == "READY",
            "unexpected first line {line:?}"
        );
        if let Some(flavor) = expect_flavor {
            assert_eq!(
                words.get(2).copied(),
                Some(flavor),
                "server flavor: {line:?}"
            );
        }
        server.port = words[1].parse().expect("READY <port>");
        server
    }

    fn peer(python: &Path, flavor: &str) -> Server {
        let mut cmd = Command::new(python);
        cmd.arg(Path::new(ROOT).join("tests/peers/server.py"))
            .args(["--port", "0"]);
        Server::start(cmd, Some(flavor))
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The hex dump s7_read prints for DB1 bytes `start..start + size` (DB1[i] = i & 0xFF).
fn expected_dump(start: usize, size: usize) -> String {
    let mut s = format!("DB1.DBB{start}, {size} bytes:");
    for i in 0..size {
        s.push_str(if i % 16 == 0 { "\n  " } else { " " });
        s.push_str(&format!("{:02X}", (start + i) & 0xFF));
    }
    s.push('\n');
    s
}

/// The Rust example `examples/s7_read.rs`, which cargo builds for the tests next to them.
fn rust_s7_read() -> PathBuf {
    let bin = lib_dir().join("examples").join("s7_read");
    assert!(
        bin.exists(),
        "{} missing: `cargo test` builds the examples",
        bin.display()
    );
    bin
}

/// Reads with s7_read (the C program with both links, and its Rust twin over the Rust API): 16
/// bytes at 0, 400 bytes at 100 with TPDU 256, the last byte of DB1; every byte compared.
fn s7_reads(port: u16, label: &str) {
    let port = port.to_string();
    let programs = [
        (built("s7_read", Link::Static), Link::Static.suffix()),
        (built("s7_read", Link::Shared), Link::Shared.suffix()),
        (rust_s7_read(), "Rust API"),
    ];
    for (bin, kind) in programs {
        for (start, size, tpdu) in [
            (0usize, 16usize, "1024"),
            (100, 400, "256"),
            (1023, 1, "512"),
        ] {
            let (st, sz) = (start.to_string(), size.to_string());
            let r = run(
                &bin,
                &[
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--start",
                    &st,
                    "--size",
                    &sz,
                    "--tpdu",
                    tpdu,
                ],
                Duration::from_secs(30),
            );
            let what =
                format!("s7_read ({kind}) against {label}, {size} bytes at {start}, TPDU {tpdu}");
            assert!(r.status.success(), "{what}: {}", r.describe());
            assert!(
                r.stdout.contains("S7 PDU size: 480"),
                "{what}: PDU: {}",
                r.describe()
            );
            assert!(
                r.stdout.contains(&expected_dump(start, size)),
                "{what}: expected\n{}\n{}",
                expected_dump(start, size),
                r.describe()
            );
        }
        // A read past the end of DB1: the server refuses it, s7_read says so with status 2.
        let r = run(
            &bin,
            &[
                "127.0.0.1",
                "--port",
                &port,
                "--start",
                "1020",
                "--size",
                "8",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(
            r.status.code(),
            Some(2),
            "s7_read ({kind}) past the end of DB1 against {label}: {}",
            r.describe()
        );
    }
}

#[test]
fn s7_read_against_python_snap7_server() {
    let Some(py) = venv("ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python") else {
        return;
    };
    let server = Server::peer(&py, "py3");
    s7_reads(server.port, "python-snap7 3.3.0");
}

#[test]
fn s7_read_against_native_snap7_server() {
    let Some(py) = venv("ISOTCP_VENV_NATIVE", "/opt/venv-snap7-2/bin/python") else {
        return;
    };
    let server = Server::peer(&py, "native");
    s7_reads(server.port, "native snap7 1.4.2");
}

#[test]
fn s7_read_against_s7_server() {
    for link in [Link::Static, Link::Shared] {
        let server = Server::start(Command::new(built("s7_server", link)), None);
        s7_reads(
            server.port,
            &format!("examples-c/s7_server ({})", link.suffix()),
        );
    }
}

#[test]
fn s7_read_against_a_closed_port() {
    // A port that was free a moment ago: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    for link in [Link::Static, Link::Shared] {
        let r = run(
            &built("s7_read", link),
            &["127.0.0.1", "--port", &port, "--timeout", "3000"],
            Duration::from_secs(30),
        );
        assert_eq!(r.status.code(), Some(1), "{}", r.describe());
        assert!(
            r.stderr.contains("refused") && r.stderr.contains("iso_connect"),
            "{}",
            r.describe()
        );
        assert!(r.stdout.is_empty(), "{}", r.describe());
    }
}

// ---------------------------------------------------------------------------------------------
// Caller abuse
// ---------------------------------------------------------------------------------------------

/// The names of the functions the header declares with ISO_API (the declarations span lines:
/// `ISO_API\nint32_t iso_set_tsap_bytes(...`).
fn header_exports() -> BTreeSet<String> {
    exports_in(&std::fs::read_to_string(Path::new(ROOT).join("include/isotcp.h")).unwrap())
}

fn exports_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("ISO_API") {
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        // Declarations start their line; `#  define ISO_API` and mentions in comments do not.
        if !text[line_start..at].trim().is_empty() {
            continue;
        }
        let after = &text[at + "ISO_API".len()..];
        let decl = &after[..after.find('(').expect("( after ISO_API")];
        let name = decl
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| !w.is_empty())
            .unwrap_or_default()
            .to_string();
        assert!(
            name.starts_with("iso_"),
            "unexpected ISO_API declaration {decl:?}"
        );
        names.insert(name);
    }
    names
}

#[test]
fn export_list_parser() {
    let text = "#  define ISO_API __declspec(dllexport)\n#  define ISO_API\n\
        /** Mentions ISO_API (not a declaration). */\n\
        ISO_API const char *iso_strerror(int32_t code);\n\
        ISO_API\nint32_t iso_set_tsap_bytes(iso_conn *conn,\n    const uint8_t *local);\n\
        ISO_API void iso_destroy(iso_conn *conn);\n";
    let names: Vec<String> = exports_in(text).into_iter().collect();
    assert_eq!(names, ["iso_destroy", "iso_set_tsap_bytes", "iso_strerror"]);
}

fn covered_by_abuse(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("covers "))
        .map(|s| s.trim().to_string())
        .collect()
}

fn abuse(link: Link, messages: &str) {
    let bin = built("abuse", link);
    let r = run(
        &bin,
        &["--quiet", "--messages", messages],
        Duration::from_secs(600),
    );
    let exports = header_exports();
    assert!(
        exports.len() >= 40,
        "only {} ISO_API declarations found in isotcp.h: {exports:?}",
        exports.len()
    );
    let covered = covered_by_abuse(&r.stdout);
    let missing: Vec<_> = exports.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&exports).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "tests/c/abuse.c must exercise every export: not covered {missing:?}; not in the header {unknown:?}\n{}",
        r.describe()
    );
    assert!(
        r.status.success() && r.stdout.contains(", 0 failed"),
        "abuse ({}): {}",
        link.suffix(),
        r.describe()
    );
    eprintln!(
        "abuse ({}): {}",
        link.suffix(),
        r.stdout.lines().last().unwrap_or("")
    );
}

#[test]
fn abuse_through_the_c_abi_static() {
    abuse(Link::Static, "100000");
}

#[test]
fn abuse_through_the_c_abi_shared() {
    abuse(Link::Shared, "100000");
}
