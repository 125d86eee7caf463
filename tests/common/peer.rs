//! The scripted peer: [`Peer`] accepts one TCP connection on loopback, reads the CR, then runs
//! the test's script against the raw stream ([`PeerConn`]), so it can misbehave at will. Also
//! [`bounded`], a watchdog that fails a test instead of letting it hang, and the helpers of
//! fault injection: peers that write slowly or without end, timing, recovery checks.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::conn::{Conn, LONG_MS};
use super::packets::{cc_snap7, msg, pattern};

/// How long a peer waits for the client to connect, and for any single read.
pub const PEER_PATIENCE: Duration = Duration::from_secs(10);

/// The peer's side of one accepted connection.
pub struct PeerConn {
    pub stream: TcpStream,
    /// The CR packet as received (TPKT header included).
    pub cr: Vec<u8>,
}

impl PeerConn {
    /// Writes `bytes` in one call.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("peer write");
    }

    /// Writes `bytes` one byte at a time with `pause` between.
    pub fn dribble(&mut self, bytes: &[u8], pause: Duration) {
        for b in bytes {
            self.stream
                .write_all(std::slice::from_ref(b))
                .expect("peer write");
            thread::sleep(pause);
        }
    }

    /// Answers the CR with python-snap7's CC.
    pub fn accept(&mut self) {
        self.send(&cc_snap7());
    }

    /// Reads one TPKT packet (header included); None on EOF before its first byte.
    pub fn read_tpkt(&mut self) -> Option<Vec<u8>> {
        read_tpkt(&mut self.stream).expect("peer read")
    }

    /// Reads DTs until EOT and returns the reassembled message with each DT's packet length.
    pub fn read_message(&mut self) -> Option<(Vec<u8>, Vec<usize>)> {
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let p = self.read_tpkt()?;
            assert!(
                p.len() >= 7 && p[4] == 2 && p[5] == 0xF0,
                "peer expected a DT, got {p:02X?}"
            );
            assert_eq!(p[6] & 0x7F, 0, "TPDU-NR must be 0");
            sizes.push(p.len());
            out.extend_from_slice(&p[7..]);
            if p[6] & 0x80 != 0 {
                return Some((out, sizes));
            }
        }
    }

    /// Waits until the client closes (EOF or reset) or `limit` passes; discards what arrives.
    /// Returns true when the client closed.
    pub fn wait_close(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Holds the connection open until the client closes it (bounded by PEER_PATIENCE).
    pub fn hold(&mut self) {
        self.wait_close(PEER_PATIENCE);
    }

    /// Sets SO_LINGER 0: the connection is reset (RST, no FIN) when the stream is closed, which
    /// happens when the script returns (do not also call `hold`).
    pub fn reset_on_return(&self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
    }

    /// Closes both directions now (FIN); the script may still return a result.
    pub fn close_now(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Reads one TPKT from `r`: Ok(None) on EOF before its first byte.
pub fn read_tpkt(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut h = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a TPKT header",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    assert_eq!(h[0], 3, "TPKT version from the client");
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    assert!(len >= 7, "TPKT length {len} from the client");
    let mut p = vec![0u8; len];
    p[..4].copy_from_slice(&h);
    r.read_exact(&mut p[4..])?;
    Ok(Some(p))
}

/// A scripted peer running on its own thread. [`Peer::finish`] returns what the script returned
/// (and re-raises its panic, so assertions inside the script fail the test).
pub struct Peer<T> {
    pub addr: SocketAddr,
    result: mpsc::Receiver<T>,
    thread: Option<JoinHandle<()>>,
}

impl Peer<()> {
    /// A peer that reads the CR, sends `answer` (may be empty), then holds the connection until
    /// the client closes it. Returns the CR it received.
    pub fn answering(answer: Vec<u8>) -> Peer<Vec<u8>> {
        Peer::start(move |p| {
            if !answer.is_empty() {
                p.send(&answer);
            }
            p.hold();
            p.cr.clone()
        })
    }

    /// Serves `n` connections one after another on one port; `script(i, conn)` for the i-th.
    pub fn start_many<U: Send + 'static>(
        n: usize,
        script: impl Fn(usize, &mut PeerConn) -> U + Send + 'static,
    ) -> Peer<Vec<U>> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("scripted-peer".into())
            .spawn(move || {
                let mut out = Vec::new();
                for i in 0..n {
                    let mut stream = accept_within(&listener, PEER_PATIENCE)
                        .expect("the client never connected");
                    stream.set_read_timeout(Some(PEER_PATIENCE)).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let cr = read_tpkt(&mut stream)
                        .expect("peer reading the CR")
                        .expect("client closed before its CR");
                    let mut pc = PeerConn { stream, cr };
                    out.push(script(i, &mut pc));
                }
                let _ = tx.send(out);
            })
            .unwrap();
        Peer {
            addr,
            result: rx,
            thread: Some(thread),
        }
    }
}

