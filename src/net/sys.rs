//! Platform differences, and only those: readiness waits, vectored sends without SIGPIPE,
//! hang-up detection, the raw handle. Everything above this file is the same on every platform.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use socket2::Socket;

use super::deadline::Deadline;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    // Waiting to read goes through `recv`'s own wait except on Windows.
    #[cfg_attr(not(windows), allow(dead_code))]
    Read,
    Write,
}

/// On Windows a blocked wait is not woken by `shutdown` from another thread; waits there run in
/// slices so a local disconnect is noticed promptly. On Unix `shutdown` wakes `poll` at once.
#[cfg(windows)]
const WAIT_SLICE: Duration = Duration::from_millis(50);
#[cfg(not(windows))]
const WAIT_SLICE: Duration = Duration::from_secs(3600);

/// Waits until the socket is ready for `interest`, `stop` is set, or the deadline passes.
/// Returns Ok(true) when ready or stopped (an error or hang-up also counts as ready: the next
/// call on the socket says which), Ok(false) when the deadline passed first.
pub fn wait(
    sock: &Socket,
    interest: Interest,
    deadline: &Deadline,
    stop: &AtomicBool,
) -> io::Result<bool> {
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(true);
        }
        let left = deadline.remaining().min(WAIT_SLICE);
        match poll_one(sock, interest, left) {
            Ok(true) => return Ok(true),
            Ok(false) | Err(_) if deadline.passed() => return Ok(false),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How long a writer waits for the socket to report writability before it tries the send again.
///
/// Unix: never; `poll` is trusted. Windows: a send may succeed while `select` and `WSAPoll` do not
/// yet report the socket writable. Windows itself reports writability as soon as a send can make
/// progress, but Wine relays the host's `POLLOUT` (Wine's server maps `POLLOUT` to
/// `AFD_POLL_WRITE`), and Linux sets `POLLOUT` on a TCP socket only once the free send space is at
/// least half of the bytes still queued (`sk_stream_is_writeable`), while `send` takes bytes as
/// soon as any space is free. With a large auto-tuned send buffer and a slowly reading peer that
/// difference is seconds, so a flush could miss its deadline with the peer draining all along.
/// Trying the send again is the authoritative test, so waits are cut short: 1 ms at first,
/// doubling while the peer takes nothing up to 50 ms (a peer that reads nothing costs at most 20
/// failed sends a second), back to 1 ms after each send that made progress.
#[derive(Debug)]
pub struct WriteRetry {
    #[cfg(windows)]
    next: Duration,
}

// Not derived: on Windows the first wait is 1 ms, not zero (on Unix the struct is empty).
#[allow(clippy::derivable_impls)]
impl Default for WriteRetry {
    fn default() -> Self {
        WriteRetry {
            #[cfg(windows)]
            next: WRITE_RETRY_FIRST,
        }
    }
}

#[cfg(windows)]
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(1);

impl WriteRetry {
    /// A send made progress: the next wait is short again.
    pub fn progressed(&mut self) {
        #[cfg(windows)]
        {
            self.next = WRITE_RETRY_FIRST;
        }
    }
}

/// Waits until a send on `sock` may make progress, `stop` is set, or the deadline passes: Ok(true)
/// means "send again" (on Windows also when only the retry interval of `retry` ran out), Ok(false)
/// that the deadline passed first.
pub fn wait_writable(
    sock: &Socket,
    deadline: &Deadline,
    stop: &AtomicBool,
    retry: &mut WriteRetry,
) -> io::Result<bool> {
    #[cfg(not(windows))]
    {
        let _ = retry;
        wait(sock, Interest::Write, deadline, stop)
    }
    #[cfg(windows)]
    {
        if stop.load(Ordering::Acquire) {
            return Ok(true);
        }
        let slice = deadline.remaining().min(retry.next);
        retry.next = (retry.next * 2).min(WAIT_SLICE);
        match poll_one(sock, Interest::Write, slice) {
            Ok(true) => Ok(true),
            Ok(false) => Ok(!deadline.passed()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(!deadline.passed()),
            Err(e) => Err(e),
        }
    }
}

/// The flag that keeps a send on a closed connection from raising SIGPIPE, where `send` has one
/// (macOS/iOS: SO_NOSIGPIPE is set when the socket is created instead; Windows has no SIGPIPE).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
const NO_SIGPIPE: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    ))
))]
const NO_SIGPIPE: libc::c_int = 0;

