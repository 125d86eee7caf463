//! The receiving side of a connection, sans-IO: bytes from the peer in, whole messages out.
//!
//! [`Receiver`] owns the TPKT framer, the reassembly of segmented messages (into its own buffer
//! or straight into the caller's, see [`Destination`]), the limits, and every rule of class 0
//! for what may arrive once the connection is established (docs/PROTOCOL.md §5.2 to §5.5). The
//! socket layer only reads into [`Receiver::spare`], records what it read with
//! [`Receiver::commit`], and asks [`Receiver::advance`] what the bytes mean; a test or a fuzzer
//! does the same with [`Receiver::push`].
//!
//! ```
//! use isotcp::proto::segment::Limits;
//! use isotcp::proto::transfer::{Progress, Receiver};
//!
//! let mut rx = Receiver::new(Limits { max_message: 1024, max_fragments: 16 });
//! // Two DTs: "ab" without EOT, then "c" with EOT (docs/PROTOCOL.md §9.2).
//! rx.push(&[3, 0, 0, 9, 2, 0xF0, 0x00, b'a', b'b', 3, 0, 0, 8, 2, 0xF0, 0x80, b'c']);
//! assert_eq!(rx.advance(None, None), Ok(Progress::Ready));
//! let mut buf = [0u8; 16];
//! assert_eq!(rx.take_message(&mut buf, None), Ok(3));
//! assert_eq!(&buf[..3], b"abc");
//! assert_eq!(rx.advance(None, None), Ok(Progress::NeedBytes));
//! ```

use std::fmt;

use super::cotp::{self, Tpdu};
use super::handshake::{self, ConnectAnswer, ConnectRequest};
use super::segment::{Assembled, Destination, Limits, Reassembler};
use super::tpkt::{self, Framer};
use super::ProtoError;

/// Room offered to each socket read beyond what the packet in progress needs.
pub const READ_CHUNK: usize = 4096;
/// The same while a segmented message is arriving: its DTs follow each other, and larger reads
/// mean fewer system calls (a 64 KiB message in about 4 reads instead of 16). Only connections
/// that receive segmented messages grow their buffer to this.
pub const READ_CHUNK_SEGMENTED: usize = 16 << 10;

/// Called with each packet the receiver is done with, TPKT header included, exactly as it
/// arrived (frame tracing).
pub type Tap<'a> = Option<&'a mut dyn FnMut(&[u8])>;

/// What the buffered bytes amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// A whole message is held: [`Receiver::take_message`] copies it out.
    Ready,
    /// A whole message of this many bytes was assembled in the [`Destination`].
    Delivered(usize),
    /// No whole message yet: read more bytes into [`Receiver::spare`].
    NeedBytes,
    /// The peer ended the connection with DR or ER (the packet is consumed). Messages that
    /// arrived before it have been delivered; nothing more will come.
    PeerEnded(PeerEnd),
}

/// How the peer ended an established connection (docs/PROTOCOL.md §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEnd {
    /// A DR with this reason code.
    Disconnect {
        /// The DR's reason (docs/PROTOCOL.md §3.9).
        reason: u8,
    },
    /// An ER with this reject cause.
    Error {
        /// The ER's cause (docs/PROTOCOL.md §3.9).
        cause: u8,
    },
}

impl fmt::Display for PeerEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeerEnd::Disconnect { reason } => write!(
                f,
                "peer ended the connection with DR, reason 0x{reason:02X} ({})",
                cotp::dr_reason_text(reason)
            ),
            PeerEnd::Error { cause } => write!(
                f,
                "peer ended the connection with ER, cause {cause} ({})",
                cotp::er_cause_text(cause)
            ),
        }
    }
}

/// The caller's buffer cannot hold the ready message, which stays held for a larger one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// The message's length.
    pub needed: usize,
}

/// The receive side of one connection. See the module documentation.
#[derive(Debug)]
pub struct Receiver {
    framer: Framer,
    reasm: Reassembler,
    limits: Limits,
}

impl Receiver {
    /// A receiver for data transfer within `limits`.
    pub fn new(limits: Limits) -> Self {
        Receiver {
            framer: Framer::new(limits.max_packet(), READ_CHUNK),
            reasm: Reassembler::new(limits),
            limits,
        }
    }