impl<T: Send + 'static> Peer<T> {
    /// Listens on 127.0.0.1 and runs `script` after reading the CR of the first connection.
    pub fn start(script: impl FnOnce(&mut PeerConn) -> T + Send + 'static) -> Peer<T> {
        Peer::start_on(
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1"),
            script,
        )
    }

    /// As [`Peer::start`], on a listener the test made (e.g. on ::1).
    pub fn start_on(
        listener: TcpListener,
        script: impl FnOnce(&mut PeerConn) -> T + Send + 'static,
    ) -> Peer<T> {
        Peer::start_raw(listener, move |stream| {
            let mut stream = stream;
            let cr = read_tpkt(&mut stream)
                .expect("peer reading the CR")
                .expect("client closed before its CR");
            let mut pc = PeerConn { stream, cr };
            script(&mut pc)
        })
    }

    /// Runs `script` on the accepted stream without reading anything first.
    pub fn start_raw(
        listener: TcpListener,
        script: impl FnOnce(TcpStream) -> T + Send + 'static,
    ) -> Peer<T> {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("scripted-peer".into())
            .spawn(move || {
                let stream =
                    accept_within(&listener, PEER_PATIENCE).expect("the client never connected");
                drop(listener);
                stream.set_read_timeout(Some(PEER_PATIENCE)).unwrap();
                stream.set_write_timeout(Some(PEER_PATIENCE)).unwrap();
                stream.set_nodelay(true).unwrap();
                let _ = tx.send(script(stream));
            })
            .unwrap();
        Peer {
            addr,
            result: rx,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits (bounded) for the script to end and returns its result.
    #[track_caller]
    pub fn finish(mut self) -> T {
        match self
            .result
            .recv_timeout(PEER_PATIENCE + Duration::from_secs(5))
        {
            Ok(v) => {
                let _ = self.thread.take().unwrap().join();
                v
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => match self.thread.take().unwrap().join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!("peer ended without a result"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the scripted peer did not finish in time")
            }
        }
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let end = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a peer that accepts with python-snap7's CC, runs `script`, then holds the connection
/// until the client closes it. Returns the connected client handle and the peer.
#[track_caller]
pub fn connected<T: Send + 'static>(
    script: impl FnOnce(&mut PeerConn) -> T + Send + 'static,
) -> (Conn, Peer<T>) {
    connected_with(|_| {}, script)
}

/// As [`connected`], with `setup` applied to the handle before connecting.
#[track_caller]
pub fn connected_with<T: Send + 'static>(
    setup: impl FnOnce(&Conn),
    script: impl FnOnce(&mut PeerConn) -> T + Send + 'static,
) -> (Conn, Peer<T>) {
    let peer = Peer::start(move |p| {
        p.accept();
        let out = script(p);
        p.hold();
        out
    });
    let conn = Conn::local(peer.port());
    setup(&conn);
    conn.ok(conn.connect(LONG_MS));
    (conn, peer)
}

/// Connects to a peer answering `answer`, after `setup`; returns the handle and the code.
pub fn connect_answered(answer: Vec<u8>, setup: impl FnOnce(&Conn)) -> (Conn, i32, Peer<Vec<u8>>) {
    let peer = Peer::answering(answer);
    let conn = Conn::local(peer.port());
    setup(&conn);
    let rc = conn.connect(LONG_MS);
    (conn, rc, peer)
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}

/// Runs `f` on a helper thread and fails if it takes longer than `limit` (a hung library call
/// then fails its test instead of hanging the whole run).
#[track_caller]
pub fn bounded<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = h.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test body did not finish within {limit:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection: peers that write slowly or without end, timing, recovery checks
// ---------------------------------------------------------------------------------------------

impl PeerConn {
    /// Writes `bytes` one byte per write, `pause` apart, until they run out, the client closes
    /// or resets the connection, or `limit` passes. The pauses are spent watching for the
    /// client's close, so a close ends the loop at once. Returns true when the client closed.
    pub fn trickle(
        &mut self,
        bytes: impl IntoIterator<Item = u8>,
        pause: Duration,
        limit: Duration,
    ) -> bool {
        let end = Instant::now() + limit;
        for b in bytes {
            if Instant::now() >= end {
                return false;
            }
            if self.stream.write_all(&[b]).is_err() {
                return true;
            }
            if self.wait_close(pause) {
                return true;
            }
        }
        self.wait_close(end.saturating_duration_since(Instant::now()))
    }

    /// Writes `chunk` again and again until a write fails (the client closed or reset the
    /// connection: true) or `limit` passes or a write stays blocked for a second (false).
    pub fn flood(&mut self, chunk: &[u8], limit: Duration) -> bool {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let end = Instant::now() + limit;
        while Instant::now() < end {
            match self.stream.write_all(chunk) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
        false
    }
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// Asserts `min <= elapsed <= max`.
#[track_caller]
pub fn assert_elapsed(what: &str, elapsed: Duration, min: Duration, max: Duration) {
    assert!(
        elapsed >= min,
        "{what}: returned after {elapsed:?}, before the lower bound {min:?}"
    );
    assert!(
        elapsed <= max,
        "{what}: returned after {elapsed:?}, past the upper bound {max:?}"
    );
}

/// A fresh handle connects to a fresh well-behaved echo peer, exchanges a fragmented and a
/// single-DT message and disconnects; the peer thread then ends. Shows that an earlier fault
/// left the library (and the process) working.
#[track_caller]
pub fn assert_fresh_connection_works() {
    let peer = Peer::start(|p| {
        p.accept();
        for _ in 0..2 {
            let m = p.read_message().expect("echo peer: a message").0;
            p.send(&msg(&m));
        }
        p.hold();
    });
    let conn = Conn::local(peer.port());
    conn.ok(conn.connect(LONG_MS));
    for m in [pattern(0xEC40, 3000), pattern(0xEC41, 20)] {
        conn.ok(conn.send(&m));
        assert!(conn.recv_ok() == m, "echo of {} bytes differs", m.len());
    }
    assert_eq!(conn.check(), 1);
    conn.ok(conn.disconnect());
    drop(conn);
    peer.finish();
}
