//! TLS inside COTP against TLS stacks this project did not write, through the C API:
//!
//! - Python's `ssl` module (OpenSSL) over a COTP peer written in Python
//!   (`tests/peers/tls_cotp_peer.py`): as the server (one process for the whole binary; the
//!   called TSAP of each connection picks its scenario) and as the client of our listener;
//! - the s7commplus 0.3.0 S7-1500 emulator (`tests/peers/s7commplus_emulator.py`): InitSSL in
//!   plaintext, then its S7CommPlus V2 session over TLS;
//! - tshark, which decrypts a frame trace with the key log.
//!
//! The peers run with the python of the s7commplus venv (ISOTCP_VENV_S7COMMPLUS, by default
//! ~/.cache/isotcp-peers/venv-s7commplus/bin/python, made by `.ci/setup`; it has `cryptography`,
//! which makes the test certificates). A missing venv or tshark is a SKIP, unless
//! ISOTCP_REQUIRE_PEERS=1. tests/peers/README.md describes the peers.
#![cfg(feature = "tls")]

mod common;

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::ptr::null_mut;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::conn::*;
use common::process::output_within;
use isotcp::ffi::listener::*;
use isotcp::ffi::tls::*;
use isotcp::ffi::trace::{iso_set_trace, iso_set_trace_file, ISO_TRACE_SENT};

const LONG: u32 = 10_000;

// ---------------------------------------------------------------------------------------------
// The peers
// ---------------------------------------------------------------------------------------------

fn require_peers() -> bool {
    std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// The python of the s7commplus venv, or None (SKIP) when it is missing.
fn python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let p = match std::env::var_os("ISOTCP_VENV_S7COMMPLUS") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/isotcp-peers/venv-s7commplus/bin/python"),
        };
        if p.exists() {
            return Some(p);
        }
        assert!(
            !require_peers(),
            "{} missing and ISOTCP_REQUIRE_PEERS=1 (set ISOTCP_VENV_S7COMMPLUS or run .ci/setup)",
            p.display()
        );
        eprintln!(
            "SKIP tls_interop: {} not found (set ISOTCP_VENV_S7COMMPLUS)",
            p.display()
        );
        None
    })
    .as_deref()
}

fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// The test CA and certificates, made once per run by the peer script with `cryptography`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// SHA-256 of a certificate (DER), as the peer script computed it with hashlib.
    fn pin(&self, stem: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(self.path(&format!("{stem}.sha256"))).unwrap();
        let text = text.trim();
        let pin: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(pin.len(), 32);
        pin
    }
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("isotcp-tls-interop-{}", std::process::id()));
        let out = output_within(
            Command::new(python().unwrap())
                .arg(peer_script("tls_cotp_peer.py"))
                .arg("pki")
                .arg(&dir),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "tls_cotp_peer.py pki: {}",
            common::process::text(&out)
        );
        Pki { dir }
    })
}

/// A peer process that printed "READY <port> ..." and ends when its stdin closes (at the end of
/// the test binary for the shared ones).
struct Running {
    ports: Vec<u16>,
    _stdin: ChildStdin,
    _child: Child,
}

fn spawn_ready(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"READY"), "peer said {line:?}");
    Running {
        ports: words[1..].iter().map(|p| p.parse().unwrap()).collect(),
        _stdin: child.stdin.take().unwrap(),
        _child: child,
    }
}

/// The Python `ssl` server, shared by all tests of this binary.
fn ssl_server_port() -> u16 {
    static SERVER: OnceLock<Running> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            spawn_ready(
                Command::new(python().unwrap())
                    .arg(peer_script("tls_cotp_peer.py"))
                    .arg("serve")
                    .arg(&pki().dir),
            )
        })
        .ports[0]
}

/// The s7commplus emulators (plain TLS, mutual TLS), shared by the tests of this binary.
fn emulator_ports() -> (u16, u16) {
    static EMU: OnceLock<Running> = OnceLock::new();
    let r = EMU.get_or_init(|| {
        let p = pki();
        spawn_ready(
            Command::new(python().unwrap())
                .arg(peer_script("s7commplus_emulator.py"))
                .arg(p.path("rsa-server.pem"))
                .arg(p.path("rsa-server.key"))
                .arg(p.path("ca.pem")),
        )
    });
    (r.ports[0], r.ports[1])
}

// ---------------------------------------------------------------------------------------------
// The C API
// ---------------------------------------------------------------------------------------------

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// An `iso_tls_config`, destroyed on drop.
struct TlsCfg(*mut iso_tls_config);

impl TlsCfg {
    fn new() -> TlsCfg {
        let mut cfg = null_mut();
        assert_eq!(unsafe { iso_tls_config_create(&mut cfg) }, ISO_OK);
        TlsCfg(cfg)
    }

    fn pinned(pin: &[u8]) -> TlsCfg {
        let cfg = TlsCfg::new();
        assert_eq!(
            unsafe { iso_tls_config_set_pin_sha256(cfg.0, pin.as_ptr(), pin.len()) },
            ISO_OK
        );
        cfg
    }

    /// Verifies the server by the test CA.
    fn ca() -> TlsCfg {
        let cfg = TlsCfg::new();
        let ca = cstr(&pki().path("ca.pem"));
        assert_eq!(
            unsafe { iso_tls_config_set_ca_file(cfg.0, ca.as_ptr()) },
            ISO_OK
        );
        cfg
    }

