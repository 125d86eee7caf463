//! Connect failures: DR and ER answers, a peer resetting or closing after the CR, a silent peer,
//! a refused port, host names (localhost, IPv6, invalid ones), and a handle connecting again
//! after a failure.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;
use isotcp::ffi::conn as c;

#[test]
fn dr_answer_is_rejected_with_the_reason() {
    run(|| {
        let (conn, rc, peer) = connect_answered(dr(0x81), |_| {});
        conn.expect(rc, ISO_E_REJECTED, &["DR", "0x81", "congestion"]);
        assert_eq!(conn.connect_phase(), c::ISO_PHASE_COTP);
        assert_eq!(conn.check(), 0);
        drop(conn);
        peer.finish();

        let (conn, rc, peer) = connect_answered(dr(0x85), |_| {});
        conn.expect(rc, ISO_E_REJECTED, &["DR", "0x85", "protocol error"]);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn er_answer_is_rejected_with_the_cause() {
    run(|| {
        let (conn, rc, peer) = connect_answered(er(3), |_| {});
        conn.expect(
            rc,
            ISO_E_REJECTED,
            &["ER", "cause 3", "invalid parameter value"],
        );
        drop(conn);
        peer.finish();
    });
}

#[test]
fn reset_after_the_cr_is_closed_with_a_tsap_hint() {
    run(|| {
        let peer = Peer::start(|p| {
            p.reset_on_return();
            p.cr.clone()
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_tsap(0x0100, 0x0301));
        let rc = conn.connect(LONG_MS);
        conn.expect(
            rc,
            ISO_E_CLOSED,
            &[
                "reset by peer during COTP connect",
                "TSAP",
                "rack",
                "slot",
                "0x0301",
            ],
        );
        assert_eq!(conn.last_os_error(), os_code::CONNRESET);
        assert_eq!(conn.check(), 0);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn close_after_the_cr_is_closed_with_a_tsap_hint() {
    run(|| {
        let peer = Peer::start(|p| {
            p.close_now();
        });
        let conn = Conn::local(peer.port());
        let rc = conn.connect(LONG_MS);
        conn.expect(
            rc,
            ISO_E_CLOSED,
            &[
                "closed by peer during COTP connect",
                "TSAP",
                "rack and slot",
            ],
        );
        drop(conn);
        peer.finish();
    });
}

#[test]
fn silent_peer_times_out_at_the_deadline() {
    run(|| {
        let peer = Peer::answering(vec![]);
        let conn = Conn::local(peer.port());
        let t = Instant::now();
        let rc = conn.connect(400);
        let el = t.elapsed();
        conn.expect(rc, ISO_E_TIMEOUT, &["COTP CC", "deadline passed"]);
        assert_eq!(
            conn.last_os_error(),
            0,
            "our own deadline, not the system's"
        );
        assert!(el >= Duration::from_millis(390), "returned early: {el:?}");
        assert!(el < Duration::from_millis(700), "returned late: {el:?}");
        assert_eq!(conn.check(), 0);
        // The handle is not stuck "connecting".
        conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
        drop(conn);
        assert_eq!(peer.finish(), default_cr());
    });
}

#[test]
fn connect_with_timeout_zero_to_a_silent_peer_would_block() {
    run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = Peer::start_raw(listener, |s| {
            let mut p = PeerConn {
                stream: s,
                cr: vec![],
            };
            p.hold();
        });
        let conn = Conn::local(peer.port());
        let t = Instant::now();
        let rc = conn.connect(0);
        conn.expect(rc, ISO_E_WOULD_BLOCK, &["would block"]);
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        drop(conn);
        peer.finish();
    });
}

#[test]
fn connect_refused() {
    run(|| {
        let port = closed_port();
        let conn = Conn::local(port);
        let rc = conn.connect(LONG_MS);
        conn.expect(
            rc,
            ISO_E_REFUSED,
            &["refused", &format!("127.0.0.1:{port}")],
        );
        assert_eq!(conn.last_os_error(), os_code::CONNREFUSED);
        assert_eq!(conn.connect_phase(), c::ISO_PHASE_TCP, "unreachable");
        assert_eq!(conn.check(), 0);
        // The thread keeps it too (for failures without a handle), and a failure without an
        // OS error clears it.
        let mut code = -1;
        assert_eq!(unsafe { c::iso_thread_last_os_error(&mut code) }, ISO_OK);
        assert_eq!(code, os_code::CONNREFUSED);
        conn.expect(conn.send(b""), ISO_E_INVALID, &["empty"]);
        assert_eq!(conn.last_os_error(), 0);
        assert_eq!(unsafe { c::iso_thread_last_os_error(&mut code) }, ISO_OK);
        assert_eq!(code, 0);
        assert_eq!(
            unsafe { c::iso_thread_last_os_error(std::ptr::null_mut()) },
            ISO_E_INVALID
        );
    });
}

#[test]
fn host_name_localhost_works() {
    run(|| {
        let (conn, peer) = {
            let peer = Peer::answering(cc_snap7());
            let conn = Conn::create("localhost", peer.port());
            (conn, peer)
        };
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.check(), 1);
        drop(conn);
        assert_eq!(peer.finish(), default_cr());
    });
}

#[test]
fn ipv6_loopback_works_with_and_without_brackets() {
    run(|| {
        for host in ["::1", "[::1]"] {
            let listener = match TcpListener::bind("[::1]:0") {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("skipping the IPv6 test: no IPv6 loopback here ({e})");
                    return;
                }
            };
            let peer = Peer::start_on(listener, |p| {
                p.accept();
                let m = p.read_message().unwrap().0;
                p.send(&msg(&m));
                p.hold();
                p.cr.clone()
            });
            let conn = Conn::create(host, peer.port());
            conn.ok(conn.connect(LONG_MS));
            conn.ok(conn.send(b"v6"));
            assert_eq!(conn.recv_ok(), b"v6");
            drop(conn);
            assert_eq!(peer.finish(), default_cr(), "{host}");
        }
    });
}

#[test]
fn invalid_host_strings_are_refused_by_iso_create() {
    run(|| {
        for host in ["", "bad host", "a..b", "plc:102", "[::1", "a/b", "[]"] {
            match Conn::try_create(host, 102) {
                Ok(_) => panic!("iso_create accepted {host:?}"),
                Err((rc, m)) => {
                    assert_code_msg(rc, ISO_E_INVALID, &m, &["invalid argument", "host"])
                }
            }
        }
        // Not UTF-8.
        let bad = std::ffi::CString::new(vec![b'p', 0xFF, b'c']).unwrap();
        let mut out: *mut c::iso_conn = std::ptr::dangling_mut();
        // SAFETY: valid C string and out pointer.
        let rc = unsafe { c::iso_create(bad.as_ptr(), 102, &mut out) };
        assert_code_msg(rc, ISO_E_INVALID, &thread_last_error(), &["UTF-8"]);
        assert!(out.is_null());
    });
}

#[test]
fn a_failed_connect_leaves_the_handle_able_to_connect_again() {
    run(|| {
        let peer = Peer::start_many(2, |i, p| {
            let cr = p.cr.clone();
            if i == 0 {
                p.send(&dr(0x82));
                p.hold();
            } else {
                p.accept();
                let m = p.read_message().unwrap().0;
                p.send(&msg(&m));
                p.hold();
            }
            cr
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_tsap(0x0200, 0x0301));
        conn.expect(
            conn.connect(LONG_MS),
            ISO_E_REJECTED,
            &["0x82", "negotiation failed"],
        );
        assert_eq!(conn.connect_phase(), c::ISO_PHASE_COTP);
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(
            conn.connect_phase(),
            c::ISO_PHASE_NONE,
            "cleared by success"
        );
        conn.ok(conn.send(b"again"));
        assert_eq!(conn.recv_ok(), b"again");
        drop(conn);
        let crs = peer.finish();
        let want = hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 02 00 C2 02 03 01 C0 01 0A");
        assert_eq!(crs, vec![want.clone(), want], "both CRs carry the settings");
    });
}