    /// Continues from a framer that read the handshake (a listener's, holding whatever the
    /// client sent after its CR): those bytes are the first ones received.
    pub fn after_handshake(mut framer: Framer, limits: Limits) -> Self {
        framer.set_max_packet(limits.max_packet());
        framer.set_read_chunk(READ_CHUNK);
        Receiver {
            framer,
            reasm: Reassembler::new(limits),
            limits,
        }
    }

    /// Forgets everything buffered and takes new limits, for a new connection. Until the CC
    /// has been read with [`Receiver::connect_answer`], packets up to the TPKT maximum are
    /// accepted: a CC may carry long TSAPs whatever the message limit.
    pub fn start_connect(&mut self, limits: Limits) {
        self.framer.clear();
        self.framer.set_max_packet(tpkt::MAX_PACKET);
        self.framer.set_read_chunk(READ_CHUNK);
        self.reasm.clear();
        self.reasm.set_limits(limits);
        self.limits = limits;
    }

    /// The peer's answer to `req`, once a whole packet is buffered (consumed; what follows it
    /// stays buffered for data transfer, docs/PROTOCOL.md §4.7). None: read more.
    pub fn connect_answer(
        &mut self,
        req: &ConnectRequest,
        mut tap: Tap<'_>,
    ) -> Result<Option<ConnectAnswer>, ProtoError> {
        let Some(tpdu) = self.framer.peek_packet()? else {
            return Ok(None);
        };
        let packet = tpdu.len();
        let answer = handshake::check_answer(req, tpdu)?;
        self.consume(&mut tap, packet);
        self.framer.set_max_packet(self.limits.max_packet());
        Ok(Some(answer))
    }

    /// Room to read into; then call [`Receiver::commit`] with the number of bytes read. Never
    /// empty after [`Receiver::advance`] returned [`Progress::NeedBytes`].
    #[inline]
    pub fn spare(&mut self) -> &mut [u8] {
        self.framer.spare()
    }

    /// Records `n` bytes written into the start of [`Receiver::spare`].
    #[inline]
    pub fn commit(&mut self, n: usize) {
        self.framer.commit(n);
    }

