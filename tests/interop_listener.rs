//! Our listener against clients we did not write: python-snap7 3.3's pure-Python client and the
//! native snap7 1.4.2 client (from python-snap7 2.0.2), both driven by tests/peers/client.py,
//! against examples-c/s7_server.c (an S7 responder on iso_listen/iso_accept).
//!
//! The python venvs come from ISOTCP_VENV_PY3 / ISOTCP_VENV_NATIVE (python executables; defaults
//! under /opt). Missing: SKIP, unless ISOTCP_REQUIRE_PEERS=1.

mod common;

use common::examples;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn venv(var: &str, default: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()));
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{} missing and ISOTCP_REQUIRE_PEERS=1",
        p.display()
    );
    eprintln!("SKIP: {} not found", p.display());
    None
}

/// Builds examples-c/s7_server against the static library once per test run.
fn s7_server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build("s7_server_interop", &["s7_server.c", "s7_responder.c"]))
}

struct Server {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(s7_server_binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("s7_server starts");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().expect("READY line").unwrap();
        let port = ready
            .strip_prefix("READY ")
            .expect("READY <port>")
            .trim()
            .parse()
            .unwrap();
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            _stdin: stdin,
            port,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(python: &Path, port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(python)
        .arg(Path::new(ROOT).join("tests/peers/client.py"))
        .args(["--port", &port.to_string()])
        .args(args)
        .output()
        .expect("client.py runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn expect_hex(start: usize, len: usize) -> String {
    (start..start + len)
        .map(|i| format!("{:02x}", i & 0xFF))
        .collect()
}

fn exercise(python: &Path, label: &str) {
    let srv = Server::start(&[]);
    // Connect, PDU length, read with the data checked.
    let (ok, out) = client(
        python,
        srv.port,
        &["--start", "0", "--size", "4", "--expect-hex", "00010203"],
    );
    assert!(ok, "{label}: {out}");
    assert!(out.contains("PDU 480"), "{label}: negotiated PDU: {out}");
    // A larger read and a write read back.
    let (ok, out) = client(
        python,
        srv.port,
        &[
            "--start",
            "100",
            "--size",
            "400",
            "--expect-hex",
            &expect_hex(100, 400),
        ],
    );
    assert!(ok, "{label}: {out}");
    let (ok, out) = client(
        python,
        srv.port,
        &[
            "--db",
            "2",
            "--start",
            "8",
            "--size",
            "4",
            "--write-hex",
            "cafe0102",
            "--expect-hex",
            "cafe0102",
        ],
    );
    assert!(ok, "{label}: {out}");
    // Rack/slot other than 0/2 reach the same server (it serves any TSAP).
    let (ok, out) = client(
        python,
        srv.port,
        &[
            "--rack",
            "0",
            "--slot",
            "1",
            "--start",
            "0",
            "--size",
            "2",
            "--expect-hex",
            "0001",
        ],
    );
    assert!(ok, "{label}: {out}");
}

#[test]
fn python_snap7_client_works_with_our_listener() {
    if let Some(py) = venv("ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python") {
        exercise(&py, "python-snap7 3.3 client");
    }
}

/// The native client accepts only a 22-byte CC: this passes only because ours echoes both TSAPs.
#[test]
fn native_snap7_client_works_with_our_listener() {
    if let Some(py) = venv("ISOTCP_VENV_NATIVE", "/opt/venv-snap7-2/bin/python") {
        exercise(&py, "native snap7 client");
    }
}

#[test]
fn tsap_filter_refuses_clients_asking_for_another_slot() {
    let Some(py) = venv("ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python") else {
        return;
    };
    // Only rack 0, slot 2 (TSAP 0x0102) is served.
    let srv = Server::start(&["--allow-tsap", "0102"]);
    let (ok, out) = client(
        &py,
        srv.port,
        &[
            "--rack",
            "0",
            "--slot",
            "2",
            "--size",
            "2",
            "--expect-hex",
            "0001",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = client(
        &py,
        srv.port,
        &["--rack", "0", "--slot", "3", "--size", "2"],
    );
    assert!(!ok, "slot 3 must be refused: {out}");
}
