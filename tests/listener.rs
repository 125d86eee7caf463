//! The passive side through the C ABI: our client against our listener, and raw clients that
//! misbehave during the handshake. (Interop with python-snap7's and snap7's clients is in
//! tests/interop_listener.rs.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::packets::hex;
use isotcp::ffi::codes::*;
use isotcp::ffi::conn::*;
use isotcp::ffi::listener::*;

struct L(*mut iso_listener);
impl Drop for L {
    fn drop(&mut self) {
        unsafe { iso_listener_destroy(self.0) }
    }
}
unsafe impl Send for L {}

struct C(*mut iso_conn);
impl Drop for C {
    fn drop(&mut self) {
        unsafe { iso_destroy(self.0) }
    }
}
unsafe impl Send for C {}

fn listen() -> (L, u16) {
    let mut l = null_mut();
    assert_eq!(
        unsafe { iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l) },
        ISO_OK
    );
    let mut port = 0;
    assert_eq!(unsafe { iso_listener_port(l, &mut port) }, ISO_OK);
    assert_ne!(port, 0);
    (L(l), port)
}

fn client(port: u16) -> C {
    let mut c = null_mut();
    assert_eq!(
        unsafe { iso_create(c"127.0.0.1".as_ptr(), port, &mut c) },
        ISO_OK
    );
    C(c)
}

fn listener_error(l: &L) -> String {
    let mut buf = [0u8; 512];
    let mut needed = 0;
    unsafe { iso_listener_last_error(l.0, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
    String::from_utf8_lossy(&buf[..needed.saturating_sub(1).min(511)]).into_owned()
}

fn recv(c: &C, timeout_ms: u32) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; 70000];
    let mut n = 0;
    match unsafe { iso_recv(c.0, buf.as_mut_ptr(), buf.len(), &mut n, timeout_ms) } {
        ISO_OK => Ok(buf[..n].to_vec()),
        e => Err(e),
    }
}

#[test]
fn our_client_and_listener_exchange_segmented_messages_both_ways() {
    let (l, port) = listen();
    let cl = client(port);
    unsafe {
        assert_eq!(iso_set_tpdu_size(cl.0, 256), ISO_OK);
        assert_eq!(
            iso_set_tsap_bytes(cl.0, [6u8, 0].as_ptr(), 2, b"SIMATIC-ROOT-HMI".as_ptr(), 16),
            ISO_OK
        );
    }
    let cl_ptr = cl;
    let t = std::thread::spawn(move || {
        assert_eq!(unsafe { iso_connect(cl_ptr.0, 2000) }, ISO_OK);
        cl_ptr
    });
    let mut srv = null_mut();
    assert_eq!(unsafe { iso_accept(l.0, 2000, &mut srv) }, ISO_OK);
    let srv = C(srv);
    let cl = t.join().unwrap();
    let mut size = 0;
    assert_eq!(unsafe { iso_get_tpdu_size(srv.0, &mut size) }, ISO_OK);
    assert_eq!(size, 256);
    let mut tsap = [0u8; 32];
    let mut n = 0;
    assert_eq!(
        unsafe { iso_get_remote_tsap(srv.0, tsap.as_mut_ptr(), 32, &mut n) },
        ISO_OK
    );
    assert_eq!(&tsap[..n], b"SIMATIC-ROOT-HMI");
    assert_eq!(
        unsafe { iso_get_calling_tsap(srv.0, tsap.as_mut_ptr(), 32, &mut n) },
        ISO_OK
    );
    assert_eq!(&tsap[..n], &[6, 0]);
    assert_eq!(
        unsafe { iso_connect(srv.0, 100) },
        ISO_E_STATE,
        "an accepted connection cannot connect"
    );

    for len in [1usize, 253, 254, 1000, 65536] {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        assert_eq!(unsafe { iso_send(cl.0, msg.as_ptr(), msg.len()) }, ISO_OK);
        assert_eq!(recv(&srv, 2000).unwrap(), msg);
        assert_eq!(unsafe { iso_send(srv.0, msg.as_ptr(), msg.len()) }, ISO_OK);
        assert_eq!(recv(&cl, 2000).unwrap(), msg);
    }
    assert_eq!(unsafe { iso_check_connection(srv.0) }, 1);
    assert_eq!(unsafe { iso_disconnect(cl.0) }, ISO_OK);
    assert_eq!(recv(&srv, 2000), Err(ISO_E_CLOSED));
    assert_eq!(unsafe { iso_check_connection(srv.0) }, 0);
}