    /// Copies in as much of `bytes` as the bounded buffer takes now and returns how many that
    /// was; less than all means: take the messages out, then push the rest.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.framer.push(bytes)
    }

    /// Processes buffered packets until a whole message is ready, more bytes are needed, or the
    /// peer ended the connection.
    ///
    /// A message that arrives as one DT with EOT stays in the framer until it is taken (no
    /// copy). Fragments are assembled in `dest` when one is offered (see
    /// [`Reassembler::push_into`]), else in the receiver's own buffer. Errors (a malformed
    /// packet, a CR or CC, a message above the limits) mean the stream can no longer be
    /// trusted: the connection must be closed.
    #[inline]
    pub fn advance(
        &mut self,
        mut dest: Option<&mut Destination<'_>>,
        mut tap: Tap<'_>,
    ) -> Result<Progress, ProtoError> {
        loop {
            if self.reasm.message().is_some() {
                return Ok(Progress::Ready);
            }
            let Some(tpdu) = self.framer.peek_packet()? else {
                let partial =
                    self.reasm.in_progress() || dest.as_ref().is_some_and(|d| d.in_progress());
                self.framer.set_read_chunk(if partial {
                    READ_CHUNK_SEGMENTED
                } else {
                    READ_CHUNK
                });
                return Ok(Progress::NeedBytes);
            };
            let packet = tpdu.len();
            match cotp::decode(tpdu)? {
                // A whole message in one DT: delivered from the framer by `take_message`.
                Tpdu::Dt { eot: true, payload }
                    if !self.reasm.in_progress()
                        && !payload.is_empty()
                        && !dest.as_ref().is_some_and(|d| d.in_progress()) =>
                {
                    if payload.len() > self.limits.max_message {
                        return Err(ProtoError::MessageTooLarge {
                            len: payload.len(),
                            max: self.limits.max_message,
                        });
                    }
                    return Ok(Progress::Ready);
                }
                Tpdu::Dt { eot, payload } => {
                    let assembled = self.reasm.push_into(eot, payload, dest.as_deref_mut())?;
                    self.consume(&mut tap, packet);
                    if let Assembled::Delivered(n) = assembled {
                        return Ok(Progress::Delivered(n));
                    }
                }
                Tpdu::Dr { reason, .. } => {
                    self.consume(&mut tap, packet);
                    return Ok(Progress::PeerEnded(PeerEnd::Disconnect { reason }));
                }
                Tpdu::Er { cause, .. } => {
                    self.consume(&mut tap, packet);
                    return Ok(Progress::PeerEnded(PeerEnd::Error { cause }));
                }
                Tpdu::Cr(_) => return Err(ProtoError::UnexpectedInTransfer("CR")),
                Tpdu::Cc(_) => return Err(ProtoError::UnexpectedInTransfer("CC")),
            }
        }
    }

    /// Ends a receive call that offered `dest`: fragments it holds move into the receiver, so
    /// the next call continues the same message. Call it on every way out of the call.
    #[inline]
    pub fn release(&mut self, dest: &mut Destination<'_>) {
        self.reasm.adopt(dest);
    }

    /// Copies the ready message (after [`Progress::Ready`]) into `buf` and releases it; the
    /// length copied. Too small: the message stays held. No ready message: `Ok(0)` is never
    /// returned for that; it is a caller error and gives `BufferTooSmall { needed: 0 }`.
    #[inline]
    pub fn take_message(
        &mut self,
        buf: &mut [u8],
        mut tap: Tap<'_>,
    ) -> Result<usize, BufferTooSmall> {
        if let Some(msg) = self.reasm.message() {
            let n = copy_out(msg, buf)?;
            self.reasm.take();
            return Ok(n);
        }
        let Ok(Some(tpdu)) = self.framer.peek_packet() else {
            return Err(BufferTooSmall { needed: 0 });
        };
        let n = copy_out(&tpdu[3..], buf)?;
        let packet = tpdu.len();
        self.consume(&mut tap, packet);
        Ok(n)
    }

    /// What an end of stream now would cut off, in words for the error message (None: it falls
    /// between messages, nothing is lost).
    pub fn cut_off(&self, dest: Option<&Destination<'_>>) -> Option<&'static str> {
        if self.framer.mid_packet() {
            Some("in the middle of a TPKT packet; the partial packet was discarded")
        } else if self.reasm.in_progress() || dest.is_some_and(|d| d.in_progress()) {
            Some("after a DT without EOT; the partial message was discarded")
        } else {
            None
        }
    }

    /// Bytes held by the receiver's buffers (memory accounting, tests of the bounds).
    pub fn capacity(&self) -> usize {
        self.framer.capacity() + self.reasm.capacity()
    }

    /// Drops the packet at the framer's head, whose TPDU (`peek_packet`'s slice) has
    /// `tpdu_len` bytes, showing it to `tap` first.
    #[inline]
    fn consume(&mut self, tap: &mut Tap<'_>, tpdu_len: usize) {
        if let Some(tap) = tap {
            if let Some(raw) = self.framer.peek_raw() {
                tap(raw);
            }
        }
        self.framer.consume_peeked(tpdu_len);
    }
}

