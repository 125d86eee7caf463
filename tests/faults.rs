//! The fault catalogue: the library driven through its C ABI against scripted peers on loopback,
//! each misbehaving in one precise way. Every case runs under a watchdog, times the call that meets
//! the fault (an upper bound always; a lower bound too where a deadline must be honoured), asserts
//! the exact result code and the words of the last error (`iso_last_error`) that say what went
//! wrong, and afterwards checks that the process is unharmed: the peer thread has ended (nothing
//! left blocked) and a fresh handle still connects to a well-behaved peer and exchanges messages.
//!
//! | fault | call | expected |
//! |---|---|---|
//! | slow loris: one byte per 200 ms, never a whole message | `iso_recv` 1 s, `iso_poll` 600 ms | ISO_E_TIMEOUT at the deadline ("receive: deadline passed"); poll 0 at its deadline; connection intact |
//! | slow loris CC (a valid 259-byte CC, one byte per 200 ms) | `iso_connect` 1 s | ISO_E_TIMEOUT at the deadline ("waiting for the COTP CC") |
//! | TPKT length 65535, then silence (default limits: a legal length) | `iso_recv` 500 ms | ISO_E_TIMEOUT at the deadline; the packet, completed later, arrives intact |
//! | TPKT length 65535 as the CC, then silence | `iso_connect` 500 ms | ISO_E_TIMEOUT at the deadline ("waiting for the COTP CC") |
//! | TPKT length 65535 with a 1000-byte message limit | `iso_recv` | ISO_E_TOO_LARGE at once, from the header ("above the receive limit of 1007") |
//! | flood of empty EOT DTs (skipped, never a message, never a limit) | `iso_recv` 500 ms, `iso_poll` 300 ms | ISO_E_TIMEOUT / 0 at the deadline; connection intact |
//! | TPKT length 3 (in data transfer; as the CC) | `iso_recv` / `iso_connect` | ISO_E_PROTOCOL ("TPKT length 3 is below the minimum of 7") |
//! | TPKT version 4 (in data transfer; as the CC) | `iso_recv` / `iso_connect` | ISO_E_PROTOCOL ("TPKT version is 4, expected 3") |
//! | endless 1-byte DTs without EOT | `iso_recv` | ISO_E_TOO_LARGE ("more than 4096 fragments") |
//! | endless 1000-byte DTs without EOT | `iso_recv` | ISO_E_TOO_LARGE ("message of 66000 bytes is above the limit of 65536") |
//! | DT with TPDU-NR set (1 with EOT; 5 without) | `iso_recv` | ISO_E_PROTOCOL ("DT TPDU-NR is 1, class 0 requires 0") |
//! | CC with C0 = 0x20 | `iso_connect` | ISO_E_PROTOCOL ("CC TPDU-size code 0x20 is outside 0x07..0x10") |
//! | LI pointing past the packet (a DT; a CC) | `iso_recv` / `iso_connect` | ISO_E_PROTOCOL ("length indicator 16 is invalid: the packet holds 3 bytes") |
//! | CC parameters running past LI (past the packet; a lone code byte; LI 2 short) | `iso_connect` | ISO_E_PROTOCOL (parameter 0xC1 "runs past the header"; 0xC0 "truncated"; "2 bytes follow the COTP CC header") |
//! | DR mid-session (reasons 0x80 and 0x99) | `iso_recv`, `iso_poll`, `iso_send` | ISO_E_CLOSED ("peer ended the connection with DR, reason 0x80 (normal disconnect ...)") |
//! | ER mid-session (cause 2) | `iso_recv`, `iso_poll`, `iso_send` | ISO_E_CLOSED ("peer ended the connection with ER, cause 2 (invalid TPDU type)") |
//! | CR answered by "HTTP/1.1 400 Bad Request\r\n..." | `iso_connect` | ISO_E_PROTOCOL ("TPKT version is 72, expected 3 (byte 0x48 = 'H': the peer answers in text ...)") |
//! | RST (SO_LINGER 0) after half a TPKT | `iso_recv` | ISO_E_CLOSED ("connection reset by peer ... in the middle of a TPKT packet; the partial packet was discarded") |
//! | EOF after a DT without EOT | `iso_recv` | ISO_E_CLOSED ("connection closed by peer after a DT without EOT; the partial message was discarded") |
//! | silent peer: the CR is never answered | `iso_connect` 1 s | ISO_E_TIMEOUT at the deadline ("waiting for the COTP CC from ADDRESS: deadline passed") |
//! | peer accepts TCP and closes (unread CR; FIN after the CR; RST after the CR) | `iso_connect` | ISO_E_CLOSED ("by peer during COTP connect to ADDRESS (after the CR): check the TSAPs (local 0x0100, remote 0x0301), rack and slot") |
//! | 2 KB responses (one DT; three DTs) in 1-byte TCP segments | `iso_recv` | ISO_OK, both intact |
//! | 100 responses (some fragmented) packed into one write | `iso_poll` + `iso_recv` x 100 | ISO_OK, all intact and in order; poll 1 before each, 0 (and ISO_E_WOULD_BLOCK) after the last |
//!
//! The measured time of every timed call is printed (`cargo test --test faults -- --nocapture`).

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::conn::*;
use common::packets::*;
use common::peer::*;

