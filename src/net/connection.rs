//! One ISO-on-TCP connection: configuration, connect (TCP + CR/CC), send, receive, poll, check,
//! disconnect.
//!
//! Locking: `link` (which socket is current) is held only briefly; `rx` and the live socket's
//! `out` (its send queue) are held for a whole receive or send, so one thread may send while
//! another receives. `disconnect` takes the
//! socket out of `link` and shuts it down, which wakes any thread blocked on it; that thread sees
//! its socket is no longer current and returns a state error. The socket itself is closed when the
//! last thread using it lets go, so its descriptor is never reused under anyone's feet.

use std::borrow::Cow;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use socket2::Socket;

use super::deadline::Deadline;
use super::socket::{self, Keepalive};
use super::sys;
use super::trace::Tracer;
use super::transmit::{self, OutQueue, WriteError};
use crate::error::{Error, Result};
use crate::proto::cotp::{self, Tpdu};
use crate::proto::handshake::{self, ConnectAnswer, ConnectRequest, Negotiated};
use crate::proto::segment::{self, Assembled, Limits, Reassembler};
use crate::proto::tpkt::{self, Framer};
use crate::proto::tsap::Tsap;
use crate::proto::ProtoError;

/// Default maximum message size (send and receive).
pub const DEFAULT_MAX_MESSAGE: usize = 65_536;
/// Largest settable maximum message size.
pub const MAX_MAX_MESSAGE: usize = 16 << 20;
/// Smallest settable maximum message size.
pub const MIN_MAX_MESSAGE: usize = 128;
/// Default limit on bytes held by non-blocking sends beyond the first queued message.
pub const DEFAULT_MAX_QUEUED: usize = 256 << 10;
/// Largest settable send-queue limit.
pub const MAX_MAX_QUEUED: usize = 256 << 20;
/// Default limit on DTs per received message.
pub const DEFAULT_MAX_FRAGMENTS: u32 = 4096;
/// Room offered to each socket read beyond what the packet in progress needs.
const READ_CHUNK: usize = 4096;
/// The same while a segmented message is arriving: its DTs follow each other, and larger reads
/// mean fewer system calls (a 64 KiB message in about 4 reads instead of 16). Only connections
/// that receive segmented messages grow their buffer to this.
const READ_CHUNK_SEGMENTED: usize = 16 << 10;

/// Everything set before connecting. Defaults match python-snap7's ISOTCPConnection.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub calling: Tsap,
    pub called: Tsap,
    pub tpdu_size: u32,
    /// Parameters appended to the CR after C0 (python-snap7 routing).
    pub extra_params: Vec<(u8, Vec<u8>)>,
    pub send_timeout_ms: u32,
    pub max_message: usize,
    pub max_fragments: u32,
    /// Non-blocking sends queue at most this many bytes (a message is always accepted when
    /// nothing is queued).
    pub max_queued: usize,
    pub keepalive: Keepalive,
}

impl Config {
    pub fn new(host: &str, port: u16) -> Result<Config> {
        socket::validate_host(host)?;
        Ok(Config {
            host: host.to_owned(),
            port,
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: 1024,
            extra_params: Vec::new(),
            send_timeout_ms: 5000,
            max_message: DEFAULT_MAX_MESSAGE,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            max_queued: DEFAULT_MAX_QUEUED,
            keepalive: Keepalive::default(),
        })
    }

    /// The CR this configuration sends (fails if it would exceed 128 bytes).
    pub fn connect_request(&self) -> ConnectRequest {
        ConnectRequest {
            calling: self.calling.clone(),
            called: self.called.clone(),
            tpdu_size: self.tpdu_size,
            extra: self.extra_params.clone(),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_message: self.max_message,
            max_fragments: self.max_fragments,
        }
    }

    /// Longest TPKT we accept: a whole message in one DT, but never less than a CC can need.
    pub(crate) fn max_packet(&self) -> usize {
        (self.max_message + segment::DT_OVERHEAD).clamp(256, tpkt::MAX_PACKET)
    }
}

