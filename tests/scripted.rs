//! The library driven through its C ABI against scripted, often misbehaving peers on loopback.
//!
//! Each peer is a thread with a `TcpListener` on 127.0.0.1:0 that reads the CR and then does
//! exactly what its script says. Every test runs under a watchdog ([`bounded`]) and asserts the
//! result code together with a distinctive part of the handle's last error message.

mod common;

use std::io::Write;
use std::mem::ManuallyDrop;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::conn::*;
use common::packets::*;
use common::peer::*;
use isotcp::ffi::conn as c;

const LIMIT: Duration = Duration::from_secs(15);

/// Runs a test body under the watchdog, then checks the library is still usable.
fn run(body: impl FnOnce() + Send + 'static) {
    bounded(LIMIT, body);
    assert_library_usable();
}

// =============================================================================================
// Normal operation
// =============================================================================================

#[test]
fn default_connect_sends_the_wire_cr_and_round_trips() {
    run(|| {
        let setup_comm = hex("32 01 00 00 00 00 00 08 00 00 F0 00 00 01 00 01 01 E0");
        let answer = pattern(7, 20);
        let answer2 = answer.clone();
        let peer = Peer::start(move |p| {
            p.accept();
            let (got, sizes) = p.read_message().expect("a message");
            p.send(&msg(&answer2));
            p.hold();
            (p.cr.clone(), got, sizes)
        });
        let conn = Conn::local(peer.port());
        assert_eq!(conn.check(), 0, "not connected yet");
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.check(), 1);
        assert_eq!(conn.tpdu_size(), Ok(1024));
        assert_eq!(conn.remote_tsap(), Ok(vec![0x01, 0x02]));
        assert_eq!(conn.calling_tsap(), Ok(vec![0x01, 0x00]));

        // The fd is the connected socket: its peer is our scripted peer.
        let fd = conn.fd().expect("iso_get_fd");
        assert!(fd >= 0);
        #[cfg(unix)]
        {
            use std::os::fd::FromRawFd;
            // SAFETY: borrowed only to ask for the peer address; ManuallyDrop never closes it.
            let s = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd as i32) });
            assert_eq!(s.peer_addr().unwrap(), peer.addr);
        }

        conn.ok(conn.send(&setup_comm));
        assert_eq!(conn.recv_ok(), answer);
        assert_eq!(conn.check(), 1);
        conn.ok(conn.disconnect());
        assert_eq!(conn.check(), 0);
        conn.expect(
            conn.tpdu_size().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(conn.fd().unwrap_err(), ISO_E_STATE, &["not connected"]);

        let (cr, got, sizes) = peer.finish();
        assert_eq!(cr, default_cr(), "CR bytes: {cr:02X?}");
        assert_eq!(got, setup_comm);
        assert_eq!(sizes, vec![7 + setup_comm.len()]);
    });
}

#[test]
fn data_right_after_the_cc_in_the_same_write_is_kept() {
    run(|| {
        let first = pattern(1, 300);
        let f2 = first.clone();
        let peer = Peer::start(move |p| {
            let mut bytes = cc_snap7();
            bytes.extend(msg(&f2));
            p.send(&bytes);
            p.hold();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(
            conn.poll(0),
            1,
            "the message that came with the CC is ready at once"
        );
        assert_eq!(conn.recv(1000, 0), Ok(first));
        drop(conn);
        peer.finish();
    });
}

#[test]
fn large_dt_beyond_the_tpdu_size_is_accepted_and_sends_are_segmented_at_1024() {
    // wire.md 4: peers do not segment what they send, so a 10000-byte DT is fine after TPDU 1024.
    run(|| {
        let big = pattern(3, 10_000);
        let (conn, peer) = connected(|p| {
            let (m, sizes) = p.read_message().unwrap();
            p.send(&msg(&m));
            sizes
        });
        conn.ok(conn.send(&big));
        assert_eq!(conn.recv_ok(), big);
        drop(conn);
        let sizes = peer.finish();
        assert_eq!(sizes.len(), 10_000usize.div_ceil(1021));
        assert!(sizes.iter().all(|&s| s <= 1024 + 4), "{sizes:?}");
    });
}

#[test]
fn string_tsap_cr_is_byte_exact() {
    run(|| {
        let peer = Peer::answering(cc(&[
            (0xC0, &[0x0A]),
            (0xC1, &[0x06, 0x00]),
            (0xC2, b"SIMATIC-ROOT-HMI"),
        ]));
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_tsap_bytes(&[0x06, 0x00], b"SIMATIC-ROOT-HMI"));
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.remote_tsap(), Ok(b"SIMATIC-ROOT-HMI".to_vec()));
        assert_eq!(conn.calling_tsap(), Ok(vec![0x06, 0x00]));
        drop(conn);
        let cr = peer.finish();
        assert_eq!(
            cr,
            hex("03 00 00 24 1F E0 00 00 00 01 00 C1 02 06 00 C2 10 53 49 4D 41 54 49 43 2D 52 4F 4F 54 2D 48 4D 49 C0 01 0A")
        );
    });
}

#[test]
fn snap7_routing_cr_is_byte_exact() {
    run(|| {
        let peer = Peer::answering(cc_snap7());
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_routing(1, 0, 3));
        conn.ok(conn.connect(LONG_MS));
        drop(conn);
        assert_eq!(
            peer.finish(),
            hex("03 00 00 1E 19 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A C6 02 00 01 C7 02 01 03")
        );
    });
}

#[test]
fn s7_routing_cr_is_the_74_byte_example() {
    run(|| {
        let peer = Peer::answering(cc_snap7());
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_routing_s7(0x0152, 0x0013, &[2], 1, 0, 2));
        conn.ok(conn.connect(LONG_MS));
        drop(conn);
        let want = hex(
            "03 00 00 4A 45 E0 00 00 00 01 00 \
             C1 1C 01 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 \
             C2 1C 01 06 01 02 01 52 00 00 00 13 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 02 \
             C0 01 0A",
        );
        assert_eq!(want.len(), 74);
        assert_eq!(peer.finish(), want);
    });
}

// =============================================================================================
// TPDU size negotiation and segmentation
// =============================================================================================

/// Connects to a peer answering `answer`, after `setup`; returns the handle and the code.
fn connect_answered(answer: Vec<u8>, setup: impl FnOnce(&Conn)) -> (Conn, i32, Peer<Vec<u8>>) {
    let peer = Peer::answering(answer);
    let conn = Conn::local(peer.port());
    setup(&conn);
    let rc = conn.connect(LONG_MS);
    (conn, rc, peer)
}

#[test]
fn cc_tpdu_sizes_are_negotiated_per_the_rules() {
    run(|| {
        let cases: Vec<(&str, Vec<u8>, u32, u32)> = vec![
            ("C0 smaller: 512", cc(&[(0xC0, &[0x09])]), 1024, 512),
            ("C0 smaller: 256", cc(&[(0xC0, &[0x08])]), 1024, 256),
            ("C0 smallest: 128", cc(&[(0xC0, &[0x07])]), 1024, 128),
            ("C0 larger 8192: capped", cc(&[(0xC0, &[0x0D])]), 1024, 1024),
            (
                "C0 0x10 (RFC 1006 65536): capped",
                cc(&[(0xC0, &[0x10])]),
                1024,
                1024,
            ),
            (
                "C0 1024 to an offer of 256: capped",
                cc(&[(0xC0, &[0x0A])]),
                256,
                256,
            ),
            (
                "no C0: 128",
                cc(&[(0xC1, &[1, 0]), (0xC2, &[1, 2])]),
                1024,
                128,
            ),
            ("no parameters at all: 128", cc(&[]), 1024, 128),
            ("F0 alone: 4 x 128", cc(&[(0xF0, &[0x00, 0x04])]), 1024, 512),
            ("F0 alone: 2 x 128", cc(&[(0xF0, &[0x02])]), 1024, 256),
            (
                "F0 alone, larger: capped",
                cc(&[(0xF0, &[0x40])]),
                1024,
                1024,
            ),
            (
                "unknown parameter skipped",
                cc(&[(0xC3, &[0, 0]), (0xC0, &[0x09])]),
                1024,
                512,
            ),
            (
                "PLC4X CC: other order, references and TSAPs",
                hex("03 00 00 16 11 D0 00 0F 00 0B 00 C0 01 0A C1 02 03 11 C2 02 01 00"),
                1024,
                1024,
            ),
        ];
        for (name, answer, offer, want) in cases {
            let (conn, rc, peer) = connect_answered(answer, |c| c.ok(c.set_tpdu_size(offer)));
            assert!(
                rc == ISO_OK,
                "{name}: {} {}",
                code_name(rc),
                conn.last_error()
            );
            assert_eq!(conn.tpdu_size(), Ok(want), "{name}");
            assert_eq!(conn.check(), 1, "{name}");
            drop(conn);
            let cr = peer.finish();
            let code = (offer.trailing_zeros()) as u8;
            assert_eq!(
                &cr[cr.len() - 3..],
                &[0xC0, 0x01, code],
                "{name}: offered size in the CR"
            );
        }
    });
}

