//! The whole receive side of data transfer, [`Receiver`], fed as a socket would feed it: a TPKT
//! stream cut into chunks, messages taken out after each chunk. Two receivers read the same
//! stream, one with its own buffer only and whole 64 KiB chunks, one offering a caller's buffer
//! of a chosen size (the in-place reassembly path) and chunks of a chosen size, releasing the
//! buffer after every call as a receive that hit its deadline does. Both must deliver the same
//! messages in the same order and end the same way (the peer's DR/ER, or the same error), and
//! neither may hold more memory than its bounds allow.
//!
//! Input layout:
//! ```text
//! byte 0-1  max_message, big-endian, masked to 0..4095
//! byte 2    max_fragments (0..255)
//! byte 3    the second receiver's buffer size: 0..255 (0: a NULL-sized buffer)
//! byte 4    its chunk size, 1..256
//! rest      the TPKT stream
//! ```
#![no_main]

use isotcp::proto::segment::{Destination, Limits};
use isotcp::proto::transfer::{Progress, Receiver};
use isotcp::proto::ProtoError;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Outcome {
    Message(Vec<u8>),
    End(Progress),
    Failed(ProtoError),
}

/// Reads `wire` in chunks of `chunk` bytes, offering a buffer of `cap` bytes when given.
fn run(limits: Limits, wire: &[u8], chunk: usize, cap: Option<usize>) -> Vec<Outcome> {
    let mut rx = Receiver::new(limits);
    let mut out = Vec::new();
    let mut buf = vec![0u8; cap.unwrap_or(0)];
    let mut large = vec![0u8; limits.max_message];
    let bound = limits.max_packet() + 2 * (16 << 10) + limits.max_message;
    let mut rest = wire;
    while !rest.is_empty() {
        let spare = rx.spare();
        assert!(!spare.is_empty(), "no room to read into");
        let n = spare.len().min(chunk).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        rx.commit(n);
        rest = &rest[n..];
        loop {
            let mut dest = cap.map(|_| Destination::new(&mut buf));
            let progress = rx.advance(dest.as_mut(), None);
            if let Some(d) = dest.as_mut() {
                rx.release(d);
            }
            match progress {
                Ok(Progress::NeedBytes) => break,
                Ok(Progress::Delivered(n)) => out.push(Outcome::Message(buf[..n].to_vec())),
                Ok(Progress::Ready) => {
                    if cap.is_some() {
                        match rx.take_message(&mut buf, None) {
                            Ok(n) => {
                                out.push(Outcome::Message(buf[..n].to_vec()));
                                continue;
                            }
                            // Too large for the offered buffer: it stays held, and says so.
                            Err(e) => assert!(e.needed > buf.len()),
                        }
                    }
                    let n = rx.take_message(&mut large, None).expect("within max_message");
                    out.push(Outcome::Message(large[..n].to_vec()));
                }
                Ok(end @ Progress::PeerEnded(_)) => {
                    out.push(Outcome::End(end));
                    return out;
                }
                Err(e) => {
                    out.push(Outcome::Failed(e));
                    return out;
                }
            }
        }
        assert!(rx.capacity() <= bound, "receiver holds {} bytes", rx.capacity());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let limits = Limits {
        max_message: (u16::from_be_bytes([data[0], data[1]]) & 0x0FFF) as usize,
        max_fragments: data[2] as u32,
    };
    let cap = data[3] as usize;
    let chunk = data[4] as usize + 1;
    let wire = &data[5..];
    let plain = run(limits, wire, 64 << 10, None);
    let in_place = run(limits, wire, chunk, Some(cap));
    assert_eq!(plain, in_place);
});
