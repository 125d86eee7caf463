//! TPDU size negotiation and segmentation: the size a CC grants (C0, F0, neither), the CCs that
//! are protocol errors, and sends cut into DTs of the negotiated size.

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;

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
