//! Integration tests through the C ABI against two S7 servers this project did not write:
//! python-snap7 3.3.0 (pure Python, flavor "py3") and snap7 1.4.2 (native C++ through
//! python-snap7 2.0.2, flavor "native"). Each test starts its own server with
//! tests/peers/server.py (see tests/peers/README.md), so tests run side by side and never share
//! a DB.
//!
//! The python executables of the two venvs come from ISOTCP_VENV_PY3 and ISOTCP_VENV_NATIVE
//! (defaults /opt/venv-snap7-3/bin/python and /opt/venv-snap7-2/bin/python). When one is missing
//! the tests needing it print a SKIP line and pass, unless ISOTCP_REQUIRE_PEERS=1, which turns a
//! missing peer into a failure (.ci/run sets it).

mod common;

use std::ffi::{CStr, CString};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::packets::to_hex;
use isotcp::ffi::codes::*;
use isotcp::ffi::conn::*;
use isotcp::ffi::trace::*;

// ---------------------------------------------------------------------------------------------
// The peers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// python-snap7 3.3.0, pure Python.
    Py3,
    /// snap7 1.4.2 (native C++), through python-snap7 2.0.2.
    Native,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Py3 => "py3",
            Flavor::Native => "native",
        }
    }

    fn python(self) -> PathBuf {
        let (var, default) = match self {
            Flavor::Py3 => ("ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python"),
            Flavor::Native => ("ISOTCP_VENV_NATIVE", "/opt/venv-snap7-2/bin/python"),
        };
        match std::env::var_os(var) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(default),
        }
    }
}