/// Watchdog of one case (the case itself takes a few seconds at most).
const WATCHDOG: Duration = Duration::from_secs(20);
/// How much later than its deadline a timed-out call may return on a loaded 2-core machine.
const LATE: Duration = Duration::from_secs(1);
/// How much earlier than its deadline a timed-out call may return (clock granularity only).
const EARLY: Duration = Duration::from_millis(5);
/// Upper bound of a call that meets a fault it can see in the bytes (its own timeout is 5 s).
const PROMPT: Duration = Duration::from_secs(1);
/// The slow loris writes one byte per this.
const LORIS_PAUSE: Duration = Duration::from_millis(200);
/// Peers that write without end stop after this if the client never closes.
const ENDLESS: Duration = Duration::from_secs(8);

/// Runs one case under the watchdog, then checks that the library still works.
fn case(body: impl FnOnce() + Send + 'static) {
    bounded(WATCHDOG, body);
    assert_fresh_connection_works();
    assert_library_usable();
}

fn note(what: &str, elapsed: Duration) {
    eprintln!("fault timing: {what}: {elapsed:?}");
}

/// A call that timed out returned at its deadline of `ms`: not before, and at most LATE after.
#[track_caller]
fn assert_at_deadline(what: &str, elapsed: Duration, ms: u64) {
    note(what, elapsed);
    let d = Duration::from_millis(ms);
    assert_elapsed(what, elapsed, d - EARLY, d + LATE);
}

/// A call that met a fault in the bytes returned without waiting for its deadline.
#[track_caller]
fn assert_prompt(what: &str, elapsed: Duration) {
    note(what, elapsed);
    assert_elapsed(what, elapsed, Duration::ZERO, PROMPT);
}

/// The message every transfer fault is preceded by; it must come out before the fault is seen.
const BEFORE: &[u8] = b"the message before the fault";

/// Connects to a peer that sends BEFORE and then `fault` in one write, and then reports whether
/// the client closed TCP within 3 s.
fn transfer_fault(fault: Vec<u8>) -> (Conn, Peer<bool>) {
    let peer = Peer::start(move |p| {
        p.accept();
        let mut b = msg(BEFORE);
        b.extend(fault);
        p.send(&b);
        p.wait_close(Duration::from_secs(3))
    });
    let conn = Conn::local(peer.port());
    conn.ok(conn.connect(LONG_MS));
    (conn, peer)
}

/// The library closed the connection itself because of `cause`: the peer saw TCP close while the
/// handle still exists, `iso_check_connection` is 0, and later calls are state errors naming it.
#[track_caller]
fn assert_library_closed(conn: &Conn, peer: Peer<bool>, cause: &str) {
    assert_eq!(conn.check(), 0);
    conn.expect(
        conn.recv(1024, LONG_MS).unwrap_err(),
        ISO_E_STATE,
        &["not connected", cause],
    );
    conn.expect(conn.poll(0), ISO_E_STATE, &["not connected", cause]);
    conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected", cause]);
    assert!(
        peer.finish(),
        "the library did not close the TCP connection after: {cause}"
    );
}