#[test]
fn malformed_ccs_are_protocol_errors() {
    run(|| {
        let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
            (
                "C0 = 0x20",
                cc(&[(0xC0, &[0x20])]),
                &["protocol error", "TPDU-size code 0x20"],
            ),
            (
                "C0 = 0x06",
                cc(&[(0xC0, &[0x06])]),
                &["protocol error", "TPDU-size code 0x06"],
            ),
            (
                "C0 of length 2",
                cc(&[(0xC0, &[0x0A, 0x0A])]),
                &["TPDU-size parameter has length 2"],
            ),
            (
                "C0 and F0",
                cc(&[(0xC0, &[0x0A]), (0xF0, &[0x08])]),
                &["both a TPDU size (C0) and a preferred"],
            ),
            (
                "F0 = 0",
                cc(&[(0xF0, &[0x00])]),
                &["preferred maximum TPDU size is 0"],
            ),
            (
                "class 1",
                tpkt(&[6, 0xD0, 0, 1, 0, 1, 0x10]),
                &["protocol class 1"],
            ),
            ("DT instead of CC", msg(b"x"), &["expected a CC", "DT"]),
            ("CR instead of CC", default_cr(), &["expected a CC", "CR"]),
            (
                "parameter past the header",
                tpkt(&[9, 0xD0, 0, 1, 0, 1, 0, 0xC1, 5, 1]),
                &["parameter 0xC1", "runs past the header"],
            ),
            (
                "bytes after the CC",
                tpkt(&[6, 0xD0, 0, 1, 0, 1, 0, 9]),
                &["class 0 carries one TPDU per TPKT"],
            ),
            (
                "TPKT version 4",
                hex("04 00 00 0B 06 D0 00 01 00 01 00"),
                &["TPKT version is 4"],
            ),
            ("AK", tpkt(&[4, 0x60, 0, 1, 0]), &["TPDU code 0x60"]),
        ];
        for (name, answer, frags) in cases {
            let (conn, rc, peer) = connect_answered(answer, |_| {});
            let m = conn.last_error();
            assert!(
                rc == ISO_E_PROTOCOL,
                "{name}: expected ISO_E_PROTOCOL, got {} ({m})",
                code_name(rc)
            );
            for f in frags {
                assert!(m.contains(f), "{name}: {m:?} lacks {f:?}");
            }
            assert_eq!(conn.check(), 0, "{name}");
            conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
            drop(conn);
            peer.finish();
        }
    });
}

#[test]
fn sends_after_negotiating_256_are_dts_of_at_most_256_bytes() {
    run(|| {
        let sizes = [1usize, 252, 253, 254, 506, 1000, 20_000, 65_536];
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| pattern(i as u32 + 100, n))
            .collect();
        let n = msgs.len();
        let peer = Peer::start(move |p| {
            p.send(&cc(&[(0xC0, &[0x08]), (0xC1, &[1, 0]), (0xC2, &[1, 2])]));
            let mut got = Vec::new();
            for _ in 0..n {
                got.push(p.read_message().expect("message"));
            }
            p.hold();
            got
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.tpdu_size(), Ok(256));
        for m in &msgs {
            conn.ok(conn.send(m));
        }
        drop(conn);
        let got = peer.finish();
        for (m, (data, pkt_sizes)) in msgs.iter().zip(got) {
            assert!(
                data == *m,
                "message of {} bytes reassembled differently",
                m.len()
            );
            // TPDU = packet - 4 <= 256, so payload <= 253; EOT only on the last (read_message
            // stops at the first EOT and the content matched).
            assert!(
                pkt_sizes.iter().all(|&s| s - 4 <= 256),
                "{} bytes: {pkt_sizes:?}",
                m.len()
            );
            assert_eq!(
                pkt_sizes.len(),
                m.len().div_ceil(253),
                "{} bytes: DT count",
                m.len()
            );
        }
    });
}

