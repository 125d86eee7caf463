//! The protocol, sans-IO: bytes in, frames and messages out. No sockets, no clocks, no FFI, and
//! no allocation beyond the configured limits, so every corner case is testable by feeding bytes.

pub mod cotp;
pub mod handshake;
pub mod responder;
pub mod segment;
pub mod tpkt;
pub mod transfer;
pub mod tsap;

use thiserror::Error;

/// Everything that can be wrong with bytes from the peer or with protocol values from a caller.
/// Messages say exactly what was wrong, in terms an engineer can check against a capture.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("TPKT version is {0}, expected 3 ({detail})", detail = version_detail(*.0))]
    TpktVersion(u8),
    #[error("TPKT length {0} is below the minimum of 7")]
    TpktTooShort(usize),
    #[error("TPKT length {len} is above the receive limit of {max}")]
    TpktTooLong { len: usize, max: usize },
    #[error("TPDU of {0} bytes is too short for a COTP header")]
    TpduTooShort(usize),
    #[error("COTP length indicator {li} is invalid: the packet holds {room} bytes after it")]
    BadLi { li: usize, room: usize },
    #[error("COTP {tpdu} header with length indicator {li} is too short for its fixed fields")]
    HeaderTooShort { tpdu: &'static str, li: usize },
    #[error("COTP parameter 0x{code:02X} is truncated at the end of the header")]
    ParamTruncated { code: u8 },
    #[error(
        "COTP parameter 0x{code:02X} of length {len} runs past the header ({room} bytes left)"
    )]
    ParamPastHeader { code: u8, len: usize, room: usize },
    #[error("{len} bytes follow the COTP {tpdu} header; class 0 carries one TPDU per TPKT")]
    TrailingBytes { tpdu: &'static str, len: usize },
    #[error("COTP TPDU code 0x{0:02X} is not allowed in class 0 here")]
    UnexpectedTpdu(u8),
    #[error("unexpected {0} during data transfer")]
    UnexpectedInTransfer(&'static str),
    #[error("DT code byte is 0x{0:02X}, expected 0xF0")]
    DtCode(u8),
    #[error("DT length indicator is {0}, expected 2")]
    DtLi(usize),
    #[error("DT TPDU-NR is {0}, class 0 requires 0")]
    DtTpduNr(u8),
    #[error("expected a CC in answer to the CR, got a {0}")]
    NotACc(&'static str),
    #[error("CC names protocol class {0}, expected class 0")]
    CcClass(u8),
    #[error("CC TPDU-size parameter has length {0}")]
    CcTpduSizeLen(usize),
    #[error("CC TPDU-size code 0x{0:02X} is outside 0x07..0x10")]
    CcTpduSizeCode(u8),
    #[error("CC carries both a TPDU size (C0) and a preferred maximum TPDU size (F0)")]
    CcBothSizes,
    #[error("CC preferred maximum TPDU size is 0")]
    CcPreferredSizeZero,
    #[error("message of {len} bytes is above the limit of {max}")]
    MessageTooLarge { len: usize, max: usize },
    #[error("message has more than {0} fragments")]
    TooManyFragments(u32),
    #[error("TSAP length {0} is outside 1..32")]
    BadTsapLen(usize),
    #[error("rack {rack} / slot {slot} out of range (rack 0..7, slot 0..31)")]
    BadRackSlot { rack: u8, slot: u8 },
    #[error("routing destination address length {0} is outside 1..16")]
    BadRouteAddrLen(usize),
    #[error("TPDU size {0} is not one of 128, 256, 512, 1024, 2048, 4096, 8192")]
    BadTpduSize(u32),
    #[error("the CR would be {0} bytes, above the 128 allowed: shorten the TSAPs or routing")]
    CrTooLong(usize),
}

impl ProtoError {
    /// Errors of size rather than form (reported as "too large").
    pub fn is_size_limit(&self) -> bool {
        matches!(
            self,
            ProtoError::TpktTooLong { .. }
                | ProtoError::MessageTooLarge { .. }
                | ProtoError::TooManyFragments(_)
        )
    }
}

/// Says what a wrong first byte suggests, showing it as a character when it is one: text where
/// a TPKT should be is usually HTTP or a console on the wrong port.
fn version_detail(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!(
            "byte 0x{b:02X} = '{}': the peer answers in text (HTTP, a console?), not ISO on TCP",
            b as char
        )
    } else {
        format!("byte 0x{b:02X}: the peer does not speak ISO on TCP (RFC 1006), or the stream lost its alignment")
    }
}

/// Helpers shared by the unit tests of the protocol modules.
#[cfg(test)]
pub(crate) mod test_util {
    /// "11 E0 00 00" -> bytes.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }
}
