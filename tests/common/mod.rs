//! Shared helpers of the integration tests. For the tests that drive the library through its C
//! ABI:
//!
//! - [`Conn`]: a small safe wrapper over the `iso_*` connection functions (the handle is destroyed
//!   on drop), with [`Conn::expect`] to assert a result code together with a piece of the
//!   handle's last error message;
//! - [`Peer`]: a scripted peer on loopback. It accepts one TCP connection, reads the CR, then runs
//!   the test's script against the raw stream ([`PeerConn`]), so it can misbehave at will;
//! - packet builders (`tpkt`, `dt`, `cc`, `dr`, `er`, `hex`) and [`bounded`], a watchdog that
//!   fails a test instead of letting it hang.
//!
//! For the tests that run other programs:
//!
//! - [`process`]: running a program with a time limit, its outputs captured;
//! - [`examples`]: building the C programs of examples-c/.
//!
//! Every test binary that needs a helper declares `mod common;` and so compiles all of it.
// Each test binary uses only part of this module; the rest would warn as dead code there.
#![allow(dead_code)]

pub mod examples;
pub mod process;

use std::ffi::{CStr, CString};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use isotcp::ffi::codes::*;
use isotcp::ffi::conn::{self as c, iso_conn};

/// How long a peer waits for the client to connect, and for any single read.
pub const PEER_PATIENCE: Duration = Duration::from_secs(10);
/// A generous timeout for operations that must succeed.
pub const LONG_MS: u32 = 5000;

// ---------------------------------------------------------------------------------------------
// Result codes
// ---------------------------------------------------------------------------------------------

/// The symbolic name of a result code, for readable assertion messages.
pub fn code_name(code: i32) -> String {
    let name = match code {
        ISO_OK => "ISO_OK",
        ISO_E_INVALID => "ISO_E_INVALID",
        ISO_E_STATE => "ISO_E_STATE",
        ISO_E_RESOLVE => "ISO_E_RESOLVE",
        ISO_E_REFUSED => "ISO_E_REFUSED",
        ISO_E_TIMEOUT => "ISO_E_TIMEOUT",
        ISO_E_WOULD_BLOCK => "ISO_E_WOULD_BLOCK",
        ISO_E_CLOSED => "ISO_E_CLOSED",
        ISO_E_REJECTED => "ISO_E_REJECTED",
        ISO_E_PROTOCOL => "ISO_E_PROTOCOL",
        ISO_E_TOO_LARGE => "ISO_E_TOO_LARGE",
        ISO_E_BUFFER_TOO_SMALL => "ISO_E_BUFFER_TOO_SMALL",
        ISO_E_IO => "ISO_E_IO",
        ISO_E_PANIC => "ISO_E_PANIC",
        ISO_E_POISONED => "ISO_E_POISONED",
        other => return format!("{other}"),
    };
    format!("{name} ({code})")
}

/// `iso_strerror(code)` as a Rust string (panics on NULL).
pub fn strerror(code: i32) -> String {
    let p = c_strerror(code);
    assert!(!p.is_null(), "iso_strerror({code}) returned NULL");
    // SAFETY: non-NULL, static, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .expect("iso_strerror text is UTF-8")
        .to_owned()
}

fn c_strerror(code: i32) -> *const std::ffi::c_char {
    isotcp::ffi::codes::iso_strerror(code)
}

