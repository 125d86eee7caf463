//! TLS inside COTP (secure S7 communication): TPKT and COTP stay in clear, TLS records travel as
//! the payload of DTs.
//!
//! A [`TlsSession`] runs over an established [`Connection`]: every [`TlsSession::send`] encrypts
//! one message and sends the resulting records as one TSDU (the connection segments it into DTs,
//! EOT on the last); [`TlsSession::recv`] returns the plaintext of one TSDU, reading further
//! TSDUs while a record spans them. Records are sized so that one record fits one DT of the
//! negotiated TPDU size, and a message's records line up with its DTs.
//!
//! Verification: the peer's chain against a CA file, or the SHA-256 of its certificate (DER)
//! against a pin; the host name only when one is set (PLC certificates rarely name their
//! address). Key exchange X25519 and secp256r1 only: PLCs reset a connection offered a
//! post-quantum key share.
//!
//! Locks: `tx` is held for a whole send (records must leave in the order they were sealed),
//! `rx` for a whole receive, and `tls` only around calls into rustls; the order is rx, tx, tls.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring as provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, CipherSuite, DigitallySignedStruct, ProtocolVersion, RootCertStore,
    SignatureScheme, SupportedProtocolVersion,
};

use super::connection::Connection;
use super::deadline::Deadline;
use crate::error::{Error, Result};

/// TLS 1.2, as `set_versions` takes it.
pub const TLS1_2: u16 = 0x0303;
/// TLS 1.3, as `set_versions` takes it.
pub const TLS1_3: u16 = 0x0304;

/// Bytes of a DT's header (LI, code, EOT) that a record's DT carries besides the record.
const DT_HEADER: usize = 3;
/// TLS record header.
const RECORD_HEADER: usize = 5;
/// The largest sealing overhead of the suites offered (TLS 1.2 AES-GCM: nonce 8 + tag 16).
const MAX_SEAL_OVERHEAD: usize = 24;
/// The sealing overhead of TLS 1.3 (tag 16 + content type 1), the largest that handshake
/// records carry: TLS 1.2 sends its handshake in clear, except the short Finished.
const TLS13_SEAL_OVERHEAD: usize = 17;

/// What a [`TlsSession`] verifies and presents. Cloned into each session.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    ca_file: Option<PathBuf>,
    pin: Option<[u8; 32]>,
    insecure: bool,
    server_name: Option<String>,
    identity: Option<(PathBuf, PathBuf)>,
    versions: (u16, u16),
    keylog: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            pin: None,
            insecure: false,
            server_name: None,
            identity: None,
            versions: (TLS1_2, TLS1_3),
            keylog: None,
        }
    }
}

impl TlsConfig {
    /// A configuration that verifies nothing yet: set a CA file, a pin or `insecure`.
    pub fn new() -> TlsConfig {
        TlsConfig::default()
    }

    /// The PEM file of the CA certificates the peer's chain must verify against.
    pub fn set_ca_file(&mut self, path: impl Into<PathBuf>) {
        self.ca_file = Some(path.into());
    }

    /// The SHA-256 of the peer's certificate (DER), 32 bytes.
    pub fn set_pin_sha256(&mut self, digest: &[u8]) -> Result<()> {
        let pin: [u8; 32] = digest.try_into().map_err(|_| {
            Error::Invalid(format!("a SHA-256 pin has 32 bytes, not {}", digest.len()))
        })?;
        self.pin = Some(pin);
        Ok(())
    }

    /// Whether any certificate is accepted.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Accept any certificate (labs only: anyone in the path can read and change the traffic).
    pub fn set_insecure(&mut self, insecure: bool) {
        self.insecure = insecure;
    }

    /// The name the peer's certificate must carry; also sent as SNI. None: no name check.
    pub fn set_server_name(&mut self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name {
            ServerName::try_from(name.to_owned())
                .map_err(|e| Error::Invalid(format!("server name {name:?}: {e}")))?;
        }
        self.server_name = name.map(str::to_owned);
        Ok(())
    }

    /// Our certificate chain and private key (PEM files): needed by a server, optional for a
    /// client.
    pub fn set_identity_files(&mut self, cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) {
        self.identity = Some((cert_chain.into(), key.into()));
    }

    /// The protocol versions to allow, [`TLS1_2`] to [`TLS1_3`].
    pub fn set_versions(&mut self, min: u16, max: u16) -> Result<()> {
        let known = |v| v == TLS1_2 || v == TLS1_3;
        if !known(min) || !known(max) || min > max {
            return Err(Error::Invalid(format!(
                "TLS versions {min:#06x} to {max:#06x}: allowed are 0x0303 (TLS 1.2) to 0x0304 (TLS 1.3), min <= max"
            )));
        }
        self.versions = (min, max);
        Ok(())
    }

