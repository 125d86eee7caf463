//! Connection set-up: the CR we send, the CC we accept, and the TPDU size both sides use.
//!
//! Rules (docs/PROTOCOL.md §4): parameters go out in the order C1, C2, C0 (LOGO! 0BA7 needs it),
//! then any routing parameters. The CC's C0 (or F0) sets the size for both directions, capped to
//! what we offered; a CC without either means 128.

use super::cotp::{self, param, Tpdu};
use super::tsap::Tsap;
use super::ProtoError;

/// Our SRC-REF in every CR (python-snap7 and the test vectors use 1).
pub const OUR_SRC_REF: u16 = 0x0001;
/// X.224: a CR TPDU is at most 128 bytes.
pub const MAX_CR_TPDU: usize = 128;
/// TPDU size when the CC names none (X.224 default).
pub const DEFAULT_TPDU_WITHOUT_C0: u32 = 128;

/// TPDU sizes that may be configured and offered: 128, 256, ..., 8192.
pub fn tpdu_code_for(size: u32) -> Option<u8> {
    if size.is_power_of_two() && (128..=8192).contains(&size) {
        Some(size.trailing_zeros() as u8)
    } else {
        None
    }
}

/// The size a C0 code means; RFC 1006 stacks also use 0x0E..0x10 (16384..65536).
pub fn tpdu_size_of_code(code: u8) -> Option<u32> {
    (0x07..=0x10).contains(&code).then(|| 1u32 << code)
}

/// What goes into a CR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub calling: Tsap,
    pub called: Tsap,
    pub tpdu_size: u32,
    /// Parameters appended after C0 (python-snap7 routing: C6 and C7).
    pub extra: Vec<(u8, Vec<u8>)>,
}

impl ConnectRequest {
    /// The CR packet, TPKT header included.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let code = tpdu_code_for(self.tpdu_size).ok_or(ProtoError::BadTpduSize(self.tpdu_size))?;
        let code = [code];
        let mut params: Vec<(u8, &[u8])> = vec![
            (param::CALLING_TSAP, self.calling.as_bytes()),
            (param::CALLED_TSAP, self.called.as_bytes()),
            (param::TPDU_SIZE, &code),
        ];
        params.extend(self.extra.iter().map(|(c, v)| (*c, v.as_slice())));
        let pkt = cotp::encode_connect(cotp::CR, 0, OUR_SRC_REF, 0, &params);
        if pkt.len() - 4 > MAX_CR_TPDU {
            return Err(ProtoError::CrTooLong(pkt.len() - 4));
        }
        Ok(pkt)
    }
}

/// What the CC settled, and what in it differed from what we asked (for diagnostics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The TPDU size both directions use.
    pub tpdu_size: u32,
    /// The peer's SRC-REF.
    pub peer_ref: u16,
    /// The TSAPs the CC echoed, if it did.
    pub calling: Option<Tsap>,
    pub called: Option<Tsap>,
    /// Things that are tolerated but worth knowing ("CC offered 2048, capped to our 1024").
    pub notes: Vec<String>,
}

/// Outcome of the first TPDU the peer sends after our CR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectAnswer {
    Confirmed(Negotiated),
    /// DR: refused with a reason.
    Refused {
        reason: u8,
    },
    /// ER: our CR was rejected with a cause.
    Rejected {
        cause: u8,
    },
}

