//! The TLS-over-DT receive path: TLS records cut into TSDUs at any byte, each TSDU segmented
//! into DTs, the TPKT stream read in chunks by the connection's [`Receiver`], and every TSDU
//! it delivers absorbed by [`TlsReceiver`] into rustls, as `TlsSession` does on a socket.
//!
//! Each input runs a real handshake in memory against a rustls server (fixed test identity in
//! fuzz/tls/), the server's flight cut the same way, then one of three streams:
//! - valid: the server's records of some messages (and maybe its close_notify) cut anywhere:
//!   the plaintext must be exactly the messages, in order, and the close must be seen;
//! - corrupted: the same with one byte changed: whatever comes out must be a prefix of the
//!   true plaintext (TLS lets nothing altered through), and a failure must be a TLS error;
//! - raw: the fuzzer's bytes as the TSDUs after the handshake: no panic, no hang, plaintext
//!   never longer than the bytes fed, a failure is a TLS error.
//!
//! Memory stays bounded: the plaintext held never exceeds what was fed, and the receiver's
//! own limits hold the TSDUs.
//!
//! Input layout:
//! ```text
//! byte 0    bit 0: TLS 1.2 (else 1.3); bit 1: close_notify at the end; bits 2-3: mode
//!           (0, 1: valid; 2: corrupted; 3: raw)
//! byte 1    TPDU size 128 << (b % 5)
//! byte 2    0: records fit one DT; else records of up to b * 64 bytes (spanning DTs)
//! byte 3    number of messages 1..8 (b % 8 + 1)
//! byte 4-5  corrupted mode: the position of the changed byte; byte 6 the xor mask (0 -> 1)
//! then      8 two-byte message sizes (v % 6000 + 1), then the cut lengths: each byte b cuts
//!           the next TSDU b + 1 bytes long and the next read chunk 4 * b + 1 bytes (cycled);
//!           in raw mode the same bytes are also the stream
//! ```
#![no_main]

use std::io::Write;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use isotcp::net::tls::{Absorbed, TlsReceiver};
use isotcp::proto::segment::{self, Limits};
use isotcp::proto::transfer::{Progress, Receiver};
use isotcp::Error;
use libfuzzer_sys::fuzz_target;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

const LIMITS: Limits = Limits {
    max_message: 64 << 10,
    max_fragments: 8192,
};

/// The fuzz peer's certificate is not what is under test: accept it.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn identity() -> &'static (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    static ID: OnceLock<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> = OnceLock::new();
    ID.get_or_init(|| {
        let certs = CertificateDer::pem_slice_iter(include_bytes!("../tls/cert.pem"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../tls/key.pem")).unwrap();
        (certs, key)
    })
}

fn versions(tls12: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    if tls12 {
        &TLS12
    } else {
        &TLS13
    }
}

type Configs = (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>);

/// Both configurations for a version and a record size, made once (making them costs more
/// than a handshake).
fn configs(tls12: bool, fragment: usize) -> Configs {
    static MADE: OnceLock<Mutex<HashMap<(bool, usize), Configs>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let mut made = made.lock().unwrap();
    made.entry((tls12, fragment))
        .or_insert_with(|| {
            let provider = Arc::new(provider::default_provider());
            let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions(tls12))
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer))
                .with_no_client_auth();
            client.resumption = rustls::client::Resumption::disabled();
            let (certs, key) = identity();
            let mut server = rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(versions(tls12))
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs.clone(), key.clone_key())
                .unwrap();
            server.max_fragment_size = Some(fragment);
            (Arc::new(client), Arc::new(server))
        })
        .clone()
}

fn peers(tls12: bool, fragment: usize) -> (rustls::Connection, rustls::ServerConnection) {
    let (client, server) = configs(tls12, fragment);
    let name = ServerName::try_from("plc.example").unwrap();
    let client = rustls::ClientConnection::new(client, name).unwrap();
    let server = rustls::ServerConnection::new(server).unwrap();
    (client.into(), server)
}

/// The client's receive path: TSDUs as DTs through the COTP receiver into the TLS receiver.
struct Path<'a> {
    tpdu: u32,
    cuts: &'a [u8],
    next_cut: usize,
    rx: Receiver,
    tls: TlsReceiver,
    tsdu: Vec<u8>,
    plain: Vec<u8>,
    fed: usize,
    closed: bool,
}

