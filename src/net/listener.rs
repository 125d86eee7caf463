//! The passive side: accept TCP, read and judge the CR, answer CC or DR.
//!
//! Handshakes run side by side: every accepted TCP connection waits in a bounded pending list
//! with its own CR deadline, and `accept` serves whichever completes first. A slow or silent
//! client therefore delays nobody, and `accept` with timeout 0 never blocks.

use std::io::{self, IoSlice, Read};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::connection::Connection;
use super::deadline::Deadline;
use super::settings::{Config, ListenerConfig};
use super::socket;
use super::sys::{self, ReadyWatch};
use super::transmit;
use crate::error::{Error, Result, StateKind};
use crate::proto::handshake::Negotiated;
use crate::proto::responder::{self, CrInfo, Refusal};
use crate::proto::tpkt::{self, Framer};

/// Decides whether to accept a valid CR: Ok, or Err(DR reason).
pub type CrFilter = Box<dyn Fn(&CrInfo) -> std::result::Result<(), u8> + Send + Sync>;

/// A TCP connection whose CR has not arrived yet.
struct Pending {
    sock: Socket,
    peer: SocketAddr,
    framer: Framer,
    expires: Instant,
}

/// What one look at a pending handshake found.
enum Progress {
    Waiting,
    /// Dropped without a CC; the text says why (a refusal also sent a DR).
    Dropped(String),
    /// CC sent: the connection's settings and what was negotiated.
    Confirmed(Box<(Config, Negotiated)>),
}

/// A listening endpoint, the passive (PLC or gateway) side: [`Listener::accept`] returns each
/// client whose CR it confirmed as a [`Connection`].
pub struct Listener {
    sock: Socket,
    port: u16,
    config: Mutex<ListenerConfig>,
    pending: Mutex<Vec<Pending>>,
    watch: ReadyWatch,
    next_ref: AtomicU16,
    refused: AtomicU64,
    accepted: AtomicU64,
    last_refusal: Mutex<String>,
    /// Set by `shutdown`: accepting has ended for good.
    closed: AtomicBool,
}

/// Longest TPKT read before a CR: a CR is at most 128 bytes.
const MAX_CR_PACKET: usize = tpkt::HEADER_LEN + 128;

