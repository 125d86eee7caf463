//! The passive side of connection set-up: judging a CR and building the CC or the DR.
//!
//! Our CC (docs/PROTOCOL.md §4.6, issue contract): DST-REF = the CR's SRC-REF, a non-zero SRC-REF,
//! class 0, C0 = min(requested, our maximum) (128 when the CR had none), then both TSAPs echoed,
//! so clients that insist on a 22-byte CC (snap7, Sharp7, gos7) connect.

use super::cotp::{self, param, Tpdu};
use super::handshake::tpdu_size_of_code;
use super::tsap::Tsap;
use super::ProtoError;

/// DR reasons we refuse with.
pub mod reason {
    /// The CR's fields or parameters are malformed.
    pub const HEADER_INVALID: u8 = 0x8A;
    /// DST-REF must be 0 in a CR.
    pub const MISMATCHED_REFERENCES: u8 = 0x84;
    /// Class other than 0, or an unusable TPDU size.
    pub const NEGOTIATION_FAILED: u8 = 0x82;
    /// Not a CR at all.
    pub const PROTOCOL_ERROR: u8 = 0x85;
    /// The called TSAP is not served here (TSAP filter).
    pub const ADDRESS_UNKNOWN: u8 = 0x03;
}

/// What a valid CR asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrInfo {
    pub src_ref: u16,
    pub calling: Option<Tsap>,
    pub called: Option<Tsap>,
    /// The TPDU size the CR asked for (None: no C0).
    pub requested_tpdu: Option<u32>,
}

/// Why a CR is refused: the DR reason and the text reported locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: u8,
    /// The CR's SRC-REF when it could be read (the DR's DST-REF), else 0.
    pub peer_ref: u16,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: u8, peer_ref: u16, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            peer_ref,
            detail: detail.into(),
        }
    }

    /// The DR packet (TPKT header included).
    pub fn dr(&self, our_ref: u16) -> Vec<u8> {
        cotp::encode_dr(self.peer_ref, our_ref, self.reason)
    }
}

/// Reads a CR (one TPDU, without the TPKT header) and checks it.
pub fn parse_cr(tpdu: &[u8]) -> Result<CrInfo, Refusal> {
    let cr = match cotp::decode(tpdu) {
        Ok(Tpdu::Cr(cr)) => cr,
        Ok(other) => {
            return Err(Refusal::new(
                reason::PROTOCOL_ERROR,
                0,
                format!("expected a CR, got {}", tpdu_name(&other)),
            ))
        }
        Err(
            e @ (ProtoError::UnexpectedTpdu(_)
            | ProtoError::DtCode(_)
            | ProtoError::DtLi(_)
            | ProtoError::DtTpduNr(_)),
        ) => {
            return Err(Refusal::new(
                reason::PROTOCOL_ERROR,
                0,
                format!("expected a CR: {e}"),
            ))
        }
        Err(e) => {
            return Err(Refusal::new(
                reason::HEADER_INVALID,
                src_ref_of(tpdu),
                format!("malformed CR: {e}"),
            ))
        }
    };
    if tpdu.len() > super::handshake::MAX_CR_TPDU {
        return Err(Refusal::new(
            reason::HEADER_INVALID,
            cr.src_ref,
            format!("CR of {} bytes is above the 128 allowed", tpdu.len()),
        ));
    }
    if cr.dst_ref != 0 {
        return Err(Refusal::new(
            reason::MISMATCHED_REFERENCES,
            cr.src_ref,
            format!("CR DST-REF is 0x{:04X}, must be 0", cr.dst_ref),
        ));
    }
    if cr.class_options >> 4 != 0 {
        return Err(Refusal::new(
            reason::NEGOTIATION_FAILED,
            cr.src_ref,
            format!(
                "CR asks for class {}, only class 0 is served",
                cr.class_options >> 4
            ),
        ));
    }
    let requested_tpdu = match cr.params.get(param::TPDU_SIZE) {
        None => None,
        Some([code]) => match tpdu_size_of_code(*code) {
            Some(size) => Some(size),
            None => {
                return Err(Refusal::new(
                    reason::HEADER_INVALID,
                    cr.src_ref,
                    format!("CR TPDU-size code 0x{code:02X} is outside 0x07..0x10"),
                ))
            }
        },
        Some(v) => {
            return Err(Refusal::new(
                reason::HEADER_INVALID,
                cr.src_ref,
                format!("CR TPDU-size parameter has length {}", v.len()),
            ))
        }
    };
    Ok(CrInfo {
        src_ref: cr.src_ref,
        calling: cr.params.get(param::CALLING_TSAP).map(Tsap::from_wire),
        called: cr.params.get(param::CALLED_TSAP).map(Tsap::from_wire),
        requested_tpdu,
    })
}