fn peers_required() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS")
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// Writes past the test harness's output capture, so SKIP lines show in a plain `cargo test`.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A running server.py. Dropping it closes its stdin (the server exits on EOF) and kills it.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl Server {
    /// Starts the server of `flavor`; None (after a SKIP line) when its venv is missing and
    /// peers are not required.
    fn start(flavor: Flavor, test: &str) -> Option<Server> {
        let python = flavor.python();
        if !python.exists() {
            let why = format!(
                "no {} python at {} (set {} or run .ci/setup)",
                flavor.name(),
                python.display(),
                if flavor == Flavor::Py3 {
                    "ISOTCP_VENV_PY3"
                } else {
                    "ISOTCP_VENV_NATIVE"
                },
            );
            if peers_required() {
                panic!("ISOTCP_REQUIRE_PEERS=1 and {why}");
            }
            note(&format!(
                "SKIP real_peers::{test} [{}]: {why}",
                flavor.name()
            ));
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/server.py");
        let mut child = Command::new(&python)
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

        // Drain stderr for the life of the server (the native library writes to it).
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let sink = Arc::clone(&stderr);
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

        // The first stdout line, with a deadline; the rest of stdout is drained and dropped.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let r = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let mut server = Server {
            child,
            stdin,
            port: 0,
            stderr,
        };
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("{}: reading server.py stdout: {e}", flavor.name()),
            Err(_) => panic!(
                "{}: no READY line within {READY_TIMEOUT:?}; stderr: {}",
                flavor.name(),
                server.stderr()
            ),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 3 || words[0] != "READY" {
            let status = server.child.wait().ok();
            thread::sleep(Duration::from_millis(50));
            panic!(
                "{}: server.py did not start: stdout {line:?}, exit {status:?}, stderr: {}",
                flavor.name(),
                server.stderr()
            );
        }
        assert_eq!(
            words[2],
            flavor.name(),
            "server.py under {} reports another flavor",
            python.display()
        );
        server.port = words[1].parse().expect("READY port");
        Some(server)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Kills the server process at once (SIGKILL) and reaps it: the kernel closes its sockets.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// The C ABI, wrapped
// ---------------------------------------------------------------------------------------------

/// An `iso_conn` handle, destroyed on drop.
struct Conn(*mut iso_conn);

const CONNECT_MS: u32 = 5000;
const RECV_MS: u32 = 5000;

impl Conn {
    fn new(port: u16) -> Conn {
        let host = CString::new("127.0.0.1").unwrap();
        let mut raw: *mut iso_conn = std::ptr::null_mut();
        let rc = unsafe { iso_create(host.as_ptr(), port, &mut raw) };
        assert_eq!(rc, ISO_OK, "iso_create: {}", thread_error());
        assert!(!raw.is_null());
        Conn(raw)
    }

    fn last_error(&self) -> String {
        let mut buf = vec![0 as std::ffi::c_char; 1024];
        let mut needed = 0usize;
        unsafe { iso_last_error(self.0, buf.as_mut_ptr(), buf.len(), &mut needed) };
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    fn describe(&self, rc: i32) -> String {
        let name = unsafe { CStr::from_ptr(iso_strerror(rc)) }
            .to_string_lossy()
            .into_owned();
        format!("rc {rc} ({name}): {}", self.last_error())
    }

    fn ok(&self, rc: i32, what: &str) {
        assert_eq!(rc, ISO_OK, "{what}: {}", self.describe(rc));
    }

    fn set_tpdu_size(&self, size: u32) {
        self.ok(
            unsafe { iso_set_tpdu_size(self.0, size) },
            "iso_set_tpdu_size",
        );
    }

    fn try_connect(&self) -> i32 {
        unsafe { iso_connect(self.0, CONNECT_MS) }
    }

    fn connect(&self) {
        let rc = self.try_connect();
        self.ok(rc, "iso_connect");
    }

    fn send(&self, data: &[u8]) {
        let rc = unsafe { iso_send(self.0, data.as_ptr(), data.len()) };
        self.ok(rc, "iso_send");
    }

    /// `iso_recv` into a 64 KiB buffer: the message, or the error code.
    fn try_recv(&self, timeout_ms: u32) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; 65536];
        let mut len = usize::MAX;
        let rc = unsafe { iso_recv(self.0, buf.as_mut_ptr(), buf.len(), &mut len, timeout_ms) };
        if rc == ISO_OK {
            assert!(len <= buf.len());
            buf.truncate(len);
            Ok(buf)
        } else {
            assert_eq!(len, usize::MAX, "iso_recv wrote *out_len on error {rc}");
            Err(rc)
        }
    }

    fn recv(&self) -> Vec<u8> {
        self.try_recv(RECV_MS)
            .unwrap_or_else(|rc| panic!("iso_recv: {}", self.describe(rc)))
    }

    fn request(&self, req: &[u8]) -> Vec<u8> {
        self.send(req);
        self.recv()
    }

    fn poll(&self, timeout_ms: u32) -> i32 {
        unsafe { iso_poll(self.0, timeout_ms) }
    }

    fn check(&self) -> i32 {
        unsafe { iso_check_connection(self.0) }
    }

    fn tpdu_size(&self) -> u32 {
        let mut out = 0u32;
        let rc = unsafe { iso_get_tpdu_size(self.0, &mut out) };
        self.ok(rc, "iso_get_tpdu_size");
        out
    }

    fn remote_tsap(&self) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let mut len = 0usize;
        let rc = unsafe { iso_get_remote_tsap(self.0, buf.as_mut_ptr(), buf.len(), &mut len) };
        self.ok(rc, "iso_get_remote_tsap");
        buf[..len].to_vec()
    }

    fn calling_tsap(&self) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let mut len = 0usize;
        let rc = unsafe { iso_get_calling_tsap(self.0, buf.as_mut_ptr(), buf.len(), &mut len) };
        self.ok(rc, "iso_get_calling_tsap");
        buf[..len].to_vec()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        unsafe { iso_destroy(self.0) };
    }
}