/// Sends raw bytes as a client and returns what the listener answered before closing.
fn raw_exchange(port: u16, send: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(send).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn default_cr_gets_the_22_byte_cc() {
    let (l, port) = listen();
    let t = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&hex(
            "03 00 00 16 11 E0 00 00 00 07 00 C1 02 01 00 C2 02 01 02 C0 01 0A",
        ))
        .unwrap();
        let mut cc = [0u8; 22];
        s.read_exact(&mut cc).unwrap();
        cc
    });
    let mut srv = null_mut();
    assert_eq!(unsafe { iso_accept(l.0, 2000, &mut srv) }, ISO_OK);
    let _srv = C(srv);
    let cc = t.join().unwrap();
    // DST-REF = our SRC-REF 0x0007, SRC-REF non-zero, class 0, C0 1024, both TSAPs echoed.
    assert_eq!(&cc[..8], &hex("03 00 00 16 11 D0 00 07")[..]);
    assert_ne!(&cc[8..10], &[0, 0]);
    assert_eq!(&cc[10..], &hex("00 C0 01 0A C1 02 01 00 C2 02 01 02")[..]);
}

#[test]
fn bad_crs_are_refused_with_dr_and_reported() {
    let (l, port) = listen();
    let cases: [(&str, u8, &str); 4] = [
        (
            "03 00 00 16 11 E0 00 05 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A",
            0x84,
            "DST-REF",
        ),
        ("03 00 00 0B 20 E0 00 00 00 01 00", 0x8A, "length indicator"),
        (
            "03 00 00 0F 0A E0 00 00 00 09 00 C1 05 01 00",
            0x8A,
            "runs past the header",
        ),
        (
            "03 00 00 0E 09 E0 00 00 00 01 00 C0 01 20",
            0x8A,
            "TPDU-size code",
        ),
    ];
    for (i, (cr, reason, words)) in cases.iter().enumerate() {
        let cr = hex(cr);
        let t = std::thread::spawn(move || raw_exchange(port, &cr));
        let mut srv = null_mut();
        assert_eq!(unsafe { iso_accept(l.0, 300, &mut srv) }, ISO_E_TIMEOUT);
        assert!(srv.is_null());
        let dr = t.join().unwrap();
        assert_eq!(dr.len(), 11, "case {i}: {dr:02X?}");
        assert_eq!((dr[5], dr[10]), (0x80, *reason), "case {i}");
        let mut count = 0;
        unsafe { iso_listener_refused_count(l.0, &mut count) };
        assert_eq!(count, i as u64 + 1);
        let msg = listener_error(&l);
        assert!(
            msg.contains(words) && msg.contains(&format!("0x{reason:02X}")),
            "case {i}: {msg}"
        );
    }
}

#[test]
fn a_silent_client_does_not_delay_others() {
    let (l, port) = listen();
    unsafe { iso_listener_set_cr_timeout(l.0, 500) };
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cl = client(port);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(unsafe { iso_connect(cl.0, 2000) }, ISO_OK);
        cl
    });
    let start = Instant::now();
    let mut srv = null_mut();
    assert_eq!(unsafe { iso_accept(l.0, 3000, &mut srv) }, ISO_OK);
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "accepted after {:?}",
        start.elapsed()
    );
    let _srv = C(srv);
    let _cl = t.join().unwrap();
    // The silent one is dropped at its CR timeout and counted.
    assert_eq!(unsafe { iso_accept(l.0, 800, &mut srv) }, ISO_E_TIMEOUT);
    let mut count = 0;
    unsafe { iso_listener_refused_count(l.0, &mut count) };
    assert_eq!(count, 1);
    assert!(listener_error(&l).contains("no CR"));
}

