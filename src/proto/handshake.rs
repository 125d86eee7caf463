//! Connection set-up: the CR we send, the CC we accept, and the TPDU size both sides use.
//!
//! Rules (docs/PROTOCOL.md §4): parameters go out in the order C1, C2, C0 (LOGO! 0BA7 needs it),
//! then any routing parameters. The CC's C0 (or F0) sets the size for both directions, capped to
//! what we offered; a CC without either means 128.
//!
//! The active side in two steps: [`ConnectRequest::encode`] gives the CR to write, and
//! [`check_answer`] judges the first TPDU that comes back.
//!
//! ```
//! use isotcp::proto::handshake::{check_answer, ConnectAnswer, ConnectRequest};
//! use isotcp::proto::tsap::Tsap;
//!
//! let req = ConnectRequest {
//!     calling: Tsap::from_u16(0x0100),
//!     called: Tsap::s7(1, 0, 2)?, // PG connection to rack 0, slot 2
//!     tpdu_size: 1024,
//!     extra: vec![],
//! };
//! // The default CR of docs/PROTOCOL.md §4.1.
//! assert_eq!(
//!     req.encode()?,
//!     [
//!         0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC1, 0x02, 0x01,
//!         0x00, 0xC2, 0x02, 0x01, 0x02, 0xC0, 0x01, 0x0A,
//!     ]
//! );
//!
//! // A CC granting 512 bytes and echoing both TSAPs, without its TPKT header.
//! let cc = [
//!     0x11, 0xD0, 0x00, 0x01, 0x00, 0x07, 0x00, 0xC0, 0x01, 0x09, 0xC1, 0x02, 0x01, 0x00, 0xC2,
//!     0x02, 0x01, 0x02,
//! ];
//! let ConnectAnswer::Confirmed(n) = check_answer(&req, &cc)? else { panic!("refused") };
//! assert_eq!((n.tpdu_size, n.peer_ref), (512, 0x0007));
//! assert!(n.notes.is_empty());
//! # Ok::<(), isotcp::proto::ProtoError>(())
//! ```

use super::cotp::{self, param, Tpdu};
use super::tsap::Tsap;
use super::ProtoError;

/// Our SRC-REF in every CR (python-snap7 and the test vectors use 1).
pub const OUR_SRC_REF: u16 = 0x0001;
/// X.224: a CR TPDU is at most 128 bytes.
pub const MAX_CR_TPDU: usize = 128;
/// TPDU size when the CC names none (X.224 default).
pub const DEFAULT_TPDU_WITHOUT_C0: u32 = 128;

/// The C0 code for a TPDU size that may be configured and offered, or `None` for any size
/// other than 128, 256, 512, 1024, 2048, 4096 and 8192 (docs/PROTOCOL.md §4.1).
///
/// The code is the size's base-2 logarithm: `0x07` for 128 up to `0x0D` for 8192.
///
/// ```
/// use isotcp::proto::handshake::tpdu_code_for;
///
/// assert_eq!(tpdu_code_for(1024), Some(0x0A));
/// assert_eq!(tpdu_code_for(16384), None); // accepted from a peer, never offered
/// assert_eq!(tpdu_code_for(1000), None);
/// ```
pub fn tpdu_code_for(size: u32) -> Option<u8> {
    if size.is_power_of_two() && (128..=8192).contains(&size) {
        Some(size.trailing_zeros() as u8)
    } else {
        None
    }
}

/// The TPDU size in bytes that a received C0 code means, or `None` for a code outside `0x07`
/// to `0x10` (docs/PROTOCOL.md §3.8).
///
/// Wider than [`tpdu_code_for`]: RFC 1006 stacks also use 0x0E..0x10 (16384..65536).
pub fn tpdu_size_of_code(code: u8) -> Option<u32> {
    (0x07..=0x10).contains(&code).then(|| 1u32 << code)
}

/// What goes into a CR (docs/PROTOCOL.md §3.2).
///
/// The references are fixed: DST-REF 0 and SRC-REF [`OUR_SRC_REF`], class 0 with no options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Our TSAP, sent as C1 (docs/PROTOCOL.md §6).
    pub calling: Tsap,
    /// The TSAP asked for at the peer, sent as C2: for an S7 CPU, [`Tsap::s7`].
    pub called: Tsap,
    /// The TPDU size offered, in bytes: 128, 256, 512, 1024, 2048, 4096 or 8192. It is also the
    /// largest size [`check_answer`] lets the CC grant.
    pub tpdu_size: u32,
    /// Parameters appended after C0 (python-snap7 routing: C6 and C7).
    pub extra: Vec<(u8, Vec<u8>)>,
}

