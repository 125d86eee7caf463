//! Shared helpers of the TLS tests (tests/tls*.rs): a test PKI made with the `openssl`
//! command, COTP pairs over loopback, both handshakes, and a server that drives rustls by hand
//! so a test decides how records are cut into TSDUs.
// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use isotcp::net::tls::{TlsConfig, TlsSession};
use isotcp::net::{Config, Connection, Listener};

pub const T: Duration = Duration::from_secs(10);

pub struct Pki {
    pub dir: PathBuf,
    /// SHA-256 of the server certificate (DER).
    pub pin: Vec<u8>,
}

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA and a server certificate it signed, made once per test run.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("isotcp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=isotcp test CA"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.pem"]);
        ca.extend_from_slice(&["-addext", "basicConstraints=critical,CA:TRUE"]);
        ca.extend_from_slice(&["-addext", "keyUsage=critical,keyCertSign"]);
        openssl(&dir, &ca);
        let mut req = vec!["req", "-new", "-subj", "/CN=plc"];
        req.extend_from_slice(&ec);
        req.extend_from_slice(&["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&dir, &req);
        std::fs::write(
            dir.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:plc.example\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
            ],
        );
        let der = openssl(&dir, &["x509", "-in", "server.pem", "-outform", "DER"]);
        std::fs::write(dir.join("server.der"), &der).unwrap();
        let digest = openssl(&dir, &["dgst", "-sha256", "-binary", "server.der"]);
        Pki { dir, pin: digest }
    })
}

/// Certificates for the verification tests, made once per test run beside [`pki`]'s:
/// `client.pem` (the CA signed it for clientAuth), `other-ca.pem` (a CA that signed nothing
/// here), `expired.pem` (valid in January 2020 only), `future.pem` (valid from 2040),
/// `badsig.pem` (the server certificate with its signature altered); each `.pem` has its
/// `.key`, and `client_pin` is the SHA-256 of the client certificate.
pub struct MorePki {
    pub client_pin: Vec<u8>,
}

pub fn more_pki() -> &'static MorePki {
    static MORE: OnceLock<MorePki> = OnceLock::new();
    MORE.get_or_init(|| {
        let p = pki();
        let dir = &p.dir;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut req = vec!["req", "-new", "-subj", "/CN=hmi"];
        req.extend_from_slice(&ec);
        req.extend_from_slice(&["-keyout", "client.key", "-out", "client.csr"]);
        openssl(dir, &req);
        std::fs::write(
            dir.join("client.cnf"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "client.cnf",
                "-out",
                "client.pem",
            ],
        );
        let der = openssl(dir, &["x509", "-in", "client.pem", "-outform", "DER"]);
        std::fs::write(dir.join("client.der"), &der).unwrap();
        let client_pin = openssl(dir, &["dgst", "-sha256", "-binary", "client.der"]);

        let mut other = vec!["req", "-x509", "-days", "2", "-subj", "/CN=another CA"];
        other.extend_from_slice(&ec);
        other.extend_from_slice(&["-keyout", "other-ca.key", "-out", "other-ca.pem"]);
        other.extend_from_slice(&["-addext", "basicConstraints=critical,CA:TRUE"]);
        openssl(dir, &other);

        // `openssl ca` is the command that sets both validity dates.
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\n\
             default_md = sha256\npolicy = p\nunique_subject = no\nx509_extensions = x\n\
             [p]\ncommonName = supplied\n[x]\nbasicConstraints = CA:FALSE\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        for (name, start, end) in [
            ("expired", "200101000000Z", "200201000000Z"),
            ("future", "400101000000Z", "400201000000Z"),
        ] {
            let out = format!("{name}.pem");
            openssl(
                dir,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    "ca.pem",
                    "-keyfile",
                    "ca.key",
                    "-in",
                    "server.csr",
                    "-startdate",
                    start,
                    "-enddate",
                    end,
                    "-notext",
                    "-out",
                    &out,
                ],
            );
            std::fs::copy(dir.join("server.key"), dir.join(format!("{name}.key"))).unwrap();
        }

        // The last byte of the DER is the signature's: change it.
        let mut bad = std::fs::read(dir.join("server.der")).unwrap();
        *bad.last_mut().unwrap() ^= 0x01;
        std::fs::write(dir.join("badsig.der"), &bad).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                "badsig.der",
                "-out",
                "badsig.pem",
            ],
        );
        std::fs::copy(dir.join("server.key"), dir.join("badsig.key")).unwrap();
        MorePki { client_pin }
    })
}

/// A server configuration presenting `name`.pem and `name`.key of the test PKI.
pub fn server_config_with(name: &str) -> TlsConfig {
    let p = pki();
    let mut cfg = TlsConfig::new();
    cfg.set_identity_files(
        p.path(&format!("{name}.pem")),
        p.path(&format!("{name}.key")),
    );
    cfg
}

pub fn server_config() -> TlsConfig {
    let p = pki();
    let mut cfg = TlsConfig::new();
    cfg.set_identity_files(p.path("server.pem"), p.path("server.key"));
    cfg
}

/// A COTP connection pair over loopback with the given TPDU size: (client, server).
pub fn pair(tpdu: u32) -> (Connection, Connection) {
    let listener = Listener::bind(Some("127.0.0.1"), 0).unwrap();
    // A 64 KiB message grows by its records' overhead: allow larger TSDUs.
    listener
        .configure(|c| c.transfer_mut().set_max_message(256 << 10))
        .unwrap();
    let port = listener.port();
    let mut config = Config::new("127.0.0.1", port).unwrap();
    config.set_tpdu_size(tpdu).unwrap();
    config.transfer_mut().set_max_message(256 << 10).unwrap();
    let client = Connection::new(config);
    let accept = thread::spawn(move || listener.accept(T).unwrap());
    client.connect(T).unwrap();
    let server = accept.join().unwrap();
    assert_eq!(client.tpdu_size().unwrap(), tpdu);
    (client, server)
}

