//! Frame tracing, off by default: every TPKT packet sent or received on a connection, whole and
//! as on the wire, to a callback and/or a capture file (`pcap`). When off, the cost is one
//! relaxed atomic load per message sent and per packet received.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::pcap::PcapWriter;
use crate::error::{Error, Result};
use crate::proto::segment;

/// Receives each traced frame: `sent` is true for frames we sent.
pub type TraceFn = Box<dyn FnMut(bool, &[u8]) + Send>;

#[derive(Default)]
pub struct Tracer {
    on: AtomicBool,
    sinks: Mutex<Sinks>,
}

#[derive(Default)]
struct Sinks {
    callback: Option<TraceFn>,
    file: Option<PcapWriter>,
    /// Kept so a file opened while connected starts with the right addresses.
    ends: Option<(SocketAddr, SocketAddr)>,
}

impl Tracer {
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn set_callback(&self, callback: Option<TraceFn>) {
        let mut s = self.sinks.lock();
        s.callback = callback;
        self.on
            .store(s.callback.is_some() || s.file.is_some(), Ordering::Relaxed);
    }

    /// Starts writing a capture file at `path` (replacing any earlier one), or stops with None.
    pub fn set_file(&self, path: Option<&Path>) -> Result<()> {
        let mut s = self.sinks.lock();
        s.file = match path {
            None => None,
            Some(p) => {
                let mut w = PcapWriter::create(p)
                    .map_err(|e| Error::io(format!("creating trace file {}", p.display()), e))?;
                if let Some((local, peer)) = s.ends {
                    w.set_endpoints(local, peer);
                }
                Some(w)
            }
        };
        self.on
            .store(s.callback.is_some() || s.file.is_some(), Ordering::Relaxed);
        Ok(())
    }

    /// The addresses of a new connection, for the capture file.
    pub fn set_endpoints(&self, ends: Option<(SocketAddr, SocketAddr)>) {
        let mut s = self.sinks.lock();
        s.ends = ends;
        if let (Some(f), Some((local, peer))) = (s.file.as_mut(), ends) {
            f.set_endpoints(local, peer);
        }
    }

    /// Traces one whole TPKT packet.
    pub fn frame(&self, sent: bool, frame: &[u8]) {
        let mut s = self.sinks.lock();
        if let Some(cb) = s.callback.as_mut() {
            cb(sent, frame);
        }
        if let Some(f) = s.file.as_mut() {
            // A full disk must not break the connection being traced: stop tracing to the file.
            if f.write(sent, frame).is_err() {
                s.file = None;
                self.on.store(s.callback.is_some(), Ordering::Relaxed);
            }
        }
    }

    /// Traces the DTs a message is sent as.
    pub fn message(&self, message: &[u8], tpdu_size: u32) {
        let per = segment::payload_per_dt(tpdu_size);
        let mut frame = Vec::with_capacity(per + segment::DT_OVERHEAD);
        for (header, chunk) in segment::segments(message, tpdu_size) {
            frame.clear();
            frame.extend_from_slice(&header);
            frame.extend_from_slice(chunk);
            self.frame(true, &frame);
        }
    }
}