impl ConnectRequest {
    /// The CR packet, TPKT header included, with the parameters in the order C1, C2, C0 and then
    /// [`extra`](ConnectRequest::extra) (docs/PROTOCOL.md §4.1).
    ///
    /// # Errors
    ///
    /// - [`ProtoError::BadTpduSize`] when `tpdu_size` is not one [`tpdu_code_for`] knows;
    /// - [`ProtoError::CrTooLong`] when the CR would be a TPDU of more than [`MAX_CR_TPDU`]
    ///   bytes, whatever the TSAPs and `extra` hold (a TSAP made with [`Tsap::from_wire`] may
    ///   be of any length).
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let code = tpdu_code_for(self.tpdu_size).ok_or(ProtoError::BadTpduSize(self.tpdu_size))?;
        let code = [code];
        let mut params: Vec<(u8, &[u8])> = vec![
            (param::CALLING_TSAP, self.calling.as_bytes()),
            (param::CALLED_TSAP, self.called.as_bytes()),
            (param::TPDU_SIZE, &code),
        ];
        params.extend(self.extra.iter().map(|(c, v)| (*c, v.as_slice())));
        // 7 fixed bytes, then code, length and value of each parameter; checked before
        // encoding, so a header too long for its LI is reported the same way.
        let tpdu_len = 7 + params.iter().map(|(_, v)| 2 + v.len()).sum::<usize>();
        if tpdu_len > MAX_CR_TPDU {
            return Err(ProtoError::CrTooLong(tpdu_len));
        }
        cotp::encode_connect(cotp::CR, 0, OUR_SRC_REF, 0, &params)
    }
}

/// What the CC settled, and what in it differed from what we asked (for diagnostics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The TPDU size both directions use, in bytes: at most the size offered
    /// (docs/PROTOCOL.md §4.3). With F0 it need not be a power of two.
    pub tpdu_size: u32,
    /// The peer's SRC-REF, as the CC had it; not checked.
    pub peer_ref: u16,
    /// The calling TSAP (C1) the CC echoed, if it had one.
    pub calling: Option<Tsap>,
    /// The called TSAP (C2) the CC echoed, if it had one.
    pub called: Option<Tsap>,
    /// Things that are tolerated but worth knowing ("CC granted TPDU 2048, capped to the 1024
    /// offered"), one sentence each, for logs; empty when there was nothing to note.
    pub notes: Vec<String>,
}

/// Outcome of the first TPDU the peer sends after our CR.
///
/// A refusal is an answer, not an error: the peer spoke the protocol and said no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectAnswer {
    /// CC: the connection is set up with these values.
    Confirmed(Negotiated),
    /// DR: refused with a reason.
    Refused {
        /// The DR's reason byte; [`cotp::dr_reason_text`] names it (docs/PROTOCOL.md §3.9).
        reason: u8,
    },
    /// ER: our CR was rejected with a cause.
    Rejected {
        /// The ER's cause byte; [`cotp::er_cause_text`] names it (docs/PROTOCOL.md §3.9).
        cause: u8,
    },
}

/// Validates the answer to `req` (one TPDU, without the TPKT header) by the rules of
/// docs/PROTOCOL.md §4.2 and §4.3.
///
/// A DR or ER becomes [`ConnectAnswer::Refused`] or [`ConnectAnswer::Rejected`]; only its
/// reason or cause byte is read. A CC is accepted with any DST-REF, SRC-REF, parameter order and
/// TSAPs; differences from `req` end up in [`Negotiated::notes`].
///
/// # Errors
///
/// - every error of [`cotp::decode`];
/// - [`ProtoError::NotACc`] for a DT or a CR;
/// - [`ProtoError::CcClass`] for a CC of a class other than 0;
/// - [`ProtoError::CcBothSizes`], [`ProtoError::CcTpduSizeLen`],
///   [`ProtoError::CcTpduSizeCode`], [`ProtoError::CcPreferredSizeZero`] for TPDU size
///   parameters that break the table of docs/PROTOCOL.md §4.3.
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
