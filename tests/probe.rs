//! isotcp-probe (examples-c/probe.c) against peers we did not write: python-snap7 3.3.0's and the
//! native snap7 server (both accept any TSAP), our s7_server serving one TSAP (others get a DR),
//! and a closed port. Checks what the engineer would read: reachability, CC or DR reason, the
//! scan's list of accepted TSAPs, and the exit status.

mod common;

use common::examples;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn probe_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build("isotcp-probe", &["probe.c"]))
}

fn s7_server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build("s7_server_probe", &["s7_server.c", "s7_responder.c"]))
}

/// A server process that prints "READY <port>" first and stops when its stdin closes.
struct Server {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
}

impl Server {
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut line).unwrap();
        // Keep draining: a server that logs to a closed pipe would die of SIGPIPE.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let port = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no READY line: {line:?}"));
        Server {
            child,
            _stdin: stdin,
            port,
        }
    }

    /// python-snap7's server under the venv of `var`; None when the venv is missing (a failure
    /// when ISOTCP_REQUIRE_PEERS=1).
    fn python(var: &str, default: &str) -> Option<Server> {
        let py = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()));
        if !py.exists() {
            assert!(
                std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() != Ok("1"),
                "{} missing and ISOTCP_REQUIRE_PEERS=1",
                py.display()
            );
            eprintln!("SKIP: {} not found", py.display());
            return None;
        }
        let mut cmd = Command::new(py);
        cmd.arg(Path::new(ROOT).join("tests/peers/server.py"))
            .args(["--port", "0"]);
        Some(Server::start(cmd))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn probe(args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(probe_bin()).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&stdout).into_owned() + &String::from_utf8_lossy(&stderr);
    (status.code().unwrap_or(-1), text)
}

fn accepted_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("ACCEPTED"))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn probe_reports_a_cc_and_the_s7_round_trip_on_real_servers() {
    for (var, default) in [
        ("ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python"),
        ("ISOTCP_VENV_NATIVE", "/opt/venv-snap7-2/bin/python"),
    ] {
        let Some(srv) = Server::python(var, default) else {
            continue;
        };
        let port = srv.port.to_string();
        let (rc, out) = probe(&["127.0.0.1", "--port", &port, "--tpdu", "512"]);
        assert_eq!(rc, 0, "{var}: {out}");
        assert!(out.contains("TCP    reachable"), "{out}");
        assert!(
            out.contains("COTP   CC: TPDU 512 negotiated (offered 512), TSAPs 0100 -> 0102"),
            "{out}"
        );
        assert!(
            out.contains("S7     setup communication: PDU 480, round trip"),
            "{out}"
        );
        // A string TSAP goes out as text and comes back in the CC.
        let (rc, out) = probe(&[
            "127.0.0.1",
            "--port",
            &port,
            "--tsap",
            "0600:SIMATIC-ROOT-HMI",
            "--no-s7",
        ]);
        assert_eq!(rc, 0, "{var}: {out}");
        assert!(out.contains("TSAPs 0600 -> \"SIMATIC-ROOT-HMI\""), "{out}");
        // Both servers accept any TSAP: the scan lists every one it tries.
        let (rc, out) = probe(&["127.0.0.1", "--port", &port, "--scan", "--timeout", "3000"]);
        assert_eq!(rc, 0, "{var}: {out}");
        assert_eq!(accepted_lines(&out).len(), 34, "{var}: {out}");
        assert!(out.contains("34 TSAPs accepted"), "{out}");
    }
}

#[test]
fn probe_and_scan_show_which_tsap_a_device_serves() {
    let mut cmd = Command::new(s7_server_bin());
    cmd.args(["--port", "0", "--allow-tsap", "0301"]);
    let srv = Server::start(cmd);
    let port = srv.port.to_string();

    let (rc, out) = probe(&["127.0.0.1", "--port", &port, "--rack", "0", "--slot", "2"]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("COTP   refused: COTP connection refused by peer with DR, reason 0x03 (address unknown)"), "{out}");

    let (rc, out) = probe(&["127.0.0.1", "--port", &port, "--tsap", "0100:0301"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("CC: TPDU 1024"), "{out}");

    let (rc, out) = probe(&["127.0.0.1", "--port", &port, "--scan"]);
    assert_eq!(rc, 0, "{out}");
    let accepted = accepted_lines(&out);
    assert_eq!(accepted.len(), 1, "{out}");
    assert!(
        accepted[0].starts_with("0301  S7 basic rack 0 slot 1  ACCEPTED"),
        "{out}"
    );
    assert!(out.contains("0102  PG       rack 0 slot 2  refused   COTP connection refused by peer with DR, reason 0x03"), "{out}");
}

#[test]
fn probe_of_a_closed_port_says_tcp_does_not_reach_it() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (rc, out) = probe(&["127.0.0.1", "--port", &port]);
    assert_eq!(rc, 2, "{out}");
    assert!(out.contains("refused"), "{out}");
    let (rc, out) = probe(&["127.0.0.1", "--port", &port, "--scan"]);
    assert_eq!(rc, 2, "{out}");
    assert!(out.contains("TCP does not reach"), "{out}");
    let (rc, _) = probe(&["127.0.0.1", "--rack", "9"]);
    assert_eq!(rc, 64, "usage error");
}
