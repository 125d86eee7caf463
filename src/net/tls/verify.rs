//! How a peer's certificate is judged: by a pin, a CA chain, or (labs only) not at all. The
//! client judges the server ([`PeerCheck`]); a server with a CA file or a pin requires and
//! judges a client certificate ([`ClientCheck`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{SignatureScheme, SignatureScheme as Scheme};

use super::config::TlsConfig;
use super::{hex, sha256};
use crate::error::{Error, Result};

/// The CA certificates of a CA file.
fn roots(path: &std::path::Path) -> Result<Arc<RootCertStore>> {
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
    Ok(Arc::new(roots))
}

fn check_pin(
    pin: &[u8; 32],
    end_entity: &CertificateDer<'_>,
) -> std::result::Result<(), rustls::Error> {
    let seen = sha256(end_entity.as_ref());
    if seen == pin[..] {
        Ok(())
    } else {
        // A certificate error (not a general one) so the peer is told bad_certificate.
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(PinMismatch {
                expected: hex(pin),
                seen: hex(&seen),
            })),
        )))
    }
}

/// The peer's certificate is not the pinned one: both SHA-256 digests, in hex.
#[derive(Debug)]
struct PinMismatch {
    expected: String,
    seen: String,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate pin mismatch: expected SHA-256 {}, the peer's certificate has {}",
            self.expected, self.seen
        )
    }
}

impl std::error::Error for PinMismatch {}

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
pub(super) struct PeerCheck {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerCheck {
    pub(super) fn new(cfg: &TlsConfig, provider: &Arc<CryptoProvider>) -> Result<PeerCheck> {
        let check = if cfg.insecure {
            Check::Insecure
        } else if let Some(pin) = cfg.pin {
            Check::Pin(pin)
        } else if let Some(path) = &cfg.ca_file {
            let verifier =
                WebPkiServerVerifier::builder_with_provider(roots(path)?, provider.clone())
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
            Check::Pin(pin) => check_pin(pin, end_entity).map(|()| ServerCertVerified::assertion()),
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

#[derive(Debug)]
enum ClientRule {
    Pin([u8; 32]),
    Chain(Arc<dyn ClientCertVerifier>),
}

/// How a server judges a client's certificate, which it then requires: by the pin or the CA
/// file of its configuration.
#[derive(Debug)]
pub(super) struct ClientCheck {
    rule: ClientRule,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCheck {
    /// None when the configuration asks for no client certificate (no CA file or pin, or
    /// insecure).
    pub(super) fn new(
        cfg: &TlsConfig,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Option<ClientCheck>> {
        let rule = if cfg.insecure {
            return Ok(None);
        } else if let Some(pin) = cfg.pin {
            ClientRule::Pin(pin)
        } else if let Some(path) = &cfg.ca_file {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots(path)?, provider.clone())
                    .build()
                    .map_err(|e| Error::Invalid(format!("CA file {}: {e}", path.display())))?;
            ClientRule::Chain(verifier)
        } else {
            return Ok(None);
        };
        Ok(Some(ClientCheck {
            rule,
            algorithms: provider.signature_verification_algorithms,
        }))
    }
}

impl ClientCertVerifier for ClientCheck {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.rule {
            ClientRule::Pin(_) => &[],
            ClientRule::Chain(v) => v.root_hint_subjects(),
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        match &self.rule {
            ClientRule::Pin(pin) => {
                check_pin(pin, end_entity).map(|()| ClientCertVerified::assertion())
            }
            ClientRule::Chain(v) => v.verify_client_cert(end_entity, intermediates, now),
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

    fn supported_verify_schemes(&self) -> Vec<Scheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client's certificate, if it has one: also remembers whether the server asked for it, so
/// the client knows to wait for the server's verdict and a refusal can say why.
#[derive(Debug, Default)]
pub(super) struct ClientIdentity {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    asked: AtomicBool,
}

impl ClientIdentity {
    pub(super) fn new(key: Option<Arc<rustls::sign::CertifiedKey>>) -> ClientIdentity {
        ClientIdentity {
            key,
            asked: AtomicBool::new(false),
        }
    }

    /// True once the server asked for a client certificate.
    pub(super) fn was_asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    /// True when there is a certificate to present.
    pub(super) fn is_set(&self) -> bool {
        self.key.is_some()
    }
}

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}
