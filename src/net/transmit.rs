//! Writing to the socket: whole messages as DTs in vectored writes, within a deadline.

use std::io::{self, IoSlice};
use std::sync::atomic::AtomicBool;

use socket2::Socket;

use super::deadline::Deadline;
use super::sys::{self, Interest};
use crate::proto::segment::{self, DT_OVERHEAD};

/// DTs per vectored write: 128 slices, far below every platform's IOV_MAX, on the stack.
const DTS_PER_WRITE: usize = 64;

/// How a write ended when it did not complete.
#[derive(Debug)]
pub enum WriteError {
    /// The deadline passed; `sent` bytes of the packets had gone out.
    Deadline { sent: usize },
    /// The socket failed; `sent` bytes had gone out.
    Io { sent: usize, error: io::Error },
}

/// Writes `bufs` completely, handling partial writes and EINTR, waiting for room within the deadline.
pub fn write_all(
    sock: &Socket,
    mut bufs: &mut [IoSlice<'_>],
    deadline: &Deadline,
    stop: &AtomicBool,
) -> Result<usize, WriteError> {
    let mut sent = 0;
    while !bufs.is_empty() {
        match sys::send_vectored(sock, bufs) {
            Ok(n) => {
                sent += n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match sys::wait(sock, Interest::Write, deadline, stop) {
                    Ok(true) => {}
                    Ok(false) => return Err(WriteError::Deadline { sent }),
                    Err(error) => return Err(WriteError::Io { sent, error }),
                }
            }
            Err(error) => return Err(WriteError::Io { sent, error }),
        }
    }
    Ok(sent)
}

/// Sends `message` as DTs of at most `tpdu_size`, up to 64 DTs per system call.
pub fn write_message(
    sock: &Socket,
    message: &[u8],
    tpdu_size: u32,
    deadline: &Deadline,
    stop: &AtomicBool,
) -> Result<(), WriteError> {
    let per = segment::payload_per_dt(tpdu_size);
    let total = segment::segment_count(message.len(), tpdu_size);
    let mut sent_before = 0;
    for (batch_no, batch) in message.chunks(per * DTS_PER_WRITE).enumerate() {
        let mut headers = [[0u8; DT_OVERHEAD]; DTS_PER_WRITE];
        let first = batch_no * DTS_PER_WRITE;
        let mut n = 0;
        for (i, chunk) in batch.chunks(per).enumerate() {
            headers[i] = segment::dt_header(chunk.len(), first + i + 1 == total);
            n += 1;
        }
        let mut slices = [IoSlice::new(&[]); 2 * DTS_PER_WRITE];
        for (i, chunk) in batch.chunks(per).enumerate() {
            slices[2 * i] = IoSlice::new(&headers[i]);
            slices[2 * i + 1] = IoSlice::new(chunk);
        }
        match write_all(sock, &mut slices[..2 * n], deadline, stop) {
            Ok(sent) => sent_before += sent,
            Err(WriteError::Deadline { sent }) => {
                return Err(WriteError::Deadline {
                    sent: sent_before + sent,
                })
            }
            Err(WriteError::Io { sent, error }) => {
                return Err(WriteError::Io {
                    sent: sent_before + sent,
                    error,
                })
            }
        }
    }
    Ok(())
}