#[test]
fn sends_without_c0_use_128_byte_tpdus() {
    run(|| {
        let m = pattern(9, 1000);
        let peer = Peer::start(|p| {
            p.send(&cc(&[]));
            let got = p.read_message().unwrap();
            p.hold();
            got
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        conn.ok(conn.send(&m));
        drop(conn);
        let (data, sizes) = peer.finish();
        assert_eq!(data, m);
        assert!(sizes.iter().all(|&s| s - 4 <= 128), "{sizes:?}");
        assert_eq!(sizes.len(), 1000usize.div_ceil(125));
    });
}

// =============================================================================================
// Connect failures
// =============================================================================================

#[test]
fn dr_answer_is_rejected_with_the_reason() {
    run(|| {
        let (conn, rc, peer) = connect_answered(dr(0x81), |_| {});
        conn.expect(rc, ISO_E_REJECTED, &["DR", "0x81", "congestion"]);
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
        assert_eq!(conn.check(), 0);
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
        let mut out: *mut c::iso_conn = 0x1 as *mut _;
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
        conn.ok(conn.connect(LONG_MS));
        conn.ok(conn.send(b"again"));
        assert_eq!(conn.recv_ok(), b"again");
        drop(conn);
        let crs = peer.finish();
        let want = hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 02 00 C2 02 03 01 C0 01 0A");
        assert_eq!(crs, vec![want.clone(), want], "both CRs carry the settings");
    });
}

// =============================================================================================
// Receiving
// =============================================================================================

#[test]
fn fragments_are_reassembled() {
    run(|| {
        let m = pattern(11, 2500);
        let m2 = m.clone();
        let (conn, peer) = connected(move |p| {
            // Fragments of uneven size, each in its own write.
            let parts: [&[u8]; 4] = [&m2[..1], &m2[1..1000], &m2[1000..2499], &m2[2499..]];
            for (i, part) in parts.iter().enumerate() {
                p.send(&dt(part, i == 3));
                thread::sleep(Duration::from_millis(2));
            }
        });
        assert_eq!(conn.recv_ok(), m);
        drop(conn);
        peer.finish();
    });
}

/// A connected peer sends `garbage` and then waits up to 3 s for the client to close; returns
/// whether it did.
fn garbage_case(garbage: Vec<u8>, before: Option<Vec<u8>>) -> (Conn, Peer<bool>) {
    let peer = Peer::start(move |p| {
        p.accept();
        let mut bytes = before.map(|m| msg(&m)).unwrap_or_default();
        bytes.extend(garbage);
        p.send(&bytes);
        p.wait_close(Duration::from_secs(3))
    });
    let conn = Conn::local(peer.port());
    conn.ok(conn.connect(LONG_MS));
    (conn, peer)
}

#[test]
fn garbage_from_the_peer_is_a_protocol_error_then_state() {
    run(|| {
        let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
            (
                "TPKT version 4",
                hex("04 00 00 07 02 F0 80"),
                &["TPKT version is 4, expected 3"],
            ),
            (
                "TPKT length 3",
                hex("03 00 00 03"),
                &["TPKT length 3 is below the minimum of 7"],
            ),
            (
                "TPKT length 6",
                hex("03 00 00 06 02 F0"),
                &["TPKT length 6 is below the minimum of 7"],
            ),
            (
                "LI past the packet",
                hex("03 00 00 08 10 F0 80 01"),
                &["length indicator 16 is invalid", "holds 3 bytes"],
            ),
            (
                "LI 0",
                hex("03 00 00 08 00 F0 80 01"),
                &["length indicator 0 is invalid"],
            ),
            (
                "DT with TPDU-NR 1",
                hex("03 00 00 08 02 F0 81 01"),
                &["DT TPDU-NR is 1", "class 0 requires 0"],
            ),
            (
                "DT with TPDU-NR 0x7F",
                hex("03 00 00 08 02 F0 FF 01"),
                &["DT TPDU-NR is 127"],
            ),
            (
                "DT with LI 3",
                hex("03 00 00 08 03 F0 80 01"),
                &["DT length indicator is 3, expected 2"],
            ),
            (
                "DT code 0xF1",
                hex("03 00 00 08 02 F1 80 01"),
                &["DT code byte is 0xF1"],
            ),
            (
                "CR during data transfer",
                default_cr(),
                &["unexpected CR during data transfer"],
            ),
            (
                "CC during data transfer",
                cc_snap7(),
                &["unexpected CC during data transfer"],
            ),
            (
                "DC (0xC0)",
                tpkt(&[6, 0xC0, 0, 1, 0, 1, 0]),
                &["TPDU code 0xC0 is not allowed in class 0"],
            ),
            (
                "AK (0x60)",
                tpkt(&[4, 0x60, 0, 1, 0]),
                &["TPDU code 0x60 is not allowed"],
            ),
            (
                "ER with trailing bytes",
                tpkt(&[4, 0x70, 0, 1, 2, 0xAA]),
                &["1 bytes follow the COTP ER header"],
            ),
        ];
        for (name, garbage, frags) in cases {
            for before in [None, Some(b"good".to_vec())] {
                let had_good = before.is_some();
                let (conn, peer) = garbage_case(garbage.clone(), before);
                if had_good {
                    assert_eq!(
                        conn.recv_ok(),
                        b"good",
                        "{name}: a message before the garbage still comes out"
                    );
                }
                let rc = conn.recv(1024, LONG_MS).unwrap_err();
                let m = conn.last_error();
                assert!(
                    rc == ISO_E_PROTOCOL,
                    "{name}: expected ISO_E_PROTOCOL, got {} ({m})",
                    code_name(rc)
                );
                assert!(m.starts_with("protocol error: "), "{name}: {m}");
                for f in frags {
                    assert!(m.contains(f), "{name}: {m:?} lacks {f:?}");
                }
                // The connection is closed: every later call is a state error naming the cause.
                assert_eq!(conn.check(), 0, "{name}");
                conn.expect(
                    conn.recv(1024, LONG_MS).unwrap_err(),
                    ISO_E_STATE,
                    &["not connected", frags[0]],
                );
                conn.expect(conn.poll(0), ISO_E_STATE, &["not connected"]);
                conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
                assert!(
                    peer.finish(),
                    "{name}: the library did not close the TCP connection"
                );
                drop(conn);
            }
        }
    });
}

#[test]
fn eof_mid_packet_is_closed_and_discards_the_partial_packet() {
    run(|| {
        let peer = Peer::start(|p| {
            p.accept();
            let mut b = msg(b"whole");
            b.extend(hex("03 00 00 10 02 F0 80 01 02"));
            p.send(&b);
            p.close_now();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.recv_ok(), b"whole");
        let rc = conn.recv(1024, LONG_MS).unwrap_err();
        conn.expect(
            rc,
            ISO_E_CLOSED,
            &["closed by peer", "middle of a TPKT", "discarded"],
        );
        assert_eq!(conn.check(), 0);
        // Stays closed.
        conn.expect(
            conn.recv(1024, LONG_MS).unwrap_err(),
            ISO_E_CLOSED,
            &["closed by peer"],
        );
        conn.expect(conn.poll(LONG_MS), ISO_E_CLOSED, &["closed by peer"]);
        peer.finish();
    });
}

#[test]
fn eof_after_a_fragment_without_eot_is_closed_and_discards_the_partial_message() {
    run(|| {
        let peer = Peer::start(|p| {
            p.accept();
            p.send(&dt(b"first part", false));
            thread::sleep(Duration::from_millis(20));
            p.close_now();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        let rc = conn.recv(1024, LONG_MS).unwrap_err();
        conn.expect(
            rc,
            ISO_E_CLOSED,
            &[
                "closed by peer",
                "DT without EOT",
                "partial message was discarded",
            ],
        );
        assert_eq!(conn.check(), 0);
        peer.finish();
    });
}

#[test]
fn reset_mid_session_is_closed() {
    run(|| {
        let (tx, rx) = mpsc::channel::<()>();
        let peer = Peer::start(move |p| {
            p.accept();
            rx.recv().unwrap();
            p.reset_on_return();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        tx.send(()).unwrap();
        let rc = conn.recv(1024, LONG_MS).unwrap_err();
        conn.expect(rc, ISO_E_CLOSED, &["reset by peer"]);
        assert_eq!(conn.check(), 0);
        peer.finish();
    });
}

#[test]
fn dr_and_er_mid_session_close_with_the_reason() {
    run(|| {
        let cases: Vec<(Vec<u8>, &[&str])> = vec![
            (dr(0x80), &["DR", "reason 0x80", "normal disconnect"]),
            (dr(0x00), &["DR", "reason 0x00", "not specified"]),
            (er(2), &["ER", "cause 2", "invalid TPDU type"]),
        ];
        for (end, frags) in cases {
            let (conn, peer) = connected(move |p| {
                let mut b = msg(b"last words");
                b.extend(end);
                p.send(&b);
            });
            assert_eq!(conn.recv_ok(), b"last words");
            let rc = conn.recv(1024, LONG_MS).unwrap_err();
            conn.expect(rc, ISO_E_CLOSED, frags);
            assert_eq!(conn.check(), 0);
            conn.expect(conn.send(b"x"), ISO_E_CLOSED, frags);
            drop(conn);
            peer.finish();
        }
    });
}

#[test]
fn message_above_the_limit_is_too_large_then_state() {
    run(|| {
        // (max message, what the peer sends, expected message parts)
        let cases: Vec<(u32, Vec<u8>, &[&str])> = vec![
            (1000, msg(&[7; 1001]), &["above the receive limit"]),
            (
                1000,
                fragments(&[7; 1200], 600),
                &["message of 1200 bytes is above the limit of 1000"],
            ),
            (
                128,
                msg(&[7; 200]),
                &["message of 200 bytes is above the limit of 128"],
            ),
        ];
        for (max, bytes, frags) in cases {
            let peer = Peer::start(move |p| {
                p.accept();
                let mut b = msg(&[1; 128]);
                b.extend(bytes);
                p.send(&b);
                p.wait_close(Duration::from_secs(3))
            });
            let conn = Conn::local(peer.port());
            conn.ok(conn.set_max_message(max));
            conn.ok(conn.connect(LONG_MS));
            assert_eq!(
                conn.recv_ok(),
                vec![1; 128],
                "a message at the limit is fine"
            );
            let rc = conn.recv(70_000, LONG_MS).unwrap_err();
            conn.expect(rc, ISO_E_TOO_LARGE, frags);
            conn.expect(
                conn.recv(70_000, LONG_MS).unwrap_err(),
                ISO_E_STATE,
                &["not connected"],
            );
            assert_eq!(conn.check(), 0);
            assert!(peer.finish(), "max {max}: the connection was not closed");
        }
    });
}

#[test]
fn too_many_fragments_is_too_large() {
    run(|| {
        let peer = Peer::start(|p| {
            p.accept();
            let mut b = fragments(b"abcdefghi", 3);
            b.extend(fragments(b"abcdefghij", 3));
            p.send(&b);
            p.wait_close(Duration::from_secs(3))
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_max_fragments(3));
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.recv_ok(), b"abcdefghi", "3 fragments are allowed");
        let rc = conn.recv(1024, LONG_MS).unwrap_err();
        conn.expect(rc, ISO_E_TOO_LARGE, &["more than 3 fragments"]);
        conn.expect(
            conn.recv(1024, LONG_MS).unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        assert!(peer.finish());
    });
}

#[test]
fn empty_eot_dt_is_skipped_and_completes_fragments() {
    run(|| {
        let (conn, peer) = connected(|p| {
            let funny = hex("03 00 00 07 02 F0 80");
            let mut b = funny.clone();
            b.extend(msg(b"hello"));
            b.extend(dt(b"ab", false));
            b.extend(dt(b"", true));
            b.extend(funny.clone());
            b.extend(funny.clone());
            b.extend(msg(b"end"));
            p.send(&b);
            thread::sleep(Duration::from_millis(50));
            p.send(&funny);
        });
        assert_eq!(conn.recv_ok(), b"hello");
        assert_eq!(
            conn.recv_ok(),
            b"ab",
            "an empty EOT DT completes the fragments"
        );
        assert_eq!(conn.recv_ok(), b"end");
        // A lone funny packet is not a message.
        let rc = conn.recv(1024, 300).unwrap_err();
        conn.expect(rc, ISO_E_TIMEOUT, &["deadline passed"]);
        assert_eq!(conn.check(), 1);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn slow_peer_dribbling_bytes_still_delivers_intact() {
    run(|| {
        let a = pattern(21, 300);
        let b = pattern(22, 40);
        let (a2, b2) = (a.clone(), b.clone());
        let (conn, peer) = connected(move |p| {
            let mut bytes = fragments(&a2, 100);
            bytes.extend(msg(&b2));
            p.dribble(&bytes, Duration::from_micros(300));
        });
        assert_eq!(conn.recv_ok(), a);
        assert_eq!(conn.recv_ok(), b);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn hundred_messages_in_one_write_come_out_in_order() {
    run(|| {
        let msgs: Vec<Vec<u8>> = (0..100u32)
            .map(|i| pattern(i, 1 + (i as usize * 37) % 700))
            .collect();
        let m2 = msgs.clone();
        let (conn, peer) = connected(move |p| {
            let mut b = Vec::new();
            for (i, m) in m2.iter().enumerate() {
                if i % 3 == 0 {
                    b.extend(fragments(m, 64));
                } else {
                    b.extend(msg(m));
                }
            }
            p.send(&b);
        });
        for (i, m) in msgs.iter().enumerate() {
            assert!(conn.recv_ok() == *m, "message {i}");
        }
        assert_eq!(conn.poll(0), 0);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn a_message_split_across_receive_timeouts_is_not_lost() {
    run(|| {
        let m = pattern(31, 700);
        let after = pattern(32, 10);
        let mut stream = fragments(&m, 300);
        stream.extend(msg(&after));
        let first_dt = 7 + 300;
        let cuts = [first_dt + 2, first_dt + 100, stream.len() - 3];
        let (tx, rx) = mpsc::channel::<()>();
        let s2 = stream.clone();
        let (conn, peer) = connected(move |p| {
            let mut at = 0;
            for cut in cuts {
                p.send(&s2[at..cut]);
                at = cut;
                rx.recv().unwrap();
            }
            p.send(&s2[at..]);
        });
        let timed_out = |what: &str| {
            let t = Instant::now();
            let rc = conn.recv(4096, 150).unwrap_err();
            let el = t.elapsed();
            conn.expect(rc, ISO_E_TIMEOUT, &["receive", "deadline passed"]);
            assert!(
                el >= Duration::from_millis(145) && el < Duration::from_millis(450),
                "{what}: {el:?}"
            );
            assert_eq!(conn.poll(0), 0, "{what}: nothing whole yet");
            assert_eq!(conn.check(), 1, "{what}");
        };
        timed_out("cut inside the second TPKT header");
        tx.send(()).unwrap();
        timed_out("cut inside the second DT's payload");
        tx.send(()).unwrap();
        assert_eq!(conn.recv_ok(), m, "the message split across two timeouts");
        timed_out("cut inside the next message");
        tx.send(()).unwrap();
        assert_eq!(conn.recv_ok(), after);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn recv_with_timeout_zero_would_block() {
    run(|| {
        let (conn, peer) = connected(|_| {});
        let t = Instant::now();
        let (rc, n) = conn.recv_into(&mut [0u8; 64], 0);
        conn.expect(rc, ISO_E_WOULD_BLOCK, &["would block"]);
        assert_eq!(n, usize::MAX, "*out_len is not written on failure");
        assert!(t.elapsed() < Duration::from_millis(50));
        assert_eq!(conn.poll(0), 0);
        assert_eq!(conn.check(), 1);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn poll_reports_one_only_for_a_whole_message() {
    run(|| {
        let m = pattern(41, 500);
        let bytes = fragments(&m, 200);
        let (tx, rx) = mpsc::channel::<()>();
        let b2 = bytes.clone();
        let (conn, peer) = connected(move |p| {
            p.send(&b2[..300]);
            rx.recv().unwrap();
            p.send(&b2[300..]);
        });
        thread::sleep(Duration::from_millis(30));
        assert_eq!(conn.poll(0), 0, "part of a message is not a message");
        let t = Instant::now();
        assert_eq!(conn.poll(120), 0);
        let el = t.elapsed();
        assert!(
            el >= Duration::from_millis(115) && el < Duration::from_millis(420),
            "{el:?}"
        );
        tx.send(()).unwrap();
        assert_eq!(conn.poll(LONG_MS), 1);
        assert_eq!(conn.poll(0), 1, "poll consumes nothing");
        assert_eq!(conn.recv(1000, 0), Ok(m));
        assert_eq!(conn.poll(0), 0);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn buffer_too_small_reports_the_size_and_keeps_the_message() {
    run(|| {
        let single = pattern(51, 100);
        let multi = pattern(52, 1000);
        let (s2, m2) = (single.clone(), multi.clone());
        let (conn, peer) = connected(move |p| {
            let mut b = msg(&s2);
            b.extend(fragments(&m2, 300));
            p.send(&b);
        });
        for (m, name) in [(&single, "single DT"), (&multi, "fragmented")] {
            for cap in [0usize, 1, m.len() - 1] {
                let mut buf = vec![0xEEu8; cap];
                let (rc, n) = conn.recv_into(&mut buf, LONG_MS);
                conn.expect(
                    rc,
                    ISO_E_BUFFER_TOO_SMALL,
                    &["too small", &format!("{}-byte message", m.len())],
                );
                assert_eq!(n, m.len(), "{name}: *out_len is the size needed");
                assert!(buf.iter().all(|&b| b == 0xEE), "{name}: nothing copied");
            }
            assert_eq!(conn.poll(0), 1, "{name}: still queued");
            assert_eq!(conn.recv(m.len(), 0).as_ref(), Ok(m), "{name}");
        }
        drop(conn);
        peer.finish();
    });
}

#[test]
fn buffered_messages_survive_the_peer_closing() {
    run(|| {
        let peer = Peer::start(|p| {
            p.accept();
            let mut b = msg(b"one");
            b.extend(fragments(b"two, in fragments", 5));
            b.extend(msg(b"three"));
            p.send(&b);
            p.close_now();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        peer.finish();
        let t = Instant::now();
        while conn.check() != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "iso_check_connection never saw the close"
            );
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(conn.poll(0), 1);
        assert_eq!(conn.recv_ok(), b"one");
        assert_eq!(conn.check(), 0);
        assert_eq!(conn.recv_ok(), b"two, in fragments");
        assert_eq!(conn.recv_ok(), b"three");
        conn.expect(
            conn.recv(1024, LONG_MS).unwrap_err(),
            ISO_E_CLOSED,
            &["closed by peer"],
        );
        conn.expect(conn.poll(LONG_MS), ISO_E_CLOSED, &["closed by peer"]);
        assert_eq!(conn.check(), 0);
        // Disconnect and the handle is idle again.
        conn.ok(conn.disconnect());
        conn.expect(
            conn.recv(1024, 0).unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
    });
}

// =============================================================================================
// API misuse
// =============================================================================================

#[track_caller]
fn assert_null(rc: i32, what: &str) {
    assert_code_msg(rc, ISO_E_INVALID, &thread_last_error(), &["is NULL"]);
    let _ = what;
}

#[test]
fn null_arguments_are_invalid() {
    run(|| unsafe {
        let null_conn: *mut c::iso_conn = std::ptr::null_mut();
        let host = c"127.0.0.1";
        let mut out: *mut c::iso_conn = 0x1 as *mut _;
        assert_null(c::iso_create(std::ptr::null(), 102, &mut out), "host");
        assert!(out.is_null(), "*out is NULL after a failed iso_create");
        assert_null(
            c::iso_create(host.as_ptr(), 102, std::ptr::null_mut()),
            "out",
        );
        c::iso_destroy(std::ptr::null_mut());

        let byte = [1u8, 2];
        let mut u32v = 0u32;
        let mut i64v = 0i64;
        let mut len = 0usize;
        let mut buf = [0u8; 16];
        assert_null(c::iso_set_tsap(null_conn, 1, 2), "conn");
        assert_null(
            c::iso_set_tsap_bytes(null_conn, byte.as_ptr(), 2, byte.as_ptr(), 2),
            "conn",
        );
        assert_null(c::iso_set_tpdu_size(null_conn, 1024), "conn");
        assert_null(c::iso_set_routing(null_conn, 1, 0, 2), "conn");
        assert_null(
            c::iso_set_routing_s7(null_conn, 1, 2, byte.as_ptr(), 1, 1, 0, 2),
            "conn",
        );
        assert_null(c::iso_set_send_timeout(null_conn, 10), "conn");
        assert_null(c::iso_set_max_message(null_conn, 1000), "conn");
        assert_null(c::iso_set_max_fragments(null_conn, 10), "conn");
        assert_null(c::iso_set_keepalive(null_conn, 1, 1, 1, 1), "conn");
        assert_null(c::iso_connect(null_conn, 10), "conn");
        assert_null(c::iso_send(null_conn, byte.as_ptr(), 2), "conn");
        assert_null(c::iso_poll(null_conn, 0), "conn");
        assert_null(
            c::iso_recv(null_conn, buf.as_mut_ptr(), 16, &mut len, 0),
            "conn",
        );
        assert_null(c::iso_check_connection(null_conn), "conn");
        assert_null(c::iso_disconnect(null_conn), "conn");
        assert_null(c::iso_get_tpdu_size(null_conn, &mut u32v), "conn");
        assert_null(c::iso_get_fd(null_conn, &mut i64v), "conn");
        assert_null(
            c::iso_get_remote_tsap(null_conn, buf.as_mut_ptr(), 16, &mut len),
            "conn",
        );
        assert_null(
            c::iso_get_calling_tsap(null_conn, buf.as_mut_ptr(), 16, &mut len),
            "conn",
        );
        let mut needed = 0usize;
        assert_null(
            c::iso_last_error(null_conn, buf.as_mut_ptr().cast(), 16, &mut needed),
            "conn",
        );
        assert_null(c::iso_s7_tsap(1, 0, 2, std::ptr::null_mut()), "out");

        // Other pointers, on a connected handle so that the state check cannot hide them.
        let (conn, peer) = connected(|_| {});
        let p = conn.raw();
        assert_null(
            c::iso_set_tsap_bytes(std::ptr::null_mut(), std::ptr::null(), 2, byte.as_ptr(), 2),
            "conn",
        );
        assert_null(c::iso_send(p, std::ptr::null(), 2), "data");
        assert_null(c::iso_send(p, std::ptr::null(), 0), "data");
        assert_null(c::iso_recv(p, std::ptr::null_mut(), 16, &mut len, 0), "buf");
        // NULL with capacity 0 is a size query, not a NULL argument.
        assert_eq!(
            c::iso_recv(p, std::ptr::null_mut(), 0, &mut len, 0),
            ISO_E_WOULD_BLOCK
        );
        assert_null(
            c::iso_recv(p, buf.as_mut_ptr(), 16, std::ptr::null_mut(), 0),
            "out_len",
        );
        assert_null(c::iso_get_tpdu_size(p, std::ptr::null_mut()), "out");
        assert_null(c::iso_get_fd(p, std::ptr::null_mut()), "out");
        assert_null(
            c::iso_get_remote_tsap(p, std::ptr::null_mut(), 16, &mut len),
            "buf",
        );
        assert_null(
            c::iso_get_remote_tsap(p, buf.as_mut_ptr(), 16, std::ptr::null_mut()),
            "out_len",
        );
        assert_null(
            c::iso_get_calling_tsap(p, std::ptr::null_mut(), 16, &mut len),
            "buf",
        );
        assert_null(
            c::iso_get_calling_tsap(p, buf.as_mut_ptr(), 16, std::ptr::null_mut()),
            "out_len",
        );
        assert_eq!(
            conn.check(),
            1,
            "NULL arguments did not disturb the connection"
        );
        drop(conn);
        peer.finish();

        // Setter pointer arguments on an idle handle.
        let conn = Conn::local(102);
        let p = conn.raw();
        assert_null(
            c::iso_set_tsap_bytes(p, std::ptr::null(), 2, byte.as_ptr(), 2),
            "local",
        );
        assert_null(
            c::iso_set_tsap_bytes(p, byte.as_ptr(), 2, std::ptr::null(), 2),
            "remote",
        );
        assert_null(
            c::iso_set_routing_s7(p, 1, 2, std::ptr::null(), 1, 1, 0, 2),
            "dest_addr",
        );
        // iso_last_error and iso_thread_last_error accept NULL outputs.
        assert_eq!(
            c::iso_last_error(p, std::ptr::null_mut(), 0, std::ptr::null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(
            c::iso_thread_last_error(std::ptr::null_mut(), 0, std::ptr::null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
    });
}

#[test]
fn calls_in_the_wrong_state_are_state_errors() {
    run(|| {
        let conn = Conn::local(closed_port());
        conn.expect(
            conn.send(b"x"),
            ISO_E_STATE,
            &["not connected", "iso_connect"],
        );
        conn.expect(
            conn.recv(16, 0).unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(
            conn.recv(16, 100).unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(conn.poll(100), ISO_E_STATE, &["not connected"]);
        conn.expect(
            conn.tpdu_size().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(conn.fd().unwrap_err(), ISO_E_STATE, &["not connected"]);
        conn.expect(
            conn.remote_tsap().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(
            conn.calling_tsap().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        assert_eq!(conn.check(), 0);
        conn.ok(conn.disconnect());
        drop(conn);

        let (conn, peer) = connected(|p| p.read_message().map(|m| m.0));
        conn.expect(conn.connect(LONG_MS), ISO_E_STATE, &["already connected"]);
        let setter_codes = [
            conn.set_tsap(1, 2),
            conn.set_tsap_bytes(&[1], &[2]),
            conn.set_tpdu_size(512),
            conn.set_routing(1, 0, 2),
            conn.set_routing_s7(1, 2, &[2], 1, 0, 2),
            conn.set_send_timeout(10),
            conn.set_max_message(1000),
            conn.set_max_fragments(10),
            conn.set_keepalive(0, 0, 0, 0),
        ];
        for (i, rc) in setter_codes.into_iter().enumerate() {
            conn.expect(rc, ISO_E_STATE, &["while connected", "iso_disconnect"]);
            let _ = i;
        }
        // Nothing changed: the connection still works with the negotiated settings.
        assert_eq!(conn.tpdu_size(), Ok(1024));
        assert_eq!(conn.check(), 1);
        conn.ok(conn.send(b"still fine"));
        conn.ok(conn.disconnect());
        conn.ok(conn.disconnect());
        conn.ok(conn.set_tpdu_size(512));
        assert_eq!(peer.finish(), Some(b"still fine".to_vec()));
    });
}

#[test]
fn invalid_values_are_refused_and_change_nothing() {
    run(|| {
        let peer = Peer::answering(cc_snap7());
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_tsap(0x0200, 0x0201));
        for size in [0u32, 64, 100, 1000, 16384, 65536, u32::MAX] {
            conn.expect(
                conn.set_tpdu_size(size),
                ISO_E_INVALID,
                &["TPDU size", &size.to_string()],
            );
        }
        for size in [128u32, 256, 512, 2048, 4096, 8192, 1024] {
            conn.ok(conn.set_tpdu_size(size));
        }
        conn.expect(
            conn.set_tsap_bytes(&[], &[1]),
            ISO_E_INVALID,
            &["local TSAP is empty"],
        );
        conn.expect(
            conn.set_tsap_bytes(&[1], &[]),
            ISO_E_INVALID,
            &["remote TSAP is empty"],
        );
        conn.expect(
            conn.set_tsap_bytes(&[1; 33], &[1]),
            ISO_E_INVALID,
            &["TSAP length 33"],
        );
        conn.expect(
            conn.set_tsap_bytes(&[1], &[1; 33]),
            ISO_E_INVALID,
            &["TSAP length 33"],
        );
        for bytes in [0u32, 127, 16_777_217, u32::MAX] {
            conn.expect(
                conn.set_max_message(bytes),
                ISO_E_INVALID,
                &["maximum message", &bytes.to_string()],
            );
        }
        conn.ok(conn.set_max_message(128));
        conn.ok(conn.set_max_message(16_777_216));
        conn.ok(conn.set_max_message(65_536));
        conn.expect(
            conn.set_max_fragments(0),
            ISO_E_INVALID,
            &["fragment limit 0"],
        );
        conn.expect(
            conn.set_max_fragments(1_048_577),
            ISO_E_INVALID,
            &["fragment limit"],
        );
        conn.expect(
            conn.set_keepalive(1, 0, 10, 3),
            ISO_E_INVALID,
            &["keep-alive"],
        );
        conn.expect(
            conn.set_keepalive(1, 60, 10, 32768),
            ISO_E_INVALID,
            &["keep-alive"],
        );
        conn.expect(conn.set_routing(1, 8, 0), ISO_E_INVALID, &["rack 8"]);
        conn.expect(conn.set_routing(1, 0, 32), ISO_E_INVALID, &["slot 32"]);
        conn.expect(
            conn.set_routing_s7(1, 2, &[], 1, 0, 2),
            ISO_E_INVALID,
            &["address length 0"],
        );
        conn.expect(
            conn.set_routing_s7(1, 2, &[0; 17], 1, 0, 2),
            ISO_E_INVALID,
            &["address length 17"],
        );
        conn.expect(
            conn.set_routing_s7(1, 2, &[2], 1, 8, 2),
            ISO_E_INVALID,
            &["rack 8"],
        );
        let mut t = 0u16;
        // SAFETY: valid out pointer.
        unsafe {
            assert_eq!(c::iso_s7_tsap(1, 0, 2, &mut t), ISO_OK);
            assert_eq!(t, 0x0102);
            assert_eq!(c::iso_s7_tsap(3, 1, 3, &mut t), ISO_OK);
            assert_eq!(t, 0x0323);
            assert_eq!(c::iso_s7_tsap(1, 8, 2, &mut t), ISO_E_INVALID);
            assert_eq!(c::iso_s7_tsap(1, 0, 32, &mut t), ISO_E_INVALID);
            assert_eq!(t, 0x0323, "*out untouched on failure");
        }
        // None of the refused calls changed the CR.
        conn.ok(conn.connect(LONG_MS));
        drop(conn);
        assert_eq!(
            peer.finish(),
            hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 02 00 C2 02 02 01 C0 01 0A")
        );
    });
}

#[test]
fn empty_and_oversized_sends() {
    run(|| {
        let (conn, peer) = connected_with(
            |c| c.ok(c.set_max_message(128)),
            |p| p.read_message().map(|m| m.0),
        );
        conn.expect(conn.send(&[]), ISO_E_INVALID, &["empty message"]);
        conn.expect(
            conn.send(&[0; 129]),
            ISO_E_TOO_LARGE,
            &["129 bytes", "maximum message size of 128"],
        );
        assert_eq!(conn.check(), 1, "refused sends leave the connection intact");
        conn.ok(conn.send(&[5; 128]));
        drop(conn);
        assert_eq!(peer.finish(), Some(vec![5; 128]));
        // Empty message before connect: invalid argument comes first.
        let idle = Conn::local(102);
        idle.expect(idle.send(&[]), ISO_E_INVALID, &["empty message"]);
    });
}

#[test]
fn strerror_covers_every_code() {
    let codes = [
        ISO_OK,
        ISO_E_INVALID,
        ISO_E_STATE,
        ISO_E_RESOLVE,
        ISO_E_REFUSED,
        ISO_E_TIMEOUT,
        ISO_E_WOULD_BLOCK,
        ISO_E_CLOSED,
        ISO_E_REJECTED,
        ISO_E_PROTOCOL,
        ISO_E_TOO_LARGE,
        ISO_E_BUFFER_TOO_SMALL,
        ISO_E_IO,
        ISO_E_PANIC,
        ISO_E_POISONED,
    ];
    assert_eq!(
        codes.to_vec(),
        (-14..=0).rev().collect::<Vec<i32>>(),
        "codes are stable"
    );
    let texts: Vec<String> = codes.iter().map(|&c| strerror(c)).collect();
    for (c, t) in codes.iter().zip(&texts) {
        assert!(!t.is_empty() && !t.contains("unknown"), "{c}: {t:?}");
    }
    let mut uniq = texts.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), texts.len(), "every code has its own text");
    for unknown in [1, -15, 100, i32::MIN, i32::MAX] {
        assert!(
            strerror(unknown).contains("unknown"),
            "{unknown}: {:?}",
            strerror(unknown)
        );
    }
    // Static: the same pointer every time.
    assert_eq!(
        isotcp::ffi::codes::iso_strerror(-7),
        isotcp::ffi::codes::iso_strerror(-7)
    );
}

#[test]
fn last_error_size_query_and_truncation() {
    run(|| unsafe {
        let conn = Conn::local(102);
        assert_eq!(conn.last_error(), "no error");
        conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
        let full = conn.last_error();
        let p = conn.raw();

        let mut needed = 0usize;
        let rc = c::iso_last_error(p, std::ptr::null_mut(), 0, &mut needed);
        assert_eq!(rc, ISO_E_BUFFER_TOO_SMALL, "size query: nothing copied");
        assert_eq!(needed, full.len() + 1, "needed includes the NUL");

        let mut small = [0x55u8; 5];
        needed = 0;
        let rc = c::iso_last_error(p, small.as_mut_ptr().cast(), small.len(), &mut needed);
        assert_eq!(rc, ISO_E_BUFFER_TOO_SMALL);
        assert_eq!(needed, full.len() + 1);
        assert_eq!(&small[..4], &full.as_bytes()[..4]);
        assert_eq!(small[4], 0, "truncated text is NUL-terminated");

        let mut one = [0x55u8; 1];
        assert_eq!(
            c::iso_last_error(p, one.as_mut_ptr().cast(), 1, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(one[0], 0);

        let mut exact = vec![0x55u8; full.len() + 1];
        assert_eq!(
            c::iso_last_error(
                p,
                exact.as_mut_ptr().cast(),
                exact.len(),
                std::ptr::null_mut()
            ),
            ISO_OK
        );
        assert_eq!(&exact[..full.len()], full.as_bytes());
        assert_eq!(exact[full.len()], 0);

        // Same for the thread's last error.
        let mut tneeded = 0usize;
        assert_eq!(
            c::iso_thread_last_error(std::ptr::null_mut(), 0, &mut tneeded),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(
            tneeded,
            full.len() + 1,
            "the thread's last error is the same message"
        );

        // Successful calls do not clear the message.
        conn.ok(conn.set_tpdu_size(512));
        assert_eq!(conn.last_error(), full);
    });
}

#[test]
fn thread_last_error_after_a_failed_create() {
    run(|| {
        let h = thread::spawn(|| {
            assert_eq!(
                thread_last_error(),
                "no error",
                "a fresh thread has no error"
            );
            let (rc, m) = Conn::try_create("no such host!", 102)
                .err()
                .expect("iso_create must fail");
            assert_code_msg(rc, ISO_E_INVALID, &m, &["no such host!"]);
            m
        });
        let m = h.join().unwrap();
        // Per thread: this thread did not see it.
        assert_ne!(thread_last_error(), m);
    });
}

// =============================================================================================
// Threads and the panic boundary
// =============================================================================================

/// One thread waits in `wait` (recv or poll, 10 s timeout); another disconnects after 200 ms.
fn disconnect_wakes(wait: fn(&Conn) -> i32) {
    let (conn, peer) = connected(|_| {});
    let conn = Arc::new(conn);
    let c2 = conn.clone();
    let waiter = thread::spawn(move || {
        let t = Instant::now();
        (wait(&c2), t.elapsed())
    });
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    conn.ok(conn.disconnect());
    let (rc, el) = waiter.join().unwrap();
    let woke = t.elapsed();
    conn.expect(rc, ISO_E_STATE, &["closed by iso_disconnect"]);
    assert!(
        el >= Duration::from_millis(150),
        "returned before the disconnect: {el:?}"
    );
    assert!(
        woke < Duration::from_millis(500),
        "woke {woke:?} after the disconnect"
    );
    assert_eq!(conn.check(), 0);
    // The peer sees the connection closed.
    drop(conn);
    peer.finish();
}

#[test]
fn disconnect_wakes_a_blocked_receiver() {
    run(|| disconnect_wakes(|c| c.recv(1024, 10_000).unwrap_err()));
}

#[test]
fn disconnect_wakes_a_blocked_poller() {
    run(|| disconnect_wakes(|c| c.poll(10_000)));
}

#[test]
fn concurrent_send_and_receive_of_2000_echoed_messages() {
    bounded(Duration::from_secs(25), || {
        const N: u32 = 2000;
        let size = |i: u32| 1 + (i as usize * 7919) % 3000;
        let (conn, peer) = connected(|p| {
            // Echo every TPKT as it comes (fragments included, so messages reassemble).
            let mut echoed = 0u32;
            let mut out = p.stream.try_clone().unwrap();
            while echoed < N {
                let pkt = p.read_tpkt().expect("client closed early");
                if pkt[6] & 0x80 != 0 {
                    echoed += 1;
                }
                std::io::Write::write_all(&mut out, &pkt).unwrap();
            }
            echoed
        });
        let conn = Arc::new(conn);
        let sender = {
            let c2 = conn.clone();
            thread::spawn(move || {
                for i in 0..N {
                    let rc = c2.send(&pattern(i, size(i)));
                    assert!(
                        rc == ISO_OK,
                        "send {i}: {} {}",
                        code_name(rc),
                        c2.last_error()
                    );
                }
            })
        };
        let receiver = {
            let c2 = conn.clone();
            thread::spawn(move || {
                for i in 0..N {
                    let got = c2.recv(4096, LONG_MS).unwrap_or_else(|rc| {
                        panic!("recv {i}: {} {}", code_name(rc), c2.last_error())
                    });
                    assert!(got == pattern(i, size(i)), "message {i} differs");
                }
            })
        };
        sender.join().unwrap();
        receiver.join().unwrap();
        assert_eq!(conn.check(), 1);
        assert_eq!(conn.poll(0), 0);
        drop(conn);
        assert_eq!(peer.finish(), N);
    });
    assert_library_usable();
}

#[test]
fn panic_at_the_boundary_poisons_the_handle() {
    run(|| {
        let (conn, peer) = connected(|_| {});
        let p = conn.raw();
        let rc = unsafe {
            isotcp::ffi::boundary::with_handle(
                p as *const c::iso_conn,
                "conn",
                false,
                |_| -> Result<i32, isotcp::Error> { panic!("boom") },
            )
        };
        assert_eq!(rc, ISO_E_PANIC);
        let m = conn.last_error();
        assert!(m.contains("boom") && m.contains("poisoned"), "{m}");
        assert!(thread_last_error().contains("boom"));

        let poisoned = |rc: i32, what: &str| {
            assert!(
                rc == ISO_E_POISONED,
                "{what}: expected ISO_E_POISONED, got {}",
                code_name(rc)
            );
        };
        poisoned(conn.send(b"x"), "send");
        poisoned(conn.recv(16, 0).unwrap_err(), "recv");
        poisoned(conn.poll(0), "poll");
        poisoned(conn.check(), "check");
        poisoned(conn.connect(100), "connect");
        poisoned(conn.set_tpdu_size(512), "setter");
        poisoned(conn.tpdu_size().unwrap_err(), "get_tpdu_size");
        poisoned(conn.disconnect(), "disconnect");
        assert!(thread_last_error().contains("poisoned"));
        // The last error still works and still names the panic.
        assert!(conn.last_error().contains("boom"));
        // Destroy works (and closes the connection: the peer sees EOF).
        drop(conn);
        peer.finish();
    });
}

// =============================================================================================
// More corner cases: limits, deadlines under trickling data, blocked sends
// =============================================================================================

#[test]
fn reserved_byte_is_ignored_and_a_maximum_size_dt_is_accepted() {
    run(|| {
        let biggest = pattern(61, 65_528); // 4 + 3 + 65528 = 65535, the largest TPKT
        let b2 = biggest.clone();
        let (conn, peer) = connected(move |p| {
            let mut b = hex("03 FF 00 0A 02 F0 80 41 42 43");
            b.extend(msg(&b2));
            p.send(&b);
        });
        assert_eq!(conn.recv_ok(), b"ABC", "TPKT reserved byte 0xFF is ignored");
        assert_eq!(conn.recv(65_536, LONG_MS), Ok(biggest));
        drop(conn);
        peer.finish();
    });
}

#[test]
fn endless_empty_fragments_hit_the_default_fragment_limit() {
    run(|| {
        let peer = Peer::start(|p| {
            p.accept();
            let empty_more = hex("03 00 00 07 02 F0 00");
            let mut b = Vec::new();
            for _ in 0..4097 {
                b.extend_from_slice(&empty_more);
            }
            p.send(&b);
            p.wait_close(Duration::from_secs(3))
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        let rc = conn.recv(1024, LONG_MS).unwrap_err();
        conn.expect(rc, ISO_E_TOO_LARGE, &["more than 4096 fragments"]);
        assert!(peer.finish(), "the connection was not closed");
    });
}

#[test]
fn a_long_cc_is_accepted_even_with_the_smallest_message_limit() {
    // A CC's TPDU may have LI up to 254: a TPKT of up to 259 bytes. With unknown parameters
    // skipped (wire.md 3), such a CC is valid whatever the message limit.
    run(|| {
        let filler = vec![0u8; 243];
        let answer = cc(&[(0xC0, &[0x0A]), (0xC3, &filler)]);
        assert_eq!(answer.len(), 259);
        assert_eq!(answer[4], 254, "LI");
        for max in [128u32, 65_536] {
            let (conn, rc, peer) =
                connect_answered(answer.clone(), |c| c.ok(c.set_max_message(max)));
            assert!(
                rc == ISO_OK,
                "max message {max}: {} {}",
                code_name(rc),
                conn.last_error()
            );
            assert_eq!(conn.tpdu_size(), Ok(1024));
            drop(conn);
            peer.finish();
        }
    });
}

#[test]
fn connect_deadline_holds_while_the_cc_trickles_in() {
    run(|| {
        let peer = Peer::start(|p| {
            let cc = cc_snap7();
            for b in &cc {
                if p.stream.write_all(std::slice::from_ref(b)).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(60));
            }
            p.hold();
        });
        let conn = Conn::local(peer.port());
        let t = Instant::now();
        let rc = conn.connect(400);
        let el = t.elapsed();
        conn.expect(rc, ISO_E_TIMEOUT, &["COTP CC", "deadline passed"]);
        assert!(
            el >= Duration::from_millis(390) && el < Duration::from_millis(700),
            "{el:?}"
        );
        drop(conn);
        peer.finish();
    });
}

#[test]
fn receive_deadline_holds_while_a_message_trickles_in() {
    run(|| {
        let m = pattern(71, 40);
        let m2 = m.clone();
        let (conn, peer) = connected(move |p| {
            let bytes = msg(&m2);
            for b in &bytes {
                if p.stream.write_all(std::slice::from_ref(b)).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(25));
            }
        });
        let t = Instant::now();
        let rc = conn.recv(1024, 300).unwrap_err();
        let el = t.elapsed();
        conn.expect(rc, ISO_E_TIMEOUT, &["deadline passed"]);
        assert!(
            el >= Duration::from_millis(295) && el < Duration::from_millis(600),
            "{el:?}"
        );
        // And nothing was lost: the rest arrives and the message is whole.
        assert_eq!(conn.recv_ok(), m);
        drop(conn);
        peer.finish();
    });
}

/// A peer that accepts and then reads nothing until told to, then drops the connection (its
/// unread data makes that a reset; draining megabytes through a tiny window would be slow).
fn stalled_peer() -> (Peer<()>, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let peer = Peer::start(move |p| {
        socket2::SockRef::from(&p.stream)
            .set_recv_buffer_size(4096)
            .unwrap();
        p.accept();
        let _ = rx.recv_timeout(PEER_PATIENCE);
    });
    (peer, tx)
}

#[test]
fn send_timeout_after_part_of_a_message_closes_the_connection() {
    run(|| {
        let (peer, go) = stalled_peer();
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_max_message(16 << 20));
        conn.ok(conn.set_send_timeout(300));
        conn.ok(conn.connect(LONG_MS));
        let big = vec![0x5Au8; 16 << 20];
        let t = Instant::now();
        let rc = conn.send(&big);
        let el = t.elapsed();
        conn.expect(rc, ISO_E_TIMEOUT, &["send stopped after", "closed"]);
        assert!(
            el >= Duration::from_millis(295) && el < Duration::from_millis(800),
            "{el:?}"
        );
        assert_eq!(conn.check(), 0);
        conn.expect(
            conn.send(b"x"),
            ISO_E_STATE,
            &["not connected", "send stopped after"],
        );
        go.send(()).unwrap();
        peer.finish();
    });
}

#[test]
fn disconnect_wakes_a_blocked_sender() {
    run(|| {
        let (peer, go) = stalled_peer();
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_max_message(16 << 20));
        conn.ok(conn.set_send_timeout(10_000));
        conn.ok(conn.connect(LONG_MS));
        let conn = Arc::new(conn);
        let c2 = conn.clone();
        let sender = thread::spawn(move || c2.send(&vec![0xA5u8; 16 << 20]));
        thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        conn.ok(conn.disconnect());
        let rc = sender.join().unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "sender woke after {:?}",
            t.elapsed()
        );
        conn.expect(rc, ISO_E_STATE, &["closed by iso_disconnect"]);
        go.send(()).unwrap();
        drop(conn);
        peer.finish();
    });
}

#[test]
fn two_concurrent_receivers_share_the_messages_without_loss_or_duplication() {
    run(|| {
        const N: u32 = 300;
        let (conn, peer) = connected(|p| {
            for i in 0..N {
                let m = i.to_be_bytes();
                if i % 2 == 0 {
                    p.send(&fragments(&m, 1));
                } else {
                    p.send(&msg(&m));
                }
            }
        });
        let conn = Arc::new(conn);
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (c2, g2) = (conn.clone(), got.clone());
                thread::spawn(move || loop {
                    match c2.recv(16, 300) {
                        Ok(m) => g2
                            .lock()
                            .unwrap()
                            .push(u32::from_be_bytes(m.try_into().unwrap())),
                        Err(ISO_E_TIMEOUT) if g2.lock().unwrap().len() as u32 == N => return,
                        Err(ISO_E_TIMEOUT) => {}
                        Err(rc) => panic!("recv: {}", code_name(rc)),
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut all = got.lock().unwrap().clone();
        all.sort();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
        drop(conn);
        peer.finish();
    });
}

#[test]
fn after_the_peer_closes_disconnect_then_connect_works() {
    run(|| {
        let peer = Peer::start_many(2, |i, p| {
            p.accept();
            if i == 0 {
                p.send(&msg(b"bye"));
                p.close_now();
            } else {
                let m = p.read_message().unwrap().0;
                p.send(&msg(&m));
                p.hold();
            }
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.recv_ok(), b"bye");
        conn.expect(
            conn.recv(16, LONG_MS).unwrap_err(),
            ISO_E_CLOSED,
            &["closed by peer"],
        );
        conn.expect(conn.send(b"x"), ISO_E_CLOSED, &["closed by peer"]);
        conn.ok(conn.disconnect());
        conn.ok(conn.connect(LONG_MS));
        conn.ok(conn.send(b"second life"));
        assert_eq!(conn.recv_ok(), b"second life");
        drop(conn);
        peer.finish();
    });
}

#[test]
fn messages_exactly_at_the_limit_are_delivered() {
    run(|| {
        let (conn, peer) = connected_with(
            |c| c.ok(c.set_max_message(1000)),
            |p| {
                let mut b = msg(&[1; 1000]);
                b.extend(fragments(&[2; 1000], 300));
                b.extend(fragments(&[3; 1000], 1));
                p.send(&b);
            },
        );
        assert_eq!(conn.recv_ok(), vec![1; 1000], "one DT of exactly the limit");
        assert_eq!(
            conn.recv_ok(),
            vec![2; 1000],
            "4 fragments summing to the limit"
        );
        assert_eq!(conn.recv_ok(), vec![3; 1000], "1000 one-byte fragments");
        assert_eq!(conn.check(), 1);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn a_dribbled_cc_and_a_dr_right_after_the_cc() {
    run(|| {
        // The CC arrives one byte at a time, well within the deadline.
        let (conn, peer) = {
            let peer = Peer::start(|p| {
                p.dribble(&cc_snap7(), Duration::from_millis(2));
                p.send(&msg(b"after a slow CC"));
                p.hold();
            });
            let conn = Conn::local(peer.port());
            conn.ok(conn.connect(LONG_MS));
            (conn, peer)
        };
        assert_eq!(conn.recv_ok(), b"after a slow CC");
        drop(conn);
        peer.finish();

        // CC and DR in one write: the connect succeeds, the DR ends the connection at once.
        let mut answer = cc_snap7();
        answer.extend(dr(0x80));
        let (conn, rc, peer) = connect_answered(answer, |_| {});
        conn.ok(rc);
        conn.expect(
            conn.recv(16, LONG_MS).unwrap_err(),
            ISO_E_CLOSED,
            &["DR", "reason 0x80"],
        );
        assert_eq!(conn.check(), 0);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn a_segmented_message_interrupted_by_timeouts_and_small_buffers_arrives_whole() {
    // recv assembles a segmented message straight into the caller's buffer; every way of
    // leaving early (timeout, timeout 0, a buffer too small, poll) must keep what arrived.
    run(|| {
        let m = pattern(7, 3000);
        let m2 = m.clone();
        let (go, wait) = mpsc::channel::<()>();
        let (conn, peer) = connected(move |p| {
            let frags = fragments(&m2, 1000);
            let third = frags.len() / 3;
            p.send(&frags[..third]);
            let _ = wait.recv_timeout(PEER_PATIENCE);
            p.send(&frags[third..2 * third]);
            let _ = wait.recv_timeout(PEER_PATIENCE);
            p.send(&frags[2 * third..]);
            p.send(&msg(b"next"));
        });
        // The first DT is there, no more: a timeout, then timeout 0, then poll.
        conn.expect(
            conn.recv(4096, 200).unwrap_err(),
            ISO_E_TIMEOUT,
            &["deadline passed"],
        );
        conn.expect(
            conn.recv(4096, 0).unwrap_err(),
            ISO_E_WOULD_BLOCK,
            &["would block"],
        );
        assert_eq!(conn.poll(50), 0);
        go.send(()).unwrap();
        thread::sleep(Duration::from_millis(100));
        conn.expect(
            conn.recv(4096, 0).unwrap_err(),
            ISO_E_WOULD_BLOCK,
            &["would block"],
        );
        go.send(()).unwrap();
        // Complete now, but the buffer is too small: the size is reported, nothing is lost.
        let (rc, n) = conn.recv_into(&mut [0u8; 100], 2000);
        assert_eq!((rc, n), (ISO_E_BUFFER_TOO_SMALL, 3000));
        assert_eq!(conn.recv_ok(), m);
        assert_eq!(conn.recv_ok(), b"next");
        drop(conn);
        peer.finish();
    });
}

#[test]
fn disconnect_from_another_thread_ends_a_connect_waiting_for_the_cc() {
    run(|| {
        let peer = Peer::answering(vec![]);
        let conn = Conn::local(peer.port());
        let raw = conn.raw() as usize;
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            unsafe { c::iso_disconnect(raw as *mut c::iso_conn) }
        });
        let t = Instant::now();
        let rc = conn.connect(10_000);
        let el = t.elapsed();
        assert_eq!(stopper.join().unwrap(), ISO_OK);
        conn.expect(rc, ISO_E_STATE, &["ended by iso_disconnect"]);
        assert!(
            el < Duration::from_secs(2),
            "connect returned after {el:?}, not at the disconnect"
        );
        // The handle is usable again: not connected, not stuck "connecting".
        conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
        conn.ok(conn.set_tpdu_size(512));
        drop(conn);
        assert_eq!(peer.finish(), default_cr());
    });
}
