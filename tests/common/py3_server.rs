//! python-snap7 3.3.0's S7 server (`tests/peers/server.py` under the venv of ISOTCP_VENV_PY3,
//! default /opt/venv-snap7-3/bin/python), for the tests of installed and packaged artefacts:
//! DB1 holds byte i = i & 0xFF. The server stops when dropped (its stdin closes, then a kill).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The python of the python-snap7 3.3.0 venv; it may not exist.
pub fn python() -> PathBuf {
    match std::env::var_os("ISOTCP_VENV_PY3") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("/opt/venv-snap7-3/bin/python"),
    }
}

/// DB1.DBB0..15 as the server holds them, in the "% X" form: "00 01 02 ... 0F".
pub const DB1_FIRST_16_HEX: &str = "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F";

pub struct Py3Server {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
}

impl Py3Server {
    /// Starts server.py on a free port of 127.0.0.1 and waits for its READY line (15 s).
    pub fn start(python: &Path) -> Py3Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/server.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {} {}: {e}", python.display(), script.display())
            });
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = reader.read_to_end(&mut Vec::new());
        });
        let (etx, erx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = etx.send(text);
        });
        let mut server = Py3Server {
            child,
            stdin,
            port: 0,
        };
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 3 || words[0] != "READY" || words[2] != "py3" {
            server.stop();
            let err = erx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
            panic!(
                "server.py under {} did not start: {line:?}\n{err}",
                python.display()
            );
        }
        server.port = words[1].parse().expect("READY <port>");
        server
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Py3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
