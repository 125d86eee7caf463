//! Messages and DTs: splitting a message into DT TPDUs, and bounded reassembly by EOT
//! (docs/PROTOCOL.md §5.1 and §5.2).

use std::io::IoSlice;

use super::cotp;
use super::tpkt;
use super::ProtoError;

/// TPKT + DT header in front of every fragment.
pub const DT_OVERHEAD: usize = tpkt::HEADER_LEN + 3;

/// Payload bytes per DT for a negotiated TPDU size (the TPDU counts its 3-byte DT header).
pub fn payload_per_dt(tpdu_size: u32) -> usize {
    // Below 4 a DT could carry nothing; negotiated sizes are 128 or more anyway.
    (tpdu_size as usize).clamp(4, tpkt::MAX_PACKET - tpkt::HEADER_LEN) - 3
}

/// The 7 header bytes of one DT packet.
pub fn dt_header(payload_len: usize, eot: bool) -> [u8; DT_OVERHEAD] {
    let t = tpkt::header(payload_len + DT_OVERHEAD);
    let d = if eot { cotp::DT_EOT } else { cotp::DT_MORE };
    [t[0], t[1], t[2], t[3], d[0], d[1], d[2]]
}

/// Splits `message` into DTs: yields (header, payload slice) pairs, EOT on the last only.
/// An empty message yields nothing (it is never sent).
pub fn segments(
    message: &[u8],
    tpdu_size: u32,
) -> impl Iterator<Item = ([u8; DT_OVERHEAD], &[u8])> {
    let per = payload_per_dt(tpdu_size);
    let count = message.len().div_ceil(per);
    message
        .chunks(per)
        .enumerate()
        .map(move |(i, chunk)| (dt_header(chunk.len(), i + 1 == count), chunk))
}

/// Number of DTs a message needs.
pub fn segment_count(len: usize, tpdu_size: u32) -> usize {
    len.div_ceil(payload_per_dt(tpdu_size))
}

/// Bytes a message takes on the wire as DTs (payload plus a header per DT).
pub fn encoded_len(len: usize, tpdu_size: u32) -> usize {
    len + segment_count(len, tpdu_size) * DT_OVERHEAD
}

/// Frames DTs `first..first + headers.len()` of `message` (fewer at its end) for one vectored
/// write: each DT's header goes into `headers`, and `slices` gets a header and a payload slice
/// per DT, so the payload is never copied. Returns the number of slices filled (two per DT):
/// as many DTs as both `headers` and `slices` have room for.
// Called once per message on the send path; inlined into the writer it stays one loop.
#[inline(always)]
pub fn frame_dts<'a>(
    message: &'a [u8],
    tpdu_size: u32,
    first: usize,
    headers: &'a mut [[u8; DT_OVERHEAD]],
    slices: &mut [IoSlice<'a>],
) -> usize {
    let room = headers.len().min(slices.len() / 2);
    let per = payload_per_dt(tpdu_size);
    let total = segment_count(message.len(), tpdu_size);
    let start = first.saturating_mul(per).min(message.len());
    let chunks = message[start..].chunks(per).take(room);
    let mut n = 0;
    for (i, chunk) in chunks.clone().enumerate() {
        headers[i] = dt_header(chunk.len(), first + i + 1 == total);
        n += 1;
    }
    let headers: &'a [[u8; DT_OVERHEAD]] = headers;
    for (i, chunk) in chunks.enumerate() {
        slices[2 * i] = IoSlice::new(&headers[i]);
        slices[2 * i + 1] = IoSlice::new(chunk);
    }
    2 * n
}

/// Appends the DT stream of `message` to `out`, leaving out its first `skip` bytes (those a
/// write already put on the wire), so that a send that stopped half-way is completed later
/// with the stream still aligned.
pub fn encode_dts_tail(message: &[u8], tpdu_size: u32, skip: usize, out: &mut Vec<u8>) {
    let mut offset = 0;
    for (header, chunk) in segments(message, tpdu_size) {
        for part in [&header[..], chunk] {
            let end = offset + part.len();
            if end > skip {
                out.extend_from_slice(&part[skip.saturating_sub(offset)..]);
            }
            offset = end;
        }
    }
}

