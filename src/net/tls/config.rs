//! [`TlsConfig`]: what a session verifies and presents, and the rustls configurations made
//! from it for either role.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::SupportedProtocolVersion;

use super::verify::{ClientCheck, ClientIdentity, PeerCheck};
use super::{hex, RECORD_HEADER, TLS13_SEAL_OVERHEAD, TLS1_2, TLS1_3};
use crate::error::{Error, Result};

/// The largest plaintext of one TLS record (RFC 8446 §5.1).
pub const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// What a [`TlsSession`](super::TlsSession) verifies and presents. Cloned into each session.
///
/// The same settings serve both roles: a client verifies the server by the CA file or the pin;
/// a server with a CA file or a pin requires a certificate from the client and verifies it the
/// same way (mutual TLS).
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) pin: Option<[u8; 32]>,
    pub(super) insecure: bool,
    pub(super) server_name: Option<String>,
    identity: Option<(PathBuf, PathBuf)>,
    versions: (u16, u16),
    keylog: Option<PathBuf>,
    max_record: usize,
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
            max_record: 0,
        }
    }
}

impl TlsConfig {
    /// A configuration that verifies nothing yet: set a CA file, a pin or `insecure`.
    pub fn new() -> TlsConfig {
        TlsConfig::default()
    }

    /// The PEM file of the CA certificates the peer's chain must verify against. On a server,
    /// it also makes a client certificate required.
    pub fn set_ca_file(&mut self, path: impl Into<PathBuf>) {
        self.ca_file = Some(path.into());
    }

    /// The SHA-256 of the peer's certificate (DER), 32 bytes. On a server, it also makes a
    /// client certificate required.
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
    /// On a server it also means: ask no client for a certificate.
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
    /// client (a server that requires one refuses a client without).
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

    /// The largest plaintext of a record we send, 0 or 32 to 16384 bytes. 0 (the default):
    /// each record fits one DT of the negotiated TPDU size. Larger: a record may span several
    /// DTs of its TSDU (some PLCs are not known to accept that); no DT ever exceeds the TPDU.
    pub fn set_max_record_size(&mut self, bytes: usize) -> Result<()> {
        if bytes != 0 && !(32..=MAX_RECORD_PLAINTEXT).contains(&bytes) {
            return Err(Error::Invalid(format!(
                "a record size of {bytes} bytes: allowed are 0 (fit one DT) or 32 to {MAX_RECORD_PLAINTEXT}"
            )));
        }
        self.max_record = bytes;
        Ok(())
    }

    /// The largest plaintext of a record we send, as set (0: fit one DT).
    pub fn max_record_size(&self) -> usize {
        self.max_record
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

    /// rustls' limit on the records it makes (handshake and alerts): one DT, or the set size.
    fn fragment_size(&self, dt_payload: usize) -> Result<usize> {
        if self.max_record != 0 {
            return Ok(self.max_record + RECORD_HEADER);
        }
        fragment_size(dt_payload)
    }

    /// The client side, and our identity, which records whether the server asked for it.
    pub(super) fn client(
        &self,
        dt_payload: usize,
    ) -> Result<(rustls::ClientConnection, Arc<ClientIdentity>)> {
        let provider = Arc::new(crypto_provider());
        let check = PeerCheck::new(self, &provider)?;
        let key = match self.identity()? {
            Some((certs, key)) => {
                let signer = provider
                    .key_provider
                    .load_private_key(key)
                    .map_err(|e| Error::Invalid(format!("client identity: {e}")))?;
                Some(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)))
            }
            None => None,
        };
        let identity = Arc::new(ClientIdentity::new(key));
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.protocol_versions())
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(check))
            .with_client_cert_resolver(identity.clone());
        config.resumption = rustls::client::Resumption::disabled();
        if let Some(log) = self.key_log() {
            config.key_log = log;
        }
        config.max_fragment_size = Some(self.fragment_size(dt_payload)?);
        let name = match &self.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|e| Error::Invalid(format!("server name {name:?}: {e}")))?,
            // An address is never sent as SNI, and the verifier skips the name check.
            None => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        config.enable_sni = self.server_name.is_some();
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok((conn, identity))
    }

    /// The server side: requires and verifies a client certificate when a CA file or a pin is
    /// set (and insecure is not).
    pub(super) fn server(&self, dt_payload: usize) -> Result<rustls::ServerConnection> {
        let Some((certs, key)) = self.identity()? else {
            return Err(Error::Invalid(
                "the server role needs a certificate and key: set the identity files".into(),
            ));
        };
        let provider = Arc::new(crypto_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocol_versions())
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = match ClientCheck::new(self, &provider)? {
            Some(check) => builder.with_client_cert_verifier(Arc::new(check)),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| Error::Invalid(format!("server identity: {e}")))?;
        config.max_fragment_size = Some(self.fragment_size(dt_payload)?);
        config.send_tls13_tickets = 0;
        if let Some(log) = self.key_log() {
            config.key_log = log;
        }
        rustls::ServerConnection::new(Arc::new(config)).map_err(|e| Error::Tls(e.to_string()))
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
pub(super) fn crypto_provider() -> CryptoProvider {
    CryptoProvider {
        kx_groups: vec![provider::kx_group::X25519, provider::kx_group::SECP256R1],
        ..provider::default_provider()
    }
}

/// rustls' record size limit (plaintext plus the record header) so a sealed handshake record
/// fits a DT. Application data is cut by [`TlsSession::send`](super::TlsSession::send) to fit
/// the negotiated suite.
fn fragment_size(dt_payload: usize) -> Result<usize> {
    let size = dt_payload
        .saturating_sub(TLS13_SEAL_OVERHEAD)
        .min(MAX_RECORD_PLAINTEXT + RECORD_HEADER);
    if size < 32 {
        return Err(Error::Invalid(format!(
            "a DT payload of {dt_payload} bytes is too small for TLS records"
        )));
    }
    Ok(size)
}