impl Path<'_> {
    fn cut(&mut self) -> usize {
        if self.cuts.is_empty() {
            return usize::MAX;
        }
        let b = self.cuts[self.next_cut % self.cuts.len()] as usize;
        self.next_cut += 1;
        b
    }

    /// Sends `stream` as TSDUs cut as the input says; the client absorbs each.
    fn deliver(&mut self, client: &mut rustls::Connection, stream: &[u8]) -> Result<(), Error> {
        let mut wire = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let n = self.cut().saturating_add(1).min(rest.len());
            segment::encode_dts_tail(&rest[..n], self.tpdu, 0, &mut wire);
            rest = &rest[n..];
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let chunk = self.cut().saturating_mul(4).saturating_add(1);
            let spare = self.rx.spare();
            assert!(!spare.is_empty());
            let n = spare.len().min(chunk).min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            self.rx.commit(n);
            rest = &rest[n..];
            loop {
                match self.rx.advance(None, None).expect("our own DTs are well formed") {
                    Progress::NeedBytes => break,
                    Progress::Ready => {
                        let n = self.rx.take_message(&mut self.tsdu, None).expect("room");
                        self.fed += n;
                        if self.tls.absorb(client, &self.tsdu[..n], &mut self.plain)?
                            == Absorbed::PeerClosed
                        {
                            self.closed = true;
                        }
                        assert!(self.plain.len() <= self.fed, "more plaintext than bytes");
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        Ok(())
    }
}

/// Runs the handshake with the server's flight delivered through `path`.
fn handshake(path: &mut Path<'_>, client: &mut rustls::Connection, server: &mut rustls::ServerConnection) {
    for _ in 0..16 {
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        let mut input = &out[..];
        while !input.is_empty() {
            server.read_tls(&mut input).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut flight = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut flight).unwrap();
        }
        path.deliver(client, &flight).expect("a valid flight, cut anywhere");
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 23 {
        return;
    }
    let tls12 = data[0] & 1 != 0;
    let close = data[0] & 2 != 0;
    let mode = (data[0] >> 2) & 3;
    let tpdu = 128u32 << (data[1] % 5);
    let dt_payload = tpdu as usize - 3;
    let fragment = match data[2] {
        0 => dt_payload - 17,
        b => (b as usize * 64).clamp(32, 16 * 1024) + 5,
    };
    let count = (data[3] % 8) as usize + 1;
    let corrupt_at = u16::from_be_bytes([data[4], data[5]]) as usize;
    let mask = data[6].max(1);
    let sizes: Vec<usize> = data[7..23]
        .chunks(2)
        .take(count)
        .map(|p| u16::from_be_bytes([p[0], p[1]]) as usize % 6000 + 1)
        .collect();
    let cuts = &data[23..];

    let (mut client, mut server) = peers(tls12, fragment);
    let mut path = Path {
        tpdu,
        cuts,
        next_cut: 0,
        rx: Receiver::new(LIMITS),
        tls: TlsReceiver::new(),
        tsdu: vec![0; LIMITS.max_message],
        plain: Vec::new(),
        fed: 0,
        closed: false,
    };
    handshake(&mut path, &mut client, &mut server);
    path.plain.clear();

    if mode == 3 {
        let result = path.deliver(&mut client, cuts);
        assert!(path.plain.len() <= path.fed);
        if let Err(e) = result {
            assert!(matches!(e, Error::Tls(_)), "{e}");
        }
        return;
    }

    let mut expected = Vec::new();
    let mut stream = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let m: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
        server.writer().write_all(&m).unwrap();
        expected.extend_from_slice(&m);
    }
    if close {
        server.send_close_notify();
    }
    while server.wants_write() {
        server.write_tls(&mut stream).unwrap();
    }
    if mode == 2 {
        let at = corrupt_at % stream.len();
        stream[at] ^= mask;
        let result = path.deliver(&mut client, &stream);
        assert!(
            expected.starts_with(&path.plain),
            "altered bytes came out as plaintext"
        );
        if let Err(e) = result {
            assert!(matches!(e, Error::Tls(_)), "{e}");
        }
        return;
    }
    path.deliver(&mut client, &stream)
        .expect("a valid stream, cut anywhere");
    assert_eq!(path.plain, expected, "the plaintext, whatever the cuts");
    assert_eq!(path.closed, close, "the close_notify is seen exactly when sent");
    assert!(!path.tls.mid_record());
});