/// Limits on what a peer may make us hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (sum of fragment payloads).
    pub max_message: usize,
    /// Most DTs in one message.
    pub max_fragments: u32,
}

impl Limits {
    /// The longest TPKT packet accepted during data transfer: a whole message in one DT (peers
    /// do not segment what they send, docs/PROTOCOL.md §5.2), never less than 256 bytes and
    /// never more than the TPKT length field allows.
    pub fn max_packet(&self) -> usize {
        (self.max_message.saturating_add(DT_OVERHEAD)).clamp(256, tpkt::MAX_PACKET)
    }

    /// Whether a message of `total` bytes in `fragments` DTs stays within the limits.
    #[inline]
    pub fn check(&self, total: usize, fragments: u32) -> Result<(), ProtoError> {
        if total > self.max_message {
            return Err(ProtoError::MessageTooLarge {
                len: total,
                max: self.max_message,
            });
        }
        if fragments > self.max_fragments {
            return Err(ProtoError::TooManyFragments(self.max_fragments));
        }
        Ok(())
    }
}

/// What a DT did to the message being assembled.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// More fragments are needed (or an empty EOT DT was skipped).
    Pending,
    /// The message is complete: [`Reassembler::message`] holds it until the next push.
    Complete,
    /// The message is complete in the [`Destination`]: its first `n` bytes.
    Delivered(usize),
}

/// The caller's buffer, offered for the message being received so that a segmented message is
/// assembled in place instead of being copied through the reassembler's own buffer.
///
/// It lives for one receive call. When that call ends before the message is complete (a
/// deadline, an error), [`Reassembler::adopt`] takes over what it holds, so the next call goes on
/// with the same message: nothing is lost or received twice.
#[derive(Debug)]
pub struct Destination<'a> {
    buf: &'a mut [u8],
    filled: usize,
    fragments: u32,
}

impl<'a> Destination<'a> {
    /// Offers `buf` (its whole length) for the next message.
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> Self {
        Destination {
            buf,
            filled: 0,
            fragments: 0,
        }
    }

    /// The caller's buffer.
    pub fn buf(&mut self) -> &mut [u8] {
        self.buf
    }

    /// True when fragments of a message without its EOT are held here.
    #[inline]
    pub fn in_progress(&self) -> bool {
        self.fragments > 0
    }
}

/// Accumulates DT payloads until EOT, within [`Limits`].
#[derive(Debug)]
pub struct Reassembler {
    buf: Vec<u8>,
    fragments: u32,
    complete: bool,
    limits: Limits,
}