/// The calling thread's last error (`iso_thread_last_error`).
pub fn thread_last_error() -> String {
    let mut needed = 0usize;
    // SAFETY: NULL buffer with cap 0 is the documented size query.
    unsafe { c::iso_thread_last_error(std::ptr::null_mut(), 0, &mut needed) };
    assert!(needed >= 1, "iso_thread_last_error needs at least the NUL");
    let mut buf = vec![0u8; needed];
    // SAFETY: buf is valid for `needed` bytes.
    let rc = unsafe { c::iso_thread_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
    assert_eq!(
        rc, ISO_OK,
        "iso_thread_last_error with a buffer of the size it asked for"
    );
    CStr::from_bytes_until_nul(&buf)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts `rc == want` and that `message` contains every one of `fragments`.
#[track_caller]
pub fn assert_code_msg(rc: i32, want: i32, message: &str, fragments: &[&str]) {
    assert!(
        rc == want,
        "expected {}, got {}; last error: {message:?}",
        code_name(want),
        code_name(rc)
    );
    for f in fragments {
        assert!(
            message.contains(f),
            "{}: last error {message:?} does not contain {f:?}",
            code_name(want)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The connection handle
// ---------------------------------------------------------------------------------------------

/// An `iso_conn` handle, destroyed on drop. Shareable between threads, as the C API allows.
pub struct Conn {
    ptr: *mut iso_conn,
}

// SAFETY: the C API documents every function as callable from any thread, with the concurrent
// combinations the tests use (send while recv, disconnect while blocked) explicitly allowed.
unsafe impl Send for Conn {}
unsafe impl Sync for Conn {}

impl Conn {
    /// `iso_create`; Err carries the code and the thread's last error.
    pub fn try_create(host: &str, port: u16) -> Result<Conn, (i32, String)> {
        let h = CString::new(host).expect("host without NUL");
        let mut out: *mut iso_conn = 0x1 as *mut iso_conn; // not NULL, to see it being reset
                                                           // SAFETY: valid C string and out pointer.
        let rc = unsafe { c::iso_create(h.as_ptr(), port, &mut out) };
        if rc == ISO_OK {
            assert!(
                !out.is_null(),
                "iso_create returned ISO_OK and a NULL handle"
            );
            Ok(Conn { ptr: out })
        } else {
            assert!(
                out.is_null(),
                "iso_create failed ({}) but left *out non-NULL",
                code_name(rc)
            );
            Err((rc, thread_last_error()))
        }
    }

    #[track_caller]
    pub fn create(host: &str, port: u16) -> Conn {
        match Conn::try_create(host, port) {
            Ok(c) => c,
            Err((rc, msg)) => panic!(
                "iso_create({host:?}, {port}) failed: {} {msg}",
                code_name(rc)
            ),
        }
    }

    /// A handle for 127.0.0.1:`port`.
    #[track_caller]
    pub fn local(port: u16) -> Conn {
        Conn::create("127.0.0.1", port)
    }

    pub fn raw(&self) -> *mut iso_conn {
        self.ptr
    }

    /// The handle's last error message (`iso_last_error`, sized by a size query).
    pub fn last_error(&self) -> String {
        let mut needed = 0usize;
        // SAFETY: valid handle; NULL buffer with cap 0 is the size query.
        unsafe { c::iso_last_error(self.ptr, std::ptr::null_mut(), 0, &mut needed) };
        let mut buf = vec![0u8; needed.max(1)];
        // SAFETY: buf is valid for its length.
        let rc =
            unsafe { c::iso_last_error(self.ptr, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
        assert_eq!(rc, ISO_OK, "iso_last_error with the size it asked for");
        CStr::from_bytes_until_nul(&buf)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Asserts that `rc` is `want` and that the last error contains each of `fragments`.
    #[track_caller]
    pub fn expect(&self, rc: i32, want: i32, fragments: &[&str]) {
        assert_code_msg(rc, want, &self.last_error(), fragments);
    }

    /// Asserts success, printing the last error otherwise.
    #[track_caller]
    pub fn ok(&self, rc: i32) {
        assert!(
            rc == ISO_OK,
            "expected ISO_OK, got {}; last error: {:?}",
            code_name(rc),
            self.last_error()
        );
    }

    pub fn connect(&self, timeout_ms: u32) -> i32 {
        unsafe { c::iso_connect(self.ptr, timeout_ms) }
    }

    pub fn disconnect(&self) -> i32 {
        unsafe { c::iso_disconnect(self.ptr) }
    }

    pub fn send(&self, data: &[u8]) -> i32 {
        // SAFETY: valid handle and slice.
        unsafe { c::iso_send(self.ptr, data.as_ptr(), data.len()) }
    }

    /// `iso_recv` into `buf`: (code, *out_len). `out_len` starts at usize::MAX so an untouched
    /// output is visible.
    pub fn recv_into(&self, buf: &mut [u8], timeout_ms: u32) -> (i32, usize) {
        let mut n = usize::MAX;
        // SAFETY: valid handle; buf valid for its length; a dangling non-NULL pointer for cap 0.
        let rc = unsafe { c::iso_recv(self.ptr, buf.as_mut_ptr(), buf.len(), &mut n, timeout_ms) };
        (rc, n)
    }

    /// Receives one message of at most `cap` bytes.
    pub fn recv(&self, cap: usize, timeout_ms: u32) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; cap];
        match self.recv_into(&mut buf, timeout_ms) {
            (ISO_OK, n) => {
                assert!(
                    n <= cap,
                    "iso_recv reported {n} bytes for a {cap}-byte buffer"
                );
                buf.truncate(n);
                Ok(buf)
            }
            (rc, _) => Err(rc),
        }
    }

    /// Receives one message that must arrive (up to 64 KiB, generous timeout).
    #[track_caller]
    pub fn recv_ok(&self) -> Vec<u8> {
        match self.recv(65536, LONG_MS) {
            Ok(m) => m,
            Err(rc) => panic!(
                "iso_recv failed: {}; last error: {:?}",
                code_name(rc),
                self.last_error()
            ),
        }
    }

    pub fn poll(&self, timeout_ms: u32) -> i32 {
        unsafe { c::iso_poll(self.ptr, timeout_ms) }
    }

    pub fn check(&self) -> i32 {
        unsafe { c::iso_check_connection(self.ptr) }
    }

    pub fn tpdu_size(&self) -> Result<u32, i32> {
        let mut v = 0u32;
        // SAFETY: valid handle and out pointer.
        match unsafe { c::iso_get_tpdu_size(self.ptr, &mut v) } {
            ISO_OK => Ok(v),
            rc => Err(rc),
        }
    }

    pub fn fd(&self) -> Result<i64, i32> {
        let mut v = -1i64;
        // SAFETY: valid handle and out pointer.
        match unsafe { c::iso_get_fd(self.ptr, &mut v) } {
            ISO_OK => Ok(v),
            rc => Err(rc),
        }
    }

    pub fn remote_tsap(&self) -> Result<Vec<u8>, i32> {
        self.tsap_with(|p, b, cap, n| unsafe { c::iso_get_remote_tsap(p, b, cap, n) })
    }

    pub fn calling_tsap(&self) -> Result<Vec<u8>, i32> {
        self.tsap_with(|p, b, cap, n| unsafe { c::iso_get_calling_tsap(p, b, cap, n) })
    }

    fn tsap_with(
        &self,
        f: impl Fn(*const iso_conn, *mut u8, usize, *mut usize) -> i32,
    ) -> Result<Vec<u8>, i32> {
        let mut buf = [0u8; 64];
        let mut n = 0usize;
        match f(self.ptr, buf.as_mut_ptr(), buf.len(), &mut n) {
            ISO_OK => Ok(buf[..n].to_vec()),
            rc => Err(rc),
        }
    }

    pub fn set_tsap(&self, local: u16, remote: u16) -> i32 {
        unsafe { c::iso_set_tsap(self.ptr, local, remote) }
    }

    pub fn set_tsap_bytes(&self, local: &[u8], remote: &[u8]) -> i32 {
        // SAFETY: valid handle and slices.
        unsafe {
            c::iso_set_tsap_bytes(
                self.ptr,
                local.as_ptr(),
                local.len(),
                remote.as_ptr(),
                remote.len(),
            )
        }
    }

    pub fn set_tpdu_size(&self, size: u32) -> i32 {
        unsafe { c::iso_set_tpdu_size(self.ptr, size) }
    }

    pub fn set_routing(&self, subnet: u16, rack: u16, slot: u16) -> i32 {
        unsafe { c::iso_set_routing(self.ptr, subnet, rack, slot) }
    }

    pub fn set_routing_s7(
        &self,
        high: u16,
        low: u16,
        addr: &[u8],
        conn_type: u8,
        rack: u16,
        slot: u16,
    ) -> i32 {
        // SAFETY: valid handle and slice.
        unsafe {
            c::iso_set_routing_s7(
                self.ptr,
                high,
                low,
                addr.as_ptr(),
                addr.len(),
                conn_type,
                rack,
                slot,
            )
        }
    }

    pub fn set_send_timeout(&self, ms: u32) -> i32 {
        unsafe { c::iso_set_send_timeout(self.ptr, ms) }
    }

    pub fn set_max_message(&self, bytes: u32) -> i32 {
        unsafe { c::iso_set_max_message(self.ptr, bytes) }
    }

    pub fn set_max_fragments(&self, n: u32) -> i32 {
        unsafe { c::iso_set_max_fragments(self.ptr, n) }
    }

    pub fn set_keepalive(&self, enable: i32, idle: u32, interval: u32, count: u32) -> i32 {
        unsafe { c::iso_set_keepalive(self.ptr, enable, idle, interval, count) }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the handle came from iso_create and is destroyed exactly once.
        unsafe { c::iso_destroy(self.ptr) };
    }
}

/// Creates, uses and destroys a fresh handle: the library (and process) still works.
#[track_caller]
pub fn assert_library_usable() {
    let conn = Conn::local(102);
    assert_eq!(conn.check(), 0);
    assert_eq!(conn.last_error(), "no error");
    assert!(!strerror(ISO_E_STATE).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

/// "03 00 00 16" -> bytes.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// A TPKT around `tpdu`.
pub fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let len = tpdu.len() + 4;
    assert!(len <= 65535);
    let mut p = vec![3, 0, (len >> 8) as u8, len as u8];
    p.extend_from_slice(tpdu);
    p
}

/// A DT packet with `payload`; `eot` marks the last fragment.
pub fn dt(payload: &[u8], eot: bool) -> Vec<u8> {
    let mut t = vec![2, 0xF0, if eot { 0x80 } else { 0x00 }];
    t.extend_from_slice(payload);
    tpkt(&t)
}

/// A whole message as one DT with EOT.
pub fn msg(payload: &[u8]) -> Vec<u8> {
    dt(payload, true)
}

/// A message split into DTs of at most `chunk` payload bytes, EOT on the last.
pub fn fragments(payload: &[u8], chunk: usize) -> Vec<u8> {
    let parts: Vec<&[u8]> = payload.chunks(chunk).collect();
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        out.extend(dt(p, i + 1 == parts.len()));
    }
    out
}

/// A CC packet: DST-REF 0x0001 (our CR's SRC-REF), SRC-REF 0x0001, class 0, `params` in order.
pub fn cc(params: &[(u8, &[u8])]) -> Vec<u8> {
    let mut t = vec![0, 0xD0, 0x00, 0x01, 0x00, 0x01, 0x00];
    for (code, v) in params {
        t.push(*code);
        t.push(v.len() as u8);
        t.extend_from_slice(v);
    }
    t[0] = (t.len() - 1) as u8;
    tpkt(&t)
}

/// python-snap7 3.3's CC to the default CR.
pub fn cc_snap7() -> Vec<u8> {
    hex("03 00 00 16 11 D0 00 01 00 01 00 C0 01 0A C1 02 01 00 C2 02 01 02")
}

/// A DR with `reason`.
pub fn dr(reason: u8) -> Vec<u8> {
    tpkt(&[6, 0x80, 0x00, 0x01, 0x00, 0x01, reason])
}

/// An ER with `cause`, quoting a rejected header.
pub fn er(cause: u8) -> Vec<u8> {
    tpkt(&[8, 0x70, 0x00, 0x01, cause, 0xC1, 0x02, 0x11, 0xE0])
}

/// The default CR (local 0x0100, remote 0x0102, TPDU 1024) per wire.md.
pub fn default_cr() -> Vec<u8> {
    hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A")
}

/// A deterministic test payload of `len` bytes, distinct per `seed`.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9E37_79B9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scripted peer
// ---------------------------------------------------------------------------------------------

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
