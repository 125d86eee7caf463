//! Receiving: reassembly, garbage from the peer, EOF and resets mid-packet or mid-message, DR and
//! ER mid-session, the receive limits, timeouts and poll, buffers too small, and messages still
//! buffered when the peer closes.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;

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
