//! The byte vectors of docs/PROTOCOL.md §9 (and the set-up, TSAP and routing rules of §4, §6
//! and §7 they illustrate) against `isotcp::proto`: byte-exact encodes, decodes, and rejections
//! with their error.

mod common;

use common::packets::hex;
use isotcp::proto::cotp::{self, param, Tpdu};
use isotcp::proto::handshake::{check_answer, ConnectAnswer, ConnectRequest, Negotiated};
use isotcp::proto::responder::{encode_cc, granted_tpdu, parse_cr, reason, CrInfo};
use isotcp::proto::segment::{segments, Assembled, Limits, Reassembler};
use isotcp::proto::tpkt::{self, Framer};
use isotcp::proto::tsap::{snap7_routing_params, S7Route, Tsap};
use isotcp::proto::ProtoError;

/// Feeds `stream` into a fresh framer, one byte at a time and all at once, and returns the
/// TPDUs both ways gave (they must agree), with the error that stopped the stream if any.
fn frame(stream: &[u8]) -> (Vec<Vec<u8>>, Option<ProtoError>, Framer) {
    let run = |chunk: usize| {
        let mut f = Framer::new(tpkt::MAX_PACKET, 64);
        let mut out = Vec::new();
        for part in stream.chunks(chunk) {
            f.push(part);
            loop {
                match f.next_packet() {
                    Ok(Some(p)) => out.push(p),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e), f),
                }
            }
        }
        (out, None, f)
    };
    let (whole, whole_err, f) = run(stream.len().max(1));
    let (bytewise, bytewise_err, _) = run(1);
    assert_eq!((&whole, &whole_err), (&bytewise, &bytewise_err));
    (whole, whole_err, f)
}

fn default_req() -> ConnectRequest {
    ConnectRequest {
        calling: Tsap::from_u16(0x0100),
        called: Tsap::from_u16(0x0102),
        tpdu_size: 1024,
        extra: vec![],
    }
}

fn confirmed(req: &ConnectRequest, tpdu: &[u8]) -> Negotiated {
    match check_answer(req, tpdu) {
        Ok(ConnectAnswer::Confirmed(n)) => n,
        other => panic!("expected a confirmed CC, got {other:?}"),
    }
}

// ---- docs/PROTOCOL.md §9.1: TPKT ----

#[test]
fn tpkt_accepts_the_smallest_packet() {
    let (packets, err, f) = frame(&hex("03 00 00 07 02 F0 80"));
    assert_eq!((packets, err), (vec![hex("02 F0 80")], None));
    assert_eq!(f.buffered(), 0);
    assert!(!f.mid_packet());
    assert_eq!(tpkt::header(7), [3, 0, 0, 7]);
    assert_eq!(tpkt::parse_header(&[3, 0, 0, 7], tpkt::MAX_PACKET), Ok(7));
}

#[test]
fn tpkt_ignores_the_reserved_byte() {
    let (packets, err, _) = frame(&hex("03 FF 00 07 02 F0 80"));
    assert_eq!((packets, err), (vec![hex("02 F0 80")], None));
    assert_eq!(
        tpkt::parse_header(&[3, 0xFF, 0, 7], tpkt::MAX_PACKET),
        Ok(7)
    );
}

#[test]
fn tpkt_rejects_version_4() {
    let (packets, err, _) = frame(&hex("04 00 00 07 02 F0 80"));
    assert!(packets.is_empty());
    assert_eq!(err, Some(ProtoError::TpktVersion(4)));
    assert_eq!(
        tpkt::parse_header(&[4, 0, 0, 7], tpkt::MAX_PACKET),
        Err(ProtoError::TpktVersion(4))
    );
}

#[test]
fn tpkt_rejects_length_below_7() {
    let (packets, err, _) = frame(&hex("03 00 00 06 02 F0"));
    assert!(packets.is_empty());
    assert_eq!(err, Some(ProtoError::TpktTooShort(6)));
}

#[test]
fn tpkt_truncated_by_eof_is_mid_packet() {
    // Length 8 announced, 7 bytes then EOF: no packet, and the framer knows EOF now truncates.
    let (packets, err, f) = frame(&hex("03 00 00 08 02 F0 80"));
    assert_eq!((packets, err), (vec![], None));
    assert!(f.mid_packet());
    assert_eq!(f.buffered(), 7);
    assert_eq!(f.peek_packet(), Ok(None));
}