/// A connected socket and what was negotiated on it.
struct Live {
    sock: Socket,
    handle: i64,
    negotiated: Negotiated,
    limits: Limits,
    send_timeout_ms: u32,
    max_queued: usize,
    /// Bytes of DTs the socket has not taken yet; also the send lock: writers hold it for a
    /// whole message, so DTs of two messages never interleave.
    out: Mutex<OutQueue>,
    /// SO_SNDTIMEO as set on `sock` (used under `out`).
    send_armed: sys::ArmedTimeout,
    /// Set by `disconnect` (wakes sliced waits on platforms where shutdown does not).
    stop: AtomicBool,
    /// Why the peer ended the connection (EOF, reset, DR, ER), once it has.
    peer_ended: Mutex<Option<String>>,
}

impl Live {
    fn new(sock: Socket, negotiated: Negotiated, cfg: &Config) -> Live {
        Live {
            handle: sys::raw_handle(&sock),
            sock,
            negotiated,
            limits: cfg.limits(),
            send_timeout_ms: cfg.send_timeout_ms,
            max_queued: cfg.max_queued,
            out: Mutex::new(OutQueue::default()),
            send_armed: sys::ArmedTimeout::default(),
            stop: AtomicBool::new(false),
            peer_ended: Mutex::new(None),
        }
    }

    fn peer_ended(&self) -> Option<String> {
        self.peer_ended.lock().clone()
    }

    fn set_peer_ended(&self, why: String) {
        self.peer_ended.lock().get_or_insert(why);
    }
}

/// Lets `disconnect` end a connect in progress: it sets `stop` and shuts down the socket waiting
/// for the CC, which wakes the connecting thread.
#[derive(Default)]
struct ConnectAbort {
    stop: AtomicBool,
    /// The socket of the CR/CC exchange while it runs (registered and cleared by the connecting
    /// thread under this lock, so it is never shut down after being closed).
    sock: Mutex<Option<i64>>,
}

impl ConnectAbort {
    fn abort(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = *self.sock.lock() {
            sys::shutdown_raw(handle);
        }
    }

    fn aborted(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn error() -> Error {
        Error::State("the connect was ended by iso_disconnect from another thread".into())
    }
}

/// Keeps a socket registered with a `ConnectAbort` until dropped.
struct AbortWatch<'a>(&'a ConnectAbort);

impl<'a> AbortWatch<'a> {
    fn new(abort: &'a ConnectAbort, sock: &Socket) -> Self {
        *abort.sock.lock() = Some(sys::raw_handle(sock));
        AbortWatch(abort)
    }
}

impl Drop for AbortWatch<'_> {
    fn drop(&mut self) {
        *self.0.sock.lock() = None;
    }
}

#[derive(Default)]
struct Link {
    live: Option<Arc<Live>>,
    /// Set while a connect runs.
    connecting: Option<Arc<ConnectAbort>>,
    /// Why the last connection was closed by us (protocol error, limit), for later state errors.
    ended: Option<String>,
}

struct Rx {
    framer: Framer,
    reasm: Reassembler,
    armed: sys::ArmedTimeout,
}

/// Progress of the receive side over what is buffered.
enum Step {
    /// A whole message is ready: in the reassembler, or as the single DT at the framer's head.
    Ready,
    NeedBytes,
    /// The peer sent DR or ER.
    PeerEnded(String),
    /// A whole message of this length was assembled in the caller's buffer (`Direct`).
    Delivered(usize),
}

/// A segmented message assembled straight into the caller's buffer by `recv`, which saves
/// copying it through the reassembler. It never outlives the call: on an early return the part
/// received moves into the reassembler.
struct Direct<'a> {
    buf: &'a mut [u8],
    filled: usize,
    fragments: u32,
}

/// What one read from the socket brought.
enum Fill {
    Data,
    Eof,
    Reset(io::Error),
}