impl Listener {
    /// Binds and listens. `bind_host` None or "" or "::" listens on every IPv6 and IPv4 address;
    /// "0.0.0.0" on every IPv4 address; otherwise the given address or name. Port 0 picks one.
    pub fn bind(bind_host: Option<&str>, port: u16) -> Result<Listener> {
        let addr = match bind_host.filter(|h| !h.is_empty()) {
            None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            Some(h) => {
                socket::validate_host(h)?;
                let addrs = socket::resolve(h, port, &Deadline::after_ms(5000))?;
                // resolve() never returns an empty list; say so rather than panic if it did.
                *addrs.first().ok_or_else(|| Error::Resolve {
                    host: h.into(),
                    detail: "no addresses".into(),
                })?
            }
        };
        let io = |what: &str, e: io::Error| Error::io(format!("{what} ({addr})"), e);
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| io("socket", e))?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            // Dual stack where the system allows it; an IPv6-only system still works.
            let _ = sock.set_only_v6(false);
        }
        sys::prepare_listener(&sock).map_err(|e| io("socket options", e))?;
        sock.bind(&SockAddr::from(addr))
            .map_err(|e| io("bind", e))?;
        sock.listen(128).map_err(|e| io("listen", e))?;
        let port = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or(port, |a| a.port());
        let watch = ReadyWatch::new().map_err(|e| io("epoll", e))?;
        watch.add(&sock);
        Ok(Listener {
            sock,
            port,
            config: Mutex::new(ListenerConfig::default()),
            pending: Mutex::new(Vec::new()),
            watch,
            next_ref: AtomicU16::new(1),
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            last_refusal: Mutex::new(String::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The port listened on (the one picked when bound to port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Changes the settings; they apply to handshakes judged afterwards. Each setter of
    /// [`ListenerConfig`] checks its value and changes nothing when it fails.
    pub fn configure<T>(&self, f: impl FnOnce(&mut ListenerConfig) -> Result<T>) -> Result<T> {
        f(&mut self.config.lock())
    }

    /// A descriptor for event loops: readable when `accept` with a zero timeout may have
    /// something to do (on Linux an epoll instance watching the listening socket and every
    /// pending handshake; elsewhere the listening socket).
    pub(crate) fn raw_handle(&self) -> i64 {
        self.watch
            .fd()
            .unwrap_or_else(|| sys::raw_handle(&self.sock))
    }

    /// Handshakes refused or dropped so far (bad CR, filter, CR timeout, overflow).
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    /// Connections accepted so far.
    pub fn accepted_count(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The last refused or dropped handshake, in words.
    pub fn last_refusal(&self) -> String {
        self.last_refusal.lock().clone()
    }

    /// Ends accepting for good: a thread blocked in `accept` returns at once (shutting the
    /// listening socket down wakes its wait), later calls fail, pending handshakes are closed.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Time until the earliest pending handshake expires (for event loops), if any is pending.
    pub fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let pending = self.pending.lock();
        let expiry = pending
            .iter()
            .map(|p| p.expires.saturating_duration_since(now))
            .min()?;
        // Where the event-loop descriptor does not watch handshakes, look at them regularly.
        Some(match self.watch.pending_recheck() {
            Some(every) => expiry.min(every),
            None => expiry,
        })
    }

    /// Waits up to `timeout` for a client whose CR is valid and accepted, answers it with a CC
    /// and returns the connection. Refused CRs are answered with DR, closed and counted; the wait
    /// goes on. Zero never blocks ([`Error::WouldBlock`] when nobody is ready).
    pub fn accept(&self, timeout: Duration) -> Result<Connection> {
        let deadline = &Deadline::after(timeout);
        let mut pending = self.pending.lock();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::state(
                    StateKind::ListenerShutDown,
                    "the listener was shut down",
                ));
            }
            self.take_new_connections(&mut pending)?;
            let now = Instant::now();
            let mut i = pending.len();
            while i > 0 {
                i -= 1;
                match self.progress(&mut pending[i], now) {
                    Progress::Waiting => {}
                    Progress::Dropped(why) => {
                        let p = pending.swap_remove(i);
                        self.watch.remove(&p.sock);
                        *self.last_refusal.lock() = format!("{}: {why}", p.peer);
                    }
                    Progress::Confirmed(settled) => {
                        let p = pending.swap_remove(i);
                        self.watch.remove(&p.sock);
                        self.accepted.fetch_add(1, Ordering::Relaxed);
                        let (config, negotiated) = *settled;
                        return Ok(Connection::accepted(config, p.sock, negotiated, p.framer));
                    }
                }
            }
            if deadline.passed() || deadline.is_immediate() {
                return Err(deadline.ran_out("accept"));
            }
            let wait = pending
                .iter()
                .map(|p| p.expires.saturating_duration_since(now))
                .fold(deadline.remaining(), Duration::min);
            let mut socks: Vec<&Socket> = pending.iter().map(|p| &p.sock).collect();
            socks.push(&self.sock);
            sys::wait_any_readable(&socks, wait)
                .map_err(|e| Error::io("waiting for clients", e))?;
        }
    }

    fn take_new_connections(&self, pending: &mut Vec<Pending>) -> Result<()> {
        let (max_pending, cr_timeout) = {
            let c = self.config.lock();
            (c.max_pending(), c.cr_timeout())
        };
        loop {
            let (sock, addr) = match self.sock.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted =>
                {
                    continue
                }
                Err(e) => {
                    // Out of descriptors or memory: report it, keep serving what is pending.
                    *self.last_refusal.lock() = format!("accept failed: {e}");
                    if pending.is_empty() {
                        return Err(Error::io("accept", e));
                    }
                    return Ok(());
                }
            };
            let peer = addr
                .as_socket()
                .unwrap_or_else(|| SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
            if sys::prepare(&sock).is_err() || sock.set_tcp_nodelay(true).is_err() {
                continue;
            }
            if pending.len() >= max_pending {
                let oldest = pending.remove(0);
                self.watch.remove(&oldest.sock);
                self.note_refusal(format!(
                    "{}: dropped, more than {max_pending} handshakes pending",
                    oldest.peer
                ));
            }
            self.watch.add(&sock);
            pending.push(Pending {
                sock,
                peer,
                framer: Framer::new(MAX_CR_PACKET, 256),
                expires: Instant::now() + cr_timeout,
            });
        }
    }

    /// Reads what a pending client sent; judges its CR once whole.
    fn progress(&self, p: &mut Pending, now: Instant) -> Progress {
        loop {
            match p.framer.peek_packet() {
                Ok(Some(tpdu)) => {
                    let judged =
                        responder::parse_cr(tpdu).and_then(|cr| self.judge(&cr).map(|()| cr));
                    p.framer.consume();
                    return match judged {
                        Ok(cr) => self.confirm(p, cr),
                        Err(refusal) => self.refuse(p, refusal),
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    return self.refuse(
                        p,
                        Refusal::new(
                            responder::reason::HEADER_INVALID,
                            0,
                            format!("bad first packet: {e}"),
                        ),
                    )
                }
            }
            let spare = p.framer.spare();
            match (&p.sock).read(spare) {
                Ok(0) => {
                    return Progress::Dropped(
                        "client closed the connection before a complete CR".into(),
                    )
                }
                Ok(n) => p.framer.commit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if now >= p.expires {
                        let why = "no CR within the CR timeout; connection closed";
                        self.note_refusal(format!("{}: {why}", p.peer));
                        return Progress::Dropped(why.into());
                    }
                    return Progress::Waiting;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Progress::Dropped(format!("read failed before the CR: {e}")),
            }
        }
    }

    fn judge(&self, cr: &CrInfo) -> std::result::Result<(), Refusal> {
        let cfg = self.config.lock();
        let allowed = cfg.allowed_called();
        if !allowed.is_empty() && !cr.called.as_ref().is_some_and(|c| allowed.contains(c)) {
            let called = cr.called.as_ref().map_or("none".into(), |t| t.to_string());
            return Err(Refusal::new(
                responder::reason::ADDRESS_UNKNOWN,
                cr.src_ref,
                format!("called TSAP {called} is not served here"),
            ));
        }
        if let Some(filter) = cfg.filter() {
            if let Err(reason) = filter(cr) {
                return Err(Refusal::new(
                    reason,
                    cr.src_ref,
                    format!("refused by the accept filter with reason 0x{reason:02X}"),
                ));
            }
        }
        Ok(())
    }

    fn our_ref(&self) -> u16 {
        loop {
            let r = self.next_ref.fetch_add(1, Ordering::Relaxed);
            if r != 0 {
                return r;
            }
        }
    }

    /// Records a refused or dropped handshake: its description first, then the count, so whoever
    /// sees the new count (or the DR) also sees the description.
    fn note_refusal(&self, text: String) {
        *self.last_refusal.lock() = text;
        self.refused.fetch_add(1, Ordering::Release);
    }

    fn refuse(&self, p: &mut Pending, refusal: Refusal) -> Progress {
        let why = format!(
            "CR refused with DR reason 0x{:02X} ({}): {}",
            refusal.reason,
            crate::proto::cotp::dr_reason_text(refusal.reason),
            refusal.detail
        );
        self.note_refusal(format!("{}: {why}", p.peer));
        let dr = refusal.dr(self.our_ref());
        // Best effort: the DR is tiny and the socket buffer empty; the client may be gone.
        let _ = transmit::write_all(
            &p.sock,
            &mut [IoSlice::new(&dr)],
            &Deadline::after_ms(0),
            &AtomicBool::new(false),
            None,
        );
        let _ = p.sock.shutdown(Shutdown::Both);
        Progress::Dropped(why)
    }

    fn confirm(&self, p: &mut Pending, cr: CrInfo) -> Progress {
        let cfg = self.config.lock();
        let tpdu_size = responder::granted_tpdu(&cr, cfg.max_tpdu());
        let our_ref = self.our_ref();
        let cc = match responder::encode_cc(&cr, our_ref, tpdu_size) {
            Ok(cc) => cc,
            Err(e) => return Progress::Dropped(format!("the CC cannot be encoded: {e}")),
        };
        if let Err(e) = transmit::write_all(
            &p.sock,
            &mut [IoSlice::new(&cc)],
            &Deadline::after_ms(1000),
            &AtomicBool::new(false),
            None,
        ) {
            return Progress::Dropped(format!("sending the CC failed: {e:?}"));
        }
        if let Err(e) = socket::set_keepalive(&p.sock, &cfg.transfer().keepalive()) {
            return Progress::Dropped(format!("keep-alive: {e}"));
        }
        if let Err(e) = sys::set_user_timeout(&p.sock, cfg.transfer().effective_user_timeout()) {
            return Progress::Dropped(format!("TCP_USER_TIMEOUT: {e}"));
        }
        let config = Config::accepted(
            p.peer,
            cr.calling.clone(),
            cr.called.clone(),
            tpdu_size,
            cfg.transfer().clone(),
        );
        let negotiated = Negotiated {
            tpdu_size,
            peer_ref: cr.src_ref,
            calling: cr.calling,
            called: cr.called,
            notes: Vec::new(),
        };
        Progress::Confirmed(Box::new((config, negotiated)))
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Listener {
    /// The event-loop descriptor (see [`Listener::accept`]): on Linux an epoll instance that
    /// is readable when the listening socket or any pending handshake is.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.watch.as_fd().unwrap_or_else(|| self.sock.as_fd())
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Listener {
    /// The listening socket, readable when a client connects; pending handshakes need
    /// `accept(0)` calls at [`Listener::next_timeout`].
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.sock.as_socket()
    }
}
