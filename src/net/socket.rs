//! Resolving a host and opening a TCP connection to one of its addresses within a deadline.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, TcpKeepalive};

use super::deadline::Deadline;
use super::settings::Keepalive;
use super::sys::{self, Interest};
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

/// Connects to the first address that answers, trying each in turn within the one deadline.
/// Each address but the last gets an equal share of the time left, so one black-holed address
/// cannot use up the whole deadline.
pub fn connect_any(
    addrs: &[SocketAddr],
    deadline: &Deadline,
    keepalive: &Keepalive,
    user_timeout: Option<Duration>,
) -> Result<Socket> {
    let mut last_err = None;
    for (i, addr) in addrs.iter().enumerate() {
        let left = addrs.len() - i;
        let share = Deadline::after(deadline.remaining() / left as u32).min(*deadline);
        let this = if left == 1 { *deadline } else { share };
        match connect_one(addr, &this, keepalive, user_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some(e),
        }
        if deadline.passed() {
            break;
        }
    }
    Err(last_err.unwrap_or_else(|| deadline.ran_out("TCP connect")))
}

fn connect_one(
    addr: &SocketAddr,
    deadline: &Deadline,
    keepalive: &Keepalive,
    user_timeout: Option<Duration>,
) -> Result<Socket> {
    let io = |what: &str, e: io::Error| Error::io(format!("{what} ({addr})"), e);
    let sock = sys::stream_socket(Domain::for_address(*addr)).map_err(|e| io("socket", e))?;
    sock.set_tcp_nodelay(true)
        .map_err(|e| io("TCP_NODELAY", e))?;
    set_keepalive(&sock, keepalive).map_err(|e| io("keep-alive", e))?;
    // The bound on unacknowledged data goes on once TCP is up: on Windows TCP_MAXRT would also
    // bound the connect itself, which the operation's own deadline governs.
    let established = |sock: Socket| {
        sys::set_user_timeout(&sock, user_timeout).map_err(|e| io("TCP_USER_TIMEOUT", e))?;
        Ok(sock)
    };
    match sock.connect(&SockAddr::from(*addr)) {
        Ok(()) => return established(sock),
        Err(e) if in_progress(&e) => {}
        Err(e) => return Err(connect_error(addr, e)),
    }
    if !sys::wait(
        &sock,
        Interest::Write,
        deadline,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .map_err(|e| io("waiting for TCP connect", e))?
    {
        return Err(deadline.ran_out(format!("TCP connect to {addr}")));
    }
    match sock.take_error() {
        Ok(None) => established(sock),
        Ok(Some(e)) | Err(e) => Err(connect_error(addr, e)),
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
