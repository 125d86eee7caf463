//! DT reassembly: a TPKT stream goes through the framer and the decoder as on a connection, and
//! every DT into a [`Reassembler`] with small limits. A model of the rules (empty EOT DT with
//! nothing held is skipped; the message limit and the fragment limit are checked before
//! anything is appended) must agree with it on every DT, what it holds must never exceed the
//! limits, and its buffer must stay bounded.
//!
//! Input layout:
//! ```text
//! byte 0-1  max_message, big-endian, masked to 0..4095
//! byte 2    max_fragments (0..255)
//! rest      the TPKT stream; non-DT TPDUs and malformed ones are skipped, a bad TPKT header
//!           ends the run
//! ```
//! A message or fragment limit hit starts over with an empty reassembler, as a new connection
//! would.
#![no_main]

use isotcp::proto::cotp::{self, Tpdu};
use isotcp::proto::segment::{Assembled, Limits, Reassembler};
use isotcp::proto::tpkt::Framer;
use isotcp::proto::ProtoError;
use libfuzzer_sys::fuzz_target;

/// What the reassembler should hold.
#[derive(Default)]
struct Model {
    held: Vec<u8>,
    fragments: u32,
}

impl Model {
    fn push(
        &mut self,
        limits: &Limits,
        eot: bool,
        payload: &[u8],
    ) -> Result<Assembled, ProtoError> {
        if eot && payload.is_empty() && self.fragments == 0 {
            return Ok(Assembled::Pending);
        }
        let total = self.held.len() + payload.len();
        if total > limits.max_message {
            return Err(ProtoError::MessageTooLarge {
                len: total,
                max: limits.max_message,
            });
        }
        if self.fragments >= limits.max_fragments {
            return Err(ProtoError::TooManyFragments(limits.max_fragments));
        }
        self.held.extend_from_slice(payload);
        self.fragments += 1;
        Ok(if eot {
            Assembled::Complete
        } else {
            Assembled::Pending
        })
    }
}

/// The most the reassembler's buffer may hold for a message limit.
fn capacity_bound(max_message: usize) -> usize {
    if cfg!(feature = "strict-capacity") {
        // The limit itself (a Vec's first allocation of 8 bytes aside).
        max_message.max(8)
    } else {
        // A Vec grows to at most twice what it needed, and to at least 8 bytes.
        (2 * max_message).max(8)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limits = Limits {
        max_message: (u16::from_be_bytes([data[0], data[1]]) & 0x0FFF) as usize,
        max_fragments: data[2] as u32,
    };
    let stream = &data[3..];
    let mut reasm = Reassembler::new(limits);
    let mut model = Model::default();
    let mut framer = Framer::new(65_535, 64);
    let mut messages = 0usize;

    let mut pos = 0;
    'feed: while pos < stream.len() {
        let spare = framer.spare();
        let n = spare.len().min(stream.len() - pos).min(61);
        spare[..n].copy_from_slice(&stream[pos..pos + n]);
        framer.commit(n);
        pos += n;
        loop {
            let tpdu = match framer.peek_packet() {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(_) => break 'feed,
            };
            if let Ok(Tpdu::Dt { eot, payload }) = cotp::decode(tpdu) {
                let want = model.push(&limits, eot, payload);
                let got = reasm.push(eot, payload);
                assert_eq!(got, want);
                match got {
                    Ok(Assembled::Complete) => {
                        assert_eq!(reasm.message(), Some(model.held.as_slice()));
                        assert!(!reasm.in_progress());
                        reasm.take();
                        model = Model::default();
                        messages += 1;
                    }
                    Ok(Assembled::Pending) => {
                        assert_eq!(reasm.message(), None);
                        assert_eq!(reasm.in_progress(), model.fragments > 0);
                    }
                    Ok(Assembled::Delivered(_)) => unreachable!("no destination was offered"),
                    Err(e) => {
                        assert!(e.is_size_limit());
                        reasm.clear();
                        model = Model::default();
                    }
                }
                assert!(model.held.len() <= limits.max_message);
                assert!(model.fragments <= limits.max_fragments);
                assert!(
                    reasm.capacity() <= capacity_bound(limits.max_message),
                    "reassembler capacity {} with a message limit of {}",
                    reasm.capacity(),
                    limits.max_message
                );
            }
            framer.consume();
        }
    }
    assert!(messages <= stream.len() / 8 + 1);
    assert_eq!(reasm.in_progress(), model.fragments > 0);
});
