//! Property tests of the sans-IO protocol core (`isotcp::proto`):
//! - encoding then decoding is the identity (CR, CC, DR, DT, ER, with parameters; TSAPs of 1..32
//!   bytes; every TPDU size);
//! - any chunking of a byte stream gives the same messages (framer + decoder + reassembler);
//! - segmentation then reassembly gives the message back, for any size and TPDU size;
//! - no input makes the framer or the reassembler hold more than their limits allow.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

use isotcp::proto::cotp::{self, param, Tpdu};
use isotcp::proto::handshake::{
    check_answer, tpdu_code_for, ConnectAnswer, ConnectRequest, OUR_SRC_REF,
};
use isotcp::proto::responder::{encode_cc, granted_tpdu, parse_cr};
use isotcp::proto::segment::{
    dt_header, payload_per_dt, segment_count, segments, Assembled, Limits, Reassembler, DT_OVERHEAD,
};
use isotcp::proto::tpkt::{self, Framer};
use isotcp::proto::tsap::Tsap;
use isotcp::proto::ProtoError;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn tsap() -> impl Strategy<Value = Tsap> {
    vec(any::<u8>(), 1..=32).prop_map(|b| Tsap::new(&b).unwrap())
}

/// The sizes that may be configured and offered: 128 .. 8192.
fn offered_tpdu() -> impl Strategy<Value = u32> {
    (7u32..=13).prop_map(|code| 1 << code)
}

/// Any TPDU size segmentation can meet, from 4 (one payload byte per DT) past the TPKT maximum.
fn any_tpdu() -> impl Strategy<Value = u32> {
    prop_oneof![4u32..=64, offered_tpdu(), 65u32..=70_000]
}

/// Parameters whose encoding (2 + value bytes each) takes at most `room` bytes.
fn params(room: usize) -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    vec((any::<u8>(), vec(any::<u8>(), 0..=40)), 0..=8)
        .prop_filter("parameters must fit the header", move |p| {
            p.iter().map(|(_, v)| 2 + v.len()).sum::<usize>() <= room
        })
}

fn as_refs(p: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    p.iter().map(|(c, v)| (*c, v.as_slice())).collect()
}

fn param_list(params: &cotp::Params<'_>) -> Vec<(u8, Vec<u8>)> {
    params.iter().map(|(c, v)| (c, v.to_vec())).collect()
}

fn tpkt_len(pkt: &[u8]) -> usize {
    u16::from_be_bytes([pkt[2], pkt[3]]) as usize
}

/// Receives `stream` the way a connection does: bytes into the framer in the given chunking
/// (chunks of up to 64 bytes by `push`, larger ones through `spare`/`commit`), every whole
/// packet decoded, DTs into the reassembler. Checks the framer's bound after every step.
fn receive(
    stream: &[u8],
    chunks: &[usize],
    max_packet: usize,
    read_chunk: usize,
    limits: Limits,
) -> Result<Vec<Vec<u8>>, ProtoError> {
    let bound = max_packet.clamp(tpkt::MIN_PACKET, tpkt::MAX_PACKET) + read_chunk.max(64);
    let mut framer = Framer::new(max_packet, read_chunk);
    let mut reasm = Reassembler::new(limits);
    let mut messages = Vec::new();
    let mut drain = |framer: &mut Framer| -> Result<(), ProtoError> {
        while let Some(tpdu) = framer.peek_packet()? {
            match cotp::decode(tpdu)? {
                Tpdu::Dt { eot, payload } => {
                    if reasm.push(eot, payload)? == Assembled::Complete {
                        messages.push(reasm.message().unwrap().to_vec());
                        reasm.take();
                    }
                }
                other => panic!("unexpected TPDU {other:?}"),
            }
            framer.consume();
        }
        Ok(())
    };
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let size = chunks[i % chunks.len()].max(1);
        let mut chunk = &stream[pos..(pos + size).min(stream.len())];
        pos += chunk.len();
        i += 1;
        if chunk.len() <= 64 {
            framer.push(chunk);
            assert!(framer.capacity() <= bound);
            drain(&mut framer)?;
        } else {
            while !chunk.is_empty() {
                let spare = framer.spare();
                assert!(!spare.is_empty(), "no room after draining");
                let n = spare.len().min(chunk.len());
                spare[..n].copy_from_slice(&chunk[..n]);
                framer.commit(n);
                chunk = &chunk[n..];
                assert!(framer.capacity() <= bound);
                drain(&mut framer)?;
            }
        }
        assert!(framer.buffered() <= framer.capacity());
    }
    assert!(!framer.mid_packet(), "bytes left over");
    assert!(!reasm.in_progress(), "fragments left over");
    Ok(messages)
}