    fn identity(self, stem: &str) -> TlsCfg {
        let (c, k) = (
            cstr(&pki().path(&format!("{stem}.pem"))),
            cstr(&pki().path(&format!("{stem}.key"))),
        );
        assert_eq!(
            unsafe { iso_tls_config_set_identity_files(self.0, c.as_ptr(), k.as_ptr()) },
            ISO_OK
        );
        self
    }

    fn versions(self, min: u16, max: u16) -> TlsCfg {
        assert_eq!(
            unsafe { iso_tls_config_set_versions(self.0, min, max) },
            ISO_OK
        );
        self
    }

    fn keylog(self, path: &Path) -> TlsCfg {
        let p = cstr(path);
        assert_eq!(
            unsafe { iso_tls_config_set_keylog_file(self.0, p.as_ptr()) },
            ISO_OK
        );
        self
    }
}

impl Drop for TlsCfg {
    fn drop(&mut self) {
        unsafe { iso_tls_config_destroy(self.0) };
    }
}

fn start_tls(c: &Conn, cfg: &TlsCfg, timeout_ms: u32) -> i32 {
    unsafe { iso_start_tls(c.raw(), cfg.0, timeout_ms) }
}

/// A connection to the Python `ssl` server running `scenario`, COTP connected, TLS not started.
fn to_ssl_server(scenario: &str, tpdu: u32) -> Conn {
    let c = Conn::local(ssl_server_port());
    assert_eq!(c.set_tsap_bytes(&[6, 0], scenario.as_bytes()), ISO_OK);
    assert_eq!(c.set_tpdu_size(tpdu), ISO_OK);
    // A 64 KiB message grows by its records' overhead.
    assert_eq!(c.set_max_message(256 << 10), ISO_OK);
    c.ok(c.connect(LONG));
    assert_eq!(c.tpdu_size(), Ok(tpdu));
    c
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + len) as u8).collect()
}

/// Sends each message and checks the peer's echo.
#[track_caller]
fn echo(c: &Conn, sizes: &[usize]) {
    for &len in sizes {
        let m = message(len);
        c.ok(c.send(&m));
        let back = c.recv(256 << 10, LONG).unwrap_or_else(|rc| {
            panic!("echo of {len} bytes: {}: {}", code_name(rc), c.last_error())
        });
        assert!(
            back == m,
            "echo of {len} bytes came back as {} bytes",
            back.len()
        );
    }
}

/// What the Python server saw, from its answer to "REPORT": key=value pairs.
fn report(c: &Conn) -> HashMap<String, String> {
    c.ok(c.send(b"REPORT"));
    let line = String::from_utf8(c.recv_ok()).unwrap();
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn list(r: &HashMap<String, String>, key: &str) -> Vec<String> {
    r[key]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn num(r: &HashMap<String, String>, key: &str) -> usize {
    r[key].parse().unwrap_or_else(|_| panic!("{key} in {r:?}"))
}

// ---------------------------------------------------------------------------------------------
// Client role against Python's ssl (OpenSSL)
// ---------------------------------------------------------------------------------------------

const SIZES: [usize; 9] = [1, 2, 100, 1000, 2048, 4096, 8192, 20_000, 65_536];

/// TLS 1.3 with a pinned server, messages of 1 byte to 64 KiB both ways; every DT the peer
/// received is within the TPDU size, application-data DTs are whole records, full ones fill the
/// TPDU.
fn tpdu_round_trip(tpdu: u32) {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("echo", tpdu);
    let rc = start_tls(&c, &TlsCfg::pinned(&pki().pin("server")), LONG);
    c.ok(rc);
    echo(&c, &SIZES);
    let r = report(&c);
    assert_eq!(r["version"], "TLSv1.3", "{r:?}");
    assert_eq!(num(&r, "tpdu"), tpdu as usize);
    assert_eq!(num(&r, "over_tpdu"), 0, "DTs above TPDU {tpdu}: {r:?}");
    assert_eq!(
        num(&r, "max_dt"),
        tpdu as usize,
        "a 64 KiB message fills its DTs: {r:?}"
    );
    assert_eq!(
        num(&r, "misaligned"),
        0,
        "DTs not made of whole records: {r:?}"
    );
}

#[test]
fn python_ssl_server_tpdu_128() {
    tpdu_round_trip(128);
}

#[test]
fn python_ssl_server_tpdu_1024() {
    tpdu_round_trip(1024);
}

#[test]
fn python_ssl_server_tpdu_2048() {
    tpdu_round_trip(2048);
}

#[test]
fn python_ssl_server_tpdu_4096() {
    tpdu_round_trip(4096);
}

#[test]
fn python_ssl_server_tpdu_8192() {
    tpdu_round_trip(8192);
}

/// The ClientHello as OpenSSL's peer parsed it from the raw bytes: key exchange X25519 and
/// secp256r1 only (no post-quantum hybrid such as X25519MLKEM768, 0x11ec, which PLCs answer with
/// a reset), one DT, no SNI without a server name, TLS 1.3 and 1.2 offered, AEAD suites only.
#[test]
fn client_hello_offers_classic_groups_in_one_dt() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("echo", 1024);
    c.ok(start_tls(&c, &TlsCfg::pinned(&pki().pin("server")), LONG));
    let r = report(&c);
    let groups = list(&r, "groups");
    assert!(
        groups.iter().all(|g| g == "001d" || g == "0017"),
        "supported_groups {groups:?}"
    );
    assert!(groups.contains(&"001d".into()) && groups.contains(&"0017".into()));
    let shares = list(&r, "key_shares");
    assert!(!shares.is_empty(), "{r:?}");
    assert!(
        shares.iter().all(|g| g == "001d" || g == "0017"),
        "key_share {shares:?}"
    );
    assert!(!groups.contains(&"11ec".into()) && !shares.contains(&"11ec".into()));
    assert_eq!(num(&r, "hello_dts"), 1, "ClientHello in one DT: {r:?}");
    assert!(num(&r, "hello_max_dt") <= 1024, "{r:?}");
    let exts = list(&r, "extensions");
    assert!(
        !exts.contains(&"0000".into()),
        "SNI sent without a server name: {exts:?}"
    );
    assert!(
        !exts.contains(&"0029".into()),
        "pre_shared_key offered: {exts:?}"
    );
    let versions = list(&r, "versions");
    assert!(versions.contains(&"0304".into()) && versions.contains(&"0303".into()));
    // TLS 1.3 suites, ECDHE with AES-GCM or ChaCha20 for 1.2, and the renegotiation SCSV.
    let aead = [
        "1301", "1302", "1303", "c02b", "c02c", "c02f", "c030", "cca8", "cca9", "00ff",
    ];
    for s in list(&r, "suites") {
        assert!(aead.contains(&s.as_str()), "cipher suite {s} offered");
    }
}

/// The exporter value S7CommPlus legitimation keys on (label EXPERIMENTAL_OMS, no context, 32
/// bytes) agrees with the one the s7commplus package derives from OpenSSL's key log.
#[test]
fn exporter_matches_s7commplus_derivation() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("oms", 1024);
    c.ok(start_tls(&c, &TlsCfg::pinned(&pki().pin("server")), LONG));
    let label = b"EXPERIMENTAL_OMS";
    let mut oms = [0u8; 32];
    let rc = unsafe {
        iso_tls_export_keying_material(
            c.raw(),
            label.as_ptr(),
            label.len(),
            std::ptr::null(),
            0,
            oms.as_mut_ptr(),
            oms.len(),
        )
    };
    c.ok(rc);
    let r = report(&c);
    let ours: String = oms.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(r["oms"], ours, "{r:?}");
}