    /// An NSS key log file (SSLKEYLOGFILE format) the session secrets are appended to, so a
    /// capture can be decrypted. None: no key log (the default).
    pub fn set_keylog_file(&mut self, path: Option<PathBuf>) {
        self.keylog = path;
    }

    fn key_log(&self) -> Option<Arc<dyn rustls::KeyLog>> {
        let path = self.keylog.clone()?;
        Some(Arc::new(KeyLogFile { path }))
    }

    fn protocol_versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        let mut v = Vec::new();
        if self.versions.0 <= TLS1_2 {
            v.push(&rustls::version::TLS12);
        }
        if self.versions.1 >= TLS1_3 {
            v.push(&rustls::version::TLS13);
        }
        v
    }

    fn identity(&self) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let Some((chain, key)) = &self.identity else {
            return Ok(None);
        };
        let certs = CertificateDer::pem_file_iter(chain)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| Error::Invalid(format!("certificate chain {}: {e}", chain.display())))?;
        if certs.is_empty() {
            return Err(Error::Invalid(format!(
                "certificate chain {}: no certificate in it",
                chain.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| Error::Invalid(format!("private key {}: {e}", key.display())))?;
        Ok(Some((certs, key)))
    }

    fn client(&self, dt_payload: usize) -> Result<rustls::ClientConnection> {
        let provider = Arc::new(crypto_provider());
        let check = PeerCheck::new(self, &provider)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.protocol_versions())
            .map_err(tls_error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(check));
        let mut config = match self.identity()? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::Invalid(format!("client identity: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.resumption = rustls::client::Resumption::disabled();
        if let Some(log) = self.key_log() {
            config.key_log = log;
        }
        config.max_fragment_size = Some(fragment_size(dt_payload)?);
        let name = match &self.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|e| Error::Invalid(format!("server name {name:?}: {e}")))?,
            // An address is never sent as SNI, and the verifier skips the name check.
            None => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        config.enable_sni = self.server_name.is_some();
        rustls::ClientConnection::new(Arc::new(config), name).map_err(tls_error)
    }

    fn server(&self, dt_payload: usize) -> Result<rustls::ServerConnection> {
        let Some((certs, key)) = self.identity()? else {
            return Err(Error::Invalid(
                "the server role needs a certificate and key: set the identity files".into(),
            ));
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_protocol_versions(&self.protocol_versions())
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Invalid(format!("server identity: {e}")))?;
        config.max_fragment_size = Some(fragment_size(dt_payload)?);
        config.send_tls13_tickets = 0;
        if let Some(log) = self.key_log() {
            config.key_log = log;
        }
        rustls::ServerConnection::new(Arc::new(config)).map_err(tls_error)
    }
}

/// Appends each secret to a file in the NSS key log format. A line that cannot be written is
/// dropped: the key log is a debugging aid and must not break the session.
#[derive(Debug)]
struct KeyLogFile {
    path: PathBuf,
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// The ring provider with classic key exchange only.
fn crypto_provider() -> CryptoProvider {
    CryptoProvider {
        kx_groups: vec![provider::kx_group::X25519, provider::kx_group::SECP256R1],
        ..provider::default_provider()
    }
}

/// rustls' record size limit (plaintext plus the record header) so a sealed handshake record
/// fits a DT. Application data is cut by [`TlsSession::send`] to fit the negotiated suite.
fn fragment_size(dt_payload: usize) -> Result<usize> {
    let size = dt_payload
        .saturating_sub(TLS13_SEAL_OVERHEAD)
        .min(16 * 1024 + RECORD_HEADER);
    if size < 32 {
        return Err(Error::Invalid(format!(
            "a DT payload of {dt_payload} bytes is too small for TLS records"
        )));
    }
    Ok(size)
}

fn tls_error(e: rustls::Error) -> Error {
    Error::Tls(e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = provider::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite");
    suite.common.hash_provider.hash(data).as_ref().to_vec()
}

#[derive(Debug)]
enum Check {
    Pin([u8; 32]),
    Chain {
        verifier: Arc<WebPkiServerVerifier>,
        check_name: bool,
    },
    Insecure,
}

/// How a client judges the server's certificate: pin, CA chain, or (labs) anything.
#[derive(Debug)]
struct PeerCheck {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerCheck {
    fn new(cfg: &TlsConfig, provider: &Arc<CryptoProvider>) -> Result<PeerCheck> {
        let check = if cfg.insecure {
            Check::Insecure
        } else if let Some(pin) = cfg.pin {
            Check::Pin(pin)
        } else if let Some(path) = &cfg.ca_file {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::Invalid(format!("CA file {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::Invalid(format!(
                    "CA file {}: no usable certificate in it",
                    path.display()
                )));
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Invalid(format!("CA file {}: {e}", path.display())))?;
            Check::Chain {
                verifier,
                check_name: cfg.server_name.is_some(),
            }
        } else {
            return Err(Error::Invalid(
                "no way to verify the peer: set a CA file or a SHA-256 pin (or, for labs only, insecure)"
                    .into(),
            ));
        };
        Ok(PeerCheck {
            check,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for PeerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Insecure => Ok(ServerCertVerified::assertion()),
            Check::Pin(pin) => {
                let seen = sha256(end_entity.as_ref());
                if seen == pin[..] {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "certificate pin mismatch: expected SHA-256 {}, the peer's certificate has {}",
                        hex(pin),
                        hex(&seen)
                    )))
                }
            }
            Check::Chain {
                verifier,
                check_name,
            } => match verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                // The chain is checked before the name: a name error means the chain is good.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) if !check_name => Ok(ServerCertVerified::assertion()),
                other => other,
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

struct Rx {
    /// One TSDU of TLS bytes, as the connection delivered it.
    tsdu: Vec<u8>,
    /// Plaintext decrypted and not yet returned.
    plain: Vec<u8>,
}

/// TLS over one [`Connection`], after its COTP connect (client) or accept (server).
pub struct TlsSession {
    tls: Mutex<rustls::Connection>,
    tx: Mutex<Vec<u8>>,
    rx: Mutex<Rx>,
    /// Plaintext bytes per application-data record, so each record fills one DT.
    plain_per_record: usize,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession").finish_non_exhaustive()
    }
}

impl TlsSession {
    /// Runs the handshake as the client within `timeout`. A failure closes the connection.
    pub fn client(conn: &Connection, cfg: &TlsConfig, timeout: Duration) -> Result<TlsSession> {
        let payload = dt_payload(conn)?;
        let tls = cfg.client(payload)?.into();
        TlsSession::handshake(conn, tls, payload, timeout)
    }

    /// Runs the handshake as the server within `timeout`. A failure closes the connection.
    pub fn server(conn: &Connection, cfg: &TlsConfig, timeout: Duration) -> Result<TlsSession> {
        let payload = dt_payload(conn)?;
        let tls = cfg.server(payload)?.into();
        TlsSession::handshake(conn, tls, payload, timeout)
    }

    fn handshake(
        conn: &Connection,
        tls: rustls::Connection,
        payload: usize,
        timeout: Duration,
    ) -> Result<TlsSession> {
        let session = TlsSession {
            tls: Mutex::new(tls),
            tx: Mutex::new(Vec::new()),
            rx: Mutex::new(Rx {
                tsdu: vec![0; 4096],
                plain: Vec::new(),
            }),
            plain_per_record: 0,
        };
        let deadline = Deadline::after(timeout);
        let result = session.run_handshake(conn, &deadline);
        if let Err(e) = result {
            conn.disconnect();
            return Err(e);
        }
        let overhead = {
            let tls = session.tls.lock();
            match (tls.protocol_version(), tls.negotiated_cipher_suite()) {
                (Some(ProtocolVersion::TLSv1_3), _) => TLS13_SEAL_OVERHEAD,
                (_, Some(s))
                    if matches!(
                        s.suite(),
                        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
                            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                    ) =>
                {
                    16
                }
                _ => MAX_SEAL_OVERHEAD,
            }
        };
        Ok(TlsSession {
            plain_per_record: payload - RECORD_HEADER - overhead,
            ..session
        })
    }

    fn run_handshake(&self, conn: &Connection, deadline: &Deadline) -> Result<()> {
        let mut rx = self.rx.lock();
        loop {
            self.flush_tls(conn)?;
            let (handshaking, wants_read) = {
                let tls = self.tls.lock();
                (tls.is_handshaking(), tls.wants_read())
            };
            if !handshaking {
                return Ok(());
            }
            if wants_read {
                self.read_tsdu(conn, &mut rx, deadline, "TLS handshake")?;
            }
        }
    }

    /// Sends whatever rustls has to send as one TSDU.
    fn flush_tls(&self, conn: &Connection) -> Result<()> {
        let mut out = self.tx.lock();
        out.clear();
        {
            let mut tls = self.tls.lock();
            while tls.wants_write() {
                tls.write_tls(&mut *out)
                    .map_err(|e| Error::Tls(e.to_string()))?;
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        conn.send(&out)
    }

    /// Receives one TSDU and feeds it to rustls; decrypted plaintext goes to `rx.plain`.
    fn read_tsdu(
        &self,
        conn: &Connection,
        rx: &mut Rx,
        deadline: &Deadline,
        what: &'static str,
    ) -> Result<()> {
        let n = loop {
            if deadline.passed() && !deadline.is_immediate() {
                return Err(deadline.ran_out(what));
            }
            match conn.recv(&mut rx.tsdu, deadline.remaining()) {
                Ok(n) => break n,
                Err(Error::BufferTooSmall { needed, .. }) => rx.tsdu.resize(needed, 0),
                Err(Error::Timeout(_) | Error::WouldBlock(_)) => return Err(deadline.ran_out(what)),
                Err(e) => return Err(e),
            }
        };
        let failure = {
            let mut tls = self.tls.lock();
            let mut input = &rx.tsdu[..n];
            let mut failure = None;
            while failure.is_none() && !input.is_empty() {
                if let Err(e) = tls.read_tls(&mut input) {
                    failure = Some(Error::Tls(e.to_string()));
                    break;
                }
                match tls.process_new_packets() {
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(tls_error(e));
                        break;
                    }
                }
                match drain_plaintext(&mut tls, &mut rx.plain) {
                    Ok(()) => {}
                    Err(e) => failure = Some(e),
                }
            }
            failure
        };
        if let Some(e) = failure {
            // rustls queued an alert for the peer: send it, then close.
            let _ = self.flush_tls(conn);
            conn.disconnect();
            return Err(e);
        }
        Ok(())
    }

    /// Encrypts one message and sends its records as one TSDU, one record per DT.
    pub fn send(&self, conn: &Connection, message: &[u8]) -> Result<()> {
        if message.is_empty() {
            return Err(Error::Invalid("empty message".into()));
        }
        let mut out = self.tx.lock();
        out.clear();
        {
            let mut tls = self.tls.lock();
            // One write per record; sealed records move out at once, so rustls' output
            // buffer limit never refuses a large message.
            for chunk in message.chunks(self.plain_per_record) {
                tls.writer()
                    .write_all(chunk)
                    .map_err(|e| Error::Tls(e.to_string()))?;
                while tls.wants_write() {
                    tls.write_tls(&mut *out)
                        .map_err(|e| Error::Tls(e.to_string()))?;
                }
            }
        }
        conn.send(&out)
    }

    /// Receives the plaintext of one TSDU within `timeout` (reading on while a record spans
    /// TSDUs). A timeout loses nothing; a buffer too small fails with
    /// [`Error::BufferTooSmall`] and leaves the message queued.
    pub fn recv(&self, conn: &Connection, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let deadline = Deadline::after(timeout);
        let mut rx = self.rx.lock();
        loop {
            if !rx.plain.is_empty() {
                let n = rx.plain.len();
                if buf.len() < n {
                    return Err(Error::BufferTooSmall {
                        needed: n,
                        cap: buf.len(),
                    });
                }
                buf[..n].copy_from_slice(&rx.plain);
                rx.plain.clear();
                return Ok(n);
            }
            self.read_tsdu(conn, &mut rx, &deadline, "TLS receive")?;
        }
    }

    /// Keying material from the TLS exporter (RFC 5705 / RFC 8446 §7.5) into `out`.
    pub fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<()> {
        if out.is_empty() || out.len() > 255 {
            return Err(Error::Invalid(format!(
                "exporter output of {} bytes: allowed are 1 to 255",
                out.len()
            )));
        }
        self.tls
            .lock()
            .export_keying_material(out, label, context)
            .map(|_| ())
            .map_err(tls_error)
    }

    /// The peer's certificate (DER), when it sent one.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let tls = self.tls.lock();
        tls.peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
    }

    /// The negotiated protocol version: [`TLS1_2`] or [`TLS1_3`].
    pub fn protocol_version(&self) -> u16 {
        match self.tls.lock().protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => TLS1_2,
            _ => TLS1_3,
        }
    }
}

fn drain_plaintext(tls: &mut rustls::Connection, plain: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        match tls.reader().read(&mut chunk) {
            Ok(0) => return Err(Error::Tls("the peer ended the TLS session".to_owned())),
            Ok(n) => plain.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(Error::Tls(e.to_string())),
        }
    }
}

fn dt_payload(conn: &Connection) -> Result<usize> {
    Ok(conn.tpdu_size()? as usize - DT_HEADER)
}