/// The wire bytes of a message: its DTs, headers and payloads.
fn wire_of(message: &[u8], tpdu_size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, p) in segments(message, tpdu_size) {
        out.extend_from_slice(&h);
        out.extend_from_slice(p);
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn connect_tpdus_round_trip(
        is_cr in any::<bool>(),
        dst_ref in any::<u16>(),
        src_ref in any::<u16>(),
        class_options in any::<u8>(),
        params in params(248),
    ) {
        let code = if is_cr { cotp::CR } else { cotp::CC };
        let pkt = cotp::encode_connect(code, dst_ref, src_ref, class_options, &as_refs(&params)).unwrap();
        prop_assert_eq!(&pkt[..4], &tpkt::header(pkt.len()));
        prop_assert_eq!(pkt[4] as usize, pkt.len() - 5);
        let c = match cotp::decode(&pkt[4..]) {
            Ok(Tpdu::Cr(c)) if is_cr => c,
            Ok(Tpdu::Cc(c)) if !is_cr => c,
            other => panic!("{other:?}"),
        };
        prop_assert_eq!((c.dst_ref, c.src_ref, c.class_options), (dst_ref, src_ref, class_options));
        prop_assert_eq!(param_list(&c.params), params);
    }

    #[test]
    fn dr_round_trips(
        dst_ref in any::<u16>(),
        src_ref in any::<u16>(),
        reason in any::<u8>(),
        params in params(248),
        user_data in vec(any::<u8>(), 0..=200),
    ) {
        let plain = cotp::encode_dr(dst_ref, src_ref, reason);
        prop_assert_eq!(
            cotp::decode(&plain[4..]).map(|t| matches!(t, Tpdu::Dr { dst_ref: d, src_ref: s, reason: r, user_data: &[], .. } if (d, s, r) == (dst_ref, src_ref, reason))),
            Ok(true)
        );
        // A DR with parameters (the CR/CC layout, the reason in the class byte) and user data.
        let mut pkt = cotp::encode_connect(cotp::DR, dst_ref, src_ref, reason, &as_refs(&params)).unwrap();
        pkt.extend_from_slice(&user_data);
        let len = pkt.len();
        pkt[..4].copy_from_slice(&tpkt::header(len));
        let Ok(Tpdu::Dr { dst_ref: d, src_ref: s, reason: r, params: p, user_data: u }) = cotp::decode(&pkt[4..]) else {
            panic!("not a DR")
        };
        prop_assert_eq!((d, s, r), (dst_ref, src_ref, reason));
        prop_assert_eq!(param_list(&p), params);
        prop_assert_eq!(u, user_data.as_slice());
    }

    #[test]
    fn er_round_trips(dst_ref in any::<u16>(), cause in any::<u8>(), rejected in vec(any::<u8>(), 0..=100)) {
        let pkt = cotp::encode_er(dst_ref, cause, &rejected);
        prop_assert_eq!(tpkt_len(&pkt), pkt.len());
        let Ok(Tpdu::Er { dst_ref: d, cause: c, params }) = cotp::decode(&pkt[4..]) else {
            panic!("not an ER")
        };
        prop_assert_eq!((d, c), (dst_ref, cause));
        let quoted = &rejected[..rejected.len().min(64)];
        prop_assert_eq!(param_list(&params), vec![(param::INVALID_TPDU, quoted.to_vec())]);
    }

    #[test]
    fn dt_round_trips(eot in any::<bool>(), payload in vec(any::<u8>(), 0..=3000)) {
        let mut pkt = dt_header(payload.len(), eot).to_vec();
        pkt.extend_from_slice(&payload);
        prop_assert_eq!(tpkt_len(&pkt), pkt.len());
        prop_assert_eq!(pkt.len(), payload.len() + DT_OVERHEAD);
        prop_assert_eq!(
            cotp::decode(&pkt[4..]),
            Ok(Tpdu::Dt { eot, payload: &payload })
        );
    }

    #[test]
    fn tpkt_headers_round_trip(len in 7usize..=65_535, max in 7usize..=65_535) {
        let h = tpkt::header(len);
        let want = if len <= max { Ok(len) } else { Err(ProtoError::TpktTooLong { len, max }) };
        prop_assert_eq!(tpkt::parse_header(&h, max), want);
    }

    #[test]
    fn connect_requests_round_trip(
        calling in tsap(),
        called in tsap(),
        tpdu_size in offered_tpdu(),
        extra in params(80),
        our_max in offered_tpdu(),
        our_ref in 1u16..,
    ) {
        let req = ConnectRequest { calling, called, tpdu_size, extra };
        let size = 7
            + 2 + req.calling.as_bytes().len()
            + 2 + req.called.as_bytes().len()
            + 3
            + req.extra.iter().map(|(_, v)| 2 + v.len()).sum::<usize>();
        let pkt = match req.encode() {
            Err(e) => {
                prop_assert!(size > 128);
                prop_assert_eq!(e, ProtoError::CrTooLong(size));
                return Ok(());
            }
            Ok(pkt) => pkt,
        };
        prop_assert!(size <= 128);
        prop_assert_eq!(pkt.len(), size + 4);
        let Ok(Tpdu::Cr(cr)) = cotp::decode(&pkt[4..]) else { panic!("not a CR") };
        prop_assert_eq!((cr.dst_ref, cr.src_ref, cr.class_options), (0, OUR_SRC_REF, 0));
        // C1, C2, C0 in that order, then the extra parameters.
        let mut want = vec![
            (param::CALLING_TSAP, req.calling.as_bytes().to_vec()),
            (param::CALLED_TSAP, req.called.as_bytes().to_vec()),
            (param::TPDU_SIZE, vec![tpdu_code_for(tpdu_size).unwrap()]),
        ];
        want.extend(req.extra.iter().cloned());
        prop_assert_eq!(param_list(&cr.params), want);

        // The passive side reads what was asked, and our client accepts its CC.
        let info = parse_cr(&pkt[4..]).unwrap();
        prop_assert_eq!(info.src_ref, OUR_SRC_REF);
        prop_assert_eq!(info.calling.as_ref(), Some(&req.calling));
        prop_assert_eq!(info.called.as_ref(), Some(&req.called));
        prop_assert_eq!(info.requested_tpdu, Some(tpdu_size));
        let granted = granted_tpdu(&info, our_max);
        prop_assert_eq!(granted, tpdu_size.min(our_max));
        let cc = encode_cc(&info, our_ref, granted).unwrap();
        prop_assert_eq!(tpkt_len(&cc), cc.len());
        let Ok(ConnectAnswer::Confirmed(n)) = check_answer(&req, &cc[4..]) else {
            panic!("CC refused")
        };
        prop_assert_eq!(n.tpdu_size, granted);
        prop_assert_eq!(n.peer_ref, our_ref);
        prop_assert_eq!((n.calling.as_ref(), n.called.as_ref()), (Some(&req.calling), Some(&req.called)));
        prop_assert!(n.notes.is_empty(), "{:?}", n.notes);
    }

    #[test]
    fn cc_sizes_are_capped_to_the_offer(
        offer in offered_tpdu(),
        code in 0u8..=0x12,
        src_ref in any::<u16>(),
    ) {
        let req = ConnectRequest {
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: offer,
            extra: vec![],
        };
        let cc = cotp::encode_connect(cotp::CC, OUR_SRC_REF, src_ref, 0, &[(param::TPDU_SIZE, &[code])]).unwrap();
        let got = check_answer(&req, &cc[4..]);
        if (0x07..=0x10).contains(&code) {
            let Ok(ConnectAnswer::Confirmed(n)) = got else { panic!("{got:?}") };
            prop_assert_eq!(n.tpdu_size, (1u32 << code).min(offer));
            prop_assert_eq!(n.peer_ref, src_ref);
        } else {
            prop_assert_eq!(got, Err(ProtoError::CcTpduSizeCode(code)));
        }
    }

    #[test]
    fn only_listed_tpdu_sizes_and_tsap_lengths_are_accepted(size in any::<u32>(), len in 0usize..=40) {
        let listed = [128, 256, 512, 1024, 2048, 4096, 8192].contains(&size);
        prop_assert_eq!(tpdu_code_for(size).is_some(), listed);
        let req = ConnectRequest {
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: size,
            extra: vec![],
        };
        if !listed {
            prop_assert_eq!(req.encode(), Err(ProtoError::BadTpduSize(size)));
        }
        let t = Tsap::new(&vec![0x41; len]);
        if (1..=32).contains(&len) {
            prop_assert_eq!(t.unwrap().as_bytes().len(), len);
        } else {
            prop_assert_eq!(t, Err(ProtoError::BadTsapLen(len)));
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn segmentation_then_reassembly_gives_the_message(
        message in vec(any::<u8>(), 0..=4000),
        tpdu_size in any_tpdu(),
    ) {
        let per = payload_per_dt(tpdu_size);
        prop_assert_eq!(per, (tpdu_size as usize).min(65_531) - 3);
        let segs: Vec<_> = segments(&message, tpdu_size).collect();
        let count = segment_count(message.len(), tpdu_size);
        prop_assert_eq!(segs.len(), count);
        prop_assert_eq!(count, message.len().div_ceil(per));
        for (i, (h, p)) in segs.iter().enumerate() {
            let last = i + 1 == count;
            prop_assert_eq!(tpkt_len(h), p.len() + DT_OVERHEAD);
            prop_assert_eq!(&h[4..], if last { &cotp::DT_EOT } else { &cotp::DT_MORE });
            prop_assert!(p.len() + 3 <= tpdu_size as usize);
            prop_assert!(!p.is_empty());
            if !last {
                prop_assert_eq!(p.len(), per);
            }
        }
        if message.is_empty() {
            return Ok(());
        }

        // Exact limits are enough...
        let exact = Limits { max_message: message.len(), max_fragments: count as u32 };
        let mut r = Reassembler::new(exact);
        for (i, (h, p)) in segs.iter().enumerate() {
            let want = if i + 1 == count { Assembled::Complete } else { Assembled::Pending };
            prop_assert_eq!(r.push(h[6] & 0x80 != 0, p), Ok(want));
        }
        prop_assert_eq!(r.message(), Some(message.as_slice()));

        // ... one byte or one fragment less is refused, at the last DT.
        let mut r = Reassembler::new(Limits { max_message: message.len() - 1, ..exact });
        for (h, p) in &segs[..count - 1] {
            prop_assert_eq!(r.push(h[6] & 0x80 != 0, p), Ok(Assembled::Pending));
        }
        prop_assert_eq!(
            r.push(true, segs[count - 1].1),
            Err(ProtoError::MessageTooLarge { len: message.len(), max: message.len() - 1 })
        );
        let mut r = Reassembler::new(Limits { max_fragments: count as u32 - 1, ..exact });
        for (h, p) in &segs[..count - 1] {
            prop_assert_eq!(r.push(h[6] & 0x80 != 0, p), Ok(Assembled::Pending));
        }
        prop_assert_eq!(
            r.push(true, segs[count - 1].1),
            Err(ProtoError::TooManyFragments(count as u32 - 1))
        );

        // Through the wire bytes too.
        let wire = wire_of(&message, tpdu_size);
        let got = receive(&wire, &[wire.len()], tpkt::MAX_PACKET, 4096, exact).unwrap();
        prop_assert_eq!(got, vec![message]);
    }

    #[test]
    fn any_chunking_gives_the_same_messages(
        messages in vec((vec(any::<u8>(), 1..=700), any::<bool>()), 1..=6),
        tpdu_size in prop_oneof![4u32..=300, offered_tpdu()],
        chunks in vec(1usize..=400, 1..=20),
        read_chunk in 0usize..=300,
    ) {
        // Each message as DTs, some preceded by an empty EOT DT (skipped by the receiver).
        let mut stream = Vec::new();
        for (m, funny) in &messages {
            if *funny {
                stream.extend_from_slice(&dt_header(0, true));
            }
            stream.extend(wire_of(m, tpdu_size));
        }
        let limits = Limits {
            max_message: messages.iter().map(|(m, _)| m.len()).max().unwrap(),
            max_fragments: messages
                .iter()
                .map(|(m, _)| segment_count(m.len(), tpdu_size) as u32)
                .max()
                .unwrap(),
        };
        let max_packet = payload_per_dt(tpdu_size) + DT_OVERHEAD;
        let want: Vec<Vec<u8>> = messages.into_iter().map(|(m, _)| m).collect();
        let whole = receive(&stream, &[stream.len()], max_packet, read_chunk, limits).unwrap();
        prop_assert_eq!(&whole, &want);
        let chunked = receive(&stream, &chunks, max_packet, read_chunk, limits).unwrap();
        prop_assert_eq!(&chunked, &want);
        let bytewise = receive(&stream, &[1], max_packet, read_chunk, limits).unwrap();
        prop_assert_eq!(&bytewise, &want);
    }

    #[test]
    fn the_framer_stays_within_its_bound(
        stream in prop_oneof![
            vec(any::<u8>(), 0..=3000),
            // Mostly valid headers with random lengths, so packets of every size complete.
            vec((1u16..=700, any::<u8>()), 0..=12).prop_map(|pkts| {
                let mut s = Vec::new();
                for (len, fill) in pkts {
                    let len = len.max(7);
                    s.extend_from_slice(&[3, 0, (len >> 8) as u8, len as u8]);
                    s.extend(vec![fill; len as usize - 4]);
                }
                s
            }),
        ],
        max_packet in prop_oneof![0usize..=100, 0usize..=1000, 60_000usize..=70_000],
        read_chunk in 0usize..=2000,
        chunks in vec(1usize..=3000, 1..=10),
    ) {
        let bound = max_packet.clamp(tpkt::MIN_PACKET, tpkt::MAX_PACKET) + read_chunk.max(64);
        let mut f = Framer::new(max_packet, read_chunk);
        let mut pos = 0;
        let mut i = 0;
        'feed: while pos < stream.len() {
            let mut chunk = &stream[pos..(pos + chunks[i % chunks.len()]).min(stream.len())];
            pos += chunk.len();
            i += 1;
            while !chunk.is_empty() {
                let spare = f.spare();
                prop_assert!(!spare.is_empty());
                let n = spare.len().min(chunk.len());
                spare[..n].copy_from_slice(&chunk[..n]);
                f.commit(n);
                chunk = &chunk[n..];
                prop_assert!(f.capacity() <= bound, "capacity {} > {}", f.capacity(), bound);
                prop_assert!(f.buffered() <= f.capacity());
                loop {
                    match f.peek_packet() {
                        Ok(Some(p)) => {
                            prop_assert!(p.len() + 4 <= max_packet.clamp(7, 65_535));
                            f.consume();
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                // After draining, what is left is less than one packet.
                prop_assert!(f.buffered() < max_packet.clamp(7, 65_535));
            }
        }
    }

    #[test]
    fn the_reassembler_stays_within_its_limits(
        max_message in 0usize..=1000,
        max_fragments in 0u32..=20,
        dts in vec((any::<bool>(), 0usize..=300), 0..=60),
    ) {
        let limits = Limits { max_message, max_fragments };
        let mut r = Reassembler::new(limits);
        let (mut held, mut fragments) = (0usize, 0u32);
        for (i, (eot, len)) in dts.into_iter().enumerate() {
            let payload = vec![i as u8; len];
            match r.push(eot, &payload) {
                Ok(Assembled::Complete) => {
                    prop_assert!(eot);
                    prop_assert!(held + len <= max_message && fragments < max_fragments);
                    prop_assert_eq!(r.message().map(<[u8]>::len), Some(held + len));
                    r.take();
                    (held, fragments) = (0, 0);
                }
                Ok(Assembled::Pending) => {
                    if !(eot && len == 0 && fragments == 0) {
                        held += len;
                        fragments += 1;
                    }
                    prop_assert_eq!(r.in_progress(), fragments > 0);
                }
                Ok(Assembled::Delivered(_)) => unreachable!("no destination was offered"),
                Err(e) => {
                    prop_assert!(e.is_size_limit());
                    prop_assert!(held + len > max_message || fragments == max_fragments);
                    r.clear();
                    (held, fragments) = (0, 0);
                }
            }
            prop_assert!(held <= max_message);
            prop_assert!(fragments <= max_fragments);
            // The buffer is a Vec: it grows to at most twice the limit (at least 8 bytes).
            prop_assert!(r.capacity() <= (2 * max_message).max(8));
        }
    }

    #[test]
    fn arbitrary_bytes_never_exceed_the_limits(
        stream in vec(any::<u8>(), 0..=2000),
        max_message in 0usize..=500,
        max_fragments in 0u32..=10,
        chunk in 1usize..=64,
    ) {
        // Whatever happens, nothing panics and what is held stays within the limits.
        let limits = Limits { max_message, max_fragments };
        let max_packet = max_message + DT_OVERHEAD;
        let mut f = Framer::new(max_packet, 64);
        let mut r = Reassembler::new(limits);
        'feed: for part in stream.chunks(chunk) {
            f.push(part);
            prop_assert!(f.capacity() <= max_packet.clamp(7, 65_535) + 64);
            loop {
                let tpdu = match f.peek_packet() {
                    Ok(Some(t)) => t,
                    Ok(None) => break,
                    Err(_) => break 'feed,
                };
                if let Ok(Tpdu::Dt { eot, payload }) = cotp::decode(tpdu) {
                    match r.push(eot, payload) {
                        Ok(Assembled::Complete) => {
                            prop_assert!(r.message().unwrap().len() <= max_message);
                            r.take();
                        }
                        Ok(Assembled::Pending) => {}
                        Ok(Assembled::Delivered(_)) => unreachable!("no destination was offered"),
                        Err(_) => break 'feed,
                    }
                    prop_assert!(r.capacity() <= (2 * max_message).max(8));
                }
                f.consume();
            }
        }
    }
}