impl Reassembler {
    /// An empty reassembler enforcing `limits`; its buffer grows only as messages need.
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            buf: Vec::new(),
            fragments: 0,
            complete: false,
            limits,
        }
    }

    /// Changes the limits; they apply from the next DT.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Drops whatever is held, complete or not (a new connection starts clean).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fragments = 0;
        self.complete = false;
    }

    /// Takes over the partial message (fragments without EOT) assembled in `dest`, so that the
    /// following DTs continue it here; `dest` is left empty. Does nothing when `dest` holds no
    /// fragment, or when a message is already held here (then `dest` keeps its fragments: two
    /// messages cannot be merged, and neither is dropped).
    #[inline]
    pub fn adopt(&mut self, dest: &mut Destination<'_>) {
        if dest.fragments == 0 || self.complete || self.fragments > 0 {
            return;
        }
        let partial = &dest.buf[..dest.filled];
        self.buf.clear();
        self.buf
            .reserve_exact(partial.len().min(self.limits.max_message));
        self.buf.extend_from_slice(partial);
        self.fragments = dest.fragments;
        dest.filled = 0;
        dest.fragments = 0;
    }

    /// True when fragments without EOT are held (EOF now loses a partial message).
    #[inline]
    pub fn in_progress(&self) -> bool {
        !self.complete && self.fragments > 0
    }

    /// Adds one DT. A complete message must be taken with [`Reassembler::take`] before the next:
    /// until then a push fails with [`ProtoError::MessageNotTaken`] and changes nothing.
    pub fn push(&mut self, eot: bool, payload: &[u8]) -> Result<Assembled, ProtoError> {
        self.push_into(eot, payload, None)
    }

    /// Adds one DT, assembling the message in `dest` when one is offered: a message starts
    /// there when nothing is held here, and continues there while it fits. One that outgrows
    /// `dest` moves here and goes on (it is then too large for that caller's buffer, which
    /// taking it says). The limits are the same wherever the message is assembled.
    #[inline]
    pub fn push_into(
        &mut self,
        eot: bool,
        payload: &[u8],
        dest: Option<&mut Destination<'_>>,
    ) -> Result<Assembled, ProtoError> {
        if self.complete {
            return Err(ProtoError::MessageNotTaken);
        }
        if let Some(d) = dest {
            let starts_there = d.fragments == 0 && self.fragments == 0 && !payload.is_empty();
            // A message continues where its fragments are; one begun here stays here.
            if (d.fragments > 0 && self.fragments == 0) || starts_there {
                let total = d.filled + payload.len();
                self.limits.check(total, d.fragments + 1)?;
                if total <= d.buf.len() {
                    d.buf[d.filled..total].copy_from_slice(payload);
                    d.filled = total;
                    d.fragments += 1;
                    if !eot {
                        return Ok(Assembled::Pending);
                    }
                    d.filled = 0;
                    d.fragments = 0;
                    return Ok(Assembled::Delivered(total));
                }
                self.adopt(d);
            }
        }
        if eot && payload.is_empty() && self.fragments == 0 {
            // "Funny 7-byte packets" some CPUs send: nothing to deliver.
            return Ok(Assembled::Pending);
        }
        let total = self.buf.len() + payload.len();
        self.limits.check(total, self.fragments + 1)?;
        // Grow geometrically, but never past the limit: the buffer holds at most max_message.
        if total > self.buf.capacity() {
            let target = (self.buf.capacity() * 2).clamp(total, self.limits.max_message.max(total));
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(payload);
        self.fragments += 1;
        if eot {
            self.complete = true;
            return Ok(Assembled::Complete);
        }
        Ok(Assembled::Pending)
    }

    /// The complete message, if one is held.
    #[inline]
    pub fn message(&self) -> Option<&[u8]> {
        self.complete.then_some(self.buf.as_slice())
    }

    /// Releases the complete message (its buffer is kept for the next one).
    pub fn take(&mut self) {
        self.clear();
    }

    /// Bytes of buffer currently held (for memory accounting and tests of the bound).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_message: 65536,
        max_fragments: 4096,
    };

    #[test]
    fn reassembly_buffer_never_exceeds_the_message_limit() {
        // Fragments whose sum just fits: growing by doubling would overshoot the limit.
        for (limit, parts) in [
            (16usize, vec![9usize, 7]),
            (100_000, vec![65_528, 30_000]),
            (34, vec![5, 5, 5, 5, 5, 5, 4]),
        ] {
            let mut r = Reassembler::new(Limits {
                max_message: limit,
                max_fragments: 64,
            });
            let last = parts.len() - 1;
            for (i, n) in parts.iter().enumerate() {
                r.push(i == last, &vec![7u8; *n]).unwrap();
                assert!(
                    r.buf.capacity() <= limit,
                    "capacity {} above the limit {limit}",
                    r.buf.capacity()
                );
            }
            assert_eq!(r.message().unwrap().len(), parts.iter().sum::<usize>());
        }
    }

    fn whole_stream(message: &[u8], tpdu: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_dts_tail(message, tpdu, 0, &mut out);
        out
    }

    #[test]
    fn tail_is_the_stream_without_its_first_bytes() {
        let message: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
        let whole = whole_stream(&message, 256);
        assert_eq!(whole.len(), 700 + 3 * DT_OVERHEAD);
        assert_eq!(whole.len(), encoded_len(700, 256));
        // TPDU 256 carries 253 payload bytes: TPKT length 4 + 3 + 253.
        assert_eq!(&whole[..7], &[3, 0, 1, 4, 2, 0xF0, 0x00]);
        for skip in 0..=whole.len() {
            let mut tail = Vec::new();
            encode_dts_tail(&message, 256, skip, &mut tail);
            assert_eq!(tail, &whole[skip..], "skip {skip}");
        }
    }

    #[test]
    fn framed_batches_are_the_whole_stream() {
        let message: Vec<u8> = (0..2000u32).map(|i| (i * 7) as u8).collect();
        for (tpdu, per_batch) in [(128u32, 1usize), (128, 4), (256, 3), (1024, 8), (8192, 2)] {
            let mut wire = Vec::new();
            let mut first = 0;
            while first < segment_count(message.len(), tpdu) {
                let mut headers = vec![[0u8; DT_OVERHEAD]; per_batch];
                let mut slices = vec![IoSlice::new(&[]); 2 * per_batch];
                let n = frame_dts(&message, tpdu, first, &mut headers, &mut slices);
                assert!(n > 0 && n <= 2 * per_batch && n.is_multiple_of(2));
                for s in &slices[..n] {
                    wire.extend_from_slice(s);
                }
                first += per_batch;
            }
            assert_eq!(
                wire,
                whole_stream(&message, tpdu),
                "TPDU {tpdu}, {per_batch} per batch"
            );
        }
    }

    #[test]
    fn tiny_tpdu_sizes_do_not_panic() {
        for size in [0u32, 1, 3, 4] {
            assert_eq!(payload_per_dt(size), 1);
            assert_eq!(segments(b"abc", size).count(), 3);
        }
    }

    #[test]
    fn segmentation_respects_the_tpdu_size() {
        let msg: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let segs: Vec<_> = segments(&msg, 256).collect();
        assert_eq!(segs.len(), 4);
        assert_eq!(segment_count(1000, 256), 4);
        for (i, (h, p)) in segs.iter().enumerate() {
            assert!(p.len() + 3 <= 256);
            assert_eq!(h[6], if i == 3 { 0x80 } else { 0x00 });
            assert_eq!(u16::from_be_bytes([h[2], h[3]]) as usize, p.len() + 7);
        }
        assert_eq!(
            segs.iter()
                .flat_map(|(_, p)| p.iter().copied())
                .collect::<Vec<_>>(),
            msg
        );
        // Exactly one full DT.
        let one: Vec<_> = segments(&msg[..253], 256).collect();
        assert_eq!((one.len(), one[0].0[6]), (1, 0x80));
        assert_eq!(segments(&[], 256).count(), 0);
    }

    #[test]
    fn reassembly_by_eot() {
        let mut r = Reassembler::new(LIMITS);
        assert_eq!(
            r.push(true, &[]),
            Ok(Assembled::Pending),
            "empty EOT DT skipped"
        );
        assert_eq!(r.message(), None);
        assert_eq!(r.push(false, &[1, 2]), Ok(Assembled::Pending));
        assert!(r.in_progress());
        assert_eq!(
            r.push(true, &[]),
            Ok(Assembled::Complete),
            "empty EOT completes"
        );
        assert_eq!(r.message(), Some(&[1, 2][..]));
        r.take();
        assert_eq!(r.push(true, &[9]), Ok(Assembled::Complete));
        assert_eq!(r.message(), Some(&[9][..]));
    }

    #[test]
    fn limits_hold() {
        let mut r = Reassembler::new(Limits {
            max_message: 10,
            max_fragments: 3,
        });
        assert_eq!(r.push(false, &[0; 6]), Ok(Assembled::Pending));
        assert_eq!(
            r.push(false, &[0; 5]),
            Err(ProtoError::MessageTooLarge { len: 11, max: 10 })
        );
        let mut r = Reassembler::new(Limits {
            max_message: 10,
            max_fragments: 3,
        });
        for _ in 0..3 {
            r.push(false, &[0]).unwrap();
        }
        assert_eq!(r.push(true, &[0]), Err(ProtoError::TooManyFragments(3)));
        assert!(r.capacity() <= 16);
    }
}