/// Sends as much of `bufs` as the socket takes now, without raising SIGPIPE.
pub fn send_vectored(sock: &Socket, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // Connected sockets are in blocking mode on Unix (see `enter_transfer_mode`): this send asks
    // not to wait. Windows sockets stay non-blocking.
    #[cfg(unix)]
    let flags = NO_SIGPIPE | libc::MSG_DONTWAIT;
    #[cfg(windows)]
    let flags = 0;
    send_with_flags(sock, bufs, flags)
}

fn send_with_flags(sock: &Socket, bufs: &[IoSlice<'_>], flags: i32) -> io::Result<usize> {
    loop {
        match sock.send_vectored_with_flags(bufs, flags) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A new non-blocking TCP socket (for connecting). Linux and the BSDs create it non-blocking in
/// the one `socket` call; elsewhere `prepare` switches it.
pub fn stream_socket(domain: socket2::Domain) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    let ty = socket2::Type::STREAM.nonblocking();
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    let ty = socket2::Type::STREAM;
    let sock = Socket::new(domain, ty, Some(socket2::Protocol::TCP))?;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    sock.set_nosigpipe(true)?;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Options of a listening socket before bind. Unix: SO_REUSEADDR, so a restarted server can bind
/// while old connections linger in TIME_WAIT. Windows: SO_EXCLUSIVEADDRUSE, since there
/// SO_REUSEADDR would let another process bind the same port and take its connections.
pub fn prepare_listener(sock: &Socket) -> io::Result<()> {
    #[cfg(unix)]
    sock.set_reuse_address(true)?;
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock::{
            setsockopt, SOCKET_ERROR, SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
        };
        let on: i32 = 1;
        // SAFETY: a valid socket and a 4-byte option value.
        let rc = unsafe {
            setsockopt(
                sock.as_raw_socket() as usize,
                SOL_SOCKET,
                SO_EXCLUSIVEADDRUSE,
                (&on as *const i32).cast(),
                4,
            )
        };
        if rc == SOCKET_ERROR {
            return Err(io::Error::last_os_error());
        }
    }
    prepare(sock)
}

/// True for the error a connection gets when the system gave up on the peer (ETIMEDOUT,
/// WSAETIMEDOUT): the user timeout or keep-alive expired.
pub fn is_timed_out(e: &io::Error) -> bool {
    #[cfg(unix)]
    return e.raw_os_error() == Some(libc::ETIMEDOUT);
    #[cfg(windows)]
    return e.raw_os_error() == Some(windows_sys::Win32::Networking::WinSock::WSAETIMEDOUT);
}

/// Bounds how long sent data may stay unacknowledged before the system gives up on the
/// connection and reports ETIMEDOUT, which keep-alive alone does not: it probes only while
/// nothing is in flight, so a peer that vanishes under a pending request would otherwise be
/// retransmitted to for about 15 minutes (Linux). Linux: `TCP_USER_TIMEOUT`, in milliseconds
/// (rounded up, so a nonzero timeout never becomes 0; at most i32::MAX). Windows: `TCP_MAXRT`, in whole seconds,
/// rounded up. Other systems: no such option; nothing is set.
///
/// `None` asks for the system's default. On Linux that is the option's value 0. `TCP_MAXRT`
/// has no value meaning "default" (-1 means "never give up"), so on Windows `None` leaves the
/// option as it is: a new socket has the system's default, so set it before anything else.
/// Where Windows' stack lacks the option (Wine), nothing is set and the system's bound stays.
pub fn set_user_timeout(sock: &Socket, timeout: Option<Duration>) -> io::Result<()> {
    let timeout = timeout.filter(|t| !t.is_zero());
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // The kernel reads the option as an int: at most i32::MAX ms (about 24.8 days).
        let ms = timeout.map(|t| t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as u64);
        sock.set_tcp_user_timeout(ms.map(Duration::from_millis))
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock::{
            setsockopt, IPPROTO_TCP, SOCKET_ERROR, TCP_MAXRT, WSAEINVAL, WSAENOPROTOOPT,
        };
        let Some(t) = timeout else {
            return Ok(());
        };
        let secs: u32 = t.as_nanos().div_ceil(1_000_000_000).min(i32::MAX as u128) as u32;
        // SAFETY: a valid socket and a 4-byte (DWORD) option value.
        let rc = unsafe {
            setsockopt(
                sock.as_raw_socket() as usize,
                IPPROTO_TCP,
                TCP_MAXRT,
                (&secs as *const u32).cast(),
                4,
            )
        };
        if rc == SOCKET_ERROR {
            let e = io::Error::last_os_error();
            // A stack without the option (Wine's refuses TCP_MAXRT) keeps its own retransmission
            // limit: the connection still works, with the system's bound.
            let unsupported = [WSAENOPROTOOPT, WSAEINVAL].map(Some);
            if unsupported.contains(&e.raw_os_error()) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", windows)))]
    {
        let _ = (sock, timeout);
        Ok(())
    }
}

/// Options every socket gets at creation, beyond what socket2 sets (close-on-exec).
pub fn prepare(sock: &Socket) -> io::Result<()> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    sock.set_nosigpipe(true)?;
    sock.set_nonblocking(true)
}

/// Puts a connected socket into the mode `recv` expects. On Unix that is blocking mode with a
/// receive timeout: a read that finds data costs one system call, and one that waits needs no
/// separate `poll` (sends pass MSG_DONTWAIT instead). Windows sockets stay non-blocking and wait
/// with WSAPoll.
pub fn enter_transfer_mode(sock: &Socket) -> io::Result<()> {
    // FIONBIO: one system call, where fcntl needs two (get the flags, set them).
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut off: libc::c_int = 0;
        // SAFETY: FIONBIO takes a pointer to an int.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONBIO, &mut off) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(windows)]
    let _ = sock;
    Ok(())
}

/// A socket timeout (SO_RCVTIMEO or SO_SNDTIMEO) as currently set, in microseconds (0: none set
/// yet, which must never be taken for "close enough": 0 means no timeout at all to the kernel),
/// so that it is set again only when a call needs a different one.
#[derive(Default)]
pub struct ArmedTimeout(AtomicU64);

impl ArmedTimeout {
    /// Forgets the cached value (a new socket).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// Makes the socket's timeout `option` match what is left of the deadline; false when the
    /// deadline has passed. A timeout set by an earlier call with the same timeout differs by
    /// the microseconds between the calls: close enough (1 ms), and it saves a system call per
    /// operation. Set shorter, the operation may end a little early; callers then look again.
    #[cfg(unix)]
    fn arm(&self, fd: libc::c_int, option: libc::c_int, deadline: &Deadline) -> io::Result<bool> {
        let left = deadline.remaining();
        if left.is_zero() {
            return Ok(false);
        }
        let want = (left.as_micros() as u64).clamp(1, i64::MAX as u64);
        let set = self.0.load(Ordering::Relaxed);
        if set == 0 || set.abs_diff(want) > 1000 {
            set_timeout(fd, option, want)?;
            self.0.store(want, Ordering::Relaxed);
        }
        Ok(true)
    }
}

/// Sends as much of `bufs` as the socket takes before the deadline, without SIGPIPE: on Unix one
/// blocking `sendmsg` bounded by SO_SNDTIMEO (no `poll` first, no retry after each partial
/// write); with an immediate deadline, or on Windows, as `send_vectored`. WouldBlock: nothing
/// could be sent in time.
pub fn send_within(
    sock: &Socket,
    bufs: &[IoSlice<'_>],
    deadline: &Deadline,
    armed: &ArmedTimeout,
) -> io::Result<usize> {
    #[cfg(unix)]
    if !deadline.is_immediate() {
        use std::os::fd::AsRawFd;
        if !armed.arm(sock.as_raw_fd(), libc::SO_SNDTIMEO, deadline)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Interrupted: the caller waits for writability and calls again, which sets the
        // timeout to what is left, so a stream of signals cannot stretch the deadline.
        return match sock.send_vectored_with_flags(bufs, NO_SIGPIPE) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            other => other,
        };
    }
    #[cfg(windows)]
    let _ = (deadline, armed);
    send_vectored(sock, bufs)
}

/// Reads what the socket has into `buf`, waiting within the deadline. Ok(Some(0)) is end of
/// stream (also after a local shutdown by `disconnect`, or when `stop` is set), Ok(None) means
/// the deadline passed (or, for an immediate one, nothing was there).
#[cfg(unix)]
pub fn recv(
    sock: &Socket,
    buf: &mut [u8],
    deadline: &Deadline,
    stop: &AtomicBool,
    armed: &ArmedTimeout,
) -> io::Result<Option<usize>> {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(Some(0));
        }
        let flags = if deadline.is_immediate() {
            libc::MSG_DONTWAIT
        } else {
            if !armed.arm(fd, libc::SO_RCVTIMEO, deadline)? {
                return Ok(None);
            }
            0
        };
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock if deadline.is_immediate() => return Ok(None),
            // The receive timeout ran out (or was set for less than needed): look again.
            io::ErrorKind::WouldBlock => {}
            _ => return Err(e),
        }
    }
}

