//! CC validation: any bytes as the answer to a CR, checked against three fixed requests (the
//! default 0x0100 -> 0x0102 at 1024, a 128-byte offer, and an S7CommPlus-style string TSAP at
//! 8192). The outcome must follow docs/PROTOCOL.md §4.2 and §4.3, computed here independently:
//! DR -> refused, ER -> rejected, DT/CR -> not a CC, class != 0 -> error, C0 and F0 together ->
//! error, C0 of length 1 with a code in 0x07..0x10 -> min(2^code, offer), F0 of 1..4 bytes and
//! non-zero -> min(value * 128, offer), neither -> min(128, offer).
//!
//! Input: the TPDU, starting with its length indicator.
#![no_main]

use isotcp::proto::cotp::{self, param, Tpdu};
use isotcp::proto::handshake::{check_answer, ConnectAnswer, ConnectRequest, OUR_SRC_REF};
use isotcp::proto::tsap::Tsap;
use isotcp::proto::ProtoError;
use libfuzzer_sys::fuzz_target;

fn requests() -> [ConnectRequest; 3] {
    [
        ConnectRequest {
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: 1024,
            extra: vec![],
        },
        ConnectRequest {
            calling: Tsap::new(&[0x10]).unwrap(),
            called: Tsap::from_u16(0x0201),
            tpdu_size: 128,
            extra: vec![],
        },
        ConnectRequest {
            calling: Tsap::from_u16(0x0600),
            called: Tsap::new(b"SIMATIC-ROOT-HMI").unwrap(),
            tpdu_size: 8192,
            extra: vec![(0xC6, vec![0, 1])],
        },
    ]
}

/// The TPDU size a CC with these parameters gives, by the rules of docs/PROTOCOL.md §4.3.
fn expected_size(
    req: &ConnectRequest,
    c0: Option<&[u8]>,
    f0: Option<&[u8]>,
) -> Result<u32, ProtoError> {
    let offer = req.tpdu_size as u64;
    match (c0, f0) {
        (Some(_), Some(_)) => Err(ProtoError::CcBothSizes),
        (Some(v), None) => match v {
            [code @ 0x07..=0x10] => Ok((1u64 << code).min(offer) as u32),
            [code] => Err(ProtoError::CcTpduSizeCode(*code)),
            _ => Err(ProtoError::CcTpduSizeLen(v.len())),
        },
        (None, Some(v)) => {
            if v.is_empty() || v.len() > 4 {
                return Err(ProtoError::CcTpduSizeLen(v.len()));
            }
            let mut units = 0u64;
            for &b in v {
                units = units * 256 + b as u64;
            }
            if units == 0 {
                Err(ProtoError::CcPreferredSizeZero)
            } else {
                Ok((units * 128).min(offer) as u32)
            }
        }
        (None, None) => Ok(128u64.min(offer) as u32),
    }
}

fn check(req: &ConnectRequest, data: &[u8]) {
    let got = check_answer(req, data);
    if let Err(e) = &got {
        assert!(!e.to_string().is_empty());
    }
    let cc = match cotp::decode(data) {
        Err(e) => {
            assert_eq!(got, Err(e));
            return;
        }
        Ok(Tpdu::Dr { reason, .. }) => {
            assert_eq!(got, Ok(ConnectAnswer::Refused { reason }));
            return;
        }
        Ok(Tpdu::Er { cause, .. }) => {
            assert_eq!(got, Ok(ConnectAnswer::Rejected { cause }));
            return;
        }
        Ok(Tpdu::Dt { .. }) => {
            assert_eq!(got, Err(ProtoError::NotACc("DT")));
            return;
        }
        Ok(Tpdu::Cr(_)) => {
            assert_eq!(got, Err(ProtoError::NotACc("CR")));
            return;
        }
        Ok(Tpdu::Cc(cc)) => cc,
    };
    if cc.class_options >> 4 != 0 {
        assert_eq!(got, Err(ProtoError::CcClass(cc.class_options >> 4)));
        return;
    }
    let c0 = cc.params.get(param::TPDU_SIZE);
    let f0 = cc.params.get(param::PREFERRED_MAX_TPDU);
    match (expected_size(req, c0, f0), got) {
        (Ok(size), Ok(ConnectAnswer::Confirmed(n))) => {
            assert_eq!(n.tpdu_size, size);
            assert!((128..=req.tpdu_size).contains(&n.tpdu_size));
            assert_eq!(n.peer_ref, cc.src_ref);
            let calling = cc.params.get(param::CALLING_TSAP);
            let called = cc.params.get(param::CALLED_TSAP);
            assert_eq!(n.calling.as_ref().map(Tsap::as_bytes), calling);
            assert_eq!(n.called.as_ref().map(Tsap::as_bytes), called);
            // Everything tolerated but different is noted; an exact echo with a size within
            // the offer gives no note.
            let exact = cc.dst_ref == OUR_SRC_REF
                && calling == Some(req.calling.as_bytes())
                && called == Some(req.called.as_bytes())
                && matches!(c0, Some([code]) if (1u64 << code) <= req.tpdu_size as u64)
                && f0.is_none();
            if exact {
                assert!(n.notes.is_empty(), "{:?}", n.notes);
            }
            if cc.dst_ref != OUR_SRC_REF || calling.is_none() || called.is_none() {
                assert!(!n.notes.is_empty());
            }
            assert!(n.notes.iter().all(|s| !s.is_empty()));
        }
        (Err(e), got) => assert_eq!(got, Err(e)),
        (Ok(size), got) => panic!("expected TPDU size {size}, got {got:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    for req in &requests() {
        check(req, data);
    }
});