/// A malformed packet in data transfer: BEFORE is delivered, then ISO_E_PROTOCOL at once with
/// `what` in the message, and the connection is closed.
#[track_caller]
fn transfer_protocol_error(name: &str, fault: Vec<u8>, what: &[&str]) {
    let (conn, peer) = transfer_fault(fault);
    assert_eq!(conn.recv_ok(), BEFORE, "{name}");
    let (rc, el) = timed(|| conn.recv(1024, LONG_MS).unwrap_err());
    conn.expect(rc, ISO_E_PROTOCOL, what);
    let m = conn.last_error();
    assert!(m.starts_with("protocol error: "), "{name}: {m:?}");
    assert_prompt(name, el);
    assert_library_closed(&conn, peer, what[0]);
}

/// Connects to a peer that reads the CR, answers `answer` and then reports whether the client
/// closed TCP within 3 s. Returns the code and time of `iso_connect(5000)`.
fn connect_fault(answer: Vec<u8>) -> (Conn, i32, Duration, Peer<bool>) {
    let peer = Peer::start(move |p| {
        p.send(&answer);
        p.wait_close(Duration::from_secs(3))
    });
    let conn = Conn::local(peer.port());
    let (rc, el) = timed(|| conn.connect(LONG_MS));
    (conn, rc, el, peer)
}

/// After a failed connect the handle is idle (not stuck connecting) and the library closed the
/// socket itself: the peer's script, which ends when the client closes, returned true.
#[track_caller]
fn assert_failed_connect(conn: &Conn, peer: Peer<bool>) {
    assert_eq!(conn.check(), 0);
    conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
    conn.expect(
        conn.tpdu_size().unwrap_err(),
        ISO_E_STATE,
        &["not connected"],
    );
    assert!(
        peer.finish(),
        "the library did not close the TCP connection after the failed connect"
    );
}

/// A malformed answer to the CR: ISO_E_PROTOCOL at once with `what` in the message.
#[track_caller]
fn connect_protocol_error(name: &str, answer: Vec<u8>, what: &[&str]) {
    let (conn, rc, el, peer) = connect_fault(answer);
    conn.expect(rc, ISO_E_PROTOCOL, what);
    let m = conn.last_error();
    assert!(m.starts_with("protocol error: "), "{name}: {m:?}");
    assert_prompt(name, el);
    assert_failed_connect(&conn, peer);
}

// =============================================================================================
// Slow peers and deadlines
// =============================================================================================

#[test]
fn slow_loris_recv_and_poll_end_at_their_deadlines() {
    case(|| {
        let (conn, peer) = connected(|p| {
            // A legal stream that never completes a message: the header of the largest DT, then
            // its payload at 5 bytes per second.
            let head = hex("03 00 FF FF 02 F0 80");
            p.trickle(
                head.into_iter().chain(std::iter::repeat(0x5A)),
                LORIS_PAUSE,
                ENDLESS,
            )
        });
        let (rc, el) = timed(|| conn.recv(70_000, 1000).unwrap_err());
        conn.expect(rc, ISO_E_TIMEOUT, &["receive: deadline passed"]);
        assert_at_deadline("slow loris: iso_recv(1000 ms)", el, 1000);

        let (ready, el) = timed(|| conn.poll(600));
        assert_eq!(ready, 0, "slow loris: iso_poll saw a whole message");
        assert_at_deadline("slow loris: iso_poll(600 ms)", el, 600);

        assert_eq!(conn.check(), 1, "a slow peer is not a broken connection");
        assert_eq!(conn.poll(0), 0);
        drop(conn);
        assert!(peer.finish(), "the slow loris never saw the client close");
    });
}