/// A server with secp256r1 as its only group answers our X25519 key share with a
/// HelloRetryRequest; the second ClientHello gets the session up.
#[test]
fn hello_retry_request_for_secp256r1() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("p256", 1024);
    c.ok(start_tls(&c, &TlsCfg::pinned(&pki().pin("server")), LONG));
    echo(&c, &[1, 3000]);
    let r = report(&c);
    assert_eq!(list(&r, "key_shares"), ["001d"], "first key share: {r:?}");
    assert_eq!(
        num(&r, "hellos"),
        2,
        "a second ClientHello after the retry: {r:?}"
    );
    assert_eq!(r["version"], "TLSv1.3");
}

#[test]
fn python_ssl_server_tls12_round_trip() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("tls12", 1024);
    c.ok(start_tls(&c, &TlsCfg::ca(), LONG));
    echo(&c, &SIZES);
    let r = report(&c);
    assert_eq!(r["version"], "TLSv1.2", "{r:?}");
    assert!(r["cipher"].starts_with("ECDHE-"), "{r:?}");
    assert!(
        r["cipher"].contains("GCM") || r["cipher"].contains("CHACHA20"),
        "{r:?}"
    );
    assert_eq!(num(&r, "over_tpdu"), 0, "{r:?}");
    assert_eq!(num(&r, "max_dt"), 1024, "{r:?}");
    assert_eq!(num(&r, "misaligned"), 0, "{r:?}");
}

/// The server requires a client certificate: ours (signed by its CA) gets through and the peer
/// names it; without one the session does not come up.
#[test]
fn python_ssl_server_requires_a_client_certificate() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("mtls", 1024);
    c.ok(start_tls(&c, &TlsCfg::ca().identity("client"), LONG));
    echo(&c, &[1, 5000]);
    let r = report(&c);
    assert_eq!(r["client_cn"], "isotcp-client", "{r:?}");

    let c = to_ssl_server("mtls", 1024);
    let rc = start_tls(&c, &TlsCfg::ca(), LONG);
    // TLS 1.3: the client finishes its handshake before the server judges it; iso_start_tls
    // waits briefly for the verdict, so OpenSSL's certificate_required alert fails it, with
    // the hint that no client certificate is set.
    let msg = c.last_error();
    assert_code_msg(
        rc,
        ISO_E_TLS,
        &msg,
        &[
            "the peer sent the alert certificate_required",
            "set the identity files",
        ],
    );
    assert_eq!(c.check(), 0, "the refused session is closed");

    // TLS 1.2: the server refuses before its Finished, so iso_start_tls fails.
    let c = to_ssl_server("mtls", 1024);
    let rc = start_tls(&c, &TlsCfg::ca().versions(0x0303, 0x0303), LONG);
    c.expect(rc, ISO_E_TLS, &["alert"]);
    assert_eq!(c.check(), 0);

    let c = to_ssl_server("mtls", 1024);
    let cfg = TlsCfg::ca().identity("client").versions(0x0303, 0x0303);
    c.ok(start_tls(&c, &cfg, LONG));
    let r = report(&c);
    assert_eq!(
        (r["version"].as_str(), r["client_cn"].as_str()),
        ("TLSv1.2", "isotcp-client")
    );
}