fn thread_error() -> String {
    let mut buf = vec![0 as std::ffi::c_char; 1024];
    let mut needed = 0usize;
    unsafe { iso_thread_last_error(buf.as_mut_ptr(), buf.len(), &mut needed) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------------------------
// S7 messages (carried as DT payloads)
// ---------------------------------------------------------------------------------------------

const SETUP_480: [u8; 18] = [
    0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0xF0, 0x00, 0x00, 0x01, 0x00, 0x01,
    0x01, 0xE0,
];
const READ_DB1_4: [u8; 24] = [
    0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01, 0x12, 0x0A, 0x10, 0x02,
    0x00, 0x04, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00,
];

/// The S7 item address of a byte offset: bit address, 3 bytes big-endian.
fn bit_address(start: u32) -> [u8; 3] {
    let bits = start * 8;
    [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]
}

/// S7 job "read var", one item: `count` bytes of DB `db` from byte `start`.
fn s7_read(pdu_ref: u16, db: u16, start: u32, count: u16) -> Vec<u8> {
    let mut m = vec![0x32, 0x01, 0x00, 0x00];
    m.extend_from_slice(&pdu_ref.to_be_bytes());
    m.extend_from_slice(&14u16.to_be_bytes()); // parameter length
    m.extend_from_slice(&0u16.to_be_bytes()); // data length
    m.extend_from_slice(&[0x04, 0x01, 0x12, 0x0A, 0x10, 0x02]); // read, 1 item, any-pointer, BYTE
    m.extend_from_slice(&count.to_be_bytes());
    m.extend_from_slice(&db.to_be_bytes());
    m.push(0x84); // area DB
    m.extend_from_slice(&bit_address(start));
    m
}

/// S7 job "write var", one item: `data` to DB `db` from byte `start`.
fn s7_write(pdu_ref: u16, db: u16, start: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![0x32, 0x01, 0x00, 0x00];
    m.extend_from_slice(&pdu_ref.to_be_bytes());
    m.extend_from_slice(&14u16.to_be_bytes());
    m.extend_from_slice(&(4 + data.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x05, 0x01, 0x12, 0x0A, 0x10, 0x02]); // write, 1 item, any-pointer, BYTE
    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
    m.extend_from_slice(&db.to_be_bytes());
    m.push(0x84);
    m.extend_from_slice(&bit_address(start));
    m.extend_from_slice(&[0x00, 0x04]); // return code reserved, transport size BYTE/WORD/DWORD
    m.extend_from_slice(&((data.len() * 8) as u16).to_be_bytes()); // length in bits
    m.extend_from_slice(data);
    m
}

fn be16(b: &[u8]) -> usize {
    u16::from_be_bytes([b[0], b[1]]) as usize
}

/// Checks an S7 ack-data header (0x32 0x03, error class/code 0, lengths consistent) and
/// returns (parameters, data).
fn s7_ack(resp: &[u8], pdu_ref: u16) -> (&[u8], &[u8]) {
    assert!(resp.len() >= 12, "S7 answer too short: {}", to_hex(resp));
    assert_eq!(resp[0], 0x32, "not S7: {}", to_hex(resp));
    assert_eq!(resp[1], 0x03, "not an ack-data: {}", to_hex(resp));
    assert_eq!(
        be16(&resp[4..6]),
        pdu_ref as usize,
        "PDU reference: {}",
        to_hex(resp)
    );
    assert_eq!(
        (resp[10], resp[11]),
        (0, 0),
        "S7 error class/code: {}",
        to_hex(resp)
    );
    let (pl, dl) = (be16(&resp[6..8]), be16(&resp[8..10]));
    assert_eq!(resp.len(), 12 + pl + dl, "S7 lengths: {}", to_hex(resp));
    (&resp[12..12 + pl], &resp[12 + pl..])
}

/// The negotiated PDU length from a setup-communication answer.
fn s7_setup_pdu(resp: &[u8]) -> u16 {
    let (param, data) = s7_ack(resp, 0);
    assert_eq!(param.len(), 8, "setup parameters: {}", to_hex(resp));
    assert_eq!(
        param[0],
        0xF0,
        "not a setup-communication answer: {}",
        to_hex(resp)
    );
    assert!(data.is_empty());
    u16::from_be_bytes([param[6], param[7]])
}

/// The bytes of a one-item read answer of `count` bytes.
fn s7_read_data(resp: &[u8], pdu_ref: u16, count: usize) -> Vec<u8> {
    let (param, data) = s7_ack(resp, pdu_ref);
    assert_eq!(param, [0x04, 0x01], "read parameters: {}", to_hex(resp));
    assert!(data.len() >= 4, "read data: {}", to_hex(resp));
    assert_eq!(data[0], 0xFF, "item return code: {}", to_hex(resp));
    assert_eq!(data[1], 0x04, "item transport size: {}", to_hex(resp));
    assert_eq!(
        be16(&data[2..4]),
        count * 8,
        "item length in bits: {}",
        to_hex(resp)
    );
    assert_eq!(data.len(), 4 + count, "item data: {}", to_hex(resp));
    data[4..].to_vec()
}

fn s7_write_ok(resp: &[u8], pdu_ref: u16) {
    let (param, data) = s7_ack(resp, pdu_ref);
    assert_eq!(param, [0x05, 0x01], "write parameters: {}", to_hex(resp));
    assert_eq!(data, [0xFF], "write item return code: {}", to_hex(resp));
}

fn db1(start: usize, count: usize) -> Vec<u8> {
    (start..start + count).map(|i| (i & 0xFF) as u8).collect()
}

/// Setup communication (PDU 480 asked); returns the PDU length granted.
fn setup(c: &Conn) -> u16 {
    s7_setup_pdu(&c.request(&SETUP_480))
}

fn read(c: &Conn, pdu_ref: u16, db: u16, start: u32, count: u16) -> Vec<u8> {
    s7_read_data(
        &c.request(&s7_read(pdu_ref, db, start, count)),
        pdu_ref,
        count as usize,
    )
}

/// The fixed 4-byte read of DB1.DBB0 of docs/PROTOCOL.md §9.5.
fn read_db1_4(c: &Conn) {
    let resp = c.request(&READ_DB1_4);
    assert_eq!(s7_read_data(&resp, 1, 4), [0, 1, 2, 3]);
}

/// Starts the server and connects with the library's defaults plus `configure`.
fn session(flavor: Flavor, test: &str, configure: impl FnOnce(&Conn)) -> Option<(Server, Conn)> {
    let srv = Server::start(flavor, test)?;
    let c = Conn::new(srv.port);
    configure(&c);
    c.connect();
    Some((srv, c))
}

/// Runs `body` for both flavors (each with its own server), side by side.
fn both(test: &'static str, body: fn(Flavor, &str)) {
    let handles: Vec<_> = [Flavor::Py3, Flavor::Native]
        .into_iter()
        .map(|f| (f, thread::spawn(move || body(f, test))))
        .collect();
    let mut failed = Vec::new();
    for (f, h) in handles {
        if let Err(e) = h.join() {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("[{}] {msg}", f.name()));
        }
    }
    assert!(failed.is_empty(), "{test} failed:\n{}", failed.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn request_builders_match_the_reference_bytes() {
    assert_eq!(s7_read(1, 1, 0, 4), READ_DB1_4);
    // Write of 2 bytes to DB2.DBB10, as Wireshark decodes it.
    assert_eq!(
        to_hex(&s7_write(7, 2, 10, &[0xAB, 0xCD])),
        "32 01 00 00 00 07 00 0e 00 06 05 01 12 0a 10 02 00 02 00 02 84 00 00 50 00 04 00 10 ab cd"
    );
}

#[test]
fn setup_communication_and_small_read() {
    both("setup_communication_and_small_read", |f, test| {
        let Some((_srv, c)) = session(f, test, |_| {}) else {
            return;
        };
        assert_eq!(c.check(), 1);
        assert_eq!(c.tpdu_size(), 1024, "default offer 1024 echoed");
        assert_eq!(c.remote_tsap(), [0x01, 0x02]);
        assert_eq!(c.calling_tsap(), [0x01, 0x00]);
        let pdu = setup(&c);
        // python-snap7 3.3 grants min(asked, 480); snap7 1.4.2 grants 480 as well here
        // (tests/peers/README.md: "Both servers negotiate PDU 480").
        assert_eq!(pdu, 480, "{} PDU length", f.name());
        read_db1_4(&c);
    });
}

#[test]
fn larger_read() {
    both("larger_read", |f, test| {
        let Some((_srv, c)) = session(f, test, |_| {}) else {
            return;
        };
        setup(&c);
        assert_eq!(read(&c, 2, 1, 100, 200), db1(100, 200));
        // Unaligned and crossing the 0xFF -> 0x00 wrap of DB1's pattern.
        assert_eq!(read(&c, 3, 1, 250, 100), db1(250, 100));
    });
}

#[test]
fn answers_larger_than_the_tpdu_size_are_accepted() {
    // TPDU 128: neither server segments what it sends, so a 218-byte answer arrives as one DT
    // larger than the negotiated size, which the library must accept (docs/PROTOCOL.md §5.2).
    both(
        "answers_larger_than_the_tpdu_size_are_accepted",
        |f, test| {
            let Some((_srv, c)) = session(f, test, |c| c.set_tpdu_size(128)) else {
                return;
            };
            assert_eq!(c.tpdu_size(), 128);
            setup(&c);
            assert_eq!(read(&c, 5, 1, 100, 200), db1(100, 200));
        },
    );
}

#[test]
fn write_then_read_back() {
    both("write_then_read_back", |f, test| {
        let Some((_srv, c)) = session(f, test, |_| {}) else {
            return;
        };
        setup(&c);
        assert_eq!(read(&c, 1, 2, 10, 4), [0, 0, 0, 0], "DB2 starts zeroed");
        s7_write_ok(
            &c.request(&s7_write(2, 2, 10, &[0xDE, 0xAD, 0xBE, 0xEF])),
            2,
        );
        assert_eq!(read(&c, 3, 2, 8, 8), [0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0, 0]);
    });
}

#[test]
fn message_in_two_fragments_at_tpdu_256() {
    // A 300-byte S7 write at TPDU 256 goes out as 2 DTs (253 + 47 payload bytes). Exactly 2:
    // snap7 1.4.2 mis-reassembles 3 or more fragments.
    both("message_in_two_fragments_at_tpdu_256", |f, test| {
        let Some((_srv, c)) = session(f, test, |c| c.set_tpdu_size(256)) else {
            return;
        };
        assert_eq!(c.tpdu_size(), 256);
        setup(&c);
        let data: Vec<u8> = (0..272u32).map(|i| (i * 7 + 3) as u8).collect();
        let req = s7_write(9, 2, 300, &data);
        assert_eq!(req.len(), 300);
        let per_dt = 256 - 3;
        assert_eq!(
            req.len().div_ceil(per_dt),
            2,
            "the request must need exactly 2 DTs"
        );
        s7_write_ok(&c.request(&req), 9);
        // Read back (answer 290 bytes, one DT from the server) and check the neighbours.
        assert_eq!(read(&c, 10, 2, 300, 272), data);
        assert_eq!(read(&c, 11, 2, 298, 2), [0, 0]);
        assert_eq!(read(&c, 12, 2, 572, 2), [0, 0]);
    });
}

#[test]
fn string_tsap() {
    both("string_tsap", |f, test| {
        let remote = b"SIMATIC-ROOT-HMI";
        let local = [0x06u8, 0x00];
        let Some((_srv, c)) = session(f, test, |c| {
            let rc = unsafe {
                iso_set_tsap_bytes(
                    c.0,
                    local.as_ptr(),
                    local.len(),
                    remote.as_ptr(),
                    remote.len(),
                )
            };
            c.ok(rc, "iso_set_tsap_bytes");
        }) else {
            return;
        };
        assert_eq!(c.remote_tsap(), remote);
        assert_eq!(c.calling_tsap(), local);
        setup(&c);
        read_db1_4(&c);
    });
}

#[test]
fn routing_python_snap7_encoding_py3() {
    // python-snap7's own server tolerates its routing parameters C6/C7.
    let Some(srv) = Server::start(Flavor::Py3, "routing_python_snap7_encoding_py3") else {
        return;
    };
    let c = Conn::new(srv.port);
    c.ok(unsafe { iso_set_routing(c.0, 1, 0, 3) }, "iso_set_routing");
    c.connect();
    assert_eq!(c.check(), 1);
    assert_eq!(c.tpdu_size(), 1024);
    assert_eq!(setup(&c), 480);
    read_db1_4(&c);
}

#[test]
fn routing_python_snap7_encoding_native() {
    // snap7 1.4.2 echoes the whole CR as its CC (type 0xD0), C6/C7 included; the library skips
    // parameters it does not use in a CC, so the connection comes up and works. The native
    // server itself ignores the routing parameters (it is no gateway) and serves its own DBs.
    let Some(srv) = Server::start(Flavor::Native, "routing_python_snap7_encoding_native") else {
        return;
    };
    let c = Conn::new(srv.port);
    c.ok(unsafe { iso_set_routing(c.0, 1, 0, 3) }, "iso_set_routing");
    let rc = c.try_connect();
    note(&format!(
        "real_peers: native server with iso_set_routing(1, 0, 3): connect {}",
        c.describe(rc)
    ));
    c.ok(rc, "iso_connect with routing against snap7 1.4.2");
    assert_eq!(c.check(), 1);
    assert_eq!(c.tpdu_size(), 1024);
    assert_eq!(setup(&c), 480);
    read_db1_4(&c);
}

#[test]
fn check_connection_after_the_server_dies() {
    both("check_connection_after_the_server_dies", |f, test| {
        let Some((mut srv, c)) = session(f, test, |_| {}) else {
            return;
        };
        setup(&c);
        assert_eq!(c.check(), 1, "connected");
        read_db1_4(&c);
        assert_eq!(c.check(), 1, "still connected after a request");
        srv.kill();
        let t0 = Instant::now();
        let mut state = c.check();
        while state != 0 && t0.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(5));
            state = c.check();
        }
        assert_eq!(
            state, 0,
            "iso_check_connection still {state} 2 s after the server was killed"
        );
        // Nothing was buffered: the peer's close shows as ISO_E_CLOSED.
        assert_eq!(c.poll(0), ISO_E_CLOSED, "iso_poll after the close");
        assert_eq!(c.try_recv(0), Err(ISO_E_CLOSED), "iso_recv after the close");
        assert_eq!(c.check(), 0);
    });
}

#[test]
fn poll_and_recv_timeouts() {
    both("poll_and_recv_timeouts", |f, test| {
        let Some((_srv, c)) = session(f, test, |_| {}) else {
            return;
        };
        setup(&c);

        // Nothing pending.
        assert_eq!(c.poll(0), 0);
        assert_eq!(c.try_recv(0), Err(ISO_E_WOULD_BLOCK));
        let t0 = Instant::now();
        assert_eq!(c.poll(100), 0);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(90) && waited < Duration::from_millis(1000),
            "iso_poll(100) took {waited:?}"
        );
        let t0 = Instant::now();
        assert_eq!(c.try_recv(100), Err(ISO_E_TIMEOUT));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(90) && waited < Duration::from_millis(1000),
            "iso_recv(100) took {waited:?}"
        );
        assert_eq!(c.check(), 1, "timeouts leave the connection intact");

        // One answer pending: poll says so, consumes nothing; a small buffer leaves it queued.
        c.send(&READ_DB1_4);
        assert_eq!(c.poll(RECV_MS), 1);
        assert_eq!(c.poll(0), 1, "iso_poll consumes nothing");
        let mut small = [0u8; 4];
        let mut needed = 0usize;
        let rc = unsafe { iso_recv(c.0, small.as_mut_ptr(), small.len(), &mut needed, 0) };
        assert_eq!(rc, ISO_E_BUFFER_TOO_SMALL);
        assert_eq!(needed, 22, "size needed for the 4-byte read answer");
        let resp = c
            .try_recv(0)
            .expect("the queued answer is returned at once");
        assert_eq!(s7_read_data(&resp, 1, 4), [0, 1, 2, 3]);
        assert_eq!(c.poll(0), 0);
        assert_eq!(c.try_recv(0), Err(ISO_E_WOULD_BLOCK));

        // Two requests in flight, answers read in order.
        c.send(&s7_read(21, 1, 16, 4));
        c.send(&s7_read(22, 1, 32, 4));
        assert_eq!(s7_read_data(&c.recv(), 21, 4), db1(16, 4));
        assert_eq!(s7_read_data(&c.recv(), 22, 4), db1(32, 4));
        assert_eq!(c.check(), 1);
    });
}