#[test]
fn slow_loris_cc_makes_connect_end_at_its_deadline() {
    case(|| {
        // A valid CC of 259 bytes: at one byte per 200 ms it would take 52 s.
        let long_cc = cc(&[(0xC0, &[0x0A]), (0xC3, &[0u8; 243])]);
        assert_eq!(long_cc.len(), 259);
        let peer = Peer::start(move |p| p.trickle(long_cc, LORIS_PAUSE, ENDLESS));
        let conn = Conn::local(peer.port());
        let (rc, el) = timed(|| conn.connect(1000));
        conn.expect(
            rc,
            ISO_E_TIMEOUT,
            &[&format!(
                "waiting for the COTP CC from 127.0.0.1:{}: deadline passed",
                peer.port()
            )],
        );
        assert_at_deadline("slow loris CC: iso_connect(1000 ms)", el, 1000);
        assert_failed_connect(&conn, peer);
    });
}

#[test]
fn silent_peer_never_answering_the_cr_times_out_at_the_connect_deadline() {
    case(|| {
        let peer = Peer::start(|p| p.wait_close(Duration::from_secs(5)));
        let conn = Conn::local(peer.port());
        let (rc, el) = timed(|| conn.connect(1000));
        conn.expect(
            rc,
            ISO_E_TIMEOUT,
            &[&format!(
                "waiting for the COTP CC from 127.0.0.1:{}: deadline passed",
                peer.port()
            )],
        );
        assert_at_deadline("silent peer: iso_connect(1000 ms)", el, 1000);
        assert_failed_connect(&conn, peer);
    });
}

#[test]
fn tpkt_length_65535_then_silence_times_out_and_loses_nothing() {
    case(|| {
        // 65535 is a legal length under the default 65536-byte message limit: the library must
        // wait for the body, give up at the deadline, and keep the header for later.
        let body = pattern(65_535, 65_528);
        let b2 = body.clone();
        let (go, wait) = mpsc::channel::<()>();
        let (conn, peer) = connected(move |p| {
            let whole = msg(&b2);
            assert_eq!(whole.len(), 65_535);
            p.send(&whole[..4]);
            wait.recv_timeout(PEER_PATIENCE)
                .expect("the test never said go");
            p.send(&whole[4..]);
        });
        let (rc, el) = timed(|| conn.recv(65_536, 500).unwrap_err());
        conn.expect(rc, ISO_E_TIMEOUT, &["receive: deadline passed"]);
        assert_at_deadline("TPKT length 65535 then silence: iso_recv(500 ms)", el, 500);
        assert_eq!(conn.poll(0), 0);
        assert_eq!(conn.check(), 1);

        go.send(()).unwrap();
        let got = conn.recv(65_536, LONG_MS).unwrap_or_else(|rc| {
            panic!(
                "the completed packet: {} {}",
                code_name(rc),
                conn.last_error()
            )
        });
        assert!(
            got == body,
            "the 65528-byte payload differs after the timeout"
        );
        drop(conn);
        peer.finish();
    });
}

#[test]
fn tpkt_length_65535_then_silence_as_the_cc_times_out_at_the_connect_deadline() {
    case(|| {
        let peer = Peer::start(|p| {
            p.send(&hex("03 00 FF FF D0"));
            p.wait_close(Duration::from_secs(5))
        });
        let conn = Conn::local(peer.port());
        let (rc, el) = timed(|| conn.connect(500));
        conn.expect(
            rc,
            ISO_E_TIMEOUT,
            &[&format!(
                "waiting for the COTP CC from 127.0.0.1:{}: deadline passed",
                peer.port()
            )],
        );
        assert_at_deadline(
            "TPKT length 65535 as the CC, then silence: iso_connect(500 ms)",
            el,
            500,
        );
        assert_failed_connect(&conn, peer);
    });
}