#[test]
fn tpkt_longer_than_the_receive_limit_is_refused_from_its_header() {
    let mut f = Framer::new(1024, 64);
    f.push(&[3, 0, 0x04, 0x01]);
    assert_eq!(
        f.peek_packet(),
        Err(ProtoError::TpktTooLong {
            len: 1025,
            max: 1024
        })
    );
    assert!(f.capacity() <= 1024 + 64);
}

// ---- docs/PROTOCOL.md §9.2: DT headers ----

#[test]
fn dt_header_with_eot() {
    assert_eq!(
        cotp::decode(&hex("02 F0 80 32 01 00")),
        Ok(Tpdu::Dt {
            eot: true,
            payload: &[0x32, 0x01, 0x00]
        })
    );
    assert_eq!(cotp::DT_EOT, [0x02, 0xF0, 0x80]);
}

#[test]
fn dt_header_more_follows() {
    assert_eq!(
        cotp::decode(&hex("02 F0 00 32 01 00")),
        Ok(Tpdu::Dt {
            eot: false,
            payload: &[0x32, 0x01, 0x00]
        })
    );
    assert_eq!(cotp::DT_MORE, [0x02, 0xF0, 0x00]);
}

#[test]
fn dt_header_rejects_li_3() {
    assert_eq!(cotp::decode(&hex("03 F0 80 32")), Err(ProtoError::DtLi(3)));
}

#[test]
fn dt_header_rejects_another_type() {
    // 0xE0 is a CR code: as a CR the 3-byte header lacks its fixed fields.
    assert_eq!(
        cotp::decode(&hex("02 E0 80 32")),
        Err(ProtoError::HeaderTooShort { tpdu: "CR", li: 2 })
    );
    // The same code byte with a low nibble set is still not a DT.
    assert_eq!(
        cotp::decode(&hex("02 F1 80 32")),
        Err(ProtoError::DtCode(0xF1))
    );
}

#[test]
fn dt_header_rejects_tpdu_nr() {
    assert_eq!(
        cotp::decode(&hex("02 F0 81 32")),
        Err(ProtoError::DtTpduNr(1))
    );
}

#[test]
fn the_passive_side_refuses_a_dt_instead_of_a_cr() {
    let r = parse_cr(&hex("02 F0 80 32 01 00")).unwrap_err();
    assert_eq!(r.reason, reason::PROTOCOL_ERROR);
}

// ---- docs/PROTOCOL.md §9.5: S7 payloads carried in DTs ----

const S7_SETUP: &str = "32 01 00 00 00 00 00 08 00 00 F0 00 00 01 00 01 01 E0";
const S7_READ: &str = "32 01 00 00 00 01 00 0E 00 00 04 01 12 0A 10 02 00 04 00 01 84 00 00 00";

fn packets_of(message: &[u8], tpdu_size: u32) -> Vec<u8> {
    segments(message, tpdu_size)
        .flat_map(|(h, p)| h.iter().chain(p.iter()).copied().collect::<Vec<_>>())
        .collect()
}

#[test]
fn s7_setup_communication_goes_out_as_one_dt() {
    let payload = hex(S7_SETUP);
    let wire = packets_of(&payload, 1024);
    assert_eq!(
        wire,
        hex("03 00 00 19 02 F0 80 32 01 00 00 00 00 00 08 00 00 F0 00 00 01 00 01 01 E0")
    );
    let (packets, err, _) = frame(&wire);
    assert_eq!(err, None);
    assert_eq!(
        cotp::decode(&packets[0]),
        Ok(Tpdu::Dt {
            eot: true,
            payload: &payload
        })
    );
}

#[test]
fn s7_read_goes_out_as_one_dt_and_reassembles_from_fragments() {
    let payload = hex(S7_READ);
    let wire = packets_of(&payload, 128);
    assert_eq!(
        wire,
        hex("03 00 00 1F 02 F0 80 32 01 00 00 00 01 00 0E 00 00 04 01 12 0A 10 02 00 04 00 01 84 00 00 00")
    );
    // With a TPDU size of 10 (7 payload bytes per DT) it takes 4 DTs, EOT on the last only.
    let wire = packets_of(&payload, 10);
    let (packets, err, _) = frame(&wire);
    assert_eq!((packets.len(), err), (4, None));
    let mut r = Reassembler::new(Limits {
        max_message: 24,
        max_fragments: 4,
    });
    for (i, p) in packets.iter().enumerate() {
        let Ok(Tpdu::Dt { eot, payload }) = cotp::decode(p) else {
            panic!("packet {i} is not a DT")
        };
        assert_eq!(eot, i == 3);
        let want = if eot {
            Assembled::Complete
        } else {
            Assembled::Pending
        };
        assert_eq!(r.push(eot, payload), Ok(want));
    }
    assert_eq!(r.message(), Some(payload.as_slice()));
}