#[cfg(unix)]
fn set_timeout(fd: libc::c_int, option: libc::c_int, micros: u64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: (micros / 1_000_000) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    };
    // SAFETY: a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(windows)]
pub fn recv(
    sock: &Socket,
    buf: &mut [u8],
    deadline: &Deadline,
    stop: &AtomicBool,
    _armed: &ArmedTimeout,
) -> io::Result<Option<usize>> {
    use std::io::Read;
    loop {
        // As on Unix: once the deadline has passed, no more reads. `wait` reports a socket that
        // is readable as ready whatever the time, so a peer that never stops sending (packets
        // that complete no message) would otherwise hold the caller past its deadline.
        if !deadline.is_immediate() && deadline.passed() {
            return Ok(None);
        }
        if !wait(sock, Interest::Read, deadline, stop)? {
            return Ok(None);
        }
        if stop.load(Ordering::Acquire) {
            return Ok(Some(0));
        }
        match (&*sock).read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if deadline.is_immediate() || deadline.passed() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Shuts down both directions of the socket `handle` (from `raw_handle`), which wakes a thread
/// blocked on it. The caller guarantees the socket is still open.
pub fn shutdown_raw(handle: i64) {
    #[cfg(unix)]
    // SAFETY: plain system call on a descriptor the caller keeps open.
    unsafe {
        libc::shutdown(handle as libc::c_int, libc::SHUT_RDWR);
    }
    #[cfg(windows)]
    // SAFETY: plain system call on a socket the caller keeps open.
    unsafe {
        windows_sys::Win32::Networking::WinSock::shutdown(
            handle as usize,
            windows_sys::Win32::Networking::WinSock::SD_BOTH,
        );
    }
}

/// The raw handle as a signed 64-bit value: an fd on Unix, a SOCKET on Windows.
pub fn raw_handle(sock: &Socket) -> i64 {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        sock.as_raw_fd() as i64
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        sock.as_raw_socket() as i64
    }
}

#[cfg(unix)]
fn poll_one(sock: &Socket, interest: Interest, timeout: Duration) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let events = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up so a wait never ends just before the deadline and spins.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd, count 1.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

/// True when the peer has closed or reset the connection, judged without consuming any data.
#[cfg(unix)]
pub fn peer_hung_up(sock: &Socket) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let rdhup = libc::POLLRDHUP;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let rdhup = 0;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN | rdhup,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, no wait.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if pfd.revents & (libc::POLLHUP | libc::POLLERR | rdhup) != 0 {
        return Ok(true);
    }
    if rdhup == 0 && pfd.revents & libc::POLLIN != 0 {
        return peek_eof(sock);
    }
    Ok(false)
}

