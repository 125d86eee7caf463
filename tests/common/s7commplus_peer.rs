//! The secure S7-1500 stand-in of the binding tests: `tests/peers/s7commplus_server.py`
//! (s7commplus 0.3.0's emulator, protocol V2, TLS inside COTP, a fresh self-signed certificate)
//! run with the python of the s7commplus venv.
//!
//! The binding tests hand it to their programs as environment variables (`env`), so that each
//! binding's own test connects, sends the plaintext InitSSL request, starts TLS pinned to the
//! certificate, and exchanges encrypted requests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Start-up takes about 0.3 s; this only stops a hang.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The python of the s7commplus venv: ISOTCP_VENV_S7COMMPLUS, else where .ci/setup puts it
/// ($HOME/.cache/isotcp-peers/venv-s7commplus/bin/python). `Err` says why there is none.
pub fn python() -> Result<PathBuf, String> {
    let path = match std::env::var_os("ISOTCP_VENV_S7COMMPLUS") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
            Path::new(&home).join(".cache/isotcp-peers/venv-s7commplus/bin/python")
        }
    };
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "no s7commplus 0.3.0 venv python at {} (set ISOTCP_VENV_S7COMMPLUS or run .ci/setup)",
            path.display()
        ))
    }
}

/// A running emulator; dropping it closes its stdin, which ends it.
pub struct S7CommPlusServer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// SHA-256 of its certificate (DER), 64 hex digits.
    pub pin_hex: String,
    /// Its certificate (PEM), self-signed: also a CA file that verifies it.
    pub cert_path: String,
}

impl S7CommPlusServer {
    /// Starts the emulator with `python` and waits for its READY line.
    pub fn start(python: &Path) -> S7CommPlusServer {
        let mut child = Command::new(python)
            .arg(Path::new(ROOT).join("tests/peers/s7commplus_server.py"))
            .args(["--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stdin = child.stdin.take();
        // Read on another thread, so that an emulator that never gets ready fails the test
        // instead of hanging it.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [ready, port, pin, cert] = fields[..] else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "s7commplus_server.py did not start within {READY_TIMEOUT:?} (stdout: {line:?})"
            );
        };
        assert_eq!(ready, "READY", "s7commplus_server.py: {line:?}");
        S7CommPlusServer {
            port: port.parse().expect("port number"),
            pin_hex: pin.to_owned(),
            cert_path: cert.to_owned(),
            child,
            stdin,
        }
    }

    /// The variables a binding test reads: ISOTCP_S7CP_PORT, ISOTCP_S7CP_PIN (hex) and
    /// ISOTCP_S7CP_CERT (the PEM path).
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("ISOTCP_S7CP_PORT", self.port.to_string()),
            ("ISOTCP_S7CP_PIN", self.pin_hex.clone()),
            ("ISOTCP_S7CP_CERT", self.cert_path.clone()),
        ]
    }
}

impl Drop for S7CommPlusServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