#[test]
fn wrong_pin_names_both_pins() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("echo", 1024);
    let wrong = [0x5a; 32];
    let rc = start_tls(&c, &TlsCfg::pinned(&wrong), LONG);
    let seen: String = pki()
        .pin("server")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    c.expect(rc, ISO_E_TLS, &[&"5a".repeat(32), &seen]);
    assert_eq!(c.check(), 0);
}

#[test]
fn expired_certificate_against_the_ca_file() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("expired", 1024);
    let rc = start_tls(&c, &TlsCfg::ca(), LONG);
    let msg = c.last_error();
    assert_code_msg(rc, ISO_E_TLS, &msg, &[]);
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
    assert_eq!(c.check(), 0);
}

/// OpenSSL, limited to TLS 1.2, answers a TLS 1.3-only ClientHello with a fatal
/// protocol_version alert: the message names it.
#[test]
fn fatal_alert_from_openssl_is_named() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("tls12", 1024);
    let cfg = TlsCfg::ca().versions(0x0304, 0x0304);
    let rc = start_tls(&c, &cfg, LONG);
    c.expect(rc, ISO_E_TLS, &["the peer sent the alert protocol_version"]);
    assert_eq!(c.check(), 0);
}

#[test]
fn garbage_instead_of_a_record() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("garbage", 1024);
    let started = Instant::now();
    let rc = start_tls(&c, &TlsCfg::ca(), LONG);
    c.expect(rc, ISO_E_TLS, &[]);
    assert!(started.elapsed() < Duration::from_secs(2), "fails at once");
    assert_eq!(c.check(), 0);
}

/// The peer cuts its first flight inside a record over two DTs (EOT on the second only) and each
/// echo inside a record over two TSDUs sent 100 ms apart. Receives with a 20 ms timeout time out
/// between the halves and lose nothing.
#[test]
fn records_split_over_dts_and_tsdus() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("split", 1024);
    c.ok(start_tls(&c, &TlsCfg::ca(), LONG));
    let mut timeouts = 0;
    // One record each on the peer's side, so the cut is inside it.
    for len in [1, 1000, 16_000] {
        let m = message(len);
        c.ok(c.send(&m));
        let started = Instant::now();
        let back = loop {
            match c.recv(64 << 10, 20) {
                Ok(back) => break back,
                Err(ISO_E_TIMEOUT) => timeouts += 1,
                Err(rc) => panic!("{}: {}", code_name(rc), c.last_error()),
            }
            assert!(started.elapsed() < Duration::from_secs(5));
        };
        assert!(back == m, "{len} bytes came back as {}", back.len());
    }
    assert!(
        timeouts >= 3,
        "each echo's halves are 100 ms apart: {timeouts} timeouts"
    );
}

/// The peer sends its ServerHello and then nothing: the handshake deadline holds.
#[test]
fn peer_stopping_mid_handshake_times_out() {
    if python().is_none() {
        return;
    }
    let c = to_ssl_server("stall", 1024);
    let started = Instant::now();
    let rc = start_tls(&c, &TlsCfg::ca(), 400);
    let took = started.elapsed();
    c.expect(rc, ISO_E_TIMEOUT, &[]);
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_millis(900),
        "{took:?}"
    );
    assert_eq!(c.check(), 0, "a failed handshake closes the connection");
}

// ---------------------------------------------------------------------------------------------
// Server role: Python's ssl as the client of our listener
// ---------------------------------------------------------------------------------------------

struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}

