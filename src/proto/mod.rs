//! The protocol, sans-IO: bytes in, frames and messages out. No sockets, no clocks, no FFI, and
//! no allocation beyond the configured limits, so every corner case is testable by feeding bytes.
//!
//! The modules follow the layers of the wire format (docs/PROTOCOL.md §1.1):
//!
//! - [`tpkt`]: the RFC 1006 packet header, and the receiver that cuts a TCP stream into
//!   packets (docs/PROTOCOL.md §2);
//! - [`cotp`]: decoding and encoding the class 0 TPDUs CR, CC, DR, DT and ER
//!   (docs/PROTOCOL.md §3);
//! - [`handshake`]: the active side of connection set-up, the CR sent and the answer judged
//!   (docs/PROTOCOL.md §4.1, §4.2, §4.3);
//! - [`responder`]: the passive side, the CR judged and the CC or DR built
//!   (docs/PROTOCOL.md §4.5, §4.6);
//! - [`segment`]: messages split into DTs and put back together (docs/PROTOCOL.md §5);
//! - [`tsap`]: TSAPs, S7 rack/slot addressing and routing (docs/PROTOCOL.md §6, §7).
//!
//! Every fallible function here returns a [`ProtoError`].
//!
//! [`tpkt`]: crate::proto::tpkt
//! [`cotp`]: crate::proto::cotp
//! [`handshake`]: crate::proto::handshake
//! [`responder`]: crate::proto::responder
//! [`segment`]: crate::proto::segment
//! [`tsap`]: crate::proto::tsap
//! [`ProtoError`]: crate::proto::ProtoError
//!
//! Decoding one packet by hand, the TPKT header first, then the TPDU it frames:
//!
//! ```
//! use isotcp::proto::{cotp, tpkt};
//!
//! // A DT with EOT carrying three bytes of payload.
//! let packet = [0x03, 0x00, 0x00, 0x0A, 0x02, 0xF0, 0x80, 0x32, 0x01, 0x00];
//! let header = [packet[0], packet[1], packet[2], packet[3]];
//! let len = tpkt::parse_header(&header, tpkt::MAX_PACKET)?;
//! assert_eq!(len, packet.len());
//! let tpdu = cotp::decode(&packet[tpkt::HEADER_LEN..len])?;
//! assert_eq!(tpdu, cotp::Tpdu::Dt { eot: true, payload: &[0x32, 0x01, 0x00] });
//! # Ok::<(), isotcp::proto::ProtoError>(())
//! ```

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
///
/// Byte offsets below count from the start of the TPKT header ("byte 0 of a TPKT") or from the
/// start of the TPDU after it ("byte 0 of a TPDU" is the LI). Three variants are limits rather
/// than malformed input; [`ProtoError::is_size_limit`] tells them apart.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// Byte 0 of a TPKT header is not 3 (docs/PROTOCOL.md §2.3).
    ///
    /// The field is the byte found. The message says whether it is printable ASCII, which
    /// usually means a text protocol (HTTP, a console) answered on the port. A stream cannot be
    /// realigned after this, so the connection layer closes the connection.
    #[error("TPKT version is {0}, expected 3 ({detail})", detail = version_detail(*.0))]
    TpktVersion(u8),
    /// The TPKT length field (bytes 2 and 3, big-endian) is below 7, the smallest packet that
    /// holds a TPDU; the empty 4-byte packet is one case (docs/PROTOCOL.md §2.3).
    ///
    /// The field is the length announced, in bytes.
    #[error("TPKT length {0} is below the minimum of 7")]
    TpktTooShort(usize),
    /// The TPKT length field announces a packet longer than the receive limit of the current
    /// phase (docs/PROTOCOL.md §2.3). Raised from the 4-byte header alone, before any of the
    /// body is buffered. A size limit (see [`ProtoError::is_size_limit`]).
    #[error("TPKT length {len} is above the receive limit of {max}")]
    TpktTooLong {
        /// The packet length announced, in bytes, the 4 header bytes included.
        len: usize,
        /// The receive limit in force, in bytes.
        max: usize,
    },
    /// Fewer than 2 bytes were given to [`cotp::decode`], so there is no LI and code byte.
    ///
    /// The field is the number of bytes given. A packet that passed the TPKT checks holds at
    /// least 3 bytes of TPDU, so this only occurs when `decode` is called on other input.
    #[error("TPDU of {0} bytes is too short for a COTP header")]
    TpduTooShort(usize),
    /// The COTP length indicator (byte 0 of the TPDU) is 0, 255, or more than the number of
    /// bytes after it (docs/PROTOCOL.md §3.1).
    #[error("COTP length indicator {li} is invalid: the packet holds {room} bytes after it")]
    BadLi {
        /// The LI found.
        li: usize,
        /// The bytes of the TPDU after the LI byte: the most a valid LI could say.
        room: usize,
    },
    /// The LI is too small for the fixed fields of the TPDU type: below 6 for a CR, CC or DR,
    /// below 4 for an ER (docs/PROTOCOL.md §3.1).
    #[error("COTP {tpdu} header with length indicator {li} is too short for its fixed fields")]
    HeaderTooShort {
        /// The TPDU type: `"CR"`, `"CC"`, `"DR"` or `"ER"`.
        tpdu: &'static str,
        /// The LI found.
        li: usize,
    },
    /// The last byte of a CR, CC, DR or ER header is a parameter code with no length byte
    /// after it (docs/PROTOCOL.md §3.1).
    #[error("COTP parameter 0x{code:02X} is truncated at the end of the header")]
    ParamTruncated {
        /// The parameter code left without a length.
        code: u8,
    },
    /// A parameter's length byte says more than the header has left: its value would end past
    /// the end of the header given by LI (docs/PROTOCOL.md §3.1).
    #[error(
        "COTP parameter 0x{code:02X} of length {len} runs past the header ({room} bytes left)"
    )]
    ParamPastHeader {
        /// The parameter code.
        code: u8,
        /// The value length the parameter announces, in bytes.
        len: usize,
        /// The header bytes left after the code and length bytes.
        room: usize,
    },
    /// Bytes follow the header of a CR, CC or ER in the same packet. Class 0 carries one TPDU
    /// per packet, and only DT and DR carry data after the header (docs/PROTOCOL.md §3.1).
    #[error("{len} bytes follow the COTP {tpdu} header; class 0 carries one TPDU per TPKT")]
    TrailingBytes {
        /// The TPDU type: `"CR"`, `"CC"` or `"ER"`.
        tpdu: &'static str,
        /// The number of bytes after the header.
        len: usize,
    },
    /// The TPDU type (high nibble of byte 1) is none of CR (E0), CC (D0), DR (80), DT (F0) and
    /// ER (70), for example an AK, RJ or ED of another class (docs/PROTOCOL.md §3.7).
    ///
    /// The field is byte 1 with its low nibble cleared: `0x60` for an AK.
    #[error("COTP TPDU code 0x{0:02X} is not allowed in class 0 here")]
    UnexpectedTpdu(u8),
    /// A CR or CC arrived after the connection was set up (docs/PROTOCOL.md §5.4).
    ///
    /// The field names the TPDU, `"CR"` or `"CC"`. Raised by the connection layer:
    /// [`cotp::decode`] itself decodes both in any phase.
    #[error("unexpected {0} during data transfer")]
    UnexpectedInTransfer(&'static str),
    /// Byte 1 of a DT is one of `F1` to `FF`. Class 0 DTs have no option bits in the low
    /// nibble, so it must be exactly `F0` (docs/PROTOCOL.md §3.5).
    ///
    /// The field is byte 1 as received.
    #[error("DT code byte is 0x{0:02X}, expected 0xF0")]
    DtCode(u8),
    /// A DT has an LI other than 2 (docs/PROTOCOL.md §3.5).
    ///
    /// The field is the LI found. LI 0, 255 and an LI past the packet are
    /// [`ProtoError::BadLi`] instead, as for every TPDU.
    #[error("DT length indicator is {0}, expected 2")]
    DtLi(usize),
    /// The TPDU number of a DT (bits 0 to 6 of byte 2) is not 0 (docs/PROTOCOL.md §3.5).
    ///
    /// The field is that number, 1 to 127, with the EOT bit masked off.
    #[error("DT TPDU-NR is {0}, class 0 requires 0")]
    DtTpduNr(u8),
    /// The first TPDU after our CR is a DT or a CR, where a CC, DR or ER was due
    /// (docs/PROTOCOL.md §4.2).
    ///
    /// The field names what arrived: `"DT"` or `"CR"`.
    #[error("expected a CC in answer to the CR, got a {0}")]
    NotACc(&'static str),
    /// The high nibble of the CC's class/options byte (byte 6 of the TPDU) names a class other
    /// than 0 (docs/PROTOCOL.md §4.2). The option bits in the low nibble are not looked at.
    ///
    /// The field is the class, 1 to 15.
    #[error("CC names protocol class {0}, expected class 0")]
    CcClass(u8),
    /// The CC's TPDU size parameter has the wrong length: a C0 other than 1 byte, or an F0 of
    /// 0 bytes or more than 4 (docs/PROTOCOL.md §4.3).
    ///
    /// The field is the parameter's length byte.
    #[error("CC TPDU-size parameter has length {0}")]
    CcTpduSizeLen(usize),
    /// The CC's C0 value is outside `07` to `10` (inclusive), so it names no size from 128 to
    /// 65536 bytes (docs/PROTOCOL.md §4.3).
    ///
    /// The field is the code found.
    #[error("CC TPDU-size code 0x{0:02X} is outside 0x07..0x10")]
    CcTpduSizeCode(u8),
    /// The CC carries both C0 (TPDU size) and F0 (preferred maximum TPDU size), so the size it
    /// grants is ambiguous (docs/PROTOCOL.md §4.3).
    #[error("CC carries both a TPDU size (C0) and a preferred maximum TPDU size (F0)")]
    CcBothSizes,
    /// The CC's F0 parameter is 0, which grants no size at all (docs/PROTOCOL.md §4.3).
    #[error("CC preferred maximum TPDU size is 0")]
    CcPreferredSizeZero,
    /// The payloads of the message being received add up to more than the message limit
    /// (docs/PROTOCOL.md §5.3). Raised before the payload that crosses the limit is stored.
    /// A size limit (see [`ProtoError::is_size_limit`]).
    #[error("message of {len} bytes is above the limit of {max}")]
    MessageTooLarge {
        /// The size the message would reach with the payload that crossed the limit, in bytes.
        len: usize,
        /// The message limit, in bytes.
        max: usize,
    },
    /// The message being received takes more DTs than the fragment limit
    /// (docs/PROTOCOL.md §5.3). Raised before the DT that crosses the limit is stored.
    /// A size limit (see [`ProtoError::is_size_limit`]).
    ///
    /// The field is the limit, not the number of DTs received.
    #[error("message has more than {0} fragments")]
    TooManyFragments(u32),
    /// A TSAP given to [`Tsap::new`](tsap::Tsap::new) is empty or longer than 32 bytes
    /// (docs/PROTOCOL.md §6.1).
    ///
    /// The field is the length given, in bytes.
    #[error("TSAP length {0} is outside 1..32")]
    BadTsapLen(usize),
    /// A rack above 7 or a slot above 31 was given for an S7 TSAP or a routing destination
    /// (docs/PROTOCOL.md §6.2): the two share one byte, rack in bits 5 to 7, slot in bits 0 to 4.
    #[error("rack {rack} / slot {slot} out of range (rack 0..7, slot 0..31)")]
    BadRackSlot {
        /// The rack given (valid: 0 to 7).
        rack: u8,
        /// The slot given (valid: 0 to 31).
        slot: u8,
    },
    /// The destination address of an [`S7Route`](tsap::S7Route) is empty or longer than 16
    /// bytes (docs/PROTOCOL.md §7.2).
    ///
    /// The field is the length given, in bytes.
    #[error("routing destination address length {0} is outside 1..16")]
    BadRouteAddrLen(usize),
    /// The TPDU size to offer in a CR is not one of 128, 256, 512, 1024, 2048, 4096 and 8192
    /// (docs/PROTOCOL.md §4.1).
    ///
    /// The field is the size given, in bytes.
    #[error("TPDU size {0} is not one of 128, 256, 512, 1024, 2048, 4096, 8192")]
    BadTpduSize(u32),
    /// The CR that [`ConnectRequest::encode`](handshake::ConnectRequest::encode) would write
    /// is a TPDU of more than 128 bytes, the X.224 maximum (docs/PROTOCOL.md §3.2).
    ///
    /// The field is the length that TPDU would have, in bytes, without the 4-byte TPKT header.
    #[error("the CR would be {0} bytes, above the 128 allowed: shorten the TSAPs or routing")]
    CrTooLong(usize),
    /// A TPDU header to encode would be longer than its LI can say, 254 bytes
    /// (docs/PROTOCOL.md §3.1).
    ///
    /// The field is the length the header would have, in bytes, LI included.
    #[error(
        "a COTP header of {0} bytes cannot be encoded: its length indicator allows at most 254"
    )]
    HeaderTooLong(usize),
    /// A parameter value to encode is longer than its length byte can say, 255 bytes
    /// (docs/PROTOCOL.md §3.1).
    #[error("COTP parameter 0x{code:02X} of {len} bytes cannot be encoded: at most 255")]
    ParamTooLong {
        /// The parameter's code.
        code: u8,
        /// The value's length, in bytes.
        len: usize,
    },
    /// A TPDU size to write into a CC is not a power of two from 128 to 65536, the sizes a C0
    /// parameter can say (docs/PROTOCOL.md §4.6).
    ///
    /// The field is the size given, in bytes.
    #[error("TPDU size {0} cannot be written as a C0 code (a power of two from 128 to 65536)")]
    CcTpduSize(u32),
    /// A DT was pushed into a [`Reassembler`](segment::Reassembler) still holding a complete
    /// message: take it first. A caller error, never caused by the peer.
    #[error("a complete message is still held: take it before pushing the next DT")]
    MessageNotTaken,
}

impl ProtoError {
    /// Whether this is an error of size rather than form: [`ProtoError::TpktTooLong`],
    /// [`ProtoError::MessageTooLarge`] or [`ProtoError::TooManyFragments`].
    ///
    /// Converted to the crate's [`Error`](crate::Error), these become
    /// [`Error::TooLarge`](crate::Error::TooLarge) (`ISO_E_TOO_LARGE` in the C ABI) and the
    /// others [`Error::Protocol`](crate::Error::Protocol) (`ISO_E_PROTOCOL`). Where the value
    /// at fault came from the caller (a TSAP, a rack and slot), the C ABI reports
    /// `ISO_E_INVALID` instead.
    ///
    /// ```
    /// use isotcp::proto::ProtoError;
    ///
    /// assert!(ProtoError::TooManyFragments(4096).is_size_limit());
    /// assert!(!ProtoError::DtLi(3).is_size_limit());
    /// ```
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
