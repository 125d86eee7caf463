//! TPKT (RFC 1006 section 6): a 4-byte header that frames one COTP TPDU on a TCP stream.
//!
//! ```text
//! byte 0   version  = 3
//! byte 1   reserved (sent as 0, ignored on receipt)
//! byte 2-3 length, big-endian, counting the whole packet including these 4 bytes
//! ```
//!
//! [`Framer`] is the incremental receiver: bytes are written into its buffer in any chunking
//! (the socket layer reads straight into [`Framer::spare`]) and whole packets come out of
//! [`Framer::next_packet`]. Surplus bytes after a packet stay buffered for the next call, so a
//! caller that stops half-way (a timeout) never loses or desynchronises anything.

use super::ProtoError;

/// Byte 0 of every TPKT header (docs/PROTOCOL.md §2.1).
pub const VERSION: u8 = 3;
/// Length of the TPKT header: version, reserved, 16-bit length.
pub const HEADER_LEN: usize = 4;
/// The smallest legal packet: the header plus a 3-byte DT header.
pub const MIN_PACKET: usize = 7;
/// The length field is 16 bits wide.
pub const MAX_PACKET: usize = 65_535;

/// Writes a TPKT header for a packet of `packet_len` bytes (header included).
///
/// The length field has 16 bits: a `packet_len` above [`MAX_PACKET`] is written as
/// [`MAX_PACKET`]. Callers keep packets within it ([`segment`](super::segment) splits messages
/// into DTs that do), so this never happens to what the crate sends.
pub fn header(packet_len: usize) -> [u8; HEADER_LEN] {
    let len = packet_len.min(MAX_PACKET) as u16;
    [VERSION, 0, (len >> 8) as u8, len as u8]
}

/// Checks a TPKT header and returns the packet length it announces.
///
/// `max_packet` is the receiver's bound; a longer packet is refused before anything is allocated.
pub fn parse_header(h: &[u8; HEADER_LEN], max_packet: usize) -> Result<usize, ProtoError> {
    if h[0] != VERSION {
        return Err(ProtoError::TpktVersion(h[0]));
    }
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if len < MIN_PACKET {
        return Err(ProtoError::TpktTooShort(len));
    }
    if len > max_packet {
        return Err(ProtoError::TpktTooLong {
            len,
            max: max_packet,
        });
    }
    Ok(len)
}

/// Incremental TPKT receiver with a bounded buffer.
///
/// The buffer holds at most one maximum packet plus one read's worth of surplus; it never grows
/// past `max_packet + read_chunk` whatever the peer sends.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of unconsumed bytes.
    start: usize,
    /// End of valid bytes.
    end: usize,
    max_packet: usize,
    read_chunk: usize,
}