pub struct Connection {
    config: Mutex<Config>,
    link: Mutex<Link>,
    rx: Mutex<Rx>,
    /// Accepted by a listener: it cannot connect again.
    passive: bool,
    /// Frame tracing (off unless asked for).
    pub trace: Tracer,
}

impl Connection {
    pub fn new(config: Config) -> Connection {
        let rx = Rx {
            framer: Framer::new(config.max_packet(), READ_CHUNK),
            reasm: Reassembler::new(config.limits()),
            armed: sys::ArmedTimeout::default(),
        };
        Connection {
            config: Mutex::new(config),
            link: Mutex::new(Link::default()),
            rx: Mutex::new(rx),
            passive: false,
            trace: Tracer::default(),
        }
    }

    /// A connection whose CR a listener accepted and confirmed. `framer` holds whatever the
    /// client sent after its CR; it becomes the first bytes received.
    pub(crate) fn accepted(
        config: Config,
        sock: Socket,
        negotiated: Negotiated,
        mut framer: Framer,
    ) -> Connection {
        framer.set_max_packet(config.max_packet());
        framer.set_read_chunk(READ_CHUNK);
        // A failure here shows on the first receive or send, where it can be reported.
        let _ = sys::enter_transfer_mode(&sock);
        let live = Live::new(sock, negotiated, &config);
        let mut conn = Connection::new(config);
        conn.rx.get_mut().framer = framer;
        conn.link.get_mut().live = Some(Arc::new(live));
        conn.passive = true;
        conn
    }

    /// Changes the configuration; refused while connected or connecting.
    pub fn configure<T>(&self, f: impl FnOnce(&mut Config) -> Result<T>) -> Result<T> {
        let link = self.link.lock();
        if link.live.is_some() || link.connecting.is_some() {
            return Err(Error::State(
                "settings cannot change while connected: call iso_disconnect first".into(),
            ));
        }
        let mut cfg = self.config.lock();
        let mut new = cfg.clone();
        let out = f(&mut new)?;
        new.connect_request()
            .encode()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        *cfg = new;
        Ok(out)
    }

    pub fn config(&self) -> Config {
        self.config.lock().clone()
    }

    /// Resolves, connects TCP and completes the CR/CC exchange, all within one deadline.
    pub fn connect(&self, timeout_ms: u32) -> Result<()> {
        let deadline = Deadline::after_ms(timeout_ms);
        if self.passive {
            return Err(Error::State(
                "an accepted connection cannot connect: accept a new one".into(),
            ));
        }
        let cfg = {
            let mut link = self.link.lock();
            if link.live.is_some() {
                return Err(Error::State(
                    "already connected: call iso_disconnect first".into(),
                ));
            }
            if link.connecting.is_some() {
                return Err(Error::State(
                    "a connect is already in progress on this handle".into(),
                ));
            }
            let abort = Arc::new(ConnectAbort::default());
            link.connecting = Some(abort.clone());
            (self.config.lock().clone(), abort)
        };
        let (cfg, abort) = cfg;
        let result = self.open(&cfg, &deadline, &abort);
        let mut link = self.link.lock();
        link.connecting = None;
        if abort.aborted() {
            return Err(ConnectAbort::error());
        }
        let live = result?;
        link.live = Some(Arc::new(live));
        link.ended = None;
        Ok(())
    }