#[inline]
fn copy_out(msg: &[u8], buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let Some(dst) = buf.get_mut(..msg.len()) else {
        return Err(BufferTooSmall { needed: msg.len() });
    };
    dst.copy_from_slice(msg);
    Ok(msg.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_message: 65536,
        max_fragments: 4096,
    };

    fn dt(eot: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = super::super::segment::dt_header(payload.len(), eot).to_vec();
        p.extend_from_slice(payload);
        p
    }

    /// Feeds `wire` one byte at a time and collects what comes out, with and without a
    /// destination of `cap` bytes.
    fn messages(wire: &[u8], cap: Option<usize>) -> (Vec<Vec<u8>>, Option<Progress>) {
        let mut rx = Receiver::new(LIMITS);
        let mut out = Vec::new();
        let mut buf = vec![0u8; cap.unwrap_or(0)];
        let mut end = None;
        for b in wire {
            assert_eq!(rx.push(&[*b]), 1);
            loop {
                let mut dest = cap.map(|_| Destination::new(&mut buf));
                let progress = rx.advance(dest.as_mut(), None).unwrap();
                if let Some(d) = dest.as_mut() {
                    rx.release(d);
                }
                match progress {
                    Progress::NeedBytes => break,
                    Progress::Delivered(n) => out.push(buf[..n].to_vec()),
                    Progress::Ready => {
                        let mut m = vec![0u8; 70000];
                        let n = rx.take_message(&mut m, None).unwrap();
                        out.push(m[..n].to_vec());
                    }
                    p @ Progress::PeerEnded(_) => {
                        end = Some(p);
                        break;
                    }
                }
            }
        }
        (out, end)
    }

    #[test]
    fn byte_by_byte_with_and_without_a_destination() {
        let mut wire = dt(false, b"hel");
        wire.extend(dt(true, b"lo"));
        wire.extend(dt(true, b"")); // an empty EOT DT between messages: skipped
        wire.extend(dt(true, b"one"));
        wire.extend([3, 0, 0, 11, 6, 0x80, 0, 0, 0, 1, 0x80]); // DR, reason 0x80
        for cap in [None, Some(1), Some(4), Some(100)] {
            let (got, end) = messages(&wire, cap);
            assert_eq!(got, vec![b"hello".to_vec(), b"one".to_vec()], "cap {cap:?}");
            assert_eq!(
                end,
                Some(Progress::PeerEnded(PeerEnd::Disconnect { reason: 0x80 }))
            );
        }
    }

    #[test]
    fn a_cr_or_cc_during_transfer_is_an_error() {
        let mut rx = Receiver::new(LIMITS);
        rx.push(&[3, 0, 0, 11, 6, 0xE0, 0, 0, 0, 1, 0]);
        assert_eq!(
            rx.advance(None, None),
            Err(ProtoError::UnexpectedInTransfer("CR"))
        );
    }

    #[test]
    fn a_message_that_outgrows_the_destination_is_held_and_reported_too_large() {
        let mut rx = Receiver::new(LIMITS);
        let mut wire = dt(false, b"abcd");
        wire.extend(dt(true, b"efgh"));
        rx.push(&wire);
        let mut buf = [0u8; 6];
        let mut dest = Destination::new(&mut buf);
        assert_eq!(rx.advance(Some(&mut dest), None), Ok(Progress::Ready));
        rx.release(&mut dest);
        assert_eq!(
            rx.take_message(&mut buf, None),
            Err(BufferTooSmall { needed: 8 })
        );
        let mut big = [0u8; 8];
        assert_eq!(rx.take_message(&mut big, None), Ok(8));
        assert_eq!(&big, b"abcdefgh");
    }

    #[test]
    fn limits_apply_in_the_destination_too() {
        let limits = Limits {
            max_message: 6,
            max_fragments: 2,
        };
        for cap in [0usize, 100] {
            let mut rx = Receiver::new(limits);
            let mut wire = dt(false, b"abcd");
            wire.extend(dt(false, b"efg"));
            rx.push(&wire);
            let mut buf = vec![0u8; cap];
            let mut dest = Destination::new(&mut buf);
            assert_eq!(
                rx.advance(Some(&mut dest), None),
                Err(ProtoError::MessageTooLarge { len: 7, max: 6 })
            );
        }
    }

    #[test]
    fn an_end_of_stream_says_what_it_cut_off() {
        let mut rx = Receiver::new(LIMITS);
        assert_eq!(rx.cut_off(None), None);
        rx.push(&dt(false, b"ab"));
        assert_eq!(rx.advance(None, None), Ok(Progress::NeedBytes));
        assert_eq!(
            rx.cut_off(None),
            Some("after a DT without EOT; the partial message was discarded")
        );
        rx.push(&[3, 0]);
        assert_eq!(
            rx.cut_off(None),
            Some("in the middle of a TPKT packet; the partial packet was discarded")
        );
    }
}
