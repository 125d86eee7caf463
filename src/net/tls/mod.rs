//! TLS inside COTP (secure S7 communication): TPKT and COTP stay in clear, TLS records travel as
//! the payload of DTs (docs/PROTOCOL.md, "TLS inside COTP").
//!
//! A [`TlsSession`] runs over an established [`Connection`]: every [`TlsSession::send`] encrypts
//! one message and sends the resulting records as one TSDU (the connection segments it into DTs,
//! EOT on the last); [`TlsSession::recv`] returns the plaintext of one TSDU, reading further
//! TSDUs while a record spans them. By default records are sized so that one record fits one DT
//! of the negotiated TPDU size, and a message's records line up with its DTs;
//! [`TlsConfig::set_max_record_size`] allows larger records, which then span DTs.
//!
//! Verification: the peer's chain against a CA file, or the SHA-256 of its certificate (DER)
//! against a pin; the host name only when one is set (PLC certificates rarely name their
//! address). A server with a CA file or a pin requires a client certificate (mutual TLS). Key
//! exchange X25519 and secp256r1 only: PLCs reset a connection offered a post-quantum key share.
//!
//! Locks: `tx` is held for a whole send (records must leave in the order they were sealed),
//! `rx` for a whole receive, and `tls` only around calls into rustls; the order is rx, tx, tls.

mod config;
mod receive;
mod verify;
mod words;

use std::time::Duration;

use parking_lot::Mutex;
use rustls::crypto::ring as provider;
use rustls::{CipherSuite, ProtocolVersion};

pub use config::{TlsConfig, MAX_RECORD_PLAINTEXT};
pub use receive::{Absorbed, TlsReceiver};

use super::connection::Connection;
use super::deadline::Deadline;
use crate::error::{Error, Limit, PeerClose, Result};

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
/// How long closing waits to send our close_notify: a last word must never hold up a close.
const CLOSE_NOTIFY_BOUND: Duration = Duration::from_millis(100);
/// How long a client that was asked for a certificate waits after its side of a TLS 1.3
/// handshake for the server's verdict, so a refusal fails the handshake rather than the first
/// receive.
const VERDICT_WAIT: Duration = Duration::from_millis(150);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = provider::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite");
    suite.common.hash_provider.hash(data).as_ref().to_vec()
}

/// Whether the server asked us for a client certificate, and whether we have one.
#[derive(Clone, Copy, Default)]
struct Asked {
    for_identity: bool,
    have_one: bool,
}

struct Rx {
    /// One TSDU of TLS bytes, as the connection delivered it (grows to the largest seen).
    tsdu: Vec<u8>,
    /// Plaintext decrypted and not yet returned.
    plain: Vec<u8>,
    receiver: TlsReceiver,
}

impl Rx {
    /// A message is ready: plaintext, and no record left open at a TSDU's end.
    fn ready(&self) -> bool {
        !self.plain.is_empty() && !self.receiver.mid_record()
    }
}