    fn open(&self, cfg: &Config, deadline: &Deadline, abort: &ConnectAbort) -> Result<Live> {
        let req = cfg.connect_request();
        let cr = req.encode()?;
        let addrs = socket::resolve(&cfg.host, cfg.port, deadline)?;
        let sock = socket::connect_any(&addrs, deadline, &cfg.keepalive)?;
        let _watch = AbortWatch::new(abort, &sock);
        if abort.aborted() {
            return Err(ConnectAbort::error());
        }
        sys::enter_transfer_mode(&sock).map_err(|e| Error::io("socket mode", e))?;
        if self.trace.is_on() {
            self.trace.set_endpoints(endpoints(&sock));
        }
        let during = |what: &str| {
            format!("{what} during COTP connect (after the CR): check the TSAPs (local {}, remote {}), rack and slot", cfg.calling, cfg.called)
        };
        match transmit::write_all(&sock, &mut [IoSlice::new(&cr)], deadline, &abort.stop, None) {
            Ok(_) if self.trace.is_on() => self.trace.frame(true, &cr),
            Ok(_) => {}
            Err(_) if abort.aborted() => return Err(ConnectAbort::error()),
            Err(WriteError::Deadline { .. }) => return Err(deadline.ran_out("sending the COTP CR")),
            Err(WriteError::Io { error, .. }) if sys::is_reset(&error) => {
                return Err(Error::Closed(during("connection reset by peer")))
            }
            Err(WriteError::Io { error, .. }) => {
                return Err(Error::io("sending the COTP CR", error))
            }
        }
        // The answer is read through the connection's own framer so that anything the peer sends
        // right after its CC stays buffered for the first receive.
        let mut rx = self.rx.lock();
        rx.framer.clear();
        rx.armed.reset();
        // A CC may carry long TSAPs whatever the message limit; only the TPKT maximum bounds it.
        rx.framer.set_max_packet(tpkt::MAX_PACKET);
        rx.reasm.clear();
        rx.reasm.set_limits(cfg.limits());
        let answer = loop {
            if let Some(tpdu) = rx.framer.peek_packet()? {
                let answer = handshake::check_answer(&req, tpdu)?;
                consume(&mut rx.framer, &self.trace);
                rx.framer.set_max_packet(cfg.max_packet());
                break answer;
            }
            let Rx { framer, armed, .. } = &mut *rx;
            match fill(
                &sock,
                framer,
                armed,
                deadline,
                &abort.stop,
                "waiting for the COTP CC",
            )? {
                _ if abort.aborted() => return Err(ConnectAbort::error()),
                Fill::Data => {}
                Fill::Eof => return Err(Error::Closed(during("connection closed by peer"))),
                Fill::Reset(_) => return Err(Error::Closed(during("connection reset by peer"))),
            }
        };
        let negotiated = match answer {
            ConnectAnswer::Confirmed(n) => n,
            ConnectAnswer::Refused { reason } => {
                return Err(Error::Rejected(format!(
                    "COTP connection refused by peer with DR, reason 0x{reason:02X} ({})",
                    cotp::dr_reason_text(reason)
                )))
            }
            ConnectAnswer::Rejected { cause } => {
                return Err(Error::Rejected(format!(
                    "COTP connection request rejected by peer with ER, cause {cause} ({})",
                    cotp::er_cause_text(cause)
                )))
            }
        };
        Ok(Live::new(sock, negotiated, cfg))
    }

    fn live(&self) -> Result<Arc<Live>> {
        let link = self.link.lock();
        match (&link.live, &link.ended) {
            (Some(l), _) => Ok(l.clone()),
            (None, Some(why)) => Err(Error::State(format!(
                "not connected (the connection was closed after: {why})"
            ))),
            (None, None) => Err(Error::State("not connected: call iso_connect first".into())),
        }
    }

