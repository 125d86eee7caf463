//! More corner cases: limits, deadlines under trickling data, blocked sends, concurrent
//! receivers, reconnecting, and a segmented message interrupted every way recv can return early.

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;
use isotcp::ffi::conn as c;

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
    // skipped (docs/PROTOCOL.md §3.8), such a CC is valid whatever the message limit.
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
        conn.expect(
            rc,
            ISO_E_STATE,
            &[
                "closed by a disconnect from another thread",
                "iso_disconnect was called",
            ],
        );
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
        conn.expect(
            rc,
            ISO_E_STATE,
            &[
                "ended by a disconnect from another thread",
                "iso_disconnect was called",
            ],
        );
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
