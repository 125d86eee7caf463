//! TPKT framer: an arbitrary byte stream, delivered in an arbitrary chunking, must give exactly
//! the packets (or the first header error) that a straight reading of the whole stream gives,
//! and the framer's buffer must stay within `max_packet + read_chunk`.
//!
//! Input layout:
//! ```text
//! byte 0-1   max_packet, big-endian (the framer clamps it to 7..65535)
//! byte 2-3   read_chunk, big-endian (the framer raises it to at least 64)
//! byte 4     k, the number of chunk-size bytes that follow
//! byte 5..   k chunk-size bytes, used in turn: b < 0x80 gives b + 1 bytes,
//!            b >= 0x80 gives ((b & 0x7F) + 1) * 256 bytes; k = 0 delivers the stream at once
//! rest       the byte stream
//! ```
//! Chunks alternate between the two ways in: writing into `spare()` and `commit()` (as the
//! socket layer does), and `push()` (used only for chunks no larger than the read chunk).
#![no_main]

use isotcp::proto::tpkt::{self, Framer};
use isotcp::proto::ProtoError;
use libfuzzer_sys::fuzz_target;

/// The packets a straight reading of `stream` gives: TPDU ranges, the header error that stops
/// the stream (if any), and the offset where unconsumed bytes start.
fn reference(stream: &[u8], max_packet: usize) -> (Vec<(usize, usize)>, Option<ProtoError>, usize) {
    let mut packets = Vec::new();
    let mut pos = 0;
    while stream.len() - pos >= 4 {
        let h = &stream[pos..pos + 4];
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let err = if h[0] != 3 {
            Some(ProtoError::TpktVersion(h[0]))
        } else if len < 7 {
            Some(ProtoError::TpktTooShort(len))
        } else if len > max_packet {
            Some(ProtoError::TpktTooLong {
                len,
                max: max_packet,
            })
        } else {
            None
        };
        if err.is_some() {
            return (packets, err, pos);
        }
        if pos + len > stream.len() {
            break;
        }
        packets.push((pos + 4, pos + len));
        pos += len;
    }
    (packets, None, pos)
}

fn chunk_size(b: u8) -> usize {
    if b < 0x80 {
        b as usize + 1
    } else {
        ((b & 0x7F) as usize + 1) * 256
    }
}

struct Run<'a> {
    framer: Framer,
    stream: &'a [u8],
    expected: Vec<(usize, usize)>,
    expected_err: Option<ProtoError>,
    delivered: usize,
    failed: bool,
    max_packet: usize,
    bound: usize,
}

impl Run<'_> {
    fn check_bound(&self) {
        assert!(
            self.framer.capacity() <= self.bound,
            "framer holds {} bytes, bound {}",
            self.framer.capacity(),
            self.bound
        );
        assert!(self.framer.buffered() <= self.framer.capacity());
    }

    /// Takes every whole packet out, comparing with the reference; stops at a header error.
    fn drain(&mut self) {
        loop {
            match self.framer.peek_packet() {
                Ok(Some(p)) => {
                    let (a, b) = *self
                        .expected
                        .get(self.delivered)
                        .expect("framer gave a packet the reference does not have");
                    assert_eq!(p, &self.stream[a..b], "packet {}", self.delivered);
                    assert!(p.len() + 4 >= tpkt::MIN_PACKET && p.len() + 4 <= self.max_packet);
                    // Peeking again gives the same packet.
                    assert_eq!(self.framer.peek_packet().unwrap(), Some(&self.stream[a..b]));
                    self.framer.consume();
                    self.delivered += 1;
                }
                Ok(None) => return,
                Err(e) => {
                    assert_eq!(Some(&e), self.expected_err.as_ref());
                    assert_eq!(self.delivered, self.expected.len());
                    // The error stays: the stream cannot be resynchronised.
                    assert_eq!(self.framer.peek_packet(), Err(e.clone()));
                    assert!(!e.to_string().is_empty());
                    self.failed = true;
                    return;
                }
            }
        }
    }

    fn feed_spare(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.failed {
            let spare = self.framer.spare();
            // The socket layer relies on this: after draining there is always room.
            assert!(!spare.is_empty(), "no room offered after draining");
            let n = spare.len().min(chunk.len());
            spare[..n].copy_from_slice(&chunk[..n]);
            self.framer.commit(n);
            chunk = &chunk[n..];
            self.check_bound();
            self.drain();
            self.check_bound();
        }
    }

    fn feed_push(&mut self, chunk: &[u8]) {
        self.framer.push(chunk);
        self.check_bound();
        self.drain();
        self.check_bound();
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let max_packet = u16::from_be_bytes([data[0], data[1]]) as usize;
    let read_chunk = u16::from_be_bytes([data[2], data[3]]) as usize;
    let k = data[4] as usize;
    if data.len() < 5 + k {
        return;
    }
    let sizes: Vec<usize> = data[5..5 + k].iter().map(|&b| chunk_size(b)).collect();
    let stream = &data[5 + k..];

    let eff_max = max_packet.clamp(tpkt::MIN_PACKET, tpkt::MAX_PACKET);
    let eff_chunk = read_chunk.max(64);
    let (expected, expected_err, consumed) = reference(stream, eff_max);
    let mut run = Run {
        framer: Framer::new(max_packet, read_chunk),
        stream,
        expected,
        expected_err,
        delivered: 0,
        failed: false,
        max_packet: eff_max,
        bound: eff_max + eff_chunk,
    };
    assert_eq!(run.framer.buffered(), 0);
    assert!(!run.framer.mid_packet());

    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() && !run.failed {
        let size = if sizes.is_empty() {
            stream.len()
        } else {
            sizes[i % sizes.len()]
        };
        let chunk = &stream[pos..(pos + size).min(stream.len())];
        if i % 2 == 1 && chunk.len() <= eff_chunk {
            run.feed_push(chunk);
        } else {
            run.feed_spare(chunk);
        }
        pos += chunk.len();
        i += 1;
    }

    if run.expected_err.is_some() {
        assert!(
            run.failed,
            "the reference stops at a bad header the framer never reported"
        );
    } else {
        assert!(!run.failed);
        assert_eq!(run.delivered, run.expected.len());
        assert_eq!(run.framer.buffered(), stream.len() - consumed);
        assert_eq!(run.framer.mid_packet(), consumed < stream.len());
        // Room is offered for the rest of a partial packet.
        assert!(!run.framer.spare().is_empty());
        run.check_bound();
    }
    run.framer.clear();
    assert_eq!(run.framer.buffered(), 0);
    assert_eq!(run.framer.peek_packet(), Ok(None));
});