/// Our listener with TLS in the server role echoes what Python's ssl client sends; returns the
/// client's result line.
fn python_client(tpdu: u32, min: &str, max: &str) -> Option<HashMap<String, String>> {
    python()?;
    let p = pki();
    let mut l = null_mut();
    assert_eq!(
        unsafe { iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l) },
        ISO_OK
    );
    assert_eq!(
        unsafe { iso_listener_set_max_message(l, 256 << 10) },
        ISO_OK
    );
    let mut port = 0;
    assert_eq!(unsafe { iso_listener_port(l, &mut port) }, ISO_OK);
    let lp = SendPtr(l);
    let server = thread::spawn(move || {
        let lp = lp;
        let cfg = TlsCfg::new().identity("server");
        let mut s = null_mut();
        assert_eq!(unsafe { iso_accept(lp.0, LONG, &mut s) }, ISO_OK);
        let rc = unsafe { iso_start_tls(s, cfg.0, LONG) };
        let mut echoed = 0;
        if rc == ISO_OK {
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let mut n = 0;
                if unsafe {
                    isotcp::ffi::conn::iso_recv(s, buf.as_mut_ptr(), buf.len(), &mut n, LONG)
                } != ISO_OK
                {
                    break;
                }
                assert_eq!(
                    unsafe { isotcp::ffi::conn::iso_send(s, buf.as_ptr(), n) },
                    ISO_OK
                );
                echoed += 1;
            }
        }
        unsafe {
            isotcp::ffi::conn::iso_destroy(s);
            iso_listener_destroy(lp.0);
        }
        (rc, echoed)
    });
    let out = output_within(
        Command::new(python().unwrap())
            .arg(peer_script("tls_cotp_peer.py"))
            .arg("connect")
            .arg(&p.dir)
            .args(["--port", &port.to_string(), "--tpdu", &tpdu.to_string()])
            .args(["--min", min, "--max", max])
            .args(["--sizes", "1,2,100,1000,4096,20000,65536"]),
        Duration::from_secs(30),
    );
    let text = common::process::text(&out);
    assert!(out.status.success(), "python client: {text}");
    let (rc, echoed) = server.join().unwrap();
    assert_eq!(rc, ISO_OK, "iso_start_tls as the server");
    assert_eq!(echoed, 7, "{text}");
    Some(
        text.lines()
            .next()
            .unwrap()
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

#[test]
fn python_ssl_client_against_our_server_tls13() {
    let Some(r) = python_client(1024, "TLSv1_3", "TLSv1_3") else {
        return;
    };
    assert_eq!(r["version"], "TLSv1.3", "{r:?}");
    assert_eq!(num(&r, "tpdu"), 1024);
    assert_eq!(num(&r, "over_tpdu"), 0, "{r:?}");
    assert_eq!(num(&r, "max_dt"), 1024, "{r:?}");
    assert_eq!(num(&r, "misaligned"), 0, "{r:?}");
    assert_eq!(r["has_ticket"], "False", "no session tickets: {r:?}");
}

#[test]
fn python_ssl_client_against_our_server_tpdu_128() {
    let Some(r) = python_client(128, "TLSv1_2", "TLSv1_3") else {
        return;
    };
    assert_eq!(r["version"], "TLSv1.3", "{r:?}");
    assert_eq!(num(&r, "tpdu"), 128);
    assert_eq!(num(&r, "over_tpdu"), 0, "{r:?}");
    assert_eq!(num(&r, "max_dt"), 128, "{r:?}");
    assert_eq!(num(&r, "misaligned"), 0, "{r:?}");
}

#[test]
fn python_ssl_client_against_our_server_tls12_tpdu_2048() {
    let Some(r) = python_client(2048, "TLSv1_2", "TLSv1_2") else {
        return;
    };
    assert_eq!(r["version"], "TLSv1.2", "{r:?}");
    assert_eq!(num(&r, "tpdu"), 2048);
    assert_eq!(num(&r, "over_tpdu"), 0, "{r:?}");
    assert_eq!(num(&r, "max_dt"), 2048, "{r:?}");
    assert_eq!(num(&r, "misaligned"), 0, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// The s7commplus 0.3.0 emulator: an S7-1500's secure HMI session
// ---------------------------------------------------------------------------------------------

/// S7CommPlus facts (from the emulator's source and public protocol descriptions) for the few
/// PDUs the tests write by hand.
mod s7p {
    pub const INIT_SSL: u16 = 0x05B3;
    pub const CREATE_OBJECT: u16 = 0x04CA;
    pub const SET_MULTI_VARIABLES: u16 = 0x0542;
    pub const GET_MULTI_VARIABLES: u16 = 0x054C;
    /// The session id of a CreateObject request (ObjectNullServerSession).
    pub const NULL_SERVER_SESSION: u32 = 288;
    /// AccessArea of DB n: 0x8A0E0000 | n.
    pub const DB_AREA: u32 = 0x8A0E_0000;
    /// AccessSubArea of a DB's actual values.
    pub const DB_VALUE_ACTUAL: u32 = 2550;
    /// The LID that makes the next two a byte offset and a size.
    pub const CLASSIC_BLOB: u32 = 3;
    /// Attribute ServerSessionVersion, which the session setup write echoes.
    pub const SERVER_SESSION_VERSION: u32 = 306;

    /// Unsigned VLQ: 7-bit groups, most significant first, bit 7 set on all but the last.
    pub fn vlq(v: u32) -> Vec<u8> {
        let mut groups = vec![(v & 0x7F) as u8];
        let mut rest = v >> 7;
        while rest != 0 {
            groups.push((rest & 0x7F) as u8 | 0x80);
            rest >>= 7;
        }
        groups.reverse();
        groups
    }

    /// (value, bytes used) of the VLQ at the start of `b`.
    pub fn read_vlq(b: &[u8]) -> (u32, usize) {
        let mut v = 0u32;
        for (i, byte) in b.iter().enumerate().take(5) {
            v = (v << 7) | u32::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                return (v, i + 1);
            }
        }
        panic!("VLQ runs past {b:02x?}");
    }

    /// A frame: 0x72, version, length, the PDU, and the trailer 72 <version> 00 00.
    pub fn frame(version: u8, pdu: &[u8]) -> Vec<u8> {
        let mut f = vec![0x72, version];
        f.extend_from_slice(&(pdu.len() as u16).to_be_bytes());
        f.extend_from_slice(pdu);
        f.extend_from_slice(&[0x72, version, 0, 0]);
        f
    }

    /// A request header: opcode 0x31, function, sequence number, session id, transport flags.
    pub fn request(function: u16, seq: u16, session: u32, flags: u8) -> Vec<u8> {
        let mut r = vec![0x31, 0, 0];
        r.extend_from_slice(&function.to_be_bytes());
        r.extend_from_slice(&[0, 0]);
        r.extend_from_slice(&seq.to_be_bytes());
        r.extend_from_slice(&session.to_be_bytes());
        r.push(flags);
        r
    }

    /// The PDU of a response frame after checking its header: opcode 0x32, the function and
    /// sequence number asked for, and the length field.
    #[track_caller]
    pub fn response(frame: &[u8], function: u16, seq: u16) -> Vec<u8> {
        assert_eq!(frame[0], 0x72, "{frame:02x?}");
        let len = u16::from_be_bytes([frame[2], frame[3]]) as usize;
        let pdu = &frame[4..4 + len];
        assert_eq!(pdu[0], 0x32, "a response: {frame:02x?}");
        assert_eq!(
            u16::from_be_bytes([pdu[3], pdu[4]]),
            function,
            "{frame:02x?}"
        );
        assert_eq!(u16::from_be_bytes([pdu[7], pdu[8]]), seq, "{frame:02x?}");
        pdu.to_vec()
    }

    /// One DB item address: SymbolCrc 0, the DB's area, 4 LIDs (sub-area, blob, offset, size).
    pub fn db_item(db: u16, offset: u32, size: u32) -> Vec<u8> {
        let mut a = vec![0];
        a.extend(vlq(DB_AREA | u32::from(db)));
        a.push(4);
        a.extend(vlq(DB_VALUE_ACTUAL));
        a.extend(vlq(CLASSIC_BLOB));
        a.extend(vlq(offset));
        a.extend(vlq(size));
        a
    }
}

/// Frames traced on a connection: (sent, TPKT packet).
type Frames = Mutex<Vec<(bool, Vec<u8>)>>;

unsafe extern "C" fn collect_frame(
    user: *mut c_void,
    direction: i32,
    frame: *const u8,
    len: usize,
) {
    // SAFETY: `user` is the `Frames` the test installed and keeps alive while installed; the
    // library passes a frame valid for `len` bytes.
    let (frames, frame) = unsafe {
        (
            &*(user as *const Frames),
            std::slice::from_raw_parts(frame, len),
        )
    };
    frames
        .lock()
        .unwrap()
        .push((direction == ISO_TRACE_SENT, frame.to_vec()));
}

/// InitSSL in plaintext, the TLS handshake pinned to the emulator's certificate, then the V2
/// session over TLS: CreateObject, the session setup write, a DB write and a DB read that sees
/// it. Returns the frames traced from the InitSSL request on.
fn emulator_session(port: u16, cfg: &TlsCfg) -> Vec<(bool, Vec<u8>)> {
    use s7p::*;
    let c = Conn::local(port);
    assert_eq!(c.set_tsap_bytes(&[6, 0], b"SIMATIC-ROOT-HMI"), ISO_OK);
    assert_eq!(c.set_tpdu_size(4096), ISO_OK);
    c.ok(c.connect(LONG));
    // The emulator's CC has no TSAPs and TPDU 1024 (C0 = 0x0A) whatever was offered: that is
    // the size both directions use.
    assert_eq!(c.tpdu_size(), Ok(1024));
    let frames: Arc<Frames> = Arc::default();
    let user = Arc::as_ptr(&frames) as *mut c_void;
    assert_eq!(
        unsafe { iso_set_trace(c.raw(), Some(collect_frame), user) },
        ISO_OK
    );

    // InitSSL, plaintext: V1 frame, no session, transport flags 0x30, four zero bytes.
    let mut req = request(INIT_SSL, 1, 0, 0x30);
    req.extend_from_slice(&[0; 4]);
    c.ok(c.send(&frame(1, &req)));
    let resp = response(&c.recv_ok(), INIT_SSL, 1);
    assert_eq!(resp[10], 0, "InitSSL return code: {resp:02x?}");

    c.ok(start_tls(&c, cfg, LONG));
    assert_eq!(unsafe { iso_tls_active(c.raw()) }, 1);
    let mut der = vec![0u8; 4096];
    let mut n = 0;
    let rc = unsafe { iso_tls_peer_certificate(c.raw(), der.as_mut_ptr(), der.len(), &mut n) };
    c.ok(rc);
    assert!(der[..n] == std::fs::read(pki().path("rsa-server.der")).unwrap()[..]);
    let handshake_done = frames.lock().unwrap().len();

    // CreateObject of a server session: RequestId ObjectServerSessionContainer (285),
    // RequestValue UDInt 0, then a ClassServerSession object (287) with RID GetNewRIDOnServer.
    let mut req = request(CREATE_OBJECT, 2, NULL_SERVER_SESSION, 0x36);
    req.extend_from_slice(&285u32.to_be_bytes());
    req.extend_from_slice(&[0x00, 0x04, 0x00]);
    req.extend_from_slice(&[0; 4]);
    req.push(0xA1);
    req.extend_from_slice(&211u32.to_be_bytes());
    req.extend(vlq(287));
    req.extend_from_slice(&[0, 0, 0xA2, 0, 0, 0, 0]);
    c.ok(c.send(&frame(2, &req)));
    let resp = response(&c.recv_ok(), CREATE_OBJECT, 2);
    assert_eq!(resp[10], 0, "CreateObject return code: {resp:02x?}");
    assert_eq!(resp[11], 1, "one object id: {resp:02x?}");
    let (session, _) = read_vlq(&resp[12..]);
    assert_ne!(session, 0);

    // The session setup write: ServerSessionVersion (306) back to the PLC.
    let mut req = request(SET_MULTI_VARIABLES, 3, session, 0x34);
    req.extend_from_slice(&session.to_be_bytes());
    req.extend_from_slice(&[1, 1]);
    req.extend(vlq(SERVER_SESSION_VERSION));
    req.extend_from_slice(&[1, 0x00, 0x04, 2, 0, 0, 0, 0, 0, 0]);
    c.ok(c.send(&frame(2, &req)));
    let resp = response(&c.recv_ok(), SET_MULTI_VARIABLES, 3);
    assert_eq!(
        &resp[10..12],
        &[0, 0],
        "accepted, no item errors: {resp:02x?}"
    );

    // Write 16 bytes at DB1.DBB8 as a BLOB.
    let marker: Vec<u8> = b"isotcp over TLS!".to_vec();
    let mut req = request(SET_MULTI_VARIABLES, 4, session, 0x34);
    req.extend_from_slice(&session.to_be_bytes());
    req.extend_from_slice(&[1, 7]);
    req.extend(db_item(1, 8, 16));
    req.extend_from_slice(&[1, 0x00, 0x14, 0x00, 16]);
    req.extend_from_slice(&marker);
    req.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    c.ok(c.send(&frame(2, &req)));
    let resp = response(&c.recv_ok(), SET_MULTI_VARIABLES, 4);
    assert_eq!(
        &resp[10..12],
        &[0, 0],
        "written, no item errors: {resp:02x?}"
    );

    // Read DB1.DBB0..31: the emulator's bytes 0..7, our marker, its bytes 24..31.
    let mut req = request(GET_MULTI_VARIABLES, 5, session, 0x34);
    req.extend_from_slice(&[0, 0, 0, 0, 1, 7]);
    req.extend(db_item(1, 0, 32));
    req.extend_from_slice(&[0, 0, 0, 0, 0]);
    c.ok(c.send(&frame(2, &req)));
    let resp = response(&c.recv_ok(), GET_MULTI_VARIABLES, 5);
    // Return value 0, item 1, a BLOB (flags 0, type 0x14, root id 0) of 32 bytes.
    assert_eq!(&resp[10..16], &[0, 1, 0x00, 0x14, 0x00, 32], "{resp:02x?}");
    let mut want: Vec<u8> = (0..8).collect();
    want.extend_from_slice(&marker);
    want.extend(24..32u8);
    assert_eq!(&resp[16..48], &want[..]);

    assert_eq!(unsafe { iso_set_trace(c.raw(), None, null_mut()) }, ISO_OK);
    let frames = frames.lock().unwrap().clone();
    // Plaintext InitSSL: the first DT sent is an S7CommPlus V1 frame.
    assert_eq!(&frames[0].1[7..9], &[0x72, 0x01], "InitSSL in clear");
    // After the handshake every DT both ways is whole TLS application-data records (we send one
    // per DT; the emulator's first DT after the handshake carries both TLS 1.3 session tickets),
    // and the marker written and read back never shows in clear.
    for (i, (sent, f)) in frames.iter().enumerate().skip(handshake_done) {
        assert_eq!(&f[4..6], &[0x02, 0xF0], "a DT");
        let mut rest = &f[7..];
        let mut count = 0;
        while !rest.is_empty() {
            assert_eq!(&rest[..3], &[0x17, 0x03, 0x03], "frame {i} (sent {sent})");
            let len = 5 + u16::from_be_bytes([rest[3], rest[4]]) as usize;
            assert!(
                len <= rest.len(),
                "frame {i} (sent {sent}): a record cut short"
            );
            rest = &rest[len..];
            count += 1;
        }
        if *sent {
            assert_eq!(count, 1, "frame {i}: one record per DT we send");
        }
    }
    for (sent, f) in &frames {
        assert!(
            !f.windows(marker.len()).any(|w| w == &marker[..]),
            "the marker in clear (sent {sent})"
        );
    }
    frames
}

fn emulator_pin() -> Vec<u8> {
    pki().pin("rsa-server")
}

#[test]
fn s7commplus_emulator_v2_session_over_tls13() {
    if python().is_none() {
        return;
    }
    let frames = emulator_session(emulator_ports().0, &TlsCfg::pinned(&emulator_pin()));
    // The emulator writes its whole first flight as one DT above the TPDU; we accept it.
    let largest = frames
        .iter()
        .filter(|(s, _)| !s)
        .map(|(_, f)| f.len() - 4)
        .max();
    assert!(largest.unwrap() > 1024, "largest DT received: {largest:?}");
    for (sent, f) in &frames {
        if *sent {
            assert!(f.len() - 4 <= 1024, "a DT we sent exceeds TPDU 1024");
        }
    }
}

#[test]
fn s7commplus_emulator_v2_session_over_tls12() {
    if python().is_none() {
        return;
    }
    emulator_session(
        emulator_ports().0,
        &TlsCfg::pinned(&emulator_pin()).versions(0x0303, 0x0303),
    );
}

/// The emulator configured to require a client certificate from the test CA: ours gets the
/// session through; without one the session ends at once (the emulator closes TCP).
#[test]
fn s7commplus_emulator_mutual_tls() {
    if python().is_none() {
        return;
    }
    let port = emulator_ports().1;
    emulator_session(port, &TlsCfg::pinned(&emulator_pin()).identity("client"));

    let c = Conn::local(port);
    assert_eq!(c.set_tsap_bytes(&[6, 0], b"SIMATIC-ROOT-HMI"), ISO_OK);
    c.ok(c.connect(LONG));
    let mut req = s7p::request(s7p::INIT_SSL, 1, 0, 0x30);
    req.extend_from_slice(&[0; 4]);
    c.ok(c.send(&s7p::frame(1, &req)));
    c.recv_ok();
    let rc = start_tls(&c, &TlsCfg::pinned(&emulator_pin()), LONG);
    let rc = if rc == ISO_OK {
        // TLS 1.3: the refusal comes after our Finished, at the first receive.
        let _ = c.send(&s7p::frame(
            2,
            &s7p::request(s7p::CREATE_OBJECT, 2, 288, 0x36),
        ));
        c.recv_into(&mut [0u8; 256], LONG).0
    } else {
        rc
    };
    // The emulator drops the connection without sending OpenSSL's alert.
    assert!(
        rc == ISO_E_CLOSED || rc == ISO_E_TLS,
        "{}: {}",
        code_name(rc),
        c.last_error()
    );
    assert_eq!(c.check(), 0);
}

// ---------------------------------------------------------------------------------------------
// tshark: the frame trace decrypted with the key log
// ---------------------------------------------------------------------------------------------

fn tshark_present() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let required =
            require_peers() || std::env::var("ISOTCP_REQUIRE_TSHARK").as_deref() == Ok("1");
        assert!(
            !required,
            "tshark missing and ISOTCP_REQUIRE_PEERS/ISOTCP_REQUIRE_TSHARK=1"
        );
        eprintln!("SKIP tshark test: tshark not installed");
    }
    ok
}