#[test]
fn empty_eot_dt_is_skipped_and_completes_fragments() {
    let mut r = Reassembler::new(Limits {
        max_message: 100,
        max_fragments: 10,
    });
    let (packets, _, _) = frame(&hex("03 00 00 07 02 F0 80"));
    let Ok(Tpdu::Dt { eot, payload }) = cotp::decode(&packets[0]) else {
        panic!()
    };
    assert_eq!(r.push(eot, payload), Ok(Assembled::Pending));
    assert!(!r.in_progress());
    assert_eq!(r.push(false, &hex(S7_SETUP)), Ok(Assembled::Pending));
    assert_eq!(r.push(eot, payload), Ok(Assembled::Complete));
    assert_eq!(r.message(), Some(hex(S7_SETUP).as_slice()));
}

#[test]
fn reassembly_limits() {
    let read = hex(S7_READ);
    let mut r = Reassembler::new(Limits {
        max_message: 23,
        max_fragments: 10,
    });
    assert_eq!(
        r.push(true, &read),
        Err(ProtoError::MessageTooLarge { len: 24, max: 23 })
    );
    let mut r = Reassembler::new(Limits {
        max_message: 100,
        max_fragments: 2,
    });
    r.push(false, &read[..8]).unwrap();
    r.push(false, &read[8..16]).unwrap();
    assert_eq!(
        r.push(true, &read[16..]),
        Err(ProtoError::TooManyFragments(2))
    );
}

// ---- docs/PROTOCOL.md §4 and §9.3: connection set-up ----

const CR_DEFAULT: &str = "03 00 00 16 11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A";

#[test]
fn default_cr_is_byte_exact() {
    assert_eq!(default_req().encode().unwrap(), hex(CR_DEFAULT));
    let info = parse_cr(&hex(CR_DEFAULT)[4..]).unwrap();
    assert_eq!(
        info,
        CrInfo {
            src_ref: 1,
            calling: Some(Tsap::from_u16(0x0100)),
            called: Some(Tsap::from_u16(0x0102)),
            requested_tpdu: Some(1024),
        }
    );
}

#[test]
fn plc4x_cc_with_parameters_in_another_order() {
    let cc = hex("03 00 00 16 11 D0 00 0F 00 0B 00 C0 01 0A C1 02 03 11 C2 02 01 00");
    let (packets, err, _) = frame(&cc);
    assert_eq!(err, None);
    let Ok(Tpdu::Cc(c)) = cotp::decode(&packets[0]) else {
        panic!()
    };
    assert_eq!((c.dst_ref, c.src_ref, c.class_options), (0x000F, 0x000B, 0));
    assert_eq!(c.params.get(param::TPDU_SIZE), Some(&[0x0A][..]));
    assert_eq!(c.params.get(param::CALLING_TSAP), Some(&[0x03, 0x11][..]));
    assert_eq!(c.params.get(param::CALLED_TSAP), Some(&[0x01, 0x00][..]));
    // Accepted, with the differing references and TSAPs noted.
    let n = confirmed(&default_req(), &packets[0]);
    assert_eq!((n.tpdu_size, n.peer_ref), (1024, 0x000B));
    assert_eq!(n.calling, Some(Tsap::from_u16(0x0311)));
    assert_eq!(n.called, Some(Tsap::from_u16(0x0100)));
    assert_eq!(n.notes.len(), 3, "{:?}", n.notes);
}

#[test]
fn python_snap7_cc_is_accepted_and_is_what_our_listener_sends() {
    let cc = hex("03 00 00 16 11 D0 00 01 00 01 00 C0 01 0A C1 02 01 00 C2 02 01 02");
    let n = confirmed(&default_req(), &cc[4..]);
    assert_eq!((n.tpdu_size, n.peer_ref), (1024, 1));
    assert!(n.notes.is_empty(), "{:?}", n.notes);
    let info = parse_cr(&hex(CR_DEFAULT)[4..]).unwrap();
    assert_eq!(
        encode_cc(&info, 0x0001, granted_tpdu(&info, 8192)).unwrap(),
        cc
    );
}

