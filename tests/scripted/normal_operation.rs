//! Normal operation: the default connect with its CR byte for byte and a round trip, data that
//! arrives in the same write as the CC, DTs larger than the TPDU size, and the CRs of a string
//! TSAP and of both routing forms.

#[cfg(unix)]
use std::mem::ManuallyDrop;

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;

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
    // docs/PROTOCOL.md §5.2: peers do not segment what they send, so a 10000-byte DT is fine after TPDU 1024.
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

#[test]
fn reconnect_sends_a_dr_closes_and_connects_again_with_the_same_cr() {
    run(|| {
        let peer = Peer::start_many(3, |i, p| {
            p.accept();
            let cr = p.cr.clone();
            if i == 2 {
                p.hold();
                return (cr, None, true);
            }
            let dr = p.read_tpkt();
            let closed = p.wait_close(std::time::Duration::from_secs(5));
            (cr, dr, closed)
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_tsap(0x0100, 0x0301));
        conn.ok(conn.connect(LONG_MS));
        conn.ok(conn.reconnect(LONG_MS));
        conn.ok(conn.reconnect(LONG_MS));
        assert_eq!(conn.check(), 1);
        drop(conn);
        let seen = peer.finish();
        let want_cr = hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 01 00 C2 02 03 01 C0 01 0A");
        for (i, (cr, dr, closed)) in seen.iter().enumerate() {
            assert_eq!(cr, &want_cr, "connection {i}: same settings");
            if i < 2 {
                // DR to the peer's reference 0x0001 from ours, reason 0x80 (normal disconnect),
                // then the socket closed: nothing is left open at the peer.
                assert_eq!(
                    dr.as_deref(),
                    Some(&hex("03 00 00 0B 06 80 00 01 00 01 80")[..]),
                    "connection {i}"
                );
                assert!(closed, "connection {i} was not closed after the DR");
            }
        }
    });
}

#[test]
fn connect_after_the_peer_closed_replaces_the_ended_connection() {
    run(|| {
        let peer = Peer::start_many(2, |i, p| {
            p.accept();
            if i == 0 {
                p.close_now();
            } else {
                let m = p.read_message().unwrap().0;
                p.send(&msg(&m));
                p.hold();
            }
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        conn.expect(conn.poll(LONG_MS), ISO_E_CLOSED, &["closed by peer"]);
        // No disconnect in between: the ended connection is replaced.
        conn.ok(conn.connect(LONG_MS));
        conn.ok(conn.send(b"after"));
        assert_eq!(conn.recv_ok(), b"after");
        drop(conn);
        peer.finish();
    });
}
