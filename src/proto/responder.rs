//! The passive side of connection set-up: judging a CR and building the CC or the DR.
//!
//! Our CC (docs/PROTOCOL.md §4.6, issue contract): DST-REF = the CR's SRC-REF, a non-zero SRC-REF,
//! class 0, C0 = min(requested, our maximum) (128 when the CR had none), then both TSAPs echoed,
//! so clients that insist on a 22-byte CC (snap7, Sharp7, gos7) connect.
//!
//! The steps for one client: [`parse_cr`] judges its first TPDU; on success the caller applies
//! its own TSAP checks, picks the size with [`granted_tpdu`] and writes [`encode_cc`]; on
//! refusal it writes [`Refusal::dr`] and closes TCP (docs/PROTOCOL.md §4.5).
//!
//! ```
//! use isotcp::proto::responder::{encode_cc, granted_tpdu, parse_cr};
//!
//! // The default CR of docs/PROTOCOL.md §4.1, without its TPKT header.
//! let cr = [
//!     0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC1, 0x02, 0x01, 0x00, 0xC2, 0x02, 0x01, 0x02,
//!     0xC0, 0x01, 0x0A,
//! ];
//! let info = parse_cr(&cr).expect("a valid CR");
//! assert_eq!(info.requested_tpdu, Some(1024));
//! let size = granted_tpdu(&info, 512);
//! assert_eq!(size, 512);
//! assert_eq!(
//!     encode_cc(&info, 0x0001, size).expect("a granted size"),
//!     [
//!         0x03, 0x00, 0x00, 0x16, 0x11, 0xD0, 0x00, 0x01, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x09,
//!         0xC1, 0x02, 0x01, 0x00, 0xC2, 0x02, 0x01, 0x02,
//!     ]
//! );
//! ```

use super::cotp::{self, param, Tpdu};
use super::handshake::tpdu_size_of_code;
use super::tsap::Tsap;
use super::ProtoError;

/// DR reasons we refuse with (docs/PROTOCOL.md §4.5); [`cotp::dr_reason_text`] names each.
pub mod reason {
    /// The CR's fields or parameters are malformed.
    pub const HEADER_INVALID: u8 = 0x8A;
    /// DST-REF must be 0 in a CR.
    pub const MISMATCHED_REFERENCES: u8 = 0x84;
    /// The CR asks for a class other than 0. (A bad TPDU size is [`HEADER_INVALID`].)
    pub const NEGOTIATION_FAILED: u8 = 0x82;
    /// Not a CR at all.
    pub const PROTOCOL_ERROR: u8 = 0x85;
    /// The called TSAP is not served here. [`parse_cr`](super::parse_cr) never returns it:
    /// the caller's TSAP list or filter does.
    pub const ADDRESS_UNKNOWN: u8 = 0x03;
}

/// What a valid CR asked for.
///
/// TSAPs are kept as they arrived, any length, for the caller to check against the ones it
/// serves and for [`encode_cc`] to echo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrInfo {
    /// The CR's SRC-REF, the client's reference; any value, 0 included. The CC and a DR
    /// carry it as DST-REF.
    pub src_ref: u16,
    /// The calling TSAP (C1), the client's own; `None` when the CR had no C1.
    pub calling: Option<Tsap>,
    /// The called TSAP (C2), the one the client asks for; `None` when the CR had no C2.
    pub called: Option<Tsap>,
    /// The TPDU size the CR asked for, in bytes, 128 to 65536 (None: no C0).
    pub requested_tpdu: Option<u32>,
}

/// Why a CR is refused: the DR reason and the text reported locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The DR reason to send, usually one of [`reason`].
    pub reason: u8,
    /// The CR's SRC-REF when it could be read (the DR's DST-REF), else 0.
    pub peer_ref: u16,
    /// What was wrong, for the local log; never sent to the peer.
    pub detail: String,
}