#[test]
fn snap7_server_echo_cc_is_accepted() {
    // snap7 1.4.2 echoes the CR with code 0xD0, DST-REF = our SRC-REF, SRC-REF written `00 01`.
    let cc = hex("11 D0 00 01 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A");
    let n = confirmed(&default_req(), &cc);
    assert_eq!((n.tpdu_size, n.peer_ref), (1024, 0x0001));
    assert!(n.notes.is_empty(), "{:?}", n.notes);
}

#[test]
fn tpdu_size_negotiation_rules() {
    let req = default_req();
    // Larger than offered: capped, and noted.
    let n = confirmed(&req, &hex("09 D0 00 01 00 01 00 C0 01 0D"));
    assert_eq!(n.tpdu_size, 1024);
    assert_eq!(n.notes.iter().filter(|s| s.contains("capped")).count(), 1);
    // Smaller: used.
    assert_eq!(
        confirmed(&req, &hex("09 D0 00 01 00 01 00 C0 01 07")).tpdu_size,
        128
    );
    // RFC 1006 codes up to 0x10 are accepted (and capped).
    assert_eq!(
        confirmed(&req, &hex("09 D0 00 01 00 01 00 C0 01 10")).tpdu_size,
        1024
    );
    // No C0: 128.
    assert_eq!(confirmed(&req, &hex("06 D0 00 01 00 01 00")).tpdu_size, 128);
    // F0 alone: units of 128, capped to the offer.
    assert_eq!(
        confirmed(&req, &hex("0A D0 00 01 00 01 00 F0 02 00 04")).tpdu_size,
        512
    );
    assert_eq!(
        confirmed(&req, &hex("09 D0 00 01 00 01 00 F0 01 FF")).tpdu_size,
        1024
    );
    // Errors.
    assert_eq!(
        check_answer(&req, &hex("09 D0 00 01 00 01 00 C0 01 06")),
        Err(ProtoError::CcTpduSizeCode(0x06))
    );
    assert_eq!(
        check_answer(&req, &hex("09 D0 00 01 00 01 00 C0 01 11")),
        Err(ProtoError::CcTpduSizeCode(0x11))
    );
    assert_eq!(
        check_answer(&req, &hex("0A D0 00 01 00 01 00 C0 02 00 0A")),
        Err(ProtoError::CcTpduSizeLen(2))
    );
    assert_eq!(
        check_answer(&req, &hex("0C D0 00 01 00 01 00 C0 01 0A F0 01 08")),
        Err(ProtoError::CcBothSizes)
    );
    assert_eq!(
        check_answer(&req, &hex("09 D0 00 01 00 01 00 F0 01 00")),
        Err(ProtoError::CcPreferredSizeZero)
    );
}

#[test]
fn cc_validation_rules() {
    let req = default_req();
    // Class 1.
    assert_eq!(
        check_answer(&req, &hex("06 D0 00 01 00 01 10")),
        Err(ProtoError::CcClass(1))
    );
    // LI inconsistent with the packet.
    assert_eq!(
        check_answer(&req, &hex("12 D0 00 01 00 01 00 C0 01 0A")),
        Err(ProtoError::BadLi { li: 0x12, room: 9 })
    );
    // A parameter past the header.
    assert_eq!(
        check_answer(&req, &hex("09 D0 00 01 00 01 00 C1 02 01")),
        Err(ProtoError::ParamPastHeader {
            code: 0xC1,
            len: 2,
            room: 1
        })
    );
    // Bytes after the CC in the same TPKT.
    assert_eq!(
        check_answer(&req, &hex("06 D0 00 01 00 01 00 02 F0 80")),
        Err(ProtoError::TrailingBytes { tpdu: "CC", len: 3 })
    );
    // Not a CC.
    assert_eq!(
        check_answer(&req, &hex("02 F0 80")),
        Err(ProtoError::NotACc("DT"))
    );
    assert_eq!(
        check_answer(&req, &hex(CR_DEFAULT)[4..]),
        Err(ProtoError::NotACc("CR"))
    );
    // Unknown parameters are skipped; missing TSAPs noted.
    let n = confirmed(&req, &hex("0C D0 00 01 00 01 00 C0 01 0A C8 01 FF"));
    assert_eq!(n.tpdu_size, 1024);
    assert_eq!((n.calling, n.called), (None, None));
    assert_eq!(n.notes.len(), 2, "{:?}", n.notes);
}