#[cfg(windows)]
fn poll_one(sock: &Socket, interest: Interest, timeout: Duration) -> io::Result<bool> {
    use std::os::windows::io::AsRawSocket;
    if interest == Interest::Write {
        return select_writable(sock.as_raw_socket() as usize, timeout);
    }
    use windows_sys::Win32::Networking::WinSock::{
        WSAPoll, POLLRDNORM, POLLWRNORM, SOCKET_ERROR, WSAPOLLFD,
    };
    let events = match interest {
        Interest::Read => POLLRDNORM,
        Interest::Write => POLLWRNORM,
    };
    let mut pfd = WSAPOLLFD {
        fd: sock.as_raw_socket() as usize,
        events,
        revents: 0,
    };
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: one valid WSAPOLLFD, count 1.
    let n = unsafe { WSAPoll(&mut pfd, 1, ms) };
    if n == SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

/// Writability by `select`, with the socket also in the exception set: before Windows 10 2004,
/// WSAPoll does not report a failed non-blocking connect, which would turn a refused connection
/// into a timeout; `select` reports it in the exception set. Either set counts as ready (the
/// caller then asks the socket for its error).
#[cfg(windows)]
fn select_writable(socket: usize, timeout: Duration) -> io::Result<bool> {
    use windows_sys::Win32::Networking::WinSock::{select, FD_SET, SOCKET_ERROR, TIMEVAL};
    let one = || {
        let mut set = FD_SET {
            fd_count: 1,
            fd_array: [0; 64],
        };
        set.fd_array[0] = socket;
        set
    };
    let (mut write, mut except) = (one(), one());
    let tv = TIMEVAL {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as i32,
        tv_usec: timeout.subsec_micros() as i32,
    };
    // SAFETY: two valid one-socket sets and a valid timeval; nfds is ignored on Windows.
    let n = unsafe { select(0, std::ptr::null_mut(), &mut write, &mut except, &tv) };
    if n == SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

#[cfg(windows)]
pub fn peer_hung_up(sock: &Socket) -> io::Result<bool> {
    use std::os::windows::io::AsRawSocket;
    use windows_sys::Win32::Networking::WinSock::{
        WSAPoll, POLLERR, POLLHUP, POLLRDNORM, SOCKET_ERROR, WSAPOLLFD,
    };
    let mut pfd = WSAPOLLFD {
        fd: sock.as_raw_socket() as usize,
        events: POLLRDNORM,
        revents: 0,
    };
    // SAFETY: one valid WSAPOLLFD, count 1, no wait.
    let n = unsafe { WSAPoll(&mut pfd, 1, 0) };
    if n == SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    if pfd.revents & (POLLHUP | POLLERR) != 0 {
        return Ok(true);
    }
    if pfd.revents & POLLRDNORM != 0 {
        return peek_eof(sock);
    }
    Ok(false)
}

/// Readable: a zero-byte peek means the peer sent FIN (data pending hides a later FIN).
fn peek_eof(sock: &Socket) -> io::Result<bool> {
    let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    #[cfg(unix)]
    let peeked = sock.recv_with_flags(&mut b, libc::MSG_PEEK | libc::MSG_DONTWAIT);
    #[cfg(windows)]
    let peeked = sock.peek(&mut b);
    match peeked {
        Ok(0) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) if is_reset(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Errors that mean the peer is gone rather than that something is wrong here.
pub fn is_reset(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof
    )
}

/// One `poll` over `socks` for `events`, within `timeout`; the pollfds with what each reported
/// (an interrupted wait reports nothing).
#[cfg(unix)]
fn poll_many(
    socks: &[&Socket],
    events: libc::c_short,
    timeout: Duration,
) -> io::Result<Vec<libc::pollfd>> {
    use std::os::fd::AsRawFd;
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(fds)
}

/// Waits until any of `socks` is readable (or errored) or `timeout` passes.
pub fn wait_any_readable(socks: &[&Socket], timeout: Duration) -> io::Result<()> {
    #[cfg(unix)]
    {
        poll_many(socks, libc::POLLIN, timeout)?;
        Ok(())
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock::{
            WSAPoll, POLLRDNORM, SOCKET_ERROR, WSAPOLLFD,
        };
        let mut fds: Vec<WSAPOLLFD> = socks
            .iter()
            .map(|s| WSAPOLLFD {
                fd: s.as_raw_socket() as usize,
                events: POLLRDNORM,
                revents: 0,
            })
            .collect();
        let ms = timeout
            .min(WAIT_SLICE)
            .as_micros()
            .div_ceil(1000)
            .min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of `fds.len()` WSAPOLLFDs.
        if unsafe { WSAPoll(fds.as_mut_ptr(), fds.len() as u32, ms) } == SOCKET_ERROR {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Waits up to `timeout` until any of `socks` is writable, as a socket whose connect completed
/// or failed is, and returns the positions of those that are (none when the time ran out).
/// Unix: one `poll`. Windows: `select` on each in turn, in slices of a few milliseconds, since
/// `select` reports a failed connect in its exception set where older `WSAPoll` reported
/// nothing.
pub fn wait_any_writable(socks: &[&Socket], timeout: Duration) -> io::Result<Vec<usize>> {
    #[cfg(unix)]
    {
        let fds = poll_many(socks, libc::POLLOUT, timeout)?;
        Ok(fds
            .iter()
            .enumerate()
            .filter(|(_, f)| f.revents != 0)
            .map(|(i, _)| i)
            .collect())
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        let end = std::time::Instant::now() + timeout;
        loop {
            let mut ready = Vec::new();
            for (i, s) in socks.iter().enumerate() {
                if select_writable(s.as_raw_socket() as usize, Duration::ZERO)? {
                    ready.push(i);
                }
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if !ready.is_empty() || left.is_zero() {
                return Ok(ready);
            }
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
    }
}

/// One descriptor that becomes readable when any watched socket does, so an event loop can wait
/// on a listener and all its unfinished handshakes at once. Linux: an epoll instance. Elsewhere
/// there is no such descriptor; `fd()` returns None and the listener's own socket is used.
pub struct ReadyWatch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    epoll: std::os::fd::OwnedFd,
}

impl ReadyWatch {
    pub fn new() -> io::Result<Self> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::FromRawFd;
            // SAFETY: plain system call; the result is checked before use.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor owned by nothing else.
            Ok(ReadyWatch {
                epoll: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Ok(ReadyWatch {})
    }

    pub fn add(&self, _sock: &Socket) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        self.ctl(libc::EPOLL_CTL_ADD, _sock);
    }

    /// Must be called before the socket is closed.
    pub fn remove(&self, _sock: &Socket) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        self.ctl(libc::EPOLL_CTL_DEL, _sock);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn ctl(&self, op: libc::c_int, sock: &Socket) {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: valid epoll and socket descriptors, a valid event. Failure only means the
        // event-loop descriptor misses this socket; iso_accept itself polls every socket.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, sock.as_raw_fd(), &mut ev) };
    }

    /// How often an event loop must call `iso_accept(l, 0)` while handshakes are pending, when
    /// `fd()` cannot report their CRs: None on Linux (the epoll instance watches them).
    pub fn pending_recheck(&self) -> Option<Duration> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return None;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return Some(Duration::from_millis(20));
    }

    /// The epoll instance, where there is one.
    #[cfg(unix)]
    pub fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsFd;
            Some(self.epoll.as_fd())
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        None
    }

    pub fn fd(&self) -> Option<i64> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            Some(self.epoll.as_raw_fd() as i64)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        None
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    fn tcp() -> Socket {
        Socket::new(Domain::IPV4, Type::STREAM, None).unwrap()
    }

    #[test]
    fn user_timeout_reads_back_in_milliseconds() {
        let s = tcp();
        assert_eq!(s.tcp_user_timeout().unwrap(), None, "a new socket: default");
        set_user_timeout(&s, Some(Duration::from_millis(4000))).unwrap();
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(4000))
        );
        // Below a millisecond rounds up: it must not turn into 0, the system's default.
        set_user_timeout(&s, Some(Duration::from_micros(1500))).unwrap();
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(2))
        );
        set_user_timeout(&s, Some(Duration::from_nanos(1))).unwrap();
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(1))
        );
        // More than the option holds saturates.
        set_user_timeout(&s, Some(Duration::from_secs(10_000_000))).unwrap();
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(i32::MAX as u64))
        );
        // None and zero: back to the system's default.
        set_user_timeout(&s, None).unwrap();
        assert_eq!(s.tcp_user_timeout().unwrap(), None);
        set_user_timeout(&s, Some(Duration::from_secs(3))).unwrap();
        set_user_timeout(&s, Some(Duration::ZERO)).unwrap();
        assert_eq!(s.tcp_user_timeout().unwrap(), None);
    }
}