#[test]
fn tsap_filter_and_callback_refuse_with_their_reasons() {
    let (l, port) = listen();
    unsafe { assert_eq!(iso_listener_allow_tsap(l.0, [1u8, 2].as_ptr(), 2), ISO_OK) };
    let wrong = hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 03 C0 01 0A");
    let t = std::thread::spawn(move || raw_exchange(port, &wrong));
    let mut srv = null_mut();
    assert_eq!(unsafe { iso_accept(l.0, 300, &mut srv) }, ISO_E_TIMEOUT);
    assert_eq!(t.join().unwrap()[10], 0x03);
    assert!(
        listener_error(&l).contains("0x0103"),
        "{}",
        listener_error(&l)
    );

    unsafe extern "C" fn busy(
        _: *mut std::ffi::c_void,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
    ) -> i32 {
        0x81
    }
    unsafe { assert_eq!(iso_listener_set_filter(l.0, Some(busy), null_mut()), ISO_OK) };
    let cl = client(port);
    assert_eq!(
        unsafe { iso_connect(cl.0, 300) },
        ISO_E_TIMEOUT,
        "no one accepts yet"
    );
    let t = std::thread::spawn(move || {
        let rc = unsafe { iso_connect(cl.0, 2000) };
        (rc, cl)
    });
    assert_eq!(unsafe { iso_accept(l.0, 500, &mut srv) }, ISO_E_TIMEOUT);
    let (rc, cl) = t.join().unwrap();
    assert_eq!(rc, ISO_E_REJECTED);
    let mut buf = [0u8; 256];
    let mut needed = 0;
    unsafe { iso_last_error(cl.0, buf.as_mut_ptr().cast(), 256, &mut needed) };
    let msg = String::from_utf8_lossy(&buf[..needed - 1]).into_owned();
    assert!(msg.contains("0x81") && msg.contains("congestion"), "{msg}");
}

#[test]
fn accept_with_timeout_zero_never_blocks_and_event_fd_signals_readiness() {
    let (l, port) = listen();
    let mut srv = null_mut();
    let start = Instant::now();
    assert_eq!(unsafe { iso_accept(l.0, 0, &mut srv) }, ISO_E_WOULD_BLOCK);
    assert!(start.elapsed() < Duration::from_millis(50));
    let mut fd = -1i64;
    assert_eq!(unsafe { iso_listener_get_fd(l.0, &mut fd) }, ISO_OK);
    let cl = client(port);
    let t = std::thread::spawn(move || {
        let rc = unsafe { iso_connect(cl.0, 2000) };
        (rc, cl)
    });
    // Event loop: wait on the descriptor, then accept without blocking.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut p = libc::pollfd {
            fd: fd as i32,
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut p, 1, 100) };
        match unsafe { iso_accept(l.0, 0, &mut srv) } {
            ISO_OK => break,
            ISO_E_WOULD_BLOCK => assert!(Instant::now() < deadline, "never accepted"),
            e => panic!("accept: {e}"),
        }
    }
    let _srv = C(srv);
    let (rc, _cl) = t.join().unwrap();
    assert_eq!(rc, ISO_OK);
}

#[test]
fn ipv6_listener_accepts_ipv6_client() {
    let mut l = null_mut();
    if unsafe { iso_listen(c"::1".as_ptr(), 0, &mut l) } != ISO_OK {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    let l = L(l);
    let mut port = 0;
    unsafe { iso_listener_port(l.0, &mut port) };
    let mut c = null_mut();
    assert_eq!(unsafe { iso_create(c"::1".as_ptr(), port, &mut c) }, ISO_OK);
    let cl = C(c);
    let t = std::thread::spawn(move || (unsafe { iso_connect(cl.0, 2000) }, cl));
    let mut srv = null_mut();
    assert_eq!(unsafe { iso_accept(l.0, 2000, &mut srv) }, ISO_OK);
    let _srv = C(srv);
    assert_eq!(t.join().unwrap().0, ISO_OK);
}

#[test]
fn shutdown_wakes_a_blocked_accept() {
    let (l, port) = listen();
    let lp = l.0 as usize;
    let t = std::thread::spawn(move || {
        let mut out = null_mut();
        let start = Instant::now();
        let rc = unsafe { iso_accept(lp as *mut iso_listener, 10_000, &mut out) };
        (rc, out.is_null(), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(unsafe { iso_listener_shutdown(l.0) }, ISO_OK);
    let (rc, out_null, waited) = t.join().unwrap();
    assert_eq!(rc, ISO_E_STATE);
    assert!(out_null);
    assert!(
        waited < Duration::from_secs(2),
        "accept returned after {waited:?}"
    );
    assert!(
        listener_error(&l).contains("shut down"),
        "{}",
        listener_error(&l)
    );
    // Later accepts fail at once, and nobody is accepted any more.
    let mut out = null_mut();
    assert_eq!(unsafe { iso_accept(l.0, 0, &mut out) }, ISO_E_STATE);
    let c = client(port);
    assert_ne!(unsafe { iso_connect(c.0, 500) }, ISO_OK);
    assert_eq!(
        unsafe { iso_listener_shutdown(std::ptr::null()) },
        ISO_E_INVALID
    );
}
