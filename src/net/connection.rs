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
use std::time::Duration;

use parking_lot::Mutex;
use socket2::Socket;

use super::deadline::Deadline;
use super::settings::Config;
use super::socket;
use super::sys;
use super::trace::{TraceFn, Tracer};
use super::transmit::{self, OutQueue, WriteError};
use crate::error::{ConnectPhase, Error, Limit, PeerClose, Result, StateKind};
use crate::proto::cotp;
use crate::proto::handshake::{ConnectAnswer, ConnectRequest, Negotiated, OUR_SRC_REF};
use crate::proto::segment::{self, Destination, Limits};
use crate::proto::tpkt::Framer;
use crate::proto::transfer::{PeerEnd, Progress, Receiver, Tap};

/// DR reason "normal disconnect initiated by session entity" (docs/PROTOCOL.md §3.9).
const DR_NORMAL: u8 = 0x80;

/// A connected socket and what was negotiated on it.
struct Live {
    sock: Socket,
    handle: i64,
    negotiated: Negotiated,
    limits: Limits,
    /// The bound on unacknowledged data on `sock` (None: the system's), for error messages.
    user_timeout: Option<Duration>,
    send_timeout: Duration,
    max_queued: usize,
    /// Bytes of DTs the socket has not taken yet; also the send lock: writers hold it for a
    /// whole message, so DTs of two messages never interleave.
    out: Mutex<OutQueue>,
    /// SO_SNDTIMEO as set on `sock` (used under `out`).
    send_armed: sys::ArmedTimeout,
    /// Set by `disconnect` (wakes sliced waits on platforms where shutdown does not).
    stop: AtomicBool,
    /// How and why the peer ended the connection (EOF, reset, DR, ER), once it has.
    peer_ended: Mutex<Option<(PeerClose, String)>>,
}

impl Live {
    fn new(sock: Socket, negotiated: Negotiated, cfg: &Config) -> Live {
        Live {
            handle: sys::raw_handle(&sock),
            sock,
            negotiated,
            limits: cfg.transfer().limits(),
            user_timeout: cfg.transfer().effective_user_timeout(),
            send_timeout: cfg.transfer().send_timeout(),
            max_queued: cfg.transfer().max_queued(),
            out: Mutex::new(OutQueue::default()),
            send_armed: sys::ArmedTimeout::default(),
            stop: AtomicBool::new(false),
            peer_ended: Mutex::new(None),
        }
    }

    /// The error every later call gets once the peer has ended the connection.
    fn peer_ended(&self) -> Option<Error> {
        let ended = self.peer_ended.lock();
        let (by, message) = ended.as_ref()?;
        Some(Error::Closed {
            by: *by,
            message: message.clone(),
        })
    }

