//! Writing to the socket: whole messages as DTs in vectored writes, within a deadline.

use std::io::{self, IoSlice};
use std::sync::atomic::AtomicBool;

use socket2::Socket;

use super::deadline::Deadline;
use super::sys::{self, ArmedTimeout, WriteRetry};
use crate::proto::segment::{self, DT_OVERHEAD};

/// DTs per vectored write for large messages: 1024 slices (16 KiB on the stack), within IOV_MAX
/// (1024 on Linux), so a 64 KiB message at TPDU 256 or more goes out in one system call.
const DTS_PER_WRITE: usize = 512;
/// Messages of at most this many DTs (most requests) use small arrays: setting up the large
/// ones would cost more than the rest of a send.
const FEW_DTS: usize = 4;
/// A 64 KiB message at TPDU 1024 is 65 DTs: arrays of this size fit it without the set-up cost
/// of the largest ones.
const SOME_DTS: usize = 96;

/// How a write ended when it did not complete.
#[derive(Debug)]
pub enum WriteError {
    /// The deadline passed; `sent` bytes of the packets had gone out.
    Deadline { sent: usize },
    /// The socket failed; `sent` bytes had gone out.
    Io { sent: usize, error: io::Error },
}

/// Writes `bufs` completely, handling partial writes and EINTR, within the deadline. With
/// `armed` (the socket's SO_SNDTIMEO cache) a send may block in the kernel until the deadline;
/// without, every send is non-blocking and waits happen in `poll`.
pub fn write_all(
    sock: &Socket,
    mut bufs: &mut [IoSlice<'_>],
    deadline: &Deadline,
    stop: &AtomicBool,
    armed: Option<&ArmedTimeout>,
) -> Result<usize, WriteError> {
    let mut sent = 0;
    let mut retry = WriteRetry::default();
    while !bufs.is_empty() {
        let result = match armed {
            Some(armed) => sys::send_within(sock, bufs, deadline, armed),
            None => sys::send_vectored(sock, bufs),
        };
        match result {
            Ok(n) => {
                sent += n;
                retry.progressed();
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match sys::wait_writable(sock, deadline, stop, &mut retry) {
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

/// Sends `message` as DTs of at most `tpdu_size`, up to 512 DTs per system call.
pub fn write_message(
    sock: &Socket,
    message: &[u8],
    tpdu_size: u32,
    deadline: &Deadline,
    stop: &AtomicBool,
    armed: Option<&ArmedTimeout>,
) -> Result<(), WriteError> {
    let out = Out {
        sock,
        deadline,
        stop,
        armed,
    };
    let count = segment::segment_count(message.len(), tpdu_size);
    if count <= FEW_DTS {
        out.write_batches::<FEW_DTS, { 2 * FEW_DTS }>(message, tpdu_size)
    } else if count <= SOME_DTS {
        out.write_batches::<SOME_DTS, { 2 * SOME_DTS }>(message, tpdu_size)
    } else {
        out.write_batches::<DTS_PER_WRITE, { 2 * DTS_PER_WRITE }>(message, tpdu_size)
    }
}

struct Out<'a> {
    sock: &'a Socket,
    deadline: &'a Deadline,
    stop: &'a AtomicBool,
    armed: Option<&'a ArmedTimeout>,
}

impl Out<'_> {
    /// Writes the DTs of `message` in batches of up to N, one vectored write each (S = 2N slices:
    /// a header and a payload per DT, framed by `segment::frame_dts`).
    fn write_batches<const N: usize, const S: usize>(
        &self,
        message: &[u8],
        tpdu_size: u32,
    ) -> Result<(), WriteError> {
        const { assert!(S == 2 * N) };
        let total = segment::segment_count(message.len(), tpdu_size);
        let mut sent_before = 0;
        let mut first = 0;
        while first < total {
            let mut headers = [[0u8; DT_OVERHEAD]; N];
            let mut slices = [IoSlice::new(&[]); S];
            let n = segment::frame_dts(message, tpdu_size, first, &mut headers, &mut slices);
            first += N;
            match write_all(
                self.sock,
                &mut slices[..n],
                self.deadline,
                self.stop,
                self.armed,
            ) {
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
}

/// Bytes of whole DT streams waiting for the socket to accept them, in order. Used by
/// non-blocking sends: what the socket does not take at once is kept here and written by later
/// flushes. Its capacity is kept, so a steady flow does not allocate.
#[derive(Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    head: usize,
}

impl OutQueue {
    /// Bytes still to write.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }

    /// Queues the DT stream of `message` minus its first `skip` bytes.
    pub fn push_message(&mut self, message: &[u8], tpdu_size: u32, skip: usize) {
        if self.head > 0 && self.head == self.buf.len() {
            self.clear();
        }
        segment::encode_dts_tail(message, tpdu_size, skip, &mut self.buf);
    }

    /// Writes queued bytes until the queue is empty or the deadline passes. Partial progress is
    /// kept: the stream stays aligned whatever happens, since the rest is written later.
    pub fn flush(
        &mut self,
        sock: &Socket,
        deadline: &Deadline,
        stop: &AtomicBool,
        armed: Option<&ArmedTimeout>,
    ) -> Result<(), WriteError> {
        if self.pending() == 0 {
            return Ok(());
        }
        let result = write_all(
            sock,
            &mut [IoSlice::new(&self.buf[self.head..])],
            deadline,
            stop,
            armed,
        );
        let sent = match &result {
            Ok(n) => *n,
            Err(WriteError::Deadline { sent } | WriteError::Io { sent, .. }) => *sent,
        };
        self.head += sent;
        if self.head == self.buf.len() {
            self.clear();
        } else if self.head >= self.buf.len() / 2 {
            // Keep the unsent tail at the front so the buffer does not grow without end.
            self.buf.drain(..self.head);
            self.head = 0;
        }
        result.map(|_| ())
    }
}