#[test]
fn flood_of_empty_eot_dts_cannot_hold_recv_or_poll_past_the_deadline() {
    case(|| {
        // Empty DTs with EOT are skipped and count towards no limit: the stream never yields a
        // message and never fails, and it keeps the socket readable the whole time.
        let chunk: Vec<u8> = (0..20_000)
            .flat_map(|_| hex("03 00 00 07 02 F0 80"))
            .collect();
        let (conn, peer) = connected(move |p| p.flood(&chunk, ENDLESS));
        let (rc, el) = timed(|| conn.recv(1024, 500).unwrap_err());
        conn.expect(rc, ISO_E_TIMEOUT, &["receive: deadline passed"]);
        assert_at_deadline("flood of empty EOT DTs: iso_recv(500 ms)", el, 500);
        let (ready, el) = timed(|| conn.poll(300));
        assert_eq!(ready, 0, "an empty EOT DT is not a message");
        assert_at_deadline("flood of empty EOT DTs: iso_poll(300 ms)", el, 300);
        assert_eq!(conn.check(), 1, "a flood of legal packets is not an error");
        drop(conn);
        peer.finish();
    });
}

#[test]
fn tpkt_length_65535_above_the_message_limit_is_refused_from_its_header() {
    case(|| {
        let peer = Peer::start(|p| {
            p.accept();
            p.send(&hex("03 00 FF FF"));
            p.wait_close(Duration::from_secs(3))
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_max_message(1000));
        conn.ok(conn.connect(LONG_MS));
        let (rc, el) = timed(|| conn.recv(2000, LONG_MS).unwrap_err());
        conn.expect(
            rc,
            ISO_E_TOO_LARGE,
            &["TPKT length 65535 is above the receive limit of 1007"],
        );
        assert_prompt("TPKT length 65535 above the limit: iso_recv", el);
        assert_library_closed(&conn, peer, "TPKT length 65535");
    });
}

// =============================================================================================
// Malformed TPKT and COTP
// =============================================================================================

#[test]
fn tpkt_length_3_is_a_protocol_error() {
    case(|| {
        let what = &["TPKT length 3 is below the minimum of 7"];
        transfer_protocol_error("TPKT length 3: iso_recv", hex("03 00 00 03"), what);
        connect_protocol_error(
            "TPKT length 3 as the CC: iso_connect",
            hex("03 00 00 03"),
            what,
        );
    });
}

#[test]
fn tpkt_version_4_is_a_protocol_error() {
    case(|| {
        let what = &["TPKT version is 4, expected 3"];
        transfer_protocol_error(
            "TPKT version 4: iso_recv",
            hex("04 00 00 08 02 F0 80 01"),
            what,
        );
        let mut answer = cc_snap7();
        answer[0] = 4;
        connect_protocol_error("TPKT version 4 on the CC: iso_connect", answer, what);
    });
}

/// A peer floods DTs without EOT (`chunk` repeated) until the client closes.
fn endless_fragments(chunk: Vec<u8>, what: &str) {
    let peer = Peer::start(move |p| {
        p.accept();
        p.flood(&chunk, ENDLESS)
    });
    let conn = Conn::local(peer.port());
    conn.ok(conn.connect(LONG_MS));
    let (rc, el) = timed(|| conn.recv(70_000, LONG_MS).unwrap_err());
    conn.expect(rc, ISO_E_TOO_LARGE, &[what]);
    assert_prompt(what, el);
    assert_library_closed(&conn, peer, what);
}

#[test]
fn endless_one_byte_fragments_hit_the_fragment_limit() {
    case(|| {
        let chunk: Vec<u8> = (0..512).flat_map(|_| dt(b"x", false)).collect();
        endless_fragments(chunk, "message has more than 4096 fragments");
    });
}

#[test]
fn endless_large_fragments_hit_the_message_limit() {
    case(|| {
        let chunk: Vec<u8> = (0..16).flat_map(|_| dt(&[0x33; 1000], false)).collect();
        endless_fragments(chunk, "message of 66000 bytes is above the limit of 65536");
    });
}

#[test]
fn dt_with_tpdu_nr_set_is_a_protocol_error() {
    case(|| {
        transfer_protocol_error(
            "DT TPDU-NR 1 with EOT: iso_recv",
            hex("03 00 00 08 02 F0 81 01"),
            &["DT TPDU-NR is 1, class 0 requires 0"],
        );
        transfer_protocol_error(
            "DT TPDU-NR 5 without EOT: iso_recv",
            hex("03 00 00 08 02 F0 05 01"),
            &["DT TPDU-NR is 5, class 0 requires 0"],
        );
    });
}

#[test]
fn cc_with_c0_0x20_is_a_protocol_error() {
    case(|| {
        connect_protocol_error(
            "CC with C0 = 0x20: iso_connect",
            cc(&[(0xC0, &[0x20]), (0xC1, &[1, 0]), (0xC2, &[1, 2])]),
            &["CC TPDU-size code 0x20 is outside 0x07..0x10"],
        );
    });
}

#[test]
fn li_pointing_past_the_packet_is_a_protocol_error() {
    case(|| {
        transfer_protocol_error(
            "DT with LI 16 in a 4-byte TPDU: iso_recv",
            hex("03 00 00 08 10 F0 80 01"),
            &["COTP length indicator 16 is invalid: the packet holds 3 bytes after it"],
        );
        connect_protocol_error(
            "CC with LI 32 in a 7-byte TPDU: iso_connect",
            tpkt(&[0x20, 0xD0, 0, 1, 0, 1, 0]),
            &["COTP length indicator 32 is invalid: the packet holds 6 bytes after it"],
        );
    });
}

#[test]
fn cc_parameters_running_past_li_are_a_protocol_error() {
    case(|| {
        connect_protocol_error(
            "CC parameter C1 of length 5 with 1 byte left: iso_connect",
            tpkt(&[9, 0xD0, 0, 1, 0, 1, 0, 0xC1, 5, 1]),
            &["COTP parameter 0xC1 of length 5 runs past the header (1 bytes left)"],
        );
        connect_protocol_error(
            "CC ending in a lone parameter code: iso_connect",
            tpkt(&[7, 0xD0, 0, 1, 0, 1, 0, 0xC0]),
            &["COTP parameter 0xC0 is truncated at the end of the header"],
        );
        // python-snap7's CC with LI 2 short: C2's value lies outside the header.
        let mut answer = cc_snap7();
        answer[4] -= 2;
        connect_protocol_error(
            "CC with LI 2 short of its parameters: iso_connect",
            answer,
            &["2 bytes follow the COTP CC header; class 0 carries one TPDU per TPKT"],
        );
    });
}

#[test]
fn cr_answered_by_http_text_is_a_protocol_error() {
    case(|| {
        let http = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request";
        connect_protocol_error(
            "CR answered by HTTP: iso_connect",
            http.to_vec(),
            &[
                "TPKT version is 72, expected 3",
                "0x48 = 'H'",
                "not ISO on TCP",
            ],
        );
    });
}

// =============================================================================================
// The peer ends the connection
// =============================================================================================

/// The peer sends BEFORE, then `end` in a separate write, and holds TCP open.
fn peer_ends_mid_session(name: &str, end: Vec<u8>, what: &[&str]) {
    let (conn, peer) = connected(move |p| {
        p.send(&msg(BEFORE));
        thread::sleep(Duration::from_millis(20));
        p.send(&end);
        // DR/ER ends the transport connection: the library releases TCP without waiting for
        // the caller to disconnect.
        p.wait_close(Duration::from_secs(2))
    });
    assert_eq!(conn.recv_ok(), BEFORE, "{name}");
    let (rc, el) = timed(|| conn.recv(1024, LONG_MS).unwrap_err());
    conn.expect(rc, ISO_E_CLOSED, what);
    assert_prompt(name, el);
    assert_eq!(conn.check(), 0, "{name}");
    conn.expect(conn.recv(1024, LONG_MS).unwrap_err(), ISO_E_CLOSED, what);
    conn.expect(conn.poll(LONG_MS), ISO_E_CLOSED, what);
    conn.expect(conn.send(b"x"), ISO_E_CLOSED, what);
    assert!(
        peer.finish(),
        "{name}: TCP still open after the peer's DR/ER"
    );
    drop(conn);
}

#[test]
fn dr_mid_session_is_closed_with_the_reason() {
    case(|| {
        peer_ends_mid_session(
            "DR 0x80 mid-session: iso_recv",
            dr(0x80),
            &["peer ended the connection with DR, reason 0x80 (normal disconnect initiated by session entity)"],
        );
        peer_ends_mid_session(
            "DR 0x99 mid-session: iso_recv",
            dr(0x99),
            &["peer ended the connection with DR, reason 0x99 (unknown reason)"],
        );
    });
}

#[test]
fn er_mid_session_is_closed_with_the_cause() {
    case(|| {
        peer_ends_mid_session(
            "ER cause 2 mid-session: iso_recv",
            er(2),
            &["peer ended the connection with ER, cause 2 (invalid TPDU type)"],
        );
    });
}

#[test]
fn rst_in_the_middle_of_a_packet_is_closed_and_says_so() {
    case(|| {
        let whole = msg(&pattern(0x7E57, 40));
        let (go, wait) = mpsc::channel::<()>();
        let peer = Peer::start(move |p| {
            p.accept();
            p.send(&whole[..20]);
            wait.recv_timeout(PEER_PATIENCE)
                .expect("the test never said go");
            p.reset_on_return();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        // The half packet is read into the library's buffer while this waits.
        let (ready, el) = timed(|| conn.poll(200));
        assert_eq!(ready, 0, "half a packet is not a message");
        assert_at_deadline("half a TPKT: iso_poll(200 ms)", el, 200);
        go.send(()).unwrap();
        let what: &[&str] = &[
            "connection reset by peer (",
            "in the middle of a TPKT packet; the partial packet was discarded",
        ];
        let (rc, el) = timed(|| conn.recv(1024, LONG_MS).unwrap_err());
        conn.expect(rc, ISO_E_CLOSED, what);
        assert_prompt("RST after half a TPKT: iso_recv", el);
        assert_eq!(conn.check(), 0);
        conn.expect(conn.recv(1024, LONG_MS).unwrap_err(), ISO_E_CLOSED, what);
        conn.expect(conn.send(b"x"), ISO_E_CLOSED, what);
        peer.finish();
    });
}

#[test]
fn eof_after_a_fragment_without_eot_is_closed_and_says_so() {
    case(|| {
        let peer = Peer::start(|p| {
            p.accept();
            let mut b = msg(BEFORE);
            b.extend(dt(b"first part of a message", false));
            p.send(&b);
            p.close_now();
        });
        let conn = Conn::local(peer.port());
        conn.ok(conn.connect(LONG_MS));
        assert_eq!(conn.recv_ok(), BEFORE);
        let what: &[&str] = &[
            "connection closed by peer after a DT without EOT; the partial message was discarded",
        ];
        let (rc, el) = timed(|| conn.recv(1024, LONG_MS).unwrap_err());
        conn.expect(rc, ISO_E_CLOSED, what);
        assert_prompt("EOF after a DT without EOT: iso_recv", el);
        assert_eq!(conn.check(), 0);
        conn.expect(conn.poll(LONG_MS), ISO_E_CLOSED, what);
        peer.finish();
    });
}

#[test]
fn peer_accepting_tcp_and_closing_is_closed_with_a_tsap_hint() {
    case(|| {
        let hint = |port: u16| {
            format!("by peer during COTP connect to 127.0.0.1:{port} (after the CR): check the TSAPs (local 0x0100, remote 0x0301), rack and slot")
        };
        let tsap = |c: &Conn| c.ok(c.set_tsap(0x0100, 0x0301));

        // Accepts and closes without reading: the CR is unread, so the close is usually a reset.
        let peer = Peer::start_raw(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), drop);
        let conn = Conn::local(peer.port());
        tsap(&conn);
        let (rc, el) = timed(|| conn.connect(LONG_MS));
        conn.expect(rc, ISO_E_CLOSED, &["connection ", &hint(peer.port())]);
        assert_prompt("accept and close: iso_connect", el);
        assert_eq!(conn.check(), 0);
        conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
        peer.finish();

        // Reads the CR, then FIN.
        let peer = Peer::start(|p| p.close_now());
        let conn = Conn::local(peer.port());
        tsap(&conn);
        let (rc, el) = timed(|| conn.connect(LONG_MS));
        conn.expect(
            rc,
            ISO_E_CLOSED,
            &["connection closed ", &hint(peer.port())],
        );
        assert_prompt("FIN after the CR: iso_connect", el);
        assert_eq!(conn.check(), 0);
        peer.finish();

        // Reads the CR, then RST.
        let peer = Peer::start(|p| p.reset_on_return());
        let conn = Conn::local(peer.port());
        tsap(&conn);
        let (rc, el) = timed(|| conn.connect(LONG_MS));
        conn.expect(rc, ISO_E_CLOSED, &["connection reset ", &hint(peer.port())]);
        assert_prompt("RST after the CR: iso_connect", el);
        assert_eq!(conn.check(), 0);
        peer.finish();
    });
}

// =============================================================================================
// Awkward but legal segmentation
// =============================================================================================

#[test]
fn responses_in_one_byte_tcp_segments_arrive_intact() {
    case(|| {
        let single = pattern(0x5E61, 2048);
        let split = pattern(0x5E62, 2048);
        let mut bytes = msg(&single);
        bytes.extend(fragments(&split, 1021));
        let n = bytes.len();
        let (conn, peer) = connected(move |p| {
            p.stream.set_nodelay(true).unwrap();
            for (i, b) in bytes.iter().enumerate() {
                p.stream.write_all(std::slice::from_ref(b)).unwrap();
                if i % 8 == 7 {
                    thread::sleep(Duration::from_micros(200));
                }
            }
        });
        let (got, el) = timed(|| (conn.recv_ok(), conn.recv_ok()));
        note(&format!("{n} bytes in 1-byte segments: two iso_recv"), el);
        assert!(got.0 == single, "the 2048-byte single DT differs");
        assert!(got.1 == split, "the 2048-byte message in 3 DTs differs");
        assert!(el < Duration::from_millis(LONG_MS as u64), "{el:?}");
        assert_eq!(conn.poll(0), 0);
        assert_eq!(conn.check(), 1);
        drop(conn);
        peer.finish();
    });
}

#[test]
fn hundred_responses_in_one_write_are_delivered_in_order() {
    case(|| {
        let msgs: Vec<Vec<u8>> = (0..100u32)
            .map(|i| {
                let mut m = pattern(i, 10 + (i as usize * 53) % 480);
                m[..4].copy_from_slice(&i.to_be_bytes());
                m
            })
            .collect();
        let m2 = msgs.clone();
        let (go, wait) = mpsc::channel::<()>();
        let (conn, peer) = connected(move |p| {
            let mut b = Vec::new();
            for (i, m) in m2.iter().enumerate() {
                if i % 4 == 3 {
                    b.extend(fragments(m, 64));
                } else {
                    b.extend(msg(m));
                }
            }
            wait.recv_timeout(PEER_PATIENCE)
                .expect("the test never said go");
            p.send(&b);
            b.len()
        });
        assert_eq!(conn.poll(0), 0, "nothing was sent yet");
        go.send(()).unwrap();
        let (_, el) = timed(|| {
            for (i, m) in msgs.iter().enumerate() {
                assert_eq!(conn.poll(LONG_MS), 1, "message {i}: iso_poll");
                assert_eq!(conn.poll(0), 1, "message {i}: iso_poll consumed it");
                let got = conn.recv(512, 0).unwrap_or_else(|rc| {
                    panic!(
                        "message {i}: iso_recv(0) after poll said ready: {} {}",
                        code_name(rc),
                        conn.last_error()
                    )
                });
                assert!(got == *m, "message {i} differs or is out of order");
            }
        });
        note("100 messages in one write: poll + recv x 100", el);
        assert!(el < Duration::from_millis(LONG_MS as u64), "{el:?}");

        assert_eq!(conn.poll(0), 0, "a 101st message appeared");
        let (ready, el) = timed(|| conn.poll(150));
        assert_eq!(ready, 0);
        assert_at_deadline("after the 100th: iso_poll(150 ms)", el, 150);
        let (rc, _) = conn.recv_into(&mut [0u8; 512], 0);
        conn.expect(rc, ISO_E_WOULD_BLOCK, &["receive: would block"]);
        assert_eq!(conn.check(), 1);
        drop(conn);
        let written = peer.finish();
        assert!(written > 100 * 17, "{written}");
    });
}
