//! COTP decoder: any bytes as one TPDU (the content of one TPKT packet). A decoded TPDU must
//! describe exactly the bytes it came from and encode back to them; the passive side's CR check
//! must agree with the decoder, and the CC or DR it leads to must decode again.
//!
//! Input: the TPDU, starting with its length indicator.
#![no_main]

use isotcp::proto::cotp::{self, param, Params, Tpdu};
use isotcp::proto::handshake::{check_answer, tpdu_code_for, ConnectAnswer, ConnectRequest};
use isotcp::proto::responder::{encode_cc, granted_tpdu, parse_cr};
use isotcp::proto::segment::dt_header;
use isotcp::proto::tpkt;
use isotcp::proto::tsap::Tsap;
use libfuzzer_sys::fuzz_target;

/// Every parameter lies inside the raw bytes and they cover them exactly.
fn check_params(params: &Params<'_>, raw: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(params.raw(), raw);
    let list: Vec<(u8, Vec<u8>)> = params.iter().map(|(c, v)| (c, v.to_vec())).collect();
    let covered: usize = list.iter().map(|(_, v)| 2 + v.len()).sum();
    assert_eq!(covered, raw.len());
    for (c, _) in &list {
        let first = list.iter().find(|(k, _)| k == c).map(|(_, v)| v.as_slice());
        assert_eq!(params.get(*c), first);
    }
    list
}

/// The bytes an encoder writes for `data`: the same, with the low nibble of the code byte
/// (CDT, unused in class 0) cleared.
fn canonical(data: &[u8]) -> Vec<u8> {
    let mut c = data.to_vec();
    c[1] &= 0xF0;
    c
}

fn check_decode(data: &[u8]) {
    let tpdu = match cotp::decode(data) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let li = data[0] as usize;
    assert!((1..255).contains(&li) && li < data.len());
    let header = &data[..li + 1];
    let u16_at = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    match tpdu {
        Tpdu::Cr(c) | Tpdu::Cc(c) => {
            let code = data[1] & 0xF0;
            assert_eq!(matches!(tpdu, Tpdu::Cr(_)), code == cotp::CR);
            assert_eq!(data.len(), li + 1, "one TPDU per TPKT");
            assert_eq!(
                (c.dst_ref, c.src_ref, c.class_options),
                (u16_at(2), u16_at(4), data[6])
            );
            let list = check_params(&c.params, &header[7..]);
            let refs: Vec<(u8, &[u8])> = list.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let again = cotp::encode_connect(code, c.dst_ref, c.src_ref, c.class_options, &refs)
                .expect("a decoded header fits again");
            assert_eq!(&again[..4], &tpkt::header(again.len()));
            assert_eq!(again[4..], canonical(data)[..]);
        }
        Tpdu::Dr {
            dst_ref,
            src_ref,
            reason,
            params,
            user_data,
        } => {
            assert_eq!(data[1] & 0xF0, cotp::DR);
            assert_eq!((dst_ref, src_ref, reason), (u16_at(2), u16_at(4), data[6]));
            check_params(&params, &header[7..]);
            assert_eq!(user_data, &data[li + 1..]);
            assert!(!cotp::dr_reason_text(reason).is_empty());
            if params.raw().is_empty() && user_data.is_empty() {
                assert_eq!(
                    cotp::encode_dr(dst_ref, src_ref, reason)[4..],
                    canonical(data)[..]
                );
            }
        }
        Tpdu::Dt { eot, payload } => {
            assert_eq!((li, data[1], data[2] & 0x7F), (2, cotp::DT, 0));
            assert_eq!(eot, data[2] & 0x80 != 0);
            assert_eq!(payload, &data[3..]);
            if payload.len() + 7 <= tpkt::MAX_PACKET {
                assert_eq!(dt_header(payload.len(), eot)[4..], data[..3]);
            }
        }
        Tpdu::Er {
            dst_ref,
            cause,
            params,
        } => {
            assert_eq!(data[1] & 0xF0, cotp::ER);
            assert_eq!(data.len(), li + 1, "one TPDU per TPKT");
            assert_eq!((dst_ref, cause), (u16_at(2), data[4]));
            let list = check_params(&params, &header[5..]);
            assert!(!cotp::er_cause_text(cause).is_empty());
            if let [(param::INVALID_TPDU, quoted)] = list.as_slice() {
                if quoted.len() <= 64 {
                    assert_eq!(
                        cotp::encode_er(dst_ref, cause, quoted)[4..],
                        canonical(data)[..]
                    );
                }
            }
        }
    }
}

fn check_cr(data: &[u8]) {
    match parse_cr(data) {
        Ok(info) => {
            let Ok(Tpdu::Cr(cr)) = cotp::decode(data) else {
                panic!("parse_cr accepted what the decoder does not call a CR")
            };
            assert!(data.len() <= 128);
            assert_eq!((cr.dst_ref, cr.class_options >> 4), (0, 0));
            assert_eq!(info.src_ref, cr.src_ref);
            assert_eq!(
                info.calling.as_ref().map(Tsap::as_bytes),
                cr.params.get(param::CALLING_TSAP)
            );
            assert_eq!(
                info.called.as_ref().map(Tsap::as_bytes),
                cr.params.get(param::CALLED_TSAP)
            );
            if let Some(size) = info.requested_tpdu {
                assert!(size.is_power_of_two() && (128..=65536).contains(&size));
            }
            let granted = granted_tpdu(&info, 8192);
            assert!(tpdu_code_for(granted).is_some());
            let cc = encode_cc(&info, 0x4321, granted).expect("a granted size and a valid CR's TSAPs");
            assert_eq!(&cc[..4], &tpkt::header(cc.len()));
            let Ok(Tpdu::Cc(c)) = cotp::decode(&cc[4..]) else {
                panic!("our CC does not decode")
            };
            assert_eq!(
                (c.dst_ref, c.src_ref, c.class_options),
                (info.src_ref, 0x4321, 0)
            );

            // A client that sent this CR accepts the CC.
            let (Some(calling), Some(called), Some(requested)) =
                (&info.calling, &info.called, info.requested_tpdu)
            else {
                return;
            };
            let (Ok(calling), Ok(called)) =
                (Tsap::new(calling.as_bytes()), Tsap::new(called.as_bytes()))
            else {
                return;
            };
            if tpdu_code_for(requested).is_none() {
                return;
            }
            let req = ConnectRequest {
                calling,
                called,
                tpdu_size: requested,
                extra: vec![],
            };
            let Ok(ConnectAnswer::Confirmed(n)) = check_answer(&req, &cc[4..]) else {
                panic!("our client refuses our CC")
            };
            assert_eq!(n.tpdu_size, granted.min(requested));
            assert_eq!(n.peer_ref, 0x4321);
            assert_eq!(
                (n.calling.as_ref(), n.called.as_ref()),
                (Some(&req.calling), Some(&req.called))
            );
        }
        Err(refusal) => {
            assert!(!refusal.detail.is_empty());
            let dr = refusal.dr(0x0001);
            assert_eq!(&dr[..4], &tpkt::header(dr.len()));
            let Ok(Tpdu::Dr {
                dst_ref, reason, ..
            }) = cotp::decode(&dr[4..])
            else {
                panic!("our DR does not decode")
            };
            assert_eq!((dst_ref, reason), (refusal.peer_ref, refusal.reason));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_decode(data);
    check_cr(data);
});
