//! Resolving a host and opening a TCP connection to one of its addresses within a deadline.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, TcpKeepalive};

use super::deadline::Deadline;
use super::settings::Keepalive;
use super::sys;
use crate::error::{Error, Result};

/// Checks a host string without touching the network: a name, an IPv4 literal, or an IPv6
/// literal with or without brackets.
pub fn validate_host(host: &str) -> Result<()> {
    let h = strip_brackets(host);
    if h.is_empty() || h.len() > 253 {
        return Err(Error::Invalid(format!(
            "host {host:?} must be 1 to 253 characters"
        )));
    }
    if h.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !ok {
        return Err(Error::Invalid(format!(
            "host {host:?} is neither an IP address nor a host name"
        )));
    }
    Ok(())
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` within the deadline. Literals need no resolver; names are resolved on a helper
/// thread, because the system resolver cannot be interrupted: if it outlasts the deadline the
/// call still returns on time and the thread finishes on its own.
pub fn resolve(host: &str, port: u16, deadline: &Deadline) -> Result<Vec<SocketAddr>> {
    let h = strip_brackets(host);
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let name = h.to_owned();
    std::thread::Builder::new()
        .name("isotcp-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>()),
            );
        })
        .map_err(|e| Error::io("starting the resolver thread", e))?;
    match rx.recv_timeout(deadline.remaining()) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Error::Resolve {
            host: host.into(),
            detail: "no addresses".into(),
        }),
        Ok(Err(e)) => Err(Error::Resolve {
            host: host.into(),
            detail: e.to_string(),
        }),
        Err(_) => Err(deadline.ran_out(format!("resolving {host:?}"))),
    }
}

/// Default delay between the starts of two connection attempts (RFC 8305 §5's "Connection
/// Attempt Delay").
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// TCP connects to the addresses of one host, raced as RFC 8305 ("Happy Eyeballs") does: the
/// first attempt starts at once, each next one when the previous has not completed within the
/// attempt delay (or at once when it failed), and earlier attempts keep running. Sockets come
/// out in the order their connects complete, so a caller whose handshake fails on one can take
/// the next; whatever is still connecting is closed when the race is dropped. A dead first
/// address thus costs the attempt delay, not a share of the deadline.
pub(crate) struct Race<'a> {
    addrs: &'a [SocketAddr],
    next: usize,
    running: Vec<(SocketAddr, Socket)>,
    last_start: Option<Instant>,
    delay: Duration,
    keepalive: Keepalive,
    user_timeout: Option<Duration>,
    last_err: Option<Error>,
}

impl<'a> Race<'a> {
    pub(crate) fn new(
        addrs: &'a [SocketAddr],
        delay: Duration,
        keepalive: Keepalive,
        user_timeout: Option<Duration>,
    ) -> Self {
        Race {
            addrs,
            next: 0,
            running: Vec::new(),
            last_start: None,
            delay,
            keepalive,
            user_timeout,
            last_err: None,
        }
    }

    /// True while an address has not been tried or an attempt is still connecting.
    pub(crate) fn has_more(&self) -> bool {
        self.next < self.addrs.len() || !self.running.is_empty()
    }

    /// The next socket whose TCP connect completed, within the deadline. Fails with the last
    /// attempt's error when every address failed, or with a timeout naming the addresses
    /// still connecting when the deadline passed.
    pub(crate) fn next_connected(&mut self, deadline: &Deadline) -> Result<(Socket, SocketAddr)> {
        loop {
            let due = self.last_start.is_none_or(|t| t.elapsed() >= self.delay);
            if self.next < self.addrs.len() && (self.running.is_empty() || due) {
                let addr = self.addrs[self.next];
                self.next += 1;
                self.last_start = Some(Instant::now());
                match self.start(&addr) {
                    Ok(Some(sock)) => return self.established(sock, addr),
                    Ok(None) => {}
                    Err(e) => self.last_err = Some(e),
                }
                continue;
            }
            if self.running.is_empty() {
                return Err(self
                    .last_err
                    .take()
                    .unwrap_or_else(|| deadline.ran_out("TCP connect: no address to try")));
            }
            if deadline.passed() || deadline.is_immediate() {
                let tried: Vec<String> = self.running.iter().map(|(a, _)| a.to_string()).collect();
                return Err(deadline.ran_out(format!("TCP connect to {}", tried.join(", "))));
            }
            let mut wait = deadline.remaining();
            if self.next < self.addrs.len() {
                let since = self.last_start.map_or(Duration::ZERO, |t| t.elapsed());
                wait = wait.min(self.delay.saturating_sub(since));
            }
            let socks: Vec<&Socket> = self.running.iter().map(|(_, s)| s).collect();
            let ready = sys::wait_any_writable(&socks, wait)
                .map_err(|e| Error::io("waiting for TCP connect", e))?;
            // Highest position first, so removing one leaves the others' positions valid.
            for i in ready.into_iter().rev() {
                let (addr, sock) = self.running.remove(i);
                match sock.take_error() {
                    Ok(None) => return self.established(sock, addr),
                    Ok(Some(e)) | Err(e) => self.last_err = Some(connect_error(&addr, e)),
                }
            }
        }
    }

    /// Starts a connect: the socket when it completed at once, None when it is under way.
    fn start(&mut self, addr: &SocketAddr) -> Result<Option<Socket>> {
        let io = |what: &str, e: io::Error| Error::io(format!("{what} ({addr})"), e);
        let sock = sys::stream_socket(Domain::for_address(*addr)).map_err(|e| io("socket", e))?;
        sock.set_tcp_nodelay(true)
            .map_err(|e| io("TCP_NODELAY", e))?;
        set_keepalive(&sock, &self.keepalive).map_err(|e| io("keep-alive", e))?;
        match sock.connect(&SockAddr::from(*addr)) {
            Ok(()) => Ok(Some(sock)),
            Err(e) if in_progress(&e) => {
                self.running.push((*addr, sock));
                Ok(None)
            }
            Err(e) => Err(connect_error(addr, e)),
        }
    }

    /// A connected socket, with the bound on unacknowledged data set. It goes on once TCP is
    /// up: on Windows TCP_MAXRT would also bound the connect, which the deadline governs.
    fn established(&self, sock: Socket, addr: SocketAddr) -> Result<(Socket, SocketAddr)> {
        sys::set_user_timeout(&sock, self.user_timeout)
            .map_err(|e| Error::io(format!("TCP_USER_TIMEOUT ({addr})"), e))?;
        Ok((sock, addr))
    }
}

fn in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    e.kind() == io::ErrorKind::WouldBlock
}

fn connect_error(addr: &SocketAddr, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        Error::Refused {
            addr: addr.to_string(),
            source: e,
        }
    } else {
        Error::io(format!("TCP connect to {addr}"), e)
    }
}

pub fn set_keepalive(sock: &Socket, k: &Keepalive) -> io::Result<()> {
    if !k.enabled() {
        return sock.set_keepalive(false);
    }
    let params = TcpKeepalive::new()
        .with_time(Duration::from_secs(k.idle_s() as u64))
        .with_interval(Duration::from_secs(k.interval_s() as u64));
    #[cfg(not(windows))]
    let params = params.with_retries(k.count());
    sock.set_tcp_keepalive(&params)
}
