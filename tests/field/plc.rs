//! The PLC: tests/peers/server.py under `ip netns exec` in the PLC namespace, listening on
//! [`PLC_V4`], with python-snap7 3.3.0 ("py3") or the native snap7 1.4.2 ("native") behind it.
//!
//! The pythons come from ISOTCP_VENV_PY3 / ISOTCP_VENV_NATIVE, else from the venvs .ci/setup
//! makes ($ISOTCP_PEERS_DIR or ~/.cache/isotcp-peers, venv-snap7-3 and venv-snap7-2). A missing
//! venv skips the test, unless ISOTCP_REQUIRE_FIELD=1 or ISOTCP_REQUIRE_PEERS=1.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::net::{note, required, Link, PLC_V4};

/// The port every server listens on: the namespace is the test's own, so the S7 port is free.
pub const S7_PORT: u16 = 102;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Py3,
    Native,
}

pub const FLAVORS: [Flavor; 2] = [Flavor::Py3, Flavor::Native];

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Py3 => "py3",
            Flavor::Native => "native",
        }
    }

    fn python(self) -> PathBuf {
        let (var, dir) = match self {
            Flavor::Py3 => ("ISOTCP_VENV_PY3", "venv-snap7-3"),
            Flavor::Native => ("ISOTCP_VENV_NATIVE", "venv-snap7-2"),
        };
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(v);
        }
        let peers = std::env::var_os("ISOTCP_PEERS_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".cache/isotcp-peers")
            });
        peers.join(dir).join("bin/python")
    }

    /// The python to run, or None (after a SKIP line) when it is missing and not required.
    pub fn available(self, test: &str) -> Option<PathBuf> {
        let python = self.python();
        if python.exists() {
            return Some(python);
        }
        let why = format!(
            "no {} python at {} (run .ci/setup or set ISOTCP_VENV_*)",
            self.name(),
            python.display()
        );
        if required() || std::env::var("ISOTCP_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
            panic!("peers required and {why}");
        }
        note(&format!("SKIP field::{test} [{}]: {why}", self.name()));
        None
    }
}

/// A running server.py in the PLC namespace. Dropping it kills it.
pub struct Plc {
    pub flavor: Flavor,
    python: PathBuf,
    link: Link,
    child: Option<(Child, ChildStdin)>,
    stderr: Arc<Mutex<String>>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl Plc {
    /// Starts the server of `flavor` on [`PLC_V4`]:[`S7_PORT`]; None when its python is missing
    /// (see [`Flavor::available`]).
    pub fn start(link: &Link, flavor: Flavor, test: &str) -> Option<Plc> {
        let python = flavor.available(test)?;
        let mut plc = Plc {
            flavor,
            python,
            link: link.clone(),
            child: None,
            stderr: Arc::default(),
        };
        plc.restart();
        Some(plc)
    }

    /// Starts the server again (after [`Plc::kill`]) on the same address and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/server.py");
        let mut child = self
            .link
            .plc_command(self.python.to_str().unwrap())
            .arg(&script)
            .args([
                "--port",
                &S7_PORT.to_string(),
                "--host",
                &PLC_V4.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server.py under ip netns exec");
        let stdin = child.stdin.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&self.stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = tx.send(r.read_line(&mut line).map(|_| line));
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
        });
        self.child = Some((child, stdin));
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(l)) => l,
            other => panic!(
                "{}: no READY line ({other:?}); stderr: {}",
                self.flavor.name(),
                self.stderr.lock().unwrap()
            ),
        };
        let want = format!("READY {S7_PORT} {}", self.flavor.name());
        assert_eq!(
            line.trim(),
            want,
            "server.py did not start; stderr: {}",
            self.stderr.lock().unwrap()
        );
    }

    /// Kills the server at once (SIGKILL: a PLC losing power mid-operation would send nothing,
    /// this one's kernel still closes its connections, as a rebooting PLC's does).
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(stdin);
        }
    }
}

impl Drop for Plc {
    fn drop(&mut self) {
        self.kill();
    }
}