#[test]
fn negotiated_tpdu_size_is_echoed() {
    both("negotiated_tpdu_size_is_echoed", |f, test| {
        let Some(srv) = Server::start(f, test) else {
            return;
        };
        for offer in [256u32, 1024, 8192] {
            let c = Conn::new(srv.port);
            c.set_tpdu_size(offer);
            c.connect();
            assert_eq!(c.tpdu_size(), offer, "{} server, offer {offer}", f.name());
            setup(&c);
            read_db1_4(&c);
            assert_eq!(unsafe { iso_disconnect(c.0) }, ISO_OK);
            assert_eq!(c.check(), 0, "after iso_disconnect");
        }
    });
}

#[test]
fn reconnect_on_the_same_handle() {
    both("reconnect_on_the_same_handle", |f, test| {
        let Some((srv, c)) = session(f, test, |_| {}) else {
            return;
        };
        setup(&c);
        read_db1_4(&c);
        assert_eq!(unsafe { iso_disconnect(c.0) }, ISO_OK);
        assert_eq!(c.try_recv(0), Err(ISO_E_STATE), "recv after disconnect");
        c.connect();
        setup(&c);
        assert_eq!(read(&c, 4, 1, 1000, 24), db1(1000, 24));
        drop(srv);
    });
}

#[test]
fn buffered_answer_stays_readable_after_the_server_dies() {
    // docs/PROTOCOL.md §5.5: check_connection says 0 once the peer closed, but messages already
    // received stay readable; after the last one, ISO_E_CLOSED.
    both(
        "buffered_answer_stays_readable_after_the_server_dies",
        |f, test| {
            let Some((mut srv, c)) = session(f, test, |_| {}) else {
                return;
            };
            setup(&c);
            c.send(&s7_read(31, 1, 64, 8));
            assert_eq!(c.poll(RECV_MS), 1, "the answer arrived");
            srv.kill();
            let t0 = Instant::now();
            while c.check() != 0 && t0.elapsed() < Duration::from_secs(2) {
                thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                c.check(),
                0,
                "iso_check_connection 2 s after the server was killed"
            );
            assert_eq!(c.poll(0), 1, "the buffered answer is still ready");
            let resp = c
                .try_recv(0)
                .unwrap_or_else(|rc| panic!("buffered answer lost: {}", c.describe(rc)));
            assert_eq!(s7_read_data(&resp, 31, 8), db1(64, 8));
            assert_eq!(c.poll(0), ISO_E_CLOSED);
            assert_eq!(c.try_recv(100), Err(ISO_E_CLOSED));
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Tracing
// ---------------------------------------------------------------------------------------------

type Frames = Mutex<Vec<(i32, Vec<u8>)>>;

unsafe extern "C" fn collect_frame(
    user: *mut std::ffi::c_void,
    direction: i32,
    frame: *const u8,
    len: usize,
) {
    let frames = &*(user as *const Frames);
    frames
        .lock()
        .unwrap()
        .push((direction, std::slice::from_raw_parts(frame, len).to_vec()));
}

/// Runs tshark on a capture file; None (after a SKIP line) when tshark is missing and not required.
fn tshark_fields(pcap: &Path, port: u16, fields: &[&str]) -> Option<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-d", &format!("tcp.port=={port},tpkt"), "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    match cmd.output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "tshark failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            )
        }
        Err(_) if std::env::var("ISOTCP_REQUIRE_TSHARK").as_deref() != Ok("1") => {
            note("SKIP real_peers::trace_callback_and_capture_file: tshark not installed");
            None
        }
        Err(e) => panic!("tshark: {e}"),
    }
}