/// Both handshakes; the server runs on its own thread.
pub fn start(
    tpdu: u32,
    client_cfg: TlsConfig,
    server_cfg: TlsConfig,
) -> (
    Connection,
    isotcp::Result<TlsSession>,
    Connection,
    isotcp::Result<TlsSession>,
) {
    let (client, server) = pair(tpdu);
    let srv = thread::spawn(move || {
        let s = TlsSession::server(&server, &server_cfg, T);
        (server, s)
    });
    let c = TlsSession::client(&client, &client_cfg, T);
    let (server, s) = srv.join().unwrap();
    (client, c, server, s)
}

pub fn pinned() -> TlsConfig {
    let mut cfg = TlsConfig::new();
    cfg.set_pin_sha256(&pki().pin).unwrap();
    cfg
}

pub fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + len) as u8).collect()
}

/// A server driving rustls by hand, so the test decides how records are cut into TSDUs.
pub fn raw_server(server: &Connection) -> rustls::ServerConnection {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let p = pki();
    let certs = CertificateDer::pem_file_iter(p.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(p.path("server.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let mut tls = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
    let mut buf = vec![0u8; 70_000];
    while tls.is_handshaking() {
        if tls.wants_read() {
            let n = server.recv(&mut buf, T).unwrap();
            tls.read_tls(&mut &buf[..n]).unwrap();
            tls.process_new_packets().unwrap();
        }
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out).unwrap();
        }
        if !out.is_empty() {
            server.send(&out).unwrap();
        }
    }
    tls
}

/// Through the C API.
pub mod c {
    use super::*;
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    use isotcp::ffi::listener::*;
    use isotcp::ffi::tls::*;
    use std::ffi::CString;
    use std::ptr::null_mut;

    /// A handle that may cross threads (the C API's thread rules say which calls may overlap).
    #[derive(Clone, Copy)]
    pub struct H(pub *mut iso_conn);
    // SAFETY: the C API allows its handles to be used from any thread.
    unsafe impl Send for H {}
    // SAFETY: as above; the calls a test overlaps are those the thread rules allow.
    unsafe impl Sync for H {}

    pub fn cstr(p: &Path) -> CString {
        CString::new(p.to_str().unwrap()).unwrap()
    }

    pub fn last_error(c: *mut iso_conn) -> String {
        let mut buf = [0u8; 1024];
        let mut needed = 0;
        unsafe { iso_last_error(c, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
        String::from_utf8_lossy(&buf[..needed.saturating_sub(1).min(1023)]).into_owned()
    }

    /// A C-level pair with TLS started on both sides, the client pinning the server:
    /// (client, server). `client_cfg` adjusts the client's config before the handshake.
    pub fn tls_pair(tpdu: u32, client_cfg: impl FnOnce(*mut iso_tls_config)) -> (H, H) {
        let p = pki();
        unsafe {
            let mut scfg = null_mut();
            assert_eq!(iso_tls_config_create(&mut scfg), ISO_OK);
            let (cert, key) = (cstr(&p.path("server.pem")), cstr(&p.path("server.key")));
            assert_eq!(
                iso_tls_config_set_identity_files(scfg, cert.as_ptr(), key.as_ptr()),
                ISO_OK
            );
            let mut ccfg = null_mut();
            assert_eq!(iso_tls_config_create(&mut ccfg), ISO_OK);
            assert_eq!(
                iso_tls_config_set_pin_sha256(ccfg, p.pin.as_ptr(), p.pin.len()),
                ISO_OK
            );
            client_cfg(ccfg);
            let mut l = null_mut();
            assert_eq!(iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l), ISO_OK);
            assert_eq!(iso_listener_set_max_message(l, 1 << 20), ISO_OK);
            let mut port = 0;
            assert_eq!(iso_listener_port(l, &mut port), ISO_OK);
            let mut c = null_mut();
            assert_eq!(iso_create(c"127.0.0.1".as_ptr(), port, &mut c), ISO_OK);
            assert_eq!(iso_set_tpdu_size(c, tpdu), ISO_OK);
            assert_eq!(iso_set_max_message(c, 1 << 20), ISO_OK);
            let (l, scfg) = (l as usize, scfg as usize);
            let srv = thread::spawn(move || {
                let mut s = null_mut();
                assert_eq!(iso_accept(l as *mut iso_listener, 10_000, &mut s), ISO_OK);
                let rc = iso_start_tls(s, scfg as *const iso_tls_config, 10_000);
                assert_eq!(rc, ISO_OK, "server: {}", last_error(s));
                iso_tls_config_destroy(scfg as *mut iso_tls_config);
                iso_listener_destroy(l as *mut iso_listener);
                s as usize
            });
            assert_eq!(iso_connect(c, 10_000), ISO_OK);
            let rc = iso_start_tls(c, ccfg, 10_000);
            assert_eq!(rc, ISO_OK, "client: {}", last_error(c));
            iso_tls_config_destroy(ccfg);
            (H(c), H(srv.join().unwrap() as *mut iso_conn))
        }
    }

    /// Receives one message through the C API within 10 s.
    pub fn recv(h: H) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        let rc = unsafe { iso_recv(h.0, buf.as_mut_ptr(), buf.len(), &mut n, 10_000) };
        assert_eq!(rc, ISO_OK, "{}", last_error(h.0));
        buf.truncate(n);
        buf
    }

    pub fn send(h: H, m: &[u8]) {
        let rc = unsafe { iso_send(h.0, m.as_ptr(), m.len()) };
        assert_eq!(rc, ISO_OK, "{}", last_error(h.0));
    }
}