impl Framer {
    /// `max_packet` bounds one packet (7 to 65535); `read_chunk` is how much room
    /// [`Framer::spare`] offers beyond what the current packet needs (64 to 65535).
    pub fn new(max_packet: usize, read_chunk: usize) -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_packet: max_packet.clamp(MIN_PACKET, MAX_PACKET),
            read_chunk: read_chunk.clamp(64, MAX_PACKET),
        }
    }

    /// Drops every buffered byte (a new connection starts clean).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Changes the bound on one packet (7 to 65535), e.g. from the handshake's to the
    /// transfer's; applies to the next packet header read.
    pub fn set_max_packet(&mut self, max_packet: usize) {
        self.max_packet = max_packet.clamp(MIN_PACKET, MAX_PACKET);
    }

    /// Room offered to each read beyond what the packet in progress needs (64 to
    /// [`MAX_PACKET`] bytes).
    pub fn set_read_chunk(&mut self, read_chunk: usize) {
        self.read_chunk = read_chunk.clamp(64, MAX_PACKET);
    }

    /// Bytes received but not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Room to receive into. Call [`Framer::commit`] with the number of bytes written.
    ///
    /// Offers at least `read_chunk` bytes, and enough to complete the packet in progress so a
    /// large packet arrives with few reads. The buffer only grows to what the bound allows.
    pub fn spare(&mut self) -> &mut [u8] {
        let pending = self.end - self.start;
        let want = pending + self.read_chunk.max(self.missing());
        if self.start > 0 && (self.buf.len() - self.start < want || pending == 0) {
            // Move the unconsumed tail to the front instead of growing.
            self.buf.copy_within(self.start..self.end, 0);
            self.end = pending;
            self.start = 0;
        }
        if self.buf.len() < self.end + self.read_chunk.max(self.missing()) {
            let cap = self.max_packet + self.read_chunk;
            let new_len = (self.end + self.read_chunk.max(self.missing())).min(cap);
            self.buf.resize(new_len, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records `n` bytes written into the slice [`Framer::spare`] returned.
    ///
    /// `n` counts at most the spare area's length: bytes claimed beyond it were never written
    /// there, and are not counted.
    pub fn commit(&mut self, n: usize) {
        self.end += n.min(self.buf.len() - self.end);
    }

    /// Copies in as much of `bytes` as the bounded buffer takes now and returns how many that
    /// was (for callers that do not read into [`Framer::spare`] directly). Less than all means:
    /// take the packets out with [`Framer::next_packet`], then push the rest.
    pub fn push(&mut self, mut bytes: &[u8]) -> usize {
        let total = bytes.len();
        while !bytes.is_empty() {
            let spare = self.spare();
            if spare.is_empty() {
                break;
            }
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            self.commit(n);
            bytes = &bytes[n..];
        }
        total - bytes.len()
    }

    /// Bytes still needed to complete the packet in progress (0 if unknown or complete).
    fn missing(&self) -> usize {
        let pending = self.end - self.start;
        if pending < HEADER_LEN {
            return HEADER_LEN - pending;
        }
        let len = u16::from_be_bytes([self.buf[self.start + 2], self.buf[self.start + 3]]) as usize;
        len.saturating_sub(pending)
    }

    /// The next whole packet's TPDU (the bytes after the TPKT header), if one is buffered,
    /// without consuming it: [`Framer::consume`] does that. Peeking lets a receiver copy a
    /// message straight from here into its caller's buffer, or leave it for a later call.
    ///
    /// A bad header is an error every time it is asked for: the stream cannot be resynchronised.
    pub fn peek_packet(&self) -> Result<Option<&[u8]>, ProtoError> {
        let pending = self.end - self.start;
        if pending < HEADER_LEN {
            return Ok(None);
        }
        let h: [u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
            .try_into()
            .unwrap();
        let len = parse_header(&h, self.max_packet)?;
        if pending < len {
            return Ok(None);
        }
        Ok(Some(&self.buf[self.start + HEADER_LEN..self.start + len]))
    }

    /// The whole packet at the head, TPKT header included, exactly as received (for tracing);
    /// None until it is complete. Call after [`Framer::peek_packet`] accepted it.
    pub fn peek_raw(&self) -> Option<&[u8]> {
        let pending = self.end - self.start;
        if pending < HEADER_LEN {
            return None;
        }
        let len = u16::from_be_bytes([self.buf[self.start + 2], self.buf[self.start + 3]]) as usize;
        (len >= HEADER_LEN && pending >= len).then(|| &self.buf[self.start..self.start + len])
    }

    /// Drops the packet whose TPDU [`Framer::peek_packet`] just returned, given that TPDU's
    /// length: the receive path knows it, and skips reading and checking the header again. A
    /// length beyond what is buffered drops everything buffered.
    #[inline]
    pub fn consume_peeked(&mut self, tpdu_len: usize) {
        self.start = self
            .start
            .saturating_add(HEADER_LEN + tpdu_len)
            .min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops the packet [`Framer::peek_packet`] returned. Without a whole packet buffered it
    /// does nothing.
    #[inline]
    pub fn consume(&mut self) {
        let pending = self.end - self.start;
        if pending < HEADER_LEN {
            return;
        }
        let len = u16::from_be_bytes([self.buf[self.start + 2], self.buf[self.start + 3]]) as usize;
        if len < HEADER_LEN || len > pending {
            return;
        }
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Peek and consume in one step (for tests and simple callers).
    pub fn next_packet(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        let p = self.peek_packet()?.map(<[u8]>::to_vec);
        if p.is_some() {
            self.consume();
        }
        Ok(p)
    }

    /// True when the bytes buffered form part of a packet (EOF now would truncate it).
    pub fn mid_packet(&self) -> bool {
        self.end > self.start
    }

    /// Capacity currently held (for memory accounting and tests of the bound).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(input: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, ProtoError> {
        let mut f = Framer::new(MAX_PACKET, 64);
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            f.push(part);
            while let Some(p) = f.next_packet()? {
                out.push(p);
            }
        }
        Ok(out)
    }

    #[test]
    fn wire_vectors() {
        assert_eq!(
            packets(&[3, 0, 0, 7, 2, 0xF0, 0x80], 7).unwrap(),
            vec![vec![2, 0xF0, 0x80]]
        );
        // Reserved byte ignored.
        assert_eq!(
            packets(&[3, 0xFF, 0, 7, 2, 0xF0, 0x80], 7).unwrap().len(),
            1
        );
        assert_eq!(
            packets(&[4, 0, 0, 7, 2, 0xF0, 0x80], 7),
            Err(ProtoError::TpktVersion(4))
        );
        assert_eq!(
            packets(&[3, 0, 0, 6, 2, 0xF0], 6),
            Err(ProtoError::TpktTooShort(6))
        );
        // Truncated: no packet, and the framer knows it is mid-packet (EOF is then an error).
        let mut f = Framer::new(MAX_PACKET, 64);
        f.push(&[3, 0, 0, 8, 2, 0xF0, 0x80]);
        assert_eq!(f.peek_packet().unwrap(), None);
        assert!(f.mid_packet());
    }

    #[test]
    fn every_split_gives_the_same_packets() {
        let mut stream = Vec::new();
        for n in [1usize, 5, 300, 0] {
            let len = 7 + n;
            stream.extend_from_slice(&header(len));
            stream.extend_from_slice(&[2, 0xF0, 0x80]);
            stream.extend((0..n).map(|i| i as u8));
        }
        let whole = packets(&stream, stream.len()).unwrap();
        assert_eq!(whole.len(), 4);
        for chunk in 1..stream.len() {
            assert_eq!(packets(&stream, chunk).unwrap(), whole, "chunk {chunk}");
        }
        // Split in two at every byte boundary.
        for cut in 0..=stream.len() {
            let mut f = Framer::new(MAX_PACKET, 64);
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                f.push(part);
                while let Some(p) = f.next_packet().unwrap() {
                    got.push(p);
                }
            }
            assert_eq!(got, whole, "cut {cut}");
        }
    }

    #[test]
    fn push_takes_what_fits_and_says_how_much() {
        let mut f = Framer::new(7, 64);
        let stream: Vec<u8> = [3u8, 0, 0, 7, 2, 0xF0, 0x80].repeat(11);
        let mut rest = &stream[..];
        let mut got = 0;
        while !rest.is_empty() {
            let n = f.push(rest);
            assert!(n > 0, "no progress with {} bytes left", rest.len());
            rest = &rest[n..];
            while f.next_packet().unwrap().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, 11);
    }

    #[test]
    fn oversized_packet_is_refused_before_buffering_it() {
        let mut f = Framer::new(1000, 64);
        f.push(&[3, 0, 0xFF, 0xFF]);
        assert_eq!(
            f.peek_packet(),
            Err(ProtoError::TpktTooLong {
                len: 65535,
                max: 1000
            })
        );
        assert!(f.capacity() <= 1000 + 64);
    }

    #[test]
    fn buffer_stays_bounded_under_a_long_stream() {
        let mut f = Framer::new(MAX_PACKET, 4096);
        let pkt = {
            let mut p = header(1000).to_vec();
            p.extend_from_slice(&[2, 0xF0, 0x80]);
            p.resize(1000, 7);
            p
        };
        for _ in 0..1000 {
            f.push(&pkt[..333]);
            f.push(&pkt[333..]);
            while f.next_packet().unwrap().is_some() {}
        }
        assert!(f.capacity() <= MAX_PACKET + 4096);
        assert_eq!(f.buffered(), 0);
    }
}