/// A session with the Python server traced to a pcap file (`iso_set_trace_file`), its secrets in
/// a key log: (trace, key log). Each payload goes out and comes back.
fn traced_session(tls12: bool, payloads: &[Vec<u8>]) -> (PathBuf, PathBuf) {
    let dir = &pki().dir;
    let tag = if tls12 { "tls12" } else { "tls13" };
    let (trace, keys) = (
        dir.join(format!("trace-{tag}.pcap")),
        dir.join(format!("keys-{tag}.log")),
    );
    let _ = std::fs::remove_file(&keys);
    let c = Conn::local(ssl_server_port());
    assert_eq!(c.set_tsap_bytes(&[6, 0], b"echo"), ISO_OK);
    let t = cstr(&trace);
    assert_eq!(unsafe { iso_set_trace_file(c.raw(), t.as_ptr()) }, ISO_OK);
    c.ok(c.connect(LONG));
    let mut cfg = TlsCfg::pinned(&pki().pin("server")).keylog(&keys);
    if tls12 {
        cfg = cfg.versions(0x0303, 0x0303);
    }
    c.ok(start_tls(&c, &cfg, LONG));
    for p in payloads {
        c.ok(c.send(p));
        assert!(c.recv_ok() == *p);
    }
    assert_eq!(
        unsafe { iso_set_trace_file(c.raw(), std::ptr::null()) },
        ISO_OK
    );
    (trace, keys)
}