#[test]
fn refusals_with_dr_and_er() {
    let req = default_req();
    assert_eq!(
        check_answer(&req, &hex("06 80 00 01 00 00 81")),
        Ok(ConnectAnswer::Refused { reason: 0x81 })
    );
    assert_eq!(
        cotp::dr_reason_text(0x81),
        "remote transport entity congestion at connect request time"
    );
    assert_eq!(
        check_answer(&req, &hex("04 70 00 01 03")),
        Ok(ConnectAnswer::Rejected { cause: 3 })
    );
    assert_eq!(cotp::er_cause_text(3), "invalid parameter value");
    assert_eq!(
        cotp::encode_dr(0x0001, 0x0001, 0x84),
        hex("03 00 00 0B 06 80 00 01 00 01 84")
    );
    assert_eq!(
        cotp::encode_er(0x0001, 2, &[0x02, 0xF0]),
        hex("03 00 00 0D 08 70 00 01 02 C1 02 02 F0")
    );
}

// ---- docs/PROTOCOL.md §6 and §9.4: TSAPs ----

#[test]
fn string_tsap_cr_is_byte_exact() {
    let req = ConnectRequest {
        calling: Tsap::from_u16(0x0600),
        called: Tsap::new(b"SIMATIC-ROOT-HMI").unwrap(),
        ..default_req()
    };
    let wire = hex(
        "03 00 00 24 1F E0 00 00 00 01 00 C1 02 06 00 C2 10 53 49 4D 41 54 49 43 2D 52 4F 4F 54 2D 48 4D 49 C0 01 0A",
    );
    assert_eq!(req.encode().unwrap(), wire);
    let info = parse_cr(&wire[4..]).unwrap();
    assert_eq!(info.called, Some(Tsap::new(b"SIMATIC-ROOT-HMI").unwrap()));
    assert_eq!(info.called.unwrap().to_string(), "\"SIMATIC-ROOT-HMI\"");
}

#[test]
fn s7_tsaps_use_rack_shifted_by_5() {
    assert_eq!(Tsap::s7(1, 0, 2).unwrap(), Tsap::from_u16(0x0102));
    assert_eq!(Tsap::s7(3, 1, 3).unwrap(), Tsap::from_u16(0x0323));
    assert_eq!(
        Tsap::s7(1, 8, 0),
        Err(ProtoError::BadRackSlot { rack: 8, slot: 0 })
    );
    assert_eq!(Tsap::new(&[]), Err(ProtoError::BadTsapLen(0)));
    assert_eq!(Tsap::new(&[0; 33]), Err(ProtoError::BadTsapLen(33)));
}

// ---- docs/PROTOCOL.md §7 and §9.4: routing ----

#[test]
fn python_snap7_routing_cr_is_byte_exact() {
    let req = ConnectRequest {
        extra: snap7_routing_params(1, 0, 3).unwrap(),
        ..default_req()
    };
    let wire = hex(
        "03 00 00 1E 19 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A C6 02 00 01 C7 02 01 03",
    );
    assert_eq!(req.encode().unwrap(), wire);
    assert!(parse_cr(&wire[4..]).is_ok());
}

#[test]
fn s7_routing_cr_is_the_74_byte_vector() {
    let (calling, called) = S7Route {
        subnet_high: 0x0152,
        subnet_low: 0x0013,
        dest_addr: vec![2],
        conn_type: 1,
        dest_rack: 0,
        dest_slot: 2,
    }
    .tsaps()
    .unwrap();
    let req = ConnectRequest {
        calling,
        called,
        ..default_req()
    };
    let wire = hex("03 00 00 4A 45 E0 00 00 00 01 00
         C1 1C 01 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00
         C2 1C 01 06 01 02 01 52 00 00 00 13 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 02
         C0 01 0A");
    assert_eq!(wire.len(), 74);
    assert_eq!(req.encode().unwrap(), wire);
    let info = parse_cr(&wire[4..]).unwrap();
    assert_eq!(info.calling.as_ref().map(|t| t.as_bytes().len()), Some(28));
    assert_eq!(info.requested_tpdu, Some(1024));
}

#[test]
fn a_cr_is_at_most_128_bytes() {
    // The default CR's TPDU is 18 bytes; a parameter of 2 + 108 bytes makes exactly 128.
    let req = ConnectRequest {
        extra: vec![(0xC6, vec![0; 108])],
        ..default_req()
    };
    let wire = req.encode().unwrap();
    assert_eq!(wire.len() - 4, 128);
    assert!(parse_cr(&wire[4..]).is_ok());
    let req = ConnectRequest {
        extra: vec![(0xC6, vec![0; 109])],
        ..default_req()
    };
    assert_eq!(req.encode(), Err(ProtoError::CrTooLong(129)));
}
