//! No panic is reachable from the public Rust API: every setting and every function of
//! `isotcp::proto` and `isotcp::net` gets arbitrary arguments here, and each call must return
//! (an error is fine; a panic fails the test). Where a call succeeds, what it built must also
//! be usable: a `Config` that every setter accepted always encodes its CR.

use std::io::IoSlice;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use isotcp::net::{Config, Connection, Keepalive, Listener, ListenerConfig, TransferSettings};
use isotcp::proto::cotp;
use isotcp::proto::handshake::{check_answer, tpdu_size_of_code, ConnectRequest};
use isotcp::proto::responder::{encode_cc, granted_tpdu, parse_cr, CrInfo, Refusal};
use isotcp::proto::segment::{self, Destination, Limits, Reassembler, DT_OVERHEAD};
use isotcp::proto::tpkt::{self, Framer};
use isotcp::proto::transfer::Receiver;
use isotcp::proto::tsap::{rack_slot, snap7_routing_params, S7Route, Tsap};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn tsap() -> impl Strategy<Value = Tsap> {
    bytes(300).prop_map(|b| Tsap::from_wire(&b))
}

fn route() -> impl Strategy<Value = S7Route> {
    (
        any::<u16>(),
        any::<u16>(),
        bytes(24),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(
            |(subnet_high, subnet_low, dest_addr, conn_type, dest_rack, dest_slot)| S7Route {
                subnet_high,
                subnet_low,
                dest_addr,
                conn_type,
                dest_rack,
                dest_slot,
            },
        )
}

/// One call of a setter of [`Config`] or of its [`TransferSettings`], with any argument.
#[derive(Clone, Debug)]
enum ConfigCall {
    Tsaps(Tsap, Tsap),
    TpduSize(u32),
    Snap7Routing(u16, u8, u8),
    S7Routing(S7Route),
    Extra(Vec<(u8, Vec<u8>)>),
    MaxMessage(usize),
    MaxFragments(u32),
    MaxQueued(usize),
    SendTimeout(u64),
    Keepalive(u32, u32, u32),
}

fn config_call() -> impl Strategy<Value = ConfigCall> {
    prop_oneof![
        (tsap(), tsap()).prop_map(|(a, b)| ConfigCall::Tsaps(a, b)),
        any::<u32>().prop_map(ConfigCall::TpduSize),
        (any::<u16>(), any::<u8>(), any::<u8>())
            .prop_map(|(s, r, l)| ConfigCall::Snap7Routing(s, r, l)),
        route().prop_map(ConfigCall::S7Routing),
        vec((any::<u8>(), bytes(300)), 0..4).prop_map(ConfigCall::Extra),
        any::<usize>().prop_map(ConfigCall::MaxMessage),
        any::<u32>().prop_map(ConfigCall::MaxFragments),
        any::<usize>().prop_map(ConfigCall::MaxQueued),
        any::<u64>().prop_map(ConfigCall::SendTimeout),
        (any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(i, n, c)| ConfigCall::Keepalive(i, n, c)),
    ]
}

fn apply_transfer(t: &mut TransferSettings, call: &ConfigCall) {
    match *call {
        ConfigCall::MaxMessage(n) => {
            let _ = t.set_max_message(n);
        }
        ConfigCall::MaxFragments(n) => {
            let _ = t.set_max_fragments(n);
        }
        ConfigCall::MaxQueued(n) => {
            let _ = t.set_max_queued(n);
        }
        ConfigCall::SendTimeout(ms) => t.set_send_timeout(Duration::from_millis(ms)),
        ConfigCall::Keepalive(i, n, c) => {
            if let Ok(k) = Keepalive::new(i, n, c) {
                t.set_keepalive(k);
            }
        }
        _ => {}
    }
}

fn apply(c: &mut Config, call: &ConfigCall) {
    match call {
        ConfigCall::Tsaps(a, b) => {
            let _ = c.set_tsaps(a.clone(), b.clone());
        }
        ConfigCall::TpduSize(n) => {
            let _ = c.set_tpdu_size(*n);
        }
        ConfigCall::Snap7Routing(s, r, l) => {
            let _ = c.set_snap7_routing(*s, *r, *l);
        }
        ConfigCall::S7Routing(route) => {
            let _ = c.set_s7_routing(route);
        }
        ConfigCall::Extra(p) => {
            let _ = c.set_extra_params(p.clone());
        }
        other => apply_transfer(c.transfer_mut(), other),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any sequence of setters leaves a configuration whose CR encodes and whose limits are
    /// within their documented ranges.
    #[test]
    fn any_config_that_setters_accept_is_usable(
        host in "[a-z0-9.:\\[\\]-]{0,20}",
        port in any::<u16>(),
        calls in vec(config_call(), 0..12),
    ) {
        let Ok(mut c) = Config::new(&host, port) else { return Ok(()) };
        for call in &calls {
            apply(&mut c, call);
        }
        let cr = c.connect_request().encode();
        prop_assert!(cr.is_ok(), "{:?} gave {:?}", calls, cr);
        let cr = cr.unwrap();
        prop_assert!(cr.len() - tpkt::HEADER_LEN <= 128);
        let t = c.transfer();
        prop_assert!((128..=16 << 20).contains(&t.max_message()));
        prop_assert!((1..=1 << 20).contains(&t.max_fragments()));
        prop_assert!(t.max_queued() <= 256 << 20);
        // A connection made from it can be asked anything before it connects.
        let conn = Connection::new(c);
        prop_assert!(conn.send(b"x").is_err());
        prop_assert!(conn.recv(&mut [0; 8], Duration::ZERO).is_err());
        prop_assert!(conn.poll(Duration::ZERO).is_err());
        prop_assert!(conn.flush(Duration::ZERO).is_err());
        prop_assert!(!conn.is_alive());
        prop_assert!(conn.socket().is_err());
        conn.disconnect();
    }

    #[test]
    fn listener_settings_take_any_value(
        tpdu in any::<u32>(),
        cr_ms in any::<u64>(),
        pending in any::<usize>(),
        allowed in vec(tsap(), 0..4),
        transfer in vec(config_call(), 0..6),
    ) {
        let mut l = ListenerConfig::default();
        let _ = l.set_max_tpdu(tpdu);
        let _ = l.set_cr_timeout(Duration::from_millis(cr_ms));
        let _ = l.set_max_pending(pending);
        for t in allowed {
            let _ = l.allow_called(t);
        }
        for call in &transfer {
            apply_transfer(l.transfer_mut(), call);
        }
        prop_assert!(l.max_pending() >= 1);
        prop_assert!(l.cr_timeout() >= Duration::from_millis(1));
        prop_assert!(handshake_size_ok(l.max_tpdu()));
    }

    #[test]
    fn cotp_and_handshake_functions_take_any_input(
        tpdu in bytes(300),
        code in any::<u8>(),
        refs in any::<(u16, u16, u8)>(),
        params in vec((any::<u8>(), bytes(300)), 0..4),
        calling in tsap(),
        called in tsap(),
        tpdu_size in any::<u32>(),
        our_max in any::<u32>(),
    ) {
        let _ = cotp::decode(&tpdu);
        let p: Vec<(u8, &[u8])> = params.iter().map(|(c, v)| (*c, v.as_slice())).collect();
        let _ = cotp::encode_connect(code, refs.0, refs.1, refs.2, &p);
        let _ = cotp::encode_dr(refs.0, refs.1, code);
        let _ = cotp::encode_er(refs.0, code, &tpdu);
        let req = ConnectRequest { calling, called, tpdu_size, extra: params.clone() };
        let _ = req.encode();
        let _ = check_answer(&req, &tpdu);
        let _ = tpdu_size_of_code(code);
        let info = parse_cr(&tpdu);
        if let Ok(info) = &info {
            let granted = granted_tpdu(info, our_max);
            prop_assert!(encode_cc(info, refs.0, granted).is_ok());
        }
        let made = CrInfo {
            src_ref: refs.0,
            calling: Some(req.calling.clone()),
            called: Some(req.called.clone()),
            requested_tpdu: Some(tpdu_size),
        };
        let granted = granted_tpdu(&made, our_max);
        prop_assert!(granted.is_power_of_two() && (128..=65536).contains(&granted));
        let _ = encode_cc(&made, refs.1, tpdu_size);
        let _ = encode_cc(&made, refs.1, granted);
        let _ = Refusal::new(code, refs.0, "x").dr(refs.1);
        let _ = cotp::dr_reason_text(code);
        let _ = cotp::er_cause_text(code);
    }

    #[test]
    fn tsap_functions_take_any_input(
        b in bytes(300),
        v in any::<u16>(),
        (t, r, s) in any::<(u8, u8, u8)>(),
        route in route(),
    ) {
        let _ = Tsap::new(&b);
        let w = Tsap::from_wire(&b);
        let _ = (w.to_string(), format!("{w:?}"), Tsap::from_u16(v).to_string());
        let _ = Tsap::s7(t, r, s);
        let _ = rack_slot(r, s);
        let _ = snap7_routing_params(v, r, s);
        let _ = route.tsaps();
    }

    #[test]
    fn segment_functions_take_any_input(
        message in bytes(3000),
        tpdu_size in any::<u32>(),
        first in any::<usize>(),
        skip in any::<usize>(),
        headers_n in 0usize..8,
        slices_n in 0usize..20,
        len in any::<usize>(),
        eot in any::<bool>(),
    ) {
        let _ = segment::payload_per_dt(tpdu_size);
        let _ = segment::dt_header(len, eot);
        let _ = segment::segments(&message, tpdu_size).count();
        let _ = segment::segment_count(len, tpdu_size);
        let _ = segment::encoded_len(len.min(usize::MAX / 2), tpdu_size);
        let mut headers = vec![[0u8; DT_OVERHEAD]; headers_n];
        let mut slices = vec![IoSlice::new(&[]); slices_n];
        let n = segment::frame_dts(&message, tpdu_size, first, &mut headers, &mut slices);
        prop_assert!(n <= slices_n);
        let mut out = Vec::new();
        segment::encode_dts_tail(&message, tpdu_size, skip, &mut out);
    }

    /// Reassembly, framing and the transfer core fed any bytes and any limits, in any order of
    /// calls, with destinations of any size.
    #[test]
    fn receivers_take_any_bytes_and_calls(
        max_message in any::<usize>(),
        max_fragments in any::<u32>(),
        input in bytes(2000),
        chunks in vec((any::<u16>(), any::<u8>()), 1..16),
        dt in vec((any::<bool>(), bytes(200), any::<bool>(), 0usize..300), 0..12),
    ) {
        let limits = Limits { max_message, max_fragments };
        let _ = limits.max_packet();
        let _ = limits.check(max_message, max_fragments);

        let mut r = Reassembler::new(limits);
        let mut dest_buf = vec![0u8; 300];
        for (eot, payload, use_dest, cap) in &dt {
            let cap = (*cap).min(dest_buf.len());
            let mut dest = Destination::new(&mut dest_buf[..cap]);
            let got = if *use_dest {
                r.push_into(*eot, payload, Some(&mut dest))
            } else {
                r.push(*eot, payload)
            };
            r.adopt(&mut dest);
            if got.is_err() || r.message().is_some() {
                r.take();
            }
        }

        let mut f = Framer::new(max_message, max_fragments as usize);
        let mut rx = Receiver::new(limits);
        let mut at = 0;
        for (n, what) in chunks {
            let n = (n as usize).min(input.len() - at);
            let bytes = &input[at..at + n];
            at += n;
            let _ = f.push(bytes);
            let spare = f.spare().len();
            f.commit(what as usize % (spare + 2));
            let _ = f.peek_packet();
            let _ = f.peek_raw();
            f.consume();
            let _ = f.next_packet();

            let _ = rx.push(bytes);
            let spare = rx.spare().len();
            rx.commit(what as usize % (spare + 2));
            let mut buf = vec![0u8; what as usize];
            let mut dest = Destination::new(&mut buf);
            let _ = rx.advance(if what % 2 == 0 { Some(&mut dest) } else { None }, None);
            let _ = rx.cut_off(Some(&dest));
            rx.release(&mut dest);
            let _ = rx.take_message(&mut [0u8; 64], None);
        }
    }
}

fn handshake_size_ok(size: u32) -> bool {
    size.is_power_of_two() && (128..=8192).contains(&size)
}

/// Binding takes any host string and port without panicking (most fail to resolve or bind).
#[test]
fn listener_bind_takes_odd_hosts() {
    for host in [
        "",
        "::",
        "0.0.0.0",
        "[::1]",
        "256.1.1.1",
        "-bad-",
        "a..b",
        "localhost",
    ] {
        if let Ok(l) = Listener::bind(Some(host), 0) {
            assert!(l.accept(Duration::ZERO).is_err());
            l.shutdown();
            assert!(l.accept(Duration::from_millis(10)).is_err());
        }
    }
}

/// Connections and listeners may be shared between threads (README "From Rust").
#[test]
fn connections_and_listeners_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Connection>();
    shareable::<Listener>();
    shareable::<isotcp::Error>();
}