/// tshark's fields per frame: (protocol column, hex of the decrypted data).
fn tshark_fields(trace: &Path, extra: &[String]) -> Vec<(String, String)> {
    let port = ssl_server_port();
    let out = output_within(
        Command::new("tshark")
            .arg("-r")
            .arg(trace)
            .args(["-d", &format!("tcp.port=={port},tpkt")])
            .args(extra)
            .args(["-T", "fields", "-e", "_ws.col.Protocol", "-e", "data.data"]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "tshark: {}",
        common::process::text(&out)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (proto, data) = l.split_once('\t').unwrap_or((l, ""));
            (proto.to_owned(), data.replace(',', ""))
        })
        .collect()
}

/// Wireshark decodes TLS inside COTP only with a heuristic dissector for COTP payloads
/// (docs/wireshark/tls_in_cotp.lua, shipped for users); with it and our key log it shows the plaintext we sent, for
/// TLS 1.3 and 1.2, also of a message whose records span several DTs. Without the key log the
/// data stays encrypted; without the script tshark sees no TLS at all.
#[test]
fn tshark_decrypts_the_trace_with_the_key_log() {
    if python().is_none() || !tshark_present() {
        return;
    }
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/wireshark/tls_in_cotp.lua");
    let payloads = vec![
        b"first secret payload".to_vec(),
        b"second secret payload".to_vec(),
        message(3000),
    ];
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for tls12 in [false, true] {
        let (trace, keys) = traced_session(tls12, &payloads);
        let script = format!("lua_script:{}", lua.display());
        let keylog = format!("tls.keylog_file:{}", keys.display());
        let frames = tshark_fields(
            &trace,
            &["-X".into(), script.clone(), "-o".into(), keylog.clone()],
        );
        let want = if tls12 { "TLSv1.2" } else { "TLSv1.3" };
        assert!(frames.iter().any(|(p, _)| p == want), "{frames:?}");
        let decrypted: String = frames.iter().map(|(_, d)| d.as_str()).collect();
        for p in &payloads {
            // Each payload twice: sent, and echoed back.
            assert_eq!(
                decrypted.matches(&hex(p)).count(),
                2,
                "TLS 1.2: {tls12}, {} bytes, decrypted: {decrypted}",
                p.len()
            );
        }

        if tls12 {
            continue;
        }
        let encrypted = tshark_fields(&trace, &["-X".into(), script]);
        assert!(encrypted.iter().any(|(p, _)| p == want));
        assert!(encrypted.iter().all(|(_, d)| d.is_empty()), "{encrypted:?}");

        let plain = tshark_fields(&trace, &["-o".into(), keylog]);
        assert!(
            plain.iter().all(|(p, _)| !p.starts_with("TLS")),
            "{plain:?}"
        );
    }
}