fn src_ref_of(tpdu: &[u8]) -> u16 {
    if tpdu.len() >= 6 {
        u16::from_be_bytes([tpdu[4], tpdu[5]])
    } else {
        0
    }
}

fn tpdu_name(t: &Tpdu<'_>) -> &'static str {
    match t {
        Tpdu::Cr(_) => "a CR",
        Tpdu::Cc(_) => "a CC",
        Tpdu::Dr { .. } => "a DR",
        Tpdu::Dt { .. } => "a DT",
        Tpdu::Er { .. } => "an ER",
    }
}

/// The TPDU size we grant: min(requested, our maximum); 128 when the CR had none.
pub fn granted_tpdu(cr: &CrInfo, our_max: u32) -> u32 {
    cr.requested_tpdu.map_or(128, |r| r.min(our_max))
}

/// The CC packet (TPKT header included) answering `cr` with `tpdu_size`.
pub fn encode_cc(cr: &CrInfo, our_ref: u16, tpdu_size: u32) -> Vec<u8> {
    let code = [tpdu_size.trailing_zeros() as u8];
    let mut params: Vec<(u8, &[u8])> = vec![(param::TPDU_SIZE, &code)];
    if let Some(t) = &cr.calling {
        params.push((param::CALLING_TSAP, t.as_bytes()));
    }
    if let Some(t) = &cr.called {
        params.push((param::CALLED_TSAP, t.as_bytes()));
    }
    cotp::encode_connect(cotp::CC, cr.src_ref, our_ref, 0, &params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::test_util::hex;

    #[test]
    fn default_cr_gets_a_22_byte_cc_echoing_both_tsaps() {
        let cr = parse_cr(&hex(
            "11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A",
        ))
        .unwrap();
        assert_eq!(granted_tpdu(&cr, 8192), 1024);
        let cc = encode_cc(&cr, 0x0001, 1024);
        assert_eq!(
            cc,
            hex("03 00 00 16 11 D0 00 01 00 01 00 C0 01 0A C1 02 01 00 C2 02 01 02")
        );
    }

    #[test]
    fn our_cc_satisfies_our_own_client_rules() {
        use super::super::handshake::{check_answer, ConnectAnswer, ConnectRequest};
        let req = ConnectRequest {
            calling: Tsap::from_u16(0x0100),
            called: Tsap::new(b"SIMATIC-ROOT-HMI").unwrap(),
            tpdu_size: 4096,
            extra: vec![],
        };
        let crp = req.encode().unwrap();
        let cr = parse_cr(&crp[4..]).unwrap();
        let cc = encode_cc(&cr, 0x4321, granted_tpdu(&cr, 2048));
        let ConnectAnswer::Confirmed(n) = check_answer(&req, &cc[4..]).unwrap() else {
            panic!()
        };
        assert_eq!((n.tpdu_size, n.peer_ref, n.notes.len()), (2048, 0x4321, 0));
    }

    #[test]
    fn tpdu_grant() {
        let cr = parse_cr(&hex("06 E0 00 00 00 07 00")).unwrap();
        assert_eq!(
            (granted_tpdu(&cr, 8192), cr.calling, cr.called),
            (128, None, None)
        );
        let cr = parse_cr(&hex("09 E0 00 00 00 07 00 C0 01 0D")).unwrap();
        assert_eq!(granted_tpdu(&cr, 1024), 1024);
    }

    #[test]
    fn refusals() {
        let r = parse_cr(&hex(
            "11 E0 00 05 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A",
        ))
        .unwrap_err();
        assert_eq!((r.reason, r.peer_ref), (reason::MISMATCHED_REFERENCES, 1));
        assert_eq!(r.dr(0x0001), hex("03 00 00 0B 06 80 00 01 00 01 84"));
        // LI past the packet.
        assert_eq!(
            parse_cr(&hex("20 E0 00 00 00 01 00")).unwrap_err().reason,
            reason::HEADER_INVALID
        );
        // A parameter running past the header.
        let r = parse_cr(&hex("0A E0 00 00 00 09 00 C1 05 01 00")).unwrap_err();
        assert_eq!((r.reason, r.peer_ref), (reason::HEADER_INVALID, 9));
        assert_eq!(
            parse_cr(&hex("09 E0 00 00 00 01 00 C0 01 20"))
                .unwrap_err()
                .reason,
            reason::HEADER_INVALID
        );
        assert_eq!(
            parse_cr(&hex("06 E0 00 00 00 01 20")).unwrap_err().reason,
            reason::NEGOTIATION_FAILED
        );
        assert_eq!(
            parse_cr(&hex("02 F0 80")).unwrap_err().reason,
            reason::PROTOCOL_ERROR
        );
        assert_eq!(
            parse_cr(&hex(
                "11 D0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A"
            ))
            .unwrap_err()
            .reason,
            reason::PROTOCOL_ERROR
        );
    }
}
