//! The receive half of TLS inside COTP, without I/O: the bytes of one TSDU at a time go into
//! rustls, and out come plaintext, the peer's close, or an error in words. [`TlsSession`]
//! feeds it from the connection; the fuzz target feeds it directly.
//!
//! It also follows the record framing itself (5-byte headers, lengths) across TSDUs, so it
//! knows when a record is cut at a TSDU's end (reading must go on) and can name bytes that are
//! not TLS at all before rustls sees them.
//!
//! [`TlsSession`]: super::TlsSession

use std::io::{self, BufRead};

use super::words::{tls_failure, Stage};
use super::RECORD_HEADER;
use crate::error::Error;

/// The largest record body any TLS version allows (TLS 1.2: 2^14 + 2048).
const MAX_RECORD_BODY: usize = 16 * 1024 + 2048;

/// Where the byte stream stands in the record framing.
#[derive(Clone, Debug, Default)]
struct Framing {
    header: [u8; RECORD_HEADER],
    /// Bytes of `header` filled (0..5).
    have: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
    /// Stream offset, for error messages.
    offset: u64,
}

impl Framing {
    /// Follows `bytes` through the framing; an error names the first header that is not TLS.
    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                self.offset += n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (RECORD_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < RECORD_HEADER {
                // A header cut short can already be judged by what it has.
                self.check(&self.header[..self.have], bytes)?;
                return Ok(());
            }
            self.check(&self.header, bytes)?;
            let len = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
            self.have = 0;
            self.body_left = len;
            self.offset += RECORD_HEADER as u64;
        }
        Ok(())
    }

    fn check(&self, header: &[u8], after: &[u8]) -> Result<(), Error> {
        let why = match header {
            [t, ..] if !(20..=24).contains(t) => {
                format!("content type {t} is not one of 20 to 24")
            }
            [_, v, ..] if *v != 3 => format!("protocol version {v}.x is not 3.x"),
            [_, _, _, hi, lo] if u16::from_be_bytes([*hi, *lo]) as usize > MAX_RECORD_BODY => {
                format!(
                    "a length of {} bytes is above the TLS maximum of {MAX_RECORD_BODY}",
                    u16::from_be_bytes([*hi, *lo])
                )
            }
            _ => return Ok(()),
        };
        let mut shown: Vec<u8> = header.to_vec();
        shown.extend(after.iter().take(16 - header.len().min(16)));
        Err(Error::Tls(format!(
            "not a TLS record: at byte {} of the stream the peer sent {} ({why})",
            self.offset,
            printable(&shown)
        )))
    }

    /// How many of `bytes` (which continue the stream) reach to the end of the current
    /// record, or all of them when the record goes on past them.
    fn record_cut(&self, bytes: &[u8]) -> usize {
        if self.body_left > 0 {
            return self.body_left.min(bytes.len());
        }
        let need = RECORD_HEADER - self.have;
        if bytes.len() < need {
            return bytes.len();
        }
        let mut header = self.header;
        header[self.have..].copy_from_slice(&bytes[..need]);
        let body = u16::from_be_bytes([header[3], header[4]]) as usize;
        (need + body).min(bytes.len())
    }

    fn mid_record(&self) -> bool {
        self.have > 0 || self.body_left > 0
    }
}

/// Bytes in hex, with their ASCII when they are text.
fn printable(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let text = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if text {
        format!("{} (\"{}\")", hex.join(" "), String::from_utf8_lossy(bytes))
    } else {
        hex.join(" ")
    }
}

/// What one TSDU brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absorbed {
    /// Records (maybe none whole yet); any plaintext was appended.
    Records,
    /// The peer's close_notify: plaintext before it was appended, nothing after it is read.
    PeerClosed,
}

/// Feeds TSDUs to a rustls connection and collects the plaintext. One per session.
#[derive(Debug, Default)]
pub struct TlsReceiver {
    framing: Framing,
    peer_closed: bool,
    /// The server asked us for a client certificate we do not have (words for what follows).
    asked_for_identity: bool,
}

impl TlsReceiver {
    /// A receiver at the start of a TLS stream.
    pub fn new() -> TlsReceiver {
        TlsReceiver::default()
    }

    /// Marks that the server asked for a client certificate we do not have, so errors that
    /// follow say so.
    pub(super) fn set_asked_for_identity(&mut self) {
        self.asked_for_identity = true;
    }

    /// Feeds one TSDU's bytes to `tls` and appends the plaintext they complete to `plain`
    /// (which grows by at most `tsdu.len()`). After the peer's close_notify, further bytes are
    /// ignored. An error means the TLS session is broken: rustls may have queued an alert to
    /// send before closing.
    pub fn absorb(
        &mut self,
        tls: &mut rustls::Connection,
        tsdu: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<Absorbed, Error> {
        if self.peer_closed {
            return Ok(Absorbed::PeerClosed);
        }
        let stage = if tls.is_handshaking() {
            Stage::Handshake
        } else {
            Stage::Data
        };
        let fail = |e: &rustls::Error| tls_failure(e, stage, self.asked_for_identity);
        // One record at a time: rustls then never holds part of a record between reads, and
        // its input buffer keeps its size instead of growing and shrinking with each TSDU.
        let mut rest = tsdu;
        while !rest.is_empty() {
            let n = self.framing.record_cut(rest);
            let (record, after) = rest.split_at(n);
            self.framing.follow(record)?;
            rest = after;
            let mut input = record;
            while !input.is_empty() {
                match tls.read_tls(&mut input) {
                    Ok(0) => {
                        // rustls takes no more until its buffers drain: they were drained
                        // below, so this is a bug rather than the peer's doing; say so rather
                        // than spin.
                        return Err(Error::Tls(
                            "the TLS layer took no more bytes of a TSDU".into(),
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Error::Tls(format!("reading a record: {e}"))),
                }
                tls.process_new_packets().map_err(|e| fail(&e))?;
                if drain(tls, plain)? {
                    self.peer_closed = true;
                    return Ok(Absorbed::PeerClosed);
                }
            }
        }
        Ok(Absorbed::Records)
    }

    /// True when the bytes so far end inside a record: the next TSDU continues it.
    pub fn mid_record(&self) -> bool {
        self.framing.mid_record()
    }

    /// True once the peer's close_notify arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}

/// Moves rustls' plaintext into `plain`; true when the peer's close_notify follows it.
fn drain(tls: &mut rustls::Connection, plain: &mut Vec<u8>) -> Result<bool, Error> {
    let mut reader = tls.reader();
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => return Ok(true),
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(Error::Tls(format!("reading plaintext: {e}"))),
        };
        let n = chunk.len();
        plain.extend_from_slice(chunk);
        reader.consume(n);
    }
}