/// Validates the answer to `req` (one TPDU, without the TPKT header).
pub fn check_answer(req: &ConnectRequest, tpdu: &[u8]) -> Result<ConnectAnswer, ProtoError> {
    let cc = match cotp::decode(tpdu)? {
        Tpdu::Cc(cc) => cc,
        Tpdu::Dr { reason, .. } => return Ok(ConnectAnswer::Refused { reason }),
        Tpdu::Er { cause, .. } => return Ok(ConnectAnswer::Rejected { cause }),
        Tpdu::Dt { .. } => return Err(ProtoError::NotACc("DT")),
        Tpdu::Cr(_) => return Err(ProtoError::NotACc("CR")),
    };
    if cc.class_options >> 4 != 0 {
        return Err(ProtoError::CcClass(cc.class_options >> 4));
    }
    let mut notes = Vec::new();
    if cc.dst_ref != OUR_SRC_REF {
        notes.push(format!(
            "CC DST-REF is 0x{:04X}, our SRC-REF was 0x{OUR_SRC_REF:04X}",
            cc.dst_ref
        ));
    }
    let c0 = cc.params.get(param::TPDU_SIZE);
    let f0 = cc.params.get(param::PREFERRED_MAX_TPDU);
    let tpdu_size = match (c0, f0) {
        (Some(_), Some(_)) => return Err(ProtoError::CcBothSizes),
        (Some(v), None) => {
            if v.len() != 1 {
                return Err(ProtoError::CcTpduSizeLen(v.len()));
            }
            let size = tpdu_size_of_code(v[0]).ok_or(ProtoError::CcTpduSizeCode(v[0]))?;
            if size > req.tpdu_size {
                notes.push(format!(
                    "CC granted TPDU {size}, capped to the {} offered",
                    req.tpdu_size
                ));
            }
            size.min(req.tpdu_size)
        }
        (None, Some(v)) => {
            if v.is_empty() || v.len() > 4 {
                return Err(ProtoError::CcTpduSizeLen(v.len()));
            }
            let units = v.iter().fold(0u64, |acc, &b| acc << 8 | b as u64);
            if units == 0 {
                return Err(ProtoError::CcPreferredSizeZero);
            }
            (units.saturating_mul(128)).min(req.tpdu_size as u64) as u32
        }
        (None, None) => {
            notes.push(format!(
                "CC has no TPDU size: using {DEFAULT_TPDU_WITHOUT_C0}"
            ));
            DEFAULT_TPDU_WITHOUT_C0.min(req.tpdu_size)
        }
    };
    let calling = cc.params.get(param::CALLING_TSAP).map(Tsap::from_wire);
    let called = cc.params.get(param::CALLED_TSAP).map(Tsap::from_wire);
    for (name, got, ours) in [
        ("calling", &calling, &req.calling),
        ("called", &called, &req.called),
    ] {
        match got {
            None => notes.push(format!("CC has no {name} TSAP")),
            Some(t) if t != ours => notes.push(format!("CC {name} TSAP is {t}, we sent {ours}")),
            _ => {}
        }
    }
    Ok(ConnectAnswer::Confirmed(Negotiated {
        tpdu_size,
        peer_ref: cc.src_ref,
        calling,
        called,
        notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::test_util::hex;

    fn default_req() -> ConnectRequest {
        ConnectRequest {
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: 1024,
            extra: vec![],
        }
    }

    #[test]
    fn default_cr_is_the_wire_vector() {
        assert_eq!(
            default_req().encode().unwrap(),
            hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A")
        );
    }

    #[test]
    fn string_tsap_cr_is_the_wire_vector() {
        let req = ConnectRequest {
            calling: Tsap::from_u16(0x0600),
            called: Tsap::new(b"SIMATIC-ROOT-HMI").unwrap(),
            ..default_req()
        };
        assert_eq!(
            req.encode().unwrap(),
            hex("03 00 00 24 1F E0 00 00 00 01 00 C1 02 06 00 C2 10 53 49 4D 41 54 49 43 2D 52 4F 4F 54 2D 48 4D 49 C0 01 0A")
        );
    }

    #[test]
    fn cc_answers() {
        let req = default_req();
        // python-snap7 3.3's CC.
        let cc = hex("11 D0 00 01 00 01 00 C0 01 0A C1 02 01 00 C2 02 01 02");
        let ConnectAnswer::Confirmed(n) = check_answer(&req, &cc).unwrap() else {
            panic!()
        };
        assert_eq!((n.tpdu_size, n.notes.len()), (1024, 0));
        // A PLC's CC, other order, other TSAPs and references: accepted with notes.
        let cc = hex("11 D0 00 0F 00 0B 00 C0 01 09 C1 02 03 11 C2 02 01 00");
        let ConnectAnswer::Confirmed(n) = check_answer(&req, &cc).unwrap() else {
            panic!()
        };
        assert_eq!((n.tpdu_size, n.peer_ref), (512, 0x000B));
        assert_eq!(n.notes.len(), 3, "{:?}", n.notes);
        // Larger than offered: capped.
        let cc = hex("09 D0 00 01 00 01 00 C0 01 0D");
        let ConnectAnswer::Confirmed(n) = check_answer(&req, &cc).unwrap() else {
            panic!()
        };
        assert_eq!(n.tpdu_size, 1024);
        // None: 128.
        let ConnectAnswer::Confirmed(n) = check_answer(&req, &hex("06 D0 00 01 00 01 00")).unwrap()
        else {
            panic!()
        };
        assert_eq!(n.tpdu_size, 128);
        // F0 alone, in units of 128.
        let ConnectAnswer::Confirmed(n) =
            check_answer(&req, &hex("0A D0 00 01 00 01 00 F0 02 00 04")).unwrap()
        else {
            panic!()
        };
        assert_eq!(n.tpdu_size, 512);
    }

    #[test]
    fn bad_ccs() {
        let req = default_req();
        assert_eq!(
            check_answer(&req, &hex("09 D0 00 01 00 01 00 C0 01 20")),
            Err(ProtoError::CcTpduSizeCode(0x20))
        );
        assert_eq!(
            check_answer(&req, &hex("0A D0 00 01 00 01 00 C0 02 0A 0A")),
            Err(ProtoError::CcTpduSizeLen(2))
        );
        assert_eq!(
            check_answer(&req, &hex("0C D0 00 01 00 01 00 C0 01 0A F0 01 08")),
            Err(ProtoError::CcBothSizes)
        );
        assert_eq!(
            check_answer(&req, &hex("06 D0 00 01 00 01 10")),
            Err(ProtoError::CcClass(1))
        );
        assert_eq!(
            check_answer(&req, &hex("02 F0 80")),
            Err(ProtoError::NotACc("DT"))
        );
    }

    #[test]
    fn refusals() {
        let req = default_req();
        assert_eq!(
            check_answer(&req, &hex("06 80 00 01 00 00 81")),
            Ok(ConnectAnswer::Refused { reason: 0x81 })
        );
        assert_eq!(
            check_answer(&req, &hex("04 70 00 01 03")),
            Ok(ConnectAnswer::Rejected { cause: 3 })
        );
    }

    #[test]
    fn cr_size_is_bounded() {
        let long = Tsap::new(&[0x41; 32]).unwrap();
        let mut req = ConnectRequest {
            calling: long.clone(),
            called: long,
            ..default_req()
        };
        assert!(req.encode().is_ok());
        req.extra = vec![(0xC6, vec![0; 60])];
        assert_eq!(req.encode(), Err(ProtoError::CrTooLong(140)));
        req.extra.clear();
        req.tpdu_size = 1000;
        assert_eq!(req.encode(), Err(ProtoError::BadTpduSize(1000)));
    }
}