#[test]
fn trace_callback_and_capture_file() {
    let Some(srv) = Server::start(Flavor::Py3, "trace_callback_and_capture_file") else {
        return;
    };
    let c = Conn::new(srv.port);
    c.set_tpdu_size(256);
    let frames: Box<Frames> = Box::default();
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/trace-test.pcap");
    let path = CString::new(pcap.to_str().unwrap()).unwrap();
    unsafe {
        assert_eq!(
            iso_set_trace(
                c.0,
                Some(collect_frame),
                &*frames as *const Frames as *mut _
            ),
            ISO_OK
        );
        assert_eq!(iso_set_trace_file(c.0, path.as_ptr()), ISO_OK);
    }
    c.connect();
    setup(&c);
    // 300 bytes at TPDU 256: two DTs, the first without EOT.
    let data: Vec<u8> = (0..272u32).map(|i| (i * 5 + 1) as u8).collect();
    s7_write_ok(&c.request(&s7_write(4, 2, 0, &data)), 4);
    unsafe {
        assert_eq!(iso_set_trace(c.0, None, std::ptr::null_mut()), ISO_OK);
        assert_eq!(iso_set_trace_file(c.0, std::ptr::null()), ISO_OK);
    }
    read_db1_4(&c); // not traced any more

    let got = frames.lock().unwrap().clone();
    let kinds: Vec<(i32, u8)> = got.iter().map(|(d, f)| (*d, f[5])).collect();
    // CR sent, CC received, setup DT out and back, write as two DTs out, answer back.
    assert_eq!(
        kinds,
        [
            (1, 0xE0),
            (0, 0xD0),
            (1, 0xF0),
            (0, 0xF0),
            (1, 0xF0),
            (1, 0xF0),
            (0, 0xF0)
        ],
        "frame sequence"
    );
    for (_, f) in &got {
        assert_eq!(f[0], 3, "a whole TPKT packet");
        assert_eq!(
            u16::from_be_bytes([f[2], f[3]]) as usize,
            f.len(),
            "TPKT length = frame length"
        );
    }
    assert_eq!(got[4].1[6], 0x00, "first DT of the write: no EOT");
    assert_eq!(got[5].1[6], 0x80, "second DT: EOT");
    assert_eq!(got[4].1.len(), 4 + 256, "a full TPDU of 256");
    let mut joined = got[4].1[7..].to_vec();
    joined.extend_from_slice(&got[5].1[7..]);
    assert_eq!(
        joined,
        s7_write(4, 2, 0, &data),
        "the DTs carry the message"
    );

    // Wireshark reads the capture file: the same frames, decoded by its COTP dissector.
    let Some(lines) = tshark_fields(
        &pcap,
        srv.port,
        &["cotp.type", "cotp.eot", "_ws.expert.severity"],
    ) else {
        return;
    };
    let decoded: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    assert_eq!(
        decoded,
        ["0x0e", "0x0d", "0x0f", "0x0f", "0x0f", "0x0f", "0x0f"],
        "{lines:?}"
    );
    let eots: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(eots[4], "0", "{lines:?}");
    assert_eq!(eots[5], "1", "{lines:?}");
    // No expert info at all (malformed frames and bad lengths would show here).
    assert!(
        lines
            .iter()
            .all(|l| l.split('\t').nth(2).unwrap_or("").is_empty()),
        "{lines:?}"
    );
}