    fn is_current(&self, live: &Arc<Live>) -> bool {
        self.link
            .lock()
            .live
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, live))
    }

    /// Closes the connection because of `err` (protocol error, limit, broken stream); later calls
    /// get a state error naming it.
    fn fail(&self, live: &Arc<Live>, err: Error) -> Error {
        let mut link = self.link.lock();
        if link.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, live)) {
            link.live = None;
            link.ended = Some(err.to_string());
            let _ = live.sock.shutdown(Shutdown::Both);
        }
        err
    }

    fn disconnected_meanwhile() -> Error {
        Error::State("the connection was closed by iso_disconnect while this call waited".into())
    }

    /// Checks a message before it is sent or queued; returns the live socket.
    fn sendable(&self, message: &[u8]) -> Result<Arc<Live>> {
        if message.is_empty() {
            return Err(Error::Invalid(
                "empty message: there is nothing to send".into(),
            ));
        }
        let live = self.live()?;
        if message.len() > live.limits.max_message {
            return Err(Error::TooLarge(format!(
                "message of {} bytes is above the maximum message size of {}",
                message.len(),
                live.limits.max_message
            )));
        }
        if let Some(why) = live.peer_ended() {
            return Err(Error::Closed(why));
        }
        Ok(live)
    }

    /// The error for a write that failed on the socket (not by its deadline).
    fn write_failed(&self, live: &Arc<Live>, error: io::Error, what: &str) -> Error {
        if !self.is_current(live) {
            return Self::disconnected_meanwhile();
        }
        if sys::is_reset(&error) {
            let why = format!("connection closed by peer ({error})");
            live.set_peer_ended(why.clone());
            return Error::Closed(why);
        }
        self.fail(live, Error::io(what, error))
    }

    /// Sends one whole message, segmented into DTs of the negotiated size, after anything queued
    /// by `queue_send`, within the send timeout.
    pub fn send(&self, message: &[u8]) -> Result<()> {
        let live = self.sendable(message)?;
        self.send_on(&live, message)?;
        self.trace_sent(&live, message);
        Ok(())
    }

    fn trace_sent(&self, live: &Live, message: &[u8]) {
        if self.trace.is_on() {
            self.trace.message(message, live.negotiated.tpdu_size);
        }
    }

    fn send_on(&self, live: &Arc<Live>, message: &[u8]) -> Result<()> {
        let mut out = live.out.lock();
        let deadline = Deadline::after_ms(live.send_timeout_ms);
        match out.flush(&live.sock, &deadline, &live.stop, Some(&live.send_armed)) {
            Ok(()) => {}
            Err(_) if !self.is_current(live) => return Err(Self::disconnected_meanwhile()),
            Err(WriteError::Deadline { .. }) => {
                return Err(deadline.ran_out(
                    "send: earlier queued messages did not go out in time; this one was not sent",
                ))
            }
            Err(WriteError::Io { error, .. }) => return Err(self.write_failed(live, error, "send")),
        }
        match transmit::write_message(
            &live.sock,
            message,
            live.negotiated.tpdu_size,
            &deadline,
            &live.stop,
            Some(&live.send_armed),
        ) {
            Ok(()) => Ok(()),
            Err(_) if !self.is_current(live) => Err(Self::disconnected_meanwhile()),
            Err(WriteError::Deadline { sent: 0 }) => Err(deadline.ran_out("send")),
            Err(WriteError::Deadline { sent }) => {
                let err = Error::Timeout(Cow::Owned(format!(
                    "send stopped after {sent} of the message's bytes; the connection was closed because the stream is no longer aligned"
                )));
                Err(self.fail(live, err))
            }
            Err(WriteError::Io { error, .. }) => Err(self.write_failed(live, error, "send")),
        }
    }

    /// Sends one whole message without blocking: what the socket does not take at once is
    /// queued and written by later `flush`, `queue_send` or `send` calls. Refused with
    /// WouldBlock (nothing queued) when the queue already holds bytes and this message would
    /// take it past its limit.
    pub fn queue_send(&self, message: &[u8]) -> Result<()> {
        let live = self.sendable(message)?;
        self.queue_send_on(&live, message)?;
        self.trace_sent(&live, message);
        Ok(())
    }

    fn queue_send_on(&self, live: &Arc<Live>, message: &[u8]) -> Result<()> {
        let mut out = live.out.lock();
        let now = Deadline::after_ms(0);
        let tpdu = live.negotiated.tpdu_size;
        match out.flush(&live.sock, &now, &live.stop, None) {
            Ok(()) | Err(WriteError::Deadline { .. }) => {}
            Err(WriteError::Io { error, .. }) => {
                return Err(self.write_failed(live, error, "queued send"))
            }
        }
        if out.pending() > 0 {
            let encoded =
                message.len() + segment::segment_count(message.len(), tpdu) * segment::DT_OVERHEAD;
            if out.pending() + encoded > live.max_queued {
                return Err(Error::WouldBlock(Cow::Owned(format!(
                    "send queue holds {} bytes and this message needs {encoded} more, above the limit of {}: wait until the socket is writable and call iso_flush",
                    out.pending(),
                    live.max_queued
                ))));
            }
            out.push_message(message, tpdu, 0);
            return Ok(());
        }
        match transmit::write_message(&live.sock, message, tpdu, &now, &live.stop, None) {
            Ok(()) => Ok(()),
            Err(WriteError::Deadline { sent }) => {
                out.push_message(message, tpdu, sent);
                Ok(())
            }
            Err(WriteError::Io { error, .. }) => Err(self.write_failed(live, error, "queued send")),
        }
    }

    /// Writes queued bytes within the deadline. Ok when nothing remains queued.
    pub fn flush(&self, deadline: &Deadline) -> Result<()> {
        let live = self.live()?;
        let mut out = live.out.lock();
        match out.flush(&live.sock, deadline, &live.stop, Some(&live.send_armed)) {
            Ok(()) => Ok(()),
            Err(_) if !self.is_current(&live) => Err(Self::disconnected_meanwhile()),
            Err(WriteError::Deadline { .. }) => {
                Err(deadline
                    .ran_out("flush: bytes remain queued (iso_get_send_pending counts them)"))
            }
            Err(WriteError::Io { error, .. }) => Err(self.write_failed(&live, error, "flush")),
        }
    }

    /// Bytes queued by `queue_send` that the socket has not taken yet (0 when not connected).
    pub fn send_pending(&self) -> usize {
        match self.live() {
            Ok(live) => live.out.lock().pending(),
            Err(_) => 0,
        }
    }

    /// Receives one whole message into `buf`; returns its length.
    pub fn recv(&self, buf: &mut [u8], deadline: &Deadline) -> Result<usize> {
        let live = self.live()?;
        let mut rx = self.rx.lock();
        let mut direct = Direct {
            buf,
            filled: 0,
            fragments: 0,
        };
        let result = self.wait_message(&live, &mut rx, deadline, "receive", Some(&mut direct));
        if direct.fragments > 0 {
            // Ending early (timeout, error) with part of a message in the caller's buffer: it
            // moves to the reassembler, where the next call continues it.
            rx.reasm
                .adopt(&direct.buf[..direct.filled], direct.fragments);
        }
        match result? {
            Some(n) => Ok(n),
            None => deliver(&mut rx, direct.buf, &self.trace),
        }
    }

    /// True when a whole message is ready, so `recv` returns it at once.
    pub fn poll(&self, deadline: &Deadline) -> Result<bool> {
        let live = self.live()?;
        let mut rx = self.rx.lock();
        match self.wait_message(&live, &mut rx, deadline, "poll", None) {
            Ok(_) => Ok(true),
            Err(Error::Timeout(_) | Error::WouldBlock(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn wait_message(
        &self,
        live: &Arc<Live>,
        rx: &mut Rx,
        deadline: &Deadline,
        what: &'static str,
        mut direct: Option<&mut Direct<'_>>,
    ) -> Result<Option<usize>> {
        loop {
            match advance(rx, &live.limits, &self.trace, direct.as_deref_mut()) {
                Ok(Step::Ready) => return Ok(None),
                Ok(Step::Delivered(n)) => return Ok(Some(n)),
                Ok(Step::NeedBytes) => {}
                Ok(Step::PeerEnded(why)) => {
                    // DR/ER ends the transport connection: release TCP too, so the peer is not
                    // left holding it until the caller disconnects. What is buffered stays readable.
                    live.set_peer_ended(why);
                    let _ = live.sock.shutdown(Shutdown::Both);
                }
                Err(e) => return Err(self.fail(live, e.into())),
            }
            if let Some(why) = live.peer_ended() {
                return Err(Error::Closed(why));
            }
            let Rx {
                framer,
                armed,
                reasm,
            } = &mut *rx;
            let partial = reasm.in_progress() || direct.as_ref().is_some_and(|d| d.fragments > 0);
            framer.set_read_chunk(if partial {
                READ_CHUNK_SEGMENTED
            } else {
                READ_CHUNK
            });
            let filled = fill(&live.sock, framer, armed, deadline, &live.stop, what);
            if !self.is_current(live) {
                return Err(Self::disconnected_meanwhile());
            }
            match filled {
                Ok(Fill::Data) => {}
                Ok(Fill::Eof) => {
                    live.set_peer_ended(closed_why(rx, partial, "connection closed by peer".into()))
                }
                Ok(Fill::Reset(e)) => live.set_peer_ended(closed_why(
                    rx,
                    partial,
                    format!("connection reset by peer ({e})"),
                )),
                Err(e @ (Error::Timeout(_) | Error::WouldBlock(_))) => return Err(e),
                Err(e) => return Err(self.fail(live, e)),
            }
        }
    }

    /// 1: the connection can carry a new request; 0: not connected, or the peer has closed or
    /// reset it (even if messages remain buffered). Never blocks, consumes nothing.
    pub fn is_alive(&self) -> bool {
        let Ok(live) = self.live() else { return false };
        if live.peer_ended().is_some() {
            return false;
        }
        !sys::peer_hung_up(&live.sock).unwrap_or(true)
    }

    /// Closes the connection (if any) and wakes threads blocked on it. The handle may connect again.
    pub fn disconnect(&self) {
        let live = {
            let mut link = self.link.lock();
            link.ended = None;
            if let Some(abort) = &link.connecting {
                abort.abort();
            }
            link.live.take()
        };
        if let Some(live) = live {
            live.stop.store(true, Ordering::Release);
            let _ = live.sock.shutdown(Shutdown::Both);
        }
    }

    /// Starts (or with None stops) writing traced frames to a capture file.
    pub fn set_trace_file(&self, path: Option<&std::path::Path>) -> Result<()> {
        self.trace.set_file(path)?;
        if let Ok(live) = self.live() {
            self.trace.set_endpoints(endpoints(&live.sock));
        }
        Ok(())
    }

    pub fn negotiated(&self) -> Result<Negotiated> {
        Ok(self.live()?.negotiated.clone())
    }

    pub fn tpdu_size(&self) -> Result<u32> {
        Ok(self.live()?.negotiated.tpdu_size)
    }

    pub fn raw_handle(&self) -> Result<i64> {
        Ok(self.live()?.handle)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn closed_why(rx: &Rx, partial_message: bool, base: String) -> String {
    if rx.framer.mid_packet() {
        format!("{base} in the middle of a TPKT packet; the partial packet was discarded")
    } else if partial_message {
        format!("{base} after a DT without EOT; the partial message was discarded")
    } else {
        base
    }
}

/// Reads what the socket has into the framer, waiting within the deadline.
fn fill(
    sock: &Socket,
    framer: &mut Framer,
    armed: &sys::ArmedTimeout,
    deadline: &Deadline,
    stop: &AtomicBool,
    what: &'static str,
) -> Result<Fill> {
    let spare = framer.spare();
    assert!(
        !spare.is_empty(),
        "framer offered no room: a whole packet was left unprocessed"
    );
    match sys::recv(sock, spare, deadline, stop, armed) {
        Ok(Some(0)) => Ok(Fill::Eof),
        Ok(Some(n)) => {
            framer.commit(n);
            Ok(Fill::Data)
        }
        Ok(None) => Err(deadline.ran_out(what)),
        Err(e) if sys::is_reset(&e) => Ok(Fill::Reset(e)),
        Err(e) => Err(Error::io(what, e)),
    }
}

/// Processes buffered packets until a whole message is ready or more bytes are needed.
///
/// A message that arrives as one DT with EOT is left in the framer (no copy); fragments are
/// copied into the reassembler.
fn advance(
    rx: &mut Rx,
    limits: &Limits,
    trace: &Tracer,
    mut direct: Option<&mut Direct<'_>>,
) -> Result<Step, ProtoError> {
    let Rx { framer, reasm, .. } = rx;
    loop {
        if reasm.message().is_some() {
            return Ok(Step::Ready);
        }
        let Some(tpdu) = framer.peek_packet()? else {
            return Ok(Step::NeedBytes);
        };
        match cotp::decode(tpdu)? {
            Tpdu::Dt { eot: true, payload }
                if !reasm.in_progress()
                    && !payload.is_empty()
                    && direct.as_ref().map_or(true, |d| d.fragments == 0) =>
            {
                if payload.len() > limits.max_message {
                    return Err(ProtoError::MessageTooLarge {
                        len: payload.len(),
                        max: limits.max_message,
                    });
                }
                return Ok(Step::Ready);
            }
            Tpdu::Dt { eot, payload } => {
                if let Some(d) = direct.as_deref_mut() {
                    let first = d.fragments == 0 && !reasm.in_progress() && !payload.is_empty();
                    if d.fragments > 0 || first {
                        let total = d.filled + payload.len();
                        limits.check(total, d.fragments + 1)?;
                        if total <= d.buf.len() {
                            d.buf[d.filled..total].copy_from_slice(payload);
                            d.filled = total;
                            d.fragments += 1;
                            consume(framer, trace);
                            if eot {
                                let n = std::mem::take(&mut d.filled);
                                d.fragments = 0;
                                return Ok(Step::Delivered(n));
                            }
                            continue;
                        }
                        // Larger than the caller's buffer: it is assembled in the reassembler
                        // (and reported as too large for the buffer when complete).
                        reasm.adopt(&d.buf[..d.filled], d.fragments);
                        d.filled = 0;
                        d.fragments = 0;
                    }
                }
                let _: Assembled = reasm.push(eot, payload)?;
            }
            Tpdu::Dr { reason, .. } => {
                consume(framer, trace);
                return Ok(Step::PeerEnded(format!(
                    "peer ended the connection with DR, reason 0x{reason:02X} ({})",
                    cotp::dr_reason_text(reason)
                )));
            }
            Tpdu::Er { cause, .. } => {
                consume(framer, trace);
                return Ok(Step::PeerEnded(format!(
                    "peer ended the connection with ER, cause {cause} ({})",
                    cotp::er_cause_text(cause)
                )));
            }
            Tpdu::Cr(_) => return Err(ProtoError::UnexpectedInTransfer("CR")),
            Tpdu::Cc(_) => return Err(ProtoError::UnexpectedInTransfer("CC")),
        }
        consume(framer, trace);
    }
}

/// Drops the packet at the framer's head, tracing it first when tracing is on.
fn consume(framer: &mut Framer, trace: &Tracer) {
    if trace.is_on() {
        if let Some(raw) = framer.peek_raw() {
            trace.frame(false, raw);
        }
    }
    framer.consume();
}

fn endpoints(sock: &Socket) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    let local = sock.local_addr().ok()?.as_socket()?;
    let peer = sock.peer_addr().ok()?.as_socket()?;
    Some((local, peer))
}

/// Copies the ready message into `buf`. Too small: the message stays queued.
fn deliver(rx: &mut Rx, buf: &mut [u8], trace: &Tracer) -> Result<usize> {
    if let Some(msg) = rx.reasm.message() {
        let n = copy_out(msg, buf)?;
        rx.reasm.take();
        return Ok(n);
    }
    let tpdu = rx
        .framer
        .peek_packet()?
        .expect("deliver is called only when a message is ready");
    let n = copy_out(&tpdu[3..], buf)?;
    consume(&mut rx.framer, trace);
    Ok(n)
}

fn copy_out(msg: &[u8], buf: &mut [u8]) -> Result<usize> {
    if msg.len() > buf.len() {
        return Err(Error::BufferTooSmall {
            needed: msg.len(),
            cap: buf.len(),
        });
    }
    buf[..msg.len()].copy_from_slice(msg);
    Ok(msg.len())
}
