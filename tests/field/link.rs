//! The link itself: a slow one (tbf, like a radio or VPN link) and a small MTU (VPN, PPPoE).

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use super::common::conn::*;
use super::common::packets::{fragments, pattern};
use super::common::peer::{assert_elapsed, timed, Peer, PeerConn};
use super::net::{Link, Net, PLC_V4};
use super::plc::{Plc, FLAVORS, S7_PORT};
use super::s7::*;
use super::{LIMIT, SLACK};

/// The echo message: close to the library's default limit on a message (64 KiB).
const BIG: usize = 60_000;

/// A scripted echo peer on a listener in the PLC namespace: accepts with python-snap7's CC
/// (TPDU 1024), answers `n` messages with the same bytes in 1021-byte DTs.
fn echo_peer(net: &Net, n: usize) -> Peer<()> {
    let listener = net.in_plc(|| TcpListener::bind(SocketAddr::from((PLC_V4, 0))).unwrap());
    Peer::start_on(listener, move |p: &mut PeerConn| {
        p.accept();
        for _ in 0..n {
            let m = p.read_message().expect("echo peer: a message").0;
            p.send(&fragments(&m, 1021));
        }
        p.hold();
    })
}

/// The whole of DB1 (1024 bytes) in reads of 462 bytes (the most a 480-byte PDU carries), each
/// answer checked.
fn read_all_db1(c: &Conn, first_ref: u16) {
    for (i, start) in [0u32, 462, 924].into_iter().enumerate() {
        let len = (1024 - start).min(462) as u16;
        let r = first_ref + i as u16;
        let a = exchange(c, &read_db1(r, start, len), 5000);
        assert_read(&a, r, &db1(start, len));
    }
}

/// The PLC's side shaped to 384 kbit/s: a 60000-byte answer takes more than a second to
/// trickle in. Receives with a 200 ms deadline each end with ISO_E_TIMEOUT within the deadline
/// (never later, never with a part of the message) until the whole message is there; it is
/// intact, and the next exchange is in step. Then the same link with python-snap7's server and
/// the native one: all of DB1 read in PDU-sized pieces, intact.
#[test]
fn slow_link_deadlines_hold_and_nothing_is_lost() {
    let test = "slow_link_deadlines_hold_and_nothing_is_lost";
    let Some(net) = Net::new(test) else { return };
    net.link.slow_plc_egress("384kbit");
    let peer = echo_peer(&net, 2);
    let port = peer.port();
    net.hmi(LIMIT, move |_| {
        let c = Conn::create(&PLC_V4.to_string(), port);
        c.ok(c.connect(3000));
        let m = pattern(11, BIG);
        c.ok(c.send(&m));
        let start = Instant::now();
        let mut timeouts = 0;
        let got = loop {
            let (r, t) = timed(|| c.recv(65536, 200));
            match r {
                Ok(got) => break got,
                Err(rc) => {
                    c.expect(rc, ISO_E_TIMEOUT, &[]);
                    assert_elapsed(
                        "a receive while the answer trickles in",
                        t,
                        Duration::from_millis(200),
                        Duration::from_millis(200) + SLACK,
                    );
                    timeouts += 1;
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "answer never came"
                    );
                }
            }
        };
        let total = start.elapsed();
        assert!(got == m, "the echo of {BIG} bytes differs");
        // 60000 bytes at 384 kbit/s take 1.25 s; less the 4 KiB the bucket lets through at
        // once: at least 1.1 s.
        assert!(
            total >= Duration::from_millis(1100),
            "not shaped: {total:?}"
        );
        assert!(timeouts >= 5, "only {timeouts} receives timed out");
        super::net::note(&format!(
            "field::{test}: {BIG} bytes at 384 kbit/s in {total:?}, {timeouts} receives timed out"
        ));
        let small = pattern(12, 100);
        c.ok(c.send(&small));
        assert!(c.recv_ok() == small);
        c.ok(c.disconnect());
    });
    peer.finish();
    for flavor in FLAVORS {
        net.link.slow_plc_egress("64kbit");
        let Some(plc) = Plc::start(&net.link, flavor, test) else {
            continue;
        };
        net.hmi(LIMIT, move |_| {
            let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
            c.ok(c.connect(3000));
            negotiate(&c, 1);
            // About 1100 bytes: within tbf's 4 KiB bucket, so not slowed much; what counts
            // is that the answers are intact on the shaped queue.
            read_all_db1(&c, 2);
            c.ok(c.disconnect());
            drop(plc);
        });
    }
}

/// MTU 576 on both ends (TCP's MSS then 536, 524 with timestamps): a 60000-byte message both ways through a
/// scripted echo peer, and all of DB1 from python-snap7's and the native server, intact.
#[test]
fn mtu_576_large_messages_intact() {
    let test = "mtu_576_large_messages_intact";
    let Some(net) = Net::new(test) else { return };
    net.link.mtu(576);
    let peer = echo_peer(&net, 2);
    let port = peer.port();
    net.hmi(LIMIT, move |link: Link| {
        let c = Conn::create(&PLC_V4.to_string(), port);
        c.ok(c.connect(3000));
        for seed in [21, 22] {
            let m = pattern(seed, BIG);
            c.ok(c.send(&m));
            assert!(c.recv_ok() == m, "the echo of {BIG} bytes differs");
        }
        // The MSS is 536 less 12 bytes of timestamps option.
        let info = link.plc_tcp_info();
        let mss: Vec<u32> = info
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("mss:"))
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            !mss.is_empty() && mss.iter().all(|&m| m <= 536) && info.contains("pmtu:576"),
            "MSS at most 536 and path MTU 576 expected: {info}"
        );
        c.ok(c.disconnect());
    });
    peer.finish();
    for flavor in FLAVORS {
        let Some(plc) = Plc::start(&net.link, flavor, test) else {
            continue;
        };
        net.hmi(LIMIT, move |_| {
            let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
            c.ok(c.connect(3000));
            negotiate(&c, 1);
            read_all_db1(&c, 2);
            c.ok(c.disconnect());
            drop(plc);
        });
    }
}