impl Refusal {
    /// A refusal with DR reason `reason`, to be sent to the client whose reference is
    /// `peer_ref`, described locally by `detail`.
    pub fn new(reason: u8, peer_ref: u16, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            peer_ref,
            detail: detail.into(),
        }
    }

    /// The DR packet (TPKT header included): 11 bytes, DST-REF [`peer_ref`](Refusal::peer_ref),
    /// SRC-REF `our_ref` (docs/PROTOCOL.md §3.4).
    pub fn dr(&self, our_ref: u16) -> Vec<u8> {
        cotp::encode_dr(self.peer_ref, our_ref, self.reason)
    }
}

/// Reads a CR (one TPDU, without the TPKT header) and checks it in the order of
/// docs/PROTOCOL.md §4.5, up to and including the C0 check.
///
/// Not checked here: the TSAPs (neither their presence nor their value; that is the caller's
/// list or filter), the SRC-REF, and parameters other than C0, C1 and C2.
///
/// # Errors
///
/// A [`Refusal`] whose reason is the first check that failed:
///
/// - [`reason::PROTOCOL_ERROR`] when the TPDU is not a CR: another class 0 TPDU, a type class
///   0 does not have, or a DT whose header fails docs/PROTOCOL.md §3.5; `peer_ref` is 0;
/// - [`reason::HEADER_INVALID`] when it does not decode by docs/PROTOCOL.md §3.1; `peer_ref`
///   is then read from bytes 4 and 5 when there are 6 bytes or more, else 0;
/// - [`reason::HEADER_INVALID`] when the TPDU is longer than 128 bytes;
/// - [`reason::MISMATCHED_REFERENCES`] when DST-REF is not 0;
/// - [`reason::NEGOTIATION_FAILED`] when the class is not 0 (the option bits are ignored);
/// - [`reason::HEADER_INVALID`] when C0 is not one byte from `07` to `10`.
///
/// ```
/// use isotcp::proto::responder::{parse_cr, reason};
///
/// // A CR whose DST-REF is 5 instead of 0.
/// let refusal = parse_cr(&[0x06, 0xE0, 0x00, 0x05, 0x00, 0x01, 0x00]).unwrap_err();
/// assert_eq!((refusal.reason, refusal.peer_ref), (reason::MISMATCHED_REFERENCES, 0x0001));
/// assert_eq!(
///     refusal.dr(0x0001),
///     [0x03, 0x00, 0x00, 0x0B, 0x06, 0x80, 0x00, 0x01, 0x00, 0x01, 0x84]
/// );
/// ```
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

/// The TPDU size we grant, in bytes: min(requested, our maximum); 128 when the CR had none
/// (docs/PROTOCOL.md §4.6).
///
/// The result is always one [`encode_cc`] can write: a power of two from 128 to 65536. An
/// `our_max` that is not one is rounded down to one (and up to 128); a CR without C0 gets 128
/// even when `our_max` is smaller.
pub fn granted_tpdu(cr: &CrInfo, our_max: u32) -> u32 {
    let size = cr.requested_tpdu.map_or(128, |r| r.min(our_max));
    let size = size.clamp(128, 65536);
    1 << (31 - size.leading_zeros())
}

/// The CC packet (TPKT header included) answering `cr` with `tpdu_size` (docs/PROTOCOL.md §4.6).
///
/// DST-REF is the CR's SRC-REF and SRC-REF is `our_ref`, which should not be 0. The parameters
/// are C0, then C1 and C2 echoed exactly as the CR had them, each only when it had one.
///
/// # Errors
///
/// - [`ProtoError::CcTpduSize`] when `tpdu_size` is not a power of two from 128 to 65536 (what
///   [`granted_tpdu`] returns always is);
/// - [`ProtoError::HeaderTooLong`] or [`ProtoError::ParamTooLong`] when the echoed TSAPs do
///   not fit a header; a CR that [`parse_cr`] accepted is at most 128 bytes, so its TSAPs
///   always do.
pub fn encode_cc(cr: &CrInfo, our_ref: u16, tpdu_size: u32) -> Result<Vec<u8>, ProtoError> {
    if !tpdu_size.is_power_of_two() || !(128..=65536).contains(&tpdu_size) {
        return Err(ProtoError::CcTpduSize(tpdu_size));
    }
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
        let cc = encode_cc(&cr, 0x0001, 1024).unwrap();
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
        let cc = encode_cc(&cr, 0x4321, granted_tpdu(&cr, 2048)).unwrap();
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