    fn set_peer_ended(&self, by: PeerClose, why: String) {
        self.peer_ended.lock().get_or_insert((by, why));
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
        Error::state(
            StateKind::Interrupted,
            "the connect was ended by a disconnect from another thread",
        )
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

/// The receive side: the protocol's receiver and the socket's receive-timeout cache.
struct Rx {
    receiver: Receiver,
    armed: sys::ArmedTimeout,
}

/// What one read from the socket brought.
enum Fill {
    Data,
    Eof,
    Reset(io::Error),
}

/// One ISO-on-TCP connection, either one that connects ([`Connection::new`] then
/// [`Connection::connect`]) or one a [`Listener`](super::Listener) accepted.
///
/// Every method takes `&self` and may be called from any thread: one thread may send while
/// another receives, and [`Connection::disconnect`] from any thread wakes a call blocked on
/// the connection, which then fails with [`StateKind::Interrupted`].
pub struct Connection {
    config: Mutex<Config>,
    link: Mutex<Link>,
    rx: Mutex<Rx>,
    /// Accepted by a listener: it cannot connect again.
    passive: bool,
    /// How far the last connect got when it failed (None: it succeeded, or none ran).
    failed_phase: Mutex<Option<ConnectPhase>>,
    /// Frame tracing (off unless asked for).
    trace: Tracer,
}

impl Connection {
    /// A connection with these settings, not connected yet. No network I/O happens here.
    pub fn new(config: Config) -> Connection {
        let rx = Rx {
            receiver: Receiver::new(config.transfer().limits()),
            armed: sys::ArmedTimeout::default(),
        };
        Connection {
            config: Mutex::new(config),
            link: Mutex::new(Link::default()),
            rx: Mutex::new(rx),
            passive: false,
            failed_phase: Mutex::new(None),
            trace: Tracer::default(),
        }
    }

    /// A connection whose CR a listener accepted and confirmed. `framer` holds whatever the
    /// client sent after its CR; it becomes the first bytes received.
    pub(crate) fn accepted(
        config: Config,
        sock: Socket,
        negotiated: Negotiated,
        framer: Framer,
    ) -> Connection {
        // A failure here shows on the first receive or send, where it can be reported.
        let _ = sys::enter_transfer_mode(&sock);
        let live = Live::new(sock, negotiated, &config);
        let config_limits = config.transfer().limits();
        let mut conn = Connection::new(config);
        conn.rx.get_mut().receiver = Receiver::after_handshake(framer, config_limits);
        conn.link.get_mut().live = Some(Arc::new(live));
        conn.passive = true;
        conn
    }

    /// Changes the settings: `f` gets a copy, which is kept only when `f` succeeds (the
    /// setters of [`Config`] check each value). Refused while connected or connecting.
    pub fn configure<T>(&self, f: impl FnOnce(&mut Config) -> Result<T>) -> Result<T> {
        let link = self.link.lock();
        if link.live.is_some() || link.connecting.is_some() {
            return Err(Error::state(
                StateKind::SettingsLocked,
                "settings cannot change while connected or connecting: disconnect first",
            ));
        }
        let mut cfg = self.config.lock();
        let mut new = cfg.clone();
        let out = f(&mut new)?;
        *cfg = new;
        Ok(out)
    }

    /// The phase in which the last connect failed: resolving the name, the TCP connect (the
    /// PLC is unreachable: no address answered), or the COTP exchange (the PLC took TCP but
    /// refused or did not confirm the CR). None after a successful connect or before any.
    pub fn last_connect_phase(&self) -> Option<ConnectPhase> {
        *self.failed_phase.lock()
    }

    /// True on a connection a listener accepted (the server side).
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// A copy of the current settings.
    pub fn config(&self) -> Config {
        self.config.lock().clone()
    }

    /// Resolves the host, connects TCP and completes the CR/CC exchange, all within one
    /// `timeout`. Zero fails with [`Error::WouldBlock`] unless everything completes at once.
    pub fn connect(&self, timeout: Duration) -> Result<()> {
        let deadline = Deadline::after(timeout);
        if self.passive {
            return Err(Error::state(
                StateKind::Passive,
                "an accepted connection cannot connect: accept a new one",
            ));
        }
        let cfg = {
            let mut link = self.link.lock();
            // A connection the peer has ended (FIN, reset, DR/ER) is replaced: connecting again
            // is what a caller does next, and what it still held is no use to it.
            if let Some(old) = link.live.take_if(|l| l.peer_ended().is_some()) {
                old.stop.store(true, Ordering::Release);
                let _ = old.sock.shutdown(Shutdown::Both);
            }
            if link.live.is_some() {
                return Err(Error::state(
                    StateKind::AlreadyConnected,
                    "already connected: disconnect first",
                ));
            }
            if link.connecting.is_some() {
                return Err(Error::state(
                    StateKind::ConnectInProgress,
                    "a connect is already in progress on this connection",
                ));
            }
            let abort = Arc::new(ConnectAbort::default());
            link.connecting = Some(abort.clone());
            (self.config.lock().clone(), abort)
        };
        let (cfg, abort) = cfg;
        let mut phase = ConnectPhase::Resolve;
        let result = self.open(&cfg, &deadline, &abort, &mut phase);
        *self.failed_phase.lock() = result.is_err().then_some(phase);
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

    /// Resolves, races TCP connects to the host's addresses and runs the CR/CC exchange on
    /// each connected socket in turn until one is confirmed. `phase` says how far it got.
    fn open(
        &self,
        cfg: &Config,
        deadline: &Deadline,
        abort: &ConnectAbort,
        phase: &mut ConnectPhase,
    ) -> Result<Live> {
        let req = cfg.connect_request();
        let cr = req.encode()?;
        *phase = ConnectPhase::Resolve;
        let addrs = socket::resolve(cfg.host(), cfg.port(), deadline)?;
        let transfer = cfg.transfer();
        let mut race = socket::Race::new(
            &addrs,
            cfg.attempt_delay(),
            transfer.keepalive(),
            transfer.effective_user_timeout(),
        );
        loop {
            *phase = ConnectPhase::Tcp;
            let (sock, addr) = race.next_connected(deadline)?;
            *phase = ConnectPhase::Cotp;
            match self.handshake(cfg, &req, &cr, sock, addr, deadline, abort) {
                // Another address may be a CPU that answers (the other half of a redundant
                // pair, the same PLC over IPv4 after IPv6): go on while time is left.
                Err(
                    Error::Closed { .. }
                    | Error::Rejected(_)
                    | Error::Protocol(_)
                    | Error::Io { .. },
                ) if race.has_more() && !deadline.passed() && !abort.aborted() => {}
                done => return done,
            }
        }
    }

    /// The CR/CC exchange on a connected socket.
    #[allow(clippy::too_many_arguments)]
    fn handshake(
        &self,
        cfg: &Config,
        req: &ConnectRequest,
        cr: &[u8],
        sock: Socket,
        addr: std::net::SocketAddr,
        deadline: &Deadline,
        abort: &ConnectAbort,
    ) -> Result<Live> {
        let _watch = AbortWatch::new(abort, &sock);
        if abort.aborted() {
            return Err(ConnectAbort::error());
        }
        sys::enter_transfer_mode(&sock).map_err(|e| Error::io("socket mode", e))?;
        if self.trace.is_on() {
            self.trace.set_endpoints(endpoints(&sock));
        }
        let during = |what: &str| {
            format!("{what} during COTP connect to {addr} (after the CR): check the TSAPs (local {}, remote {}), rack and slot", cfg.calling(), cfg.called())
        };
        match transmit::write_all(&sock, &mut [IoSlice::new(cr)], deadline, &abort.stop, None) {
            Ok(_) if self.trace.is_on() => self.trace.frame(true, cr),
            Ok(_) => {}
            Err(_) if abort.aborted() => return Err(ConnectAbort::error()),
            Err(WriteError::Deadline { .. }) => return Err(deadline.ran_out("sending the COTP CR")),
            Err(WriteError::Io { error, .. }) if sys::is_reset(&error) => {
                return Err(Error::Closed {
                    by: PeerClose::Reset {
                        os_error: error.raw_os_error(),
                    },
                    message: during("connection reset by peer"),
                })
            }
            Err(WriteError::Io { error, .. }) => {
                return Err(Error::io("sending the COTP CR", error))
            }
        }
        // The answer is read through the connection's own framer so that anything the peer sends
        // right after its CC stays buffered for the first receive.
        let mut rx = self.rx.lock();
        rx.armed.reset();
        rx.receiver.start_connect(cfg.transfer().limits());
        let mut seen = |raw: &[u8]| self.trace.frame(false, raw);
        let answer = loop {
            if let Some(answer) = rx
                .receiver
                .connect_answer(req, tap(&self.trace, &mut seen))?
            {
                break answer;
            }
            let Rx { receiver, armed } = &mut *rx;
            match fill(
                &sock,
                receiver,
                armed,
                deadline,
                &abort.stop,
                "waiting for the COTP CC",
            )
            .map_err(|e| match e {
                // The peer's address tells which CPU took TCP and then said nothing.
                Error::Timeout(w) => Error::Timeout(format!("{w} from {addr}").into()),
                Error::WouldBlock(w) => Error::WouldBlock(format!("{w} from {addr}").into()),
                other => other,
            })? {
                _ if abort.aborted() => return Err(ConnectAbort::error()),
                Fill::Data => {}
                Fill::Eof => {
                    return Err(Error::Closed {
                        by: PeerClose::Fin,
                        message: during("connection closed by peer"),
                    })
                }
                Fill::Reset(e) => {
                    return Err(Error::Closed {
                        by: PeerClose::Reset {
                            os_error: e.raw_os_error(),
                        },
                        message: during("connection reset by peer"),
                    })
                }
            }
        };
        let negotiated = match answer {
            ConnectAnswer::Confirmed(n) => n,
            ConnectAnswer::Refused { reason } => {
                return Err(Error::Rejected(PeerEnd::Disconnect { reason }))
            }
            ConnectAnswer::Rejected { cause } => {
                return Err(Error::Rejected(PeerEnd::Error { cause }))
            }
        };
        Ok(Live::new(sock, negotiated, cfg))
    }

    fn live(&self) -> Result<Arc<Live>> {
        let link = self.link.lock();
        match (&link.live, &link.ended) {
            (Some(l), _) => Ok(l.clone()),
            (None, Some(why)) => Err(Error::state(
                StateKind::Ended,
                format!("not connected (the connection was closed after: {why})"),
            )),
            (None, None) => Err(Error::state(StateKind::NotConnected, "not connected")),
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
        Error::state(
            StateKind::Interrupted,
            "the connection was closed by a disconnect from another thread while this call waited",
        )
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
            return Err(Error::TooLarge(Limit::Send {
                len: message.len(),
                max: live.limits.max_message,
            }));
        }
        if let Some(ended) = live.peer_ended() {
            return Err(ended);
        }
        Ok(live)
    }

    /// The error for a write that failed on the socket (not by its deadline).
    fn write_failed(&self, live: &Arc<Live>, error: io::Error, what: &str) -> Error {
        if !self.is_current(live) {
            return Self::disconnected_meanwhile();
        }
        if sys::is_reset(&error) {
            let by = PeerClose::Reset {
                os_error: error.raw_os_error(),
            };
            let why = format!("connection closed by peer ({error})");
            live.set_peer_ended(by, why.clone());
            return Error::Closed { by, message: why };
        }
        self.fail(live, io_error(what, error, live.user_timeout))
    }

    /// Sends one whole message, segmented into DTs of the negotiated size, after anything queued
    /// by `queue_send`, within the send timeout.
    pub fn send(&self, message: &[u8]) -> Result<()> {
        let live = self.sendable(message)?;
        self.send_on(&live, message, &Deadline::after(live.send_timeout))?;
        self.trace_sent(&live, message);
        Ok(())
    }

    /// As [`send`](Self::send), within `deadline` instead of the send timeout: for a step of a
    /// longer operation whose own deadline covers it (a TLS handshake's flights).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn send_by(&self, message: &[u8], deadline: &Deadline) -> Result<()> {
        let live = self.sendable(message)?;
        self.send_on(&live, message, deadline)?;
        self.trace_sent(&live, message);
        Ok(())
    }

    fn trace_sent(&self, live: &Live, message: &[u8]) {
        if self.trace.is_on() {
            self.trace.message(message, live.negotiated.tpdu_size);
        }
    }

    fn send_on(&self, live: &Arc<Live>, message: &[u8], deadline: &Deadline) -> Result<()> {
        let mut out = live.out.lock();
        match out.flush(&live.sock, deadline, &live.stop, Some(&live.send_armed)) {
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
            deadline,
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
        self.make_queue_room(live, &mut out, message.len())?;
        if out.pending() > 0 {
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

    /// Whether [`Connection::queue_send`] would take a message of `len` bytes now: it writes
    /// what the socket takes of the queue without waiting, then checks the queue limit. Lets a
    /// caller that must not waste the message (TLS seals records with sequence numbers) find
    /// out before making it; fails with WouldBlock as `queue_send` would.
    pub fn queue_would_accept(&self, len: usize) -> Result<()> {
        let live = self.live()?;
        if len > live.limits.max_message {
            return Err(Error::TooLarge(Limit::Send {
                len,
                max: live.limits.max_message,
            }));
        }
        let mut out = live.out.lock();
        self.make_queue_room(&live, &mut out, len)
    }

    /// Writes what the socket takes of the queue without waiting, then checks that a message
    /// of `len` bytes fits the queue's limit (an empty queue takes any message):
    /// WouldBlock when it does not.
    fn make_queue_room(&self, live: &Arc<Live>, out: &mut OutQueue, len: usize) -> Result<()> {
        match out.flush(&live.sock, &Deadline::after_ms(0), &live.stop, None) {
            Ok(()) | Err(WriteError::Deadline { .. }) => {}
            Err(WriteError::Io { error, .. }) => {
                return Err(self.write_failed(live, error, "queued send"))
            }
        }
        let encoded = segment::encoded_len(len, live.negotiated.tpdu_size);
        if out.pending() > 0 && out.pending() + encoded > live.max_queued {
            return Err(Error::WouldBlock(Cow::Owned(format!(
                "send queue holds {} bytes and this message needs {encoded} more, above the limit of {}: wait until the socket is writable, then flush the queue",
                out.pending(),
                live.max_queued
            ))));
        }
        Ok(())
    }

    /// Sends one message if that can be done within `bound` and without waiting for another
    /// sender: for a last word before closing (a TLS close_notify), which must never hold up
    /// the close. Nothing is sent when the queue holds a message half on the wire.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn send_best_effort(&self, message: &[u8], bound: Duration) {
        let Ok(live) = self.live() else { return };
        if live.peer_ended().is_some() {
            return;
        }
        let deadline = Deadline::after(bound);
        let Some(out) = live.out.try_lock_for(bound) else {
            return;
        };
        if out.pending() > 0 || deadline.passed() {
            return;
        }
        let tpdu = live.negotiated.tpdu_size;
        if transmit::write_message(&live.sock, message, tpdu, &deadline, &live.stop, None).is_ok() {
            self.trace_sent(&live, message);
        }
    }

    /// Closes the connection because a layer above it failed (TLS); later calls get a state
    /// error naming `why`.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn abandon(&self, why: &Error) {
        let mut link = self.link.lock();
        if let Some(live) = link.live.take() {
            link.ended = Some(why.to_string());
            let _ = live.sock.shutdown(Shutdown::Both);
        }
    }

    /// Writes queued bytes within `timeout`. Ok when nothing remains queued; bytes that do not
    /// go out stay queued, in order.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = &Deadline::after(timeout);
        let live = self.live()?;
        let mut out = live.out.lock();
        match out.flush(&live.sock, deadline, &live.stop, Some(&live.send_armed)) {
            Ok(()) => Ok(()),
            Err(_) if !self.is_current(&live) => Err(Self::disconnected_meanwhile()),
            Err(WriteError::Deadline { .. }) => Err(deadline.ran_out("flush: bytes remain queued")),
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

    /// Receives one whole message into `buf` within `timeout`; returns its length. A timeout
    /// loses nothing: the next call continues the message. A buffer too small for the message
    /// fails with [`Error::BufferTooSmall`] and leaves it queued.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let deadline = &Deadline::after(timeout);
        let live = self.live()?;
        let mut rx = self.rx.lock();
        let mut dest = Destination::new(buf);
        let result = self.wait_message(&live, &mut rx, deadline, "receive", Some(&mut dest));
        // Ending early (timeout, error) with part of a message in the caller's buffer: it moves
        // into the receiver, where the next call continues it.
        rx.receiver.release(&mut dest);
        match result? {
            Some(n) => Ok(n),
            None => rx
                .receiver
                .take_message(
                    dest.buf(),
                    tap(&self.trace, &mut |raw| self.trace.frame(false, raw)),
                )
                .map_err(|e| Error::BufferTooSmall {
                    needed: e.needed,
                    cap: dest.buf().len(),
                }),
        }
    }

    /// Waits up to `timeout` for a whole message: true when one is ready, so
    /// [`Connection::recv`] returns it at once.
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        let deadline = &Deadline::after(timeout);
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
        mut dest: Option<&mut Destination<'_>>,
    ) -> Result<Option<usize>> {
        let mut seen = |raw: &[u8]| self.trace.frame(false, raw);
        loop {
            match rx
                .receiver
                .advance(dest.as_deref_mut(), tap(&self.trace, &mut seen))
            {
                Ok(Progress::Ready) => return Ok(None),
                Ok(Progress::Delivered(n)) => return Ok(Some(n)),
                Ok(Progress::NeedBytes) => {}
                Ok(Progress::PeerEnded(end)) => {
                    // DR/ER ends the transport connection: release TCP too, so the peer is not
                    // left holding it until the caller disconnects. What is buffered stays readable.
                    live.set_peer_ended(PeerClose::Tpdu(end), end.to_string());
                    let _ = live.sock.shutdown(Shutdown::Both);
                }
                Err(e) => return Err(self.fail(live, e.into())),
            }
            if let Some(ended) = live.peer_ended() {
                return Err(ended);
            }
            let Rx { receiver, armed } = &mut *rx;
            let filled = fill(&live.sock, receiver, armed, deadline, &live.stop, what).map_err(
                |e| match e {
                    Error::Io { context, source } => io_error(context, source, live.user_timeout),
                    other => other,
                },
            );
            if !self.is_current(live) {
                return Err(Self::disconnected_meanwhile());
            }
            let closed_why = |base: String| match rx.receiver.cut_off(dest.as_deref()) {
                Some(what) => format!("{base} {what}"),
                None => base,
            };
            match filled {
                Ok(Fill::Data) => {}
                Ok(Fill::Eof) => live.set_peer_ended(
                    PeerClose::Fin,
                    closed_why("connection closed by peer".into()),
                ),
                Ok(Fill::Reset(e)) => live.set_peer_ended(
                    PeerClose::Reset {
                        os_error: e.raw_os_error(),
                    },
                    closed_why(format!("connection reset by peer ({e})")),
                ),
                Err(e @ (Error::Timeout(_) | Error::WouldBlock(_))) => return Err(e),
                Err(e) => return Err(self.fail(live, e)),
            }
        }
    }

    /// True while the connection can carry a new request; false as soon as anything says it
    /// is gone: not connected, FIN, reset, a DR or ER received, or a pending socket error (the
    /// system gave up on the peer: the user timeout or keep-alive). Messages already received
    /// stay readable. Never blocks, consumes nothing. A peer that went silent without FIN or
    /// RST looks idle until keep-alive or the user timeout gives up on it.
    pub fn is_alive(&self) -> bool {
        let Ok(live) = self.live() else { return false };
        if live.peer_ended().is_some() {
            return false;
        }
        !sys::peer_hung_up(&live.sock).unwrap_or(true)
    }

    /// Closes the connection (if any) and wakes threads blocked on it. The connection keeps
    /// its settings and may connect again.
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

    /// Ends the connection (if any) and connects again with the same settings, within one
    /// `timeout`. When the COTP connection is still up (the peer has not closed, reset or sent
    /// DR/ER) a DR with reason 0x80 (normal disconnect) goes out first, so the PLC releases
    /// its side at once instead of waiting for TCP; then the socket is closed. Nothing of the
    /// old connection is left behind, however often this is called.
    pub fn reconnect(&self, timeout: Duration) -> Result<()> {
        if self.passive {
            return Err(Error::state(
                StateKind::Passive,
                "an accepted connection cannot connect: accept a new one",
            ));
        }
        let deadline = Deadline::after(timeout);
        self.release_with_dr();
        self.connect(deadline.remaining())
    }

    /// Sends a DR on the live connection if the peer has not ended it, then disconnects.
    fn release_with_dr(&self) {
        if let Ok(live) = self.live() {
            if live.peer_ended().is_none() {
                let mut out = live.out.lock();
                // Only when no queued message is half on the wire: a DR in the middle of a
                // message's DTs would corrupt the stream the peer reads.
                if out.pending() == 0 {
                    let dr = cotp::encode_dr(live.negotiated.peer_ref, OUR_SRC_REF, DR_NORMAL);
                    // Best effort and short: the DR is 11 bytes into an empty send buffer.
                    let _ = transmit::write_all(
                        &live.sock,
                        &mut [IoSlice::new(&dr)],
                        &Deadline::after(Duration::from_millis(100)),
                        &live.stop,
                        None,
                    );
                    if self.trace.is_on() {
                        self.trace.frame(true, &dr);
                    }
                }
                out.clear();
            }
        }
        self.disconnect();
    }

    /// Installs (or with `None` removes) a function that sees every frame sent (`true`) and
    /// received (`false`), whole TPKT packets as on the wire.
    pub fn set_trace_callback(&self, callback: Option<TraceFn>) {
        self.trace.set_callback(callback);
    }

    /// Starts (or with None stops) writing traced frames to a capture file (pcap, readable by
    /// Wireshark).
    pub fn set_trace_file(&self, path: Option<&std::path::Path>) -> Result<()> {
        self.trace.set_file(path)?;
        if let Ok(live) = self.live() {
            self.trace.set_endpoints(endpoints(&live.sock));
        }
        Ok(())
    }

    /// What the CR/CC exchange settled, while connected.
    pub fn negotiated(&self) -> Result<Negotiated> {
        Ok(self.live()?.negotiated.clone())
    }

    /// The largest message (TSDU) this connection sends or receives, while connected.
    pub fn max_message(&self) -> Result<usize> {
        Ok(self.live()?.limits.max_message)
    }

    /// The negotiated TPDU size, in bytes, while connected.
    pub fn tpdu_size(&self) -> Result<u32> {
        Ok(self.live()?.negotiated.tpdu_size)
    }

    /// The connected socket, for an event loop to wait on (readable: call
    /// [`Connection::poll`] or [`Connection::recv`] with a zero timeout). The socket stays
    /// open while the returned value lives, even if the connection is closed meanwhile; never
    /// read, write or close it yourself.
    pub fn socket(&self) -> Result<ConnectionSocket> {
        Ok(ConnectionSocket(self.live()?))
    }

    pub(crate) fn raw_handle(&self) -> Result<i64> {
        Ok(self.live()?.handle)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Reads what the socket has into the receiver, waiting within the deadline.
fn fill(
    sock: &Socket,
    receiver: &mut Receiver,
    armed: &sys::ArmedTimeout,
    deadline: &Deadline,
    stop: &AtomicBool,
    what: &'static str,
) -> Result<Fill> {
    let spare = receiver.spare();
    if spare.is_empty() {
        // The receiver offers room whenever it needs bytes; no room means a bug here, reported
        // rather than spinning on zero-byte reads.
        return Err(Error::io(
            what,
            io::Error::other("the receive buffer has no room although no whole message is ready"),
        ));
    }
    match sys::recv(sock, spare, deadline, stop, armed) {
        Ok(Some(0)) => Ok(Fill::Eof),
        Ok(Some(n)) => {
            receiver.commit(n);
            Ok(Fill::Data)
        }
        Ok(None) => Err(deadline.ran_out(what)),
        Err(e) if sys::is_reset(&e) => Ok(Fill::Reset(e)),
        Err(e) => Err(Error::io(what, e)),
    }
}

/// The error for a failed system call on a connection, naming the cause in words when the
/// system gave up on the peer: no acknowledgement of sent data (the user timeout) or of
/// keep-alive probes. The OS error stays in `source`.
fn io_error(what: impl Into<String>, source: io::Error, user_timeout: Option<Duration>) -> Error {
    let what = what.into();
    if !sys::is_timed_out(&source) {
        return Error::io(what, source);
    }
    let bound = match user_timeout {
        Some(t) if t.subsec_millis() == 0 => format!(" for {} s", t.as_secs()),
        Some(t) => format!(" for {} ms", t.as_millis()),
        None => String::new(),
    };
    Error::io(
        format!("{what}: no acknowledgement from the peer{bound} (of data or keep-alive probes): the link or the peer is down"),
        source,
    )
}

/// What the receiver shows of each packet it is done with: the received frames, to the tracer
/// when tracing is on (no call at all when off).
fn tap<'a>(trace: &Tracer, seen: &'a mut dyn FnMut(&[u8])) -> Tap<'a> {
    trace.is_on().then_some(seen)
}

fn endpoints(sock: &Socket) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    let local = sock.local_addr().ok()?.as_socket()?;
    let peer = sock.peer_addr().ok()?.as_socket()?;
    Some((local, peer))
}

/// A connection's socket, kept open while this lives (see [`Connection::socket`]).
pub struct ConnectionSocket(Arc<Live>);

#[cfg(unix)]
impl std::os::fd::AsFd for ConnectionSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.sock.as_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for ConnectionSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.sock.as_raw_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for ConnectionSocket {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.0.sock.as_socket()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for ConnectionSocket {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.0.sock.as_raw_socket()
    }
}