/// TLS over one [`Connection`], after its COTP connect (client) or accept (server).
pub struct TlsSession {
    tls: Mutex<rustls::Connection>,
    tx: Mutex<Vec<u8>>,
    rx: Mutex<Rx>,
    /// Plaintext bytes per application-data record.
    plain_per_record: usize,
    /// What sealing adds to each record, header included.
    record_overhead: usize,
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
        let (tls, identity) = cfg.client(payload)?;
        let asked = move || Asked {
            for_identity: identity.was_asked(),
            have_one: identity.is_set(),
        };
        TlsSession::handshake(conn, cfg, tls.into(), payload, timeout, &asked)
    }

    /// Runs the handshake as the server within `timeout`. A failure closes the connection.
    /// With a CA file or a pin set, the client must present a certificate that verifies.
    pub fn server(conn: &Connection, cfg: &TlsConfig, timeout: Duration) -> Result<TlsSession> {
        let payload = dt_payload(conn)?;
        let tls = cfg.server(payload)?.into();
        TlsSession::handshake(conn, cfg, tls, payload, timeout, &Asked::default)
    }

    fn handshake(
        conn: &Connection,
        cfg: &TlsConfig,
        tls: rustls::Connection,
        payload: usize,
        timeout: Duration,
        asked: &dyn Fn() -> Asked,
    ) -> Result<TlsSession> {
        let session = TlsSession {
            tls: Mutex::new(tls),
            tx: Mutex::new(Vec::new()),
            rx: Mutex::new(Rx {
                tsdu: vec![0; 4096],
                plain: Vec::new(),
                receiver: TlsReceiver::new(),
            }),
            plain_per_record: 0,
            record_overhead: 0,
        };
        let deadline = Deadline::after(timeout);
        if let Err(e) = session.run_handshake(conn, &deadline, asked) {
            conn.abandon(&e);
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
        let plain_per_record = match cfg.max_record_size() {
            0 => payload - RECORD_HEADER - overhead,
            set => set,
        };
        Ok(TlsSession {
            plain_per_record,
            record_overhead: RECORD_HEADER + overhead,
            ..session
        })
    }

    fn run_handshake(
        &self,
        conn: &Connection,
        deadline: &Deadline,
        asked: &dyn Fn() -> Asked,
    ) -> Result<()> {
        let mut rx = self.rx.lock();
        loop {
            self.flush_tls(conn, deadline)?;
            let Asked {
                for_identity,
                have_one,
            } = asked();
            if for_identity && !have_one {
                rx.receiver.set_asked_for_identity();
            }
            let (handshaking, wants_read) = {
                let tls = self.tls.lock();
                (tls.is_handshaking(), tls.wants_read())
            };
            if !handshaking {
                break;
            }
            if wants_read {
                self.read_tsdu(conn, &mut rx, deadline, "TLS handshake")?;
            }
        }
        let tls13 = self.tls.lock().protocol_version() == Some(ProtocolVersion::TLSv1_3);
        if tls13 && asked().for_identity {
            // TLS 1.3: the server judges our certificate (or its absence) after our side is
            // done. A refusal comes at once; anything else (data, nothing) stays for later.
            let wait = Deadline::after(VERDICT_WAIT.min(deadline.remaining()));
            match self.read_tsdu(conn, &mut rx, &wait, "TLS handshake") {
                Ok(_) | Err(Error::Timeout(_) | Error::WouldBlock(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends what rustls has to send (a handshake flight) as one TSDU within the handshake's
    /// deadline: the caller's timeout covers the whole handshake, its sends included.
    fn flush_tls(&self, conn: &Connection, deadline: &Deadline) -> Result<()> {
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
        conn.send_by(&out, deadline)
    }

    /// Receives one TSDU and feeds it to rustls; decrypted plaintext goes to `rx.plain`. A TLS
    /// failure sends rustls' alert (if any) and closes the connection.
    fn read_tsdu(
        &self,
        conn: &Connection,
        rx: &mut Rx,
        deadline: &Deadline,
        what: &'static str,
    ) -> Result<Absorbed> {
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
        let Rx {
            tsdu,
            plain,
            receiver,
        } = rx;
        let mut absorbed = receiver.absorb(&mut self.tls.lock(), &tsdu[..n], plain);
        if absorbed.is_ok() && receiver.mid_record() {
            // Plaintext waits for its record to end; a peer whose TSDUs never end with a
            // record would make it grow without end.
            let max = conn.max_message().unwrap_or(0);
            if plain.len() > max {
                absorbed = Err(Error::Tls(format!(
                    "{} bytes of plaintext and the peer's TSDUs still end inside a record: above the maximum message of {max} bytes",
                    plain.len()
                )));
            }
        }
        match absorbed {
            Ok(a) => Ok(a),
            Err(e) => {
                // rustls may have queued an alert for the peer: send it (briefly), then close.
                self.close_with(conn, |_| {});
                conn.abandon(&e);
                Err(e)
            }
        }
    }

    /// Bytes the records of a `len`-byte message take.
    fn sealed_len(&self, len: usize) -> usize {
        len + len.div_ceil(self.plain_per_record) * self.record_overhead
    }

    /// Encrypts `message` into `out` (cleared first), one record per `plain_per_record` bytes,
    /// after any records rustls had waiting.
    fn seal(&self, out: &mut Vec<u8>, message: &[u8]) -> Result<()> {
        out.clear();
        let mut tls = self.tls.lock();
        // One write per record; sealed records move out at once, so rustls' output buffer
        // limit never refuses a large message.
        for chunk in message.chunks(self.plain_per_record) {
            std::io::Write::write_all(&mut tls.writer(), chunk)
                .map_err(|e| Error::Tls(e.to_string()))?;
            while tls.wants_write() {
                tls.write_tls(out).map_err(|e| Error::Tls(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The error for sealed records that did not go out: their sequence numbers are spent, so
    /// the TLS stream cannot go on; the connection is closed.
    fn unsent(conn: &Connection, e: Error) -> Error {
        const WHY: &str =
            "the TLS records were sealed and cannot be sent later, so the connection was closed";
        let e = match e {
            Error::Timeout(what) => Error::Timeout(format!("{what}; {WHY}").into()),
            Error::WouldBlock(what) => Error::WouldBlock(format!("{what}; {WHY}").into()),
            other => return other,
        };
        conn.abandon(&e);
        e
    }

    fn check_size(&self, conn: &Connection, len: usize) -> Result<usize> {
        if len == 0 {
            return Err(Error::Invalid(
                "empty message: there is nothing to send".into(),
            ));
        }
        let sealed = self.sealed_len(len);
        let max = conn.max_message()?;
        if sealed > max {
            return Err(Error::TooLarge(Limit::Send { len: sealed, max }));
        }
        Ok(sealed)
    }

    /// Encrypts one message and sends its records as one TSDU, one record per DT by default,
    /// within the connection's send timeout. The limit on a message applies to its records
    /// (the plaintext plus 22 to 29 bytes per record). A send that fails after sealing closes
    /// the connection: the records' sequence numbers are spent.
    pub fn send(&self, conn: &Connection, message: &[u8]) -> Result<()> {
        self.check_size(conn, message.len())?;
        let mut out = self.tx.lock();
        self.seal(&mut out, message)?;
        conn.send(&out).map_err(|e| Self::unsent(conn, e))
    }

    /// As [`Connection::queue_send`], with TLS: encrypts one message and sends or queues its
    /// records without waiting, in order with every other send. A full queue fails with
    /// WouldBlock before anything is sealed: nothing is lost, try again after a flush.
    pub fn queue_send(&self, conn: &Connection, message: &[u8]) -> Result<()> {
        let sealed = self.check_size(conn, message.len())?;
        let mut out = self.tx.lock();
        conn.queue_would_accept(sealed)?;
        self.seal(&mut out, message)?;
        conn.queue_send(&out).map_err(|e| Self::unsent(conn, e))
    }

    /// Receives the plaintext of one TSDU within `timeout` (reading on while a record spans
    /// TSDUs). A timeout loses nothing; a buffer too small fails with
    /// [`Error::BufferTooSmall`] and leaves the message queued. After the peer's close_notify
    /// (and the plaintext before it): [`Error::Closed`] with [`PeerClose::CloseNotify`].
    pub fn recv(&self, conn: &Connection, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let deadline = Deadline::after(timeout);
        let mut rx = self.rx.lock();
        loop {
            if rx.ready() {
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
            if rx.receiver.peer_closed() {
                return Err(closed_by_peer());
            }
            self.read_tsdu(conn, &mut rx, &deadline, "TLS receive")?;
        }
    }

    /// Waits up to `timeout` for a plaintext message: true when one is ready, so
    /// [`TlsSession::recv`] returns it at once. TSDUs holding only handshake records (a key
    /// update) or part of a record are read and kept, but are not a message.
    pub fn poll(&self, conn: &Connection, timeout: Duration) -> Result<bool> {
        let deadline = Deadline::after(timeout);
        let mut rx = self.rx.lock();
        loop {
            if rx.ready() {
                return Ok(true);
            }
            if rx.receiver.peer_closed() {
                return Err(closed_by_peer());
            }
            match self.read_tsdu(conn, &mut rx, &deadline, "TLS poll") {
                Ok(_) => {}
                Err(Error::Timeout(_) | Error::WouldBlock(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends our close_notify, best effort: within a short bound, and not at all while another
    /// thread is in the middle of a send. Call before disconnecting; the session is over.
    pub fn close(&self, conn: &Connection) {
        self.close_with(conn, |tls| tls.send_close_notify());
    }

    /// Sends what rustls has queued after `f`, best effort, all within one short bound.
    fn close_with(&self, conn: &Connection, f: impl FnOnce(&mut rustls::Connection)) {
        let until = std::time::Instant::now() + CLOSE_NOTIFY_BOUND;
        let Some(mut out) = self.tx.try_lock_until(until) else {
            return;
        };
        out.clear();
        {
            let Some(mut tls) = self.tls.try_lock_until(until) else {
                return;
            };
            f(&mut tls);
            while tls.wants_write() {
                if tls.write_tls(&mut *out).is_err() {
                    return;
                }
            }
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if !out.is_empty() && !left.is_zero() {
            conn.send_best_effort(&out, left);
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
            .map_err(|e| Error::Tls(words::describe(&e)))
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

    /// Plaintext bytes per application-data record this session sends.
    pub fn record_plaintext(&self) -> usize {
        self.plain_per_record
    }
}

fn closed_by_peer() -> Error {
    Error::Closed {
        by: PeerClose::CloseNotify,
        message: "the peer ended the TLS session (close_notify)".into(),
    }
}

fn dt_payload(conn: &Connection) -> Result<usize> {
    Ok(conn.tpdu_size()? as usize - DT_HEADER)
}
