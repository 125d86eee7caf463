//! COTP class 0 TPDUs (ISO 8073 / X.224): decoding with every check, and encoding.
//!
//! Byte 0 of a TPDU is the length indicator LI (header length without the LI byte); the high
//! nibble of byte 1 is the TPDU code. Fixed fields follow, then parameters (code, length, value)
//! up to the end of the header, then (DT only) user data.
//!
//! ```text
//! byte 0     LI     header length after this byte
//! byte 1     code   TPDU type in the high nibble
//! byte 2..   fixed fields of the type, then parameters up to byte LI
//! after LI   DT payload or DR user data; nothing for CR, CC and ER
//! ```
//!
//! [`decode`] applies the checks of docs/PROTOCOL.md §3.1 and returns a [`Tpdu`] that borrows
//! from its input. The `encode_*` functions write whole packets, TPKT header included, ready to
//! be sent. DTs are written by [`segment`](super::segment), which takes their 3-byte header
//! from [`DT_EOT`] and [`DT_MORE`].
//!
//! ```
//! use isotcp::proto::cotp::{self, param, Tpdu};
//!
//! // python-snap7's CC to the default CR (docs/PROTOCOL.md §9.3), without the TPKT header.
//! let cc = [
//!     0x11, 0xD0, 0x00, 0x01, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02, 0x01, 0x00, 0xC2,
//!     0x02, 0x01, 0x02,
//! ];
//! let Tpdu::Cc(c) = cotp::decode(&cc)? else { panic!("not a CC") };
//! assert_eq!((c.dst_ref, c.src_ref, c.class_options), (0x0001, 0x0001, 0x00));
//! assert_eq!(c.params.get(param::TPDU_SIZE), Some(&[0x0A][..]));
//! assert_eq!(c.params.get(param::CALLED_TSAP), Some(&[0x01, 0x02][..]));
//! # Ok::<(), isotcp::proto::ProtoError>(())
//! ```

use super::ProtoError;

/// TPDU code of a CR, connection request (docs/PROTOCOL.md §3.2): the high nibble of byte 1.
pub const CR: u8 = 0xE0;
/// TPDU code of a CC, connection confirm (docs/PROTOCOL.md §3.3).
pub const CC: u8 = 0xD0;
/// TPDU code of a DR, disconnect request (docs/PROTOCOL.md §3.4).
pub const DR: u8 = 0x80;
/// TPDU code of a DT, data (docs/PROTOCOL.md §3.5). In class 0 this is the whole of byte 1.
pub const DT: u8 = 0xF0;
/// TPDU code of an ER, TPDU error (docs/PROTOCOL.md §3.6).
pub const ER: u8 = 0x70;

/// Parameter codes (docs/PROTOCOL.md §3.8).
///
/// A code means what its TPDU type says it means: `C1` is the calling TSAP in a CR or CC and
/// the rejected header in an ER, hence two names for one value.
pub mod param {
    /// TPDU size, in a CR or CC: one byte `n` meaning 2^n bytes (`07` = 128 to `10` = 65536).
    pub const TPDU_SIZE: u8 = 0xC0;
    /// Calling TSAP, in a CR or CC: the TSAP of the side that sends the CR.
    pub const CALLING_TSAP: u8 = 0xC1;
    /// Called TSAP, in a CR or CC: the TSAP the CR asks for.
    pub const CALLED_TSAP: u8 = 0xC2;
    /// In an ER: the header of the TPDU that was rejected.
    pub const INVALID_TPDU: u8 = 0xC1;
    /// Additional information, in a DR. The crate neither sends nor reads it: a received DR
    /// is judged by its reason byte alone.
    pub const DR_ADDITIONAL_INFO: u8 = 0xE0;
    /// Preferred maximum TPDU size, in a CC: 1 to 4 bytes, big-endian, in units of 128 bytes
    /// (docs/PROTOCOL.md §4.3).
    pub const PREFERRED_MAX_TPDU: u8 = 0xF0;
}

/// DT header with EOT set: the last (or only) fragment of a message.
pub const DT_EOT: [u8; 3] = [2, DT, 0x80];
/// DT header without EOT: more fragments follow.
pub const DT_MORE: [u8; 3] = [2, DT, 0x00];

/// Parameters of a TPDU header, iterated in wire order. Every parameter lies inside the header;
/// [`decode`] checks that before a `Params` is handed out.
///
/// Only [`decode`] makes one, so iterating never needs to check bounds again. The values are
/// borrowed from the bytes that were decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params<'a>(&'a [u8]);

impl<'a> Params<'a> {
    fn check(bytes: &'a [u8]) -> Result<Self, ProtoError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 2 {
                return Err(ProtoError::ParamTruncated { code: rest[0] });
            }
            let len = rest[1] as usize;
            if rest.len() < 2 + len {
                return Err(ProtoError::ParamPastHeader {
                    code: rest[0],
                    len,
                    room: rest.len() - 2,
                });
            }
            rest = &rest[2 + len..];
        }
        Ok(Params(bytes))
    }

    /// Every parameter as `(code, value)`, in wire order, repeated codes included.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest.len() < 2 {
                return None;
            }
            let (code, len) = (rest[0], rest[1] as usize);
            let value = &rest[2..2 + len];
            rest = &rest[2 + len..];
            Some((code, value))
        })
    }

    /// The value of the first parameter with this code, or `None` when there is none.
    ///
    /// A later parameter with the same code is ignored (docs/PROTOCOL.md §3.8).
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|&(c, _)| c == code).map(|(_, v)| v)
    }

    /// The parameter bytes as received: from the end of the fixed fields to the end of the
    /// header, each parameter as code, length and value. Empty when there are none.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }
}

/// The fields of a CR or a CC, which share one layout (docs/PROTOCOL.md §3.2, §3.3).
///
/// [`decode`] checks only the form: references, class and parameters are reported as they are
/// and judged by [`handshake`](super::handshake) and [`responder`](super::responder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// DST-REF (bytes 2 and 3): 0 in a CR; in a CC, the SRC-REF of the CR it answers.
    pub dst_ref: u16,
    /// SRC-REF (bytes 4 and 5): the sender's own reference for the connection.
    pub src_ref: u16,
    /// Class and options byte: class in the high nibble.
    pub class_options: u8,
    /// The parameters after the fixed fields: TSAPs, TPDU size and any others.
    pub params: Params<'a>,
}

/// One decoded class 0 TPDU, borrowing from the bytes it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tpdu<'a> {
    /// Connection request (code E0, docs/PROTOCOL.md §3.2).
    Cr(Connect<'a>),
    /// Connection confirm (code D0, docs/PROTOCOL.md §3.3).
    Cc(Connect<'a>),
    /// Disconnect request (code 80, docs/PROTOCOL.md §3.4): the peer refuses or ends the
    /// connection.
    Dr {
        /// DST-REF (bytes 2 and 3): the reference of the side the DR is sent to.
        dst_ref: u16,
        /// SRC-REF (bytes 4 and 5): the sender's reference.
        src_ref: u16,
        /// Reason (byte 6); [`dr_reason_text`] names it (docs/PROTOCOL.md §3.9).
        reason: u8,
        /// Parameters after the reason byte, if any.
        params: Params<'a>,
        /// Bytes after the header, up to the end of the packet; usually empty.
        user_data: &'a [u8],
    },
    /// Data (code F0, docs/PROTOCOL.md §3.5): one fragment of a message.
    Dt {
        /// End of TSDU (bit 7 of byte 2): set on the last DT of a message.
        eot: bool,
        /// Everything after the 3-byte header up to the end of the packet; may be empty.
        payload: &'a [u8],
    },
    /// TPDU error (code 70, docs/PROTOCOL.md §3.6): the peer rejects a TPDU it received.
    Er {
        /// DST-REF (bytes 2 and 3): the reference of the side the ER is sent to.
        dst_ref: u16,
        /// Reject cause (byte 4); [`er_cause_text`] names it (docs/PROTOCOL.md §3.9).
        cause: u8,
        /// Parameters after the cause byte; [`param::INVALID_TPDU`] quotes the rejected header.
        params: Params<'a>,
    },
}

/// Decodes one TPDU: the whole content of one TPKT packet, without its 4-byte header.
///
/// Checks the form of docs/PROTOCOL.md §3.1 and, for a DT, §3.5. The low nibble of byte 1 is
/// ignored for CR, CC, DR and ER (docs/PROTOCOL.md §8). Values are not judged: a CR with a
/// non-zero DST-REF or a CC of class 2 decodes; [`handshake`](super::handshake) and
/// [`responder`](super::responder) decide what to accept.
///
/// # Errors
///
/// - [`ProtoError::TpduTooShort`]: fewer than 2 bytes;
/// - [`ProtoError::BadLi`]: LI 0, LI 255, or an LI past the end of `tpdu`;
/// - [`ProtoError::DtCode`], [`ProtoError::DtLi`], [`ProtoError::DtTpduNr`]: a DT header other
///   than `02 F0 00` or `02 F0 80`;
/// - [`ProtoError::HeaderTooShort`]: an LI below 6 for CR, CC and DR, below 4 for ER;
/// - [`ProtoError::ParamTruncated`], [`ProtoError::ParamPastHeader`]: a parameter that does not
///   end inside the header;
/// - [`ProtoError::TrailingBytes`]: bytes after the header of a CR, CC or ER;
/// - [`ProtoError::UnexpectedTpdu`]: any other TPDU type.
///
/// # Examples
///
/// ```
/// use isotcp::proto::cotp::{decode, Tpdu};
/// use isotcp::proto::ProtoError;
///
/// // A DT that is not the last of its message.
/// assert_eq!(
///     decode(&[0x02, 0xF0, 0x00, 0x32, 0x01]),
///     Ok(Tpdu::Dt { eot: false, payload: &[0x32, 0x01] })
/// );
/// // An AK belongs to class 2 and up.
/// assert_eq!(decode(&[0x04, 0x60, 0x00, 0x01, 0x00]), Err(ProtoError::UnexpectedTpdu(0x60)));
/// ```
pub fn decode(tpdu: &[u8]) -> Result<Tpdu<'_>, ProtoError> {
    if tpdu.len() < 2 {
        return Err(ProtoError::TpduTooShort(tpdu.len()));
    }
    let li = tpdu[0] as usize;
    if li == 0 || li == 255 {
        return Err(ProtoError::BadLi {
            li,
            room: tpdu.len() - 1,
        });
    }
    if li + 1 > tpdu.len() {
        return Err(ProtoError::BadLi {
            li,
            room: tpdu.len() - 1,
        });
    }
    let header = &tpdu[..li + 1];
    let after = &tpdu[li + 1..];
    let code = tpdu[1] & 0xF0;
    let u16_at = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let fixed = |n: usize, name: &'static str| {
        if li + 1 < n {
            Err(ProtoError::HeaderTooShort { tpdu: name, li })
        } else {
            Ok(())
        }
    };
    let no_trailing = |name: &'static str| {
        if after.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes {
                tpdu: name,
                len: after.len(),
            })
        }
    };
    match code {
        DT => {
            if tpdu[1] != DT {
                return Err(ProtoError::DtCode(tpdu[1]));
            }
            if li != 2 {
                return Err(ProtoError::DtLi(li));
            }
            let nr = header[2];
            if nr & 0x7F != 0 {
                return Err(ProtoError::DtTpduNr(nr & 0x7F));
            }
            Ok(Tpdu::Dt {
                eot: nr & 0x80 != 0,
                payload: after,
            })
        }
        CR | CC => {
            let name = if code == CR { "CR" } else { "CC" };
            fixed(7, name)?;
            no_trailing(name)?;
            let c = Connect {
                dst_ref: u16_at(2),
                src_ref: u16_at(4),
                class_options: header[6],
                params: Params::check(&header[7..])?,
            };
            Ok(if code == CR { Tpdu::Cr(c) } else { Tpdu::Cc(c) })
        }
        DR => {
            fixed(7, "DR")?;
            Ok(Tpdu::Dr {
                dst_ref: u16_at(2),
                src_ref: u16_at(4),
                reason: header[6],
                params: Params::check(&header[7..])?,
                user_data: after,
            })
        }
        ER => {
            fixed(5, "ER")?;
            no_trailing("ER")?;
            Ok(Tpdu::Er {
                dst_ref: u16_at(2),
                cause: header[4],
                params: Params::check(&header[5..])?,
            })
        }
        other => Err(ProtoError::UnexpectedTpdu(other)),
    }
}

/// Appends a TPDU header of CR/CC/DR shape with the given parameters to `out`, TPKT header
/// included. Returns the packet length.
///
/// A header longer than its LI can say (254 bytes) or a parameter value longer than its
/// length byte can say (255) is an error, and nothing is appended.
fn encode_with_params(
    out: &mut Vec<u8>,
    code: u8,
    fixed: &[u8],
    params: &[(u8, &[u8])],
) -> Result<usize, ProtoError> {
    if let Some((c, v)) = params.iter().find(|(_, v)| v.len() > 255) {
        return Err(ProtoError::ParamTooLong {
            code: *c,
            len: v.len(),
        });
    }
    let header_len = 1 + fixed.len() + params.iter().map(|(_, v)| 2 + v.len()).sum::<usize>();
    if header_len > MAX_HEADER_LEN {
        return Err(ProtoError::HeaderTooLong(header_len));
    }
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, 0, code]);
    out.extend_from_slice(fixed);
    for (c, v) in params {
        out.push(*c);
        out.push(v.len() as u8);
        out.extend_from_slice(v);
    }
    let len = out.len() - start;
    out[start..start + 4].copy_from_slice(&super::tpkt::header(len));
    out[start + 4] = (len - 5) as u8;
    Ok(len)
}

/// The longest TPDU header an LI can announce: LI is one byte and 255 is reserved
/// (docs/PROTOCOL.md §3.1).
pub const MAX_HEADER_LEN: usize = 254;

/// Encodes a CR or CC packet, TPKT header included, ready to be sent.
///
/// `code` is [`CR`] or [`CC`]; `dst_ref`, `src_ref` and `class_options` go into bytes 2 to 6 of
/// the TPDU as they are, and `params` follow as code, length, value in the order given. Nothing
/// is checked against the rules of docs/PROTOCOL.md §4: [`handshake::ConnectRequest::encode`]
/// and [`responder::encode_cc`] build the CR and CC the crate sends.
///
/// [`handshake::ConnectRequest::encode`]: super::handshake::ConnectRequest::encode
/// [`responder::encode_cc`]: super::responder::encode_cc
///
/// # Errors
///
/// [`ProtoError::HeaderTooLong`] when the header would be longer than an LI can say
/// ([`MAX_HEADER_LEN`] bytes after the LI), [`ProtoError::ParamTooLong`] for a parameter value
/// longer than 255 bytes.
///
/// # Examples
///
/// ```
/// use isotcp::proto::cotp::{self, param};
///
/// let cr = cotp::encode_connect(
///     cotp::CR,
///     0x0000,
///     0x0001,
///     0x00,
///     &[(param::CALLING_TSAP, &[0x01, 0x00]), (param::CALLED_TSAP, &[0x01, 0x02])],
/// )
/// .expect("a short header");
/// assert_eq!(
///     cr,
///     [
///         0x03, 0x00, 0x00, 0x13, 0x0E, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC1, 0x02, 0x01,
///         0x00, 0xC2, 0x02, 0x01, 0x02,
///     ]
/// );
/// ```
pub fn encode_connect(
    code: u8,
    dst_ref: u16,
    src_ref: u16,
    class_options: u8,
    params: &[(u8, &[u8])],
) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::with_capacity(64);
    let [d0, d1] = dst_ref.to_be_bytes();
    let [s0, s1] = src_ref.to_be_bytes();
    encode_with_params(&mut out, code, &[d0, d1, s0, s1, class_options], params)?;
    Ok(out)
}

/// Encodes a DR packet refusing or ending a connection: 11 bytes, TPKT header included, with no
/// parameters and no user data (docs/PROTOCOL.md §3.4).
///
/// `dst_ref` is the peer's reference, `src_ref` ours, `reason` one of the codes of
/// docs/PROTOCOL.md §3.9.
///
/// ```
/// use isotcp::proto::cotp;
///
/// assert_eq!(
///     cotp::encode_dr(0x0001, 0x0001, 0x84),
///     [0x03, 0x00, 0x00, 0x0B, 0x06, 0x80, 0x00, 0x01, 0x00, 0x01, 0x84]
/// );
/// ```
pub fn encode_dr(dst_ref: u16, src_ref: u16, reason: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(11);
    let [d0, d1] = dst_ref.to_be_bytes();
    let [s0, s1] = src_ref.to_be_bytes();
    // A fixed 7-byte header without parameters always fits.
    let _ = encode_with_params(&mut out, DR, &[d0, d1, s0, s1, reason], &[]);
    out
}

/// Encodes an ER packet, TPKT header included, quoting the rejected header in a
/// [`param::INVALID_TPDU`] parameter (docs/PROTOCOL.md §3.6).
///
/// `dst_ref` is the peer's reference and `cause` one of the ER causes of docs/PROTOCOL.md §3.9.
/// Only the first 64 bytes of `rejected` are quoted. The crate itself never sends an ER.
pub fn encode_er(dst_ref: u16, cause: u8, rejected: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    let [d0, d1] = dst_ref.to_be_bytes();
    let q = &rejected[..rejected.len().min(64)];
    // 5 fixed bytes and a quote of at most 64 bytes always fit.
    let _ = encode_with_params(&mut out, ER, &[d0, d1, cause], &[(param::INVALID_TPDU, q)]);
    out
}

/// Text for a DR reason code (docs/PROTOCOL.md §3.9); `"unknown reason"` for codes not listed
/// there.
pub fn dr_reason_text(reason: u8) -> &'static str {
    match reason {
        0x00 => "reason not specified",
        0x01 => "congestion at TSAP",
        0x02 => "session entity not attached to TSAP",
        0x03 => "address unknown",
        0x80 => "normal disconnect initiated by session entity",
        0x81 => "remote transport entity congestion at connect request time",
        0x82 => "connection negotiation failed",
        0x83 => "duplicate source reference",
        0x84 => "mismatched references",
        0x85 => "protocol error",
        0x87 => "reference overflow",
        0x88 => "connection request refused on this network connection",
        0x8A => "header or parameter length invalid",
        _ => "unknown reason",
    }
}

/// Text for an ER reject cause (docs/PROTOCOL.md §3.9); `"unknown cause"` for causes above 3.
pub fn er_cause_text(cause: u8) -> &'static str {
    match cause {
        0 => "reason not specified",
        1 => "invalid parameter code",
        2 => "invalid TPDU type",
        3 => "invalid parameter value",
        _ => "unknown cause",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dt_vectors() {
        assert_eq!(
            decode(&[2, 0xF0, 0x80, 0x32, 1, 0]),
            Ok(Tpdu::Dt {
                eot: true,
                payload: &[0x32, 1, 0]
            })
        );
        assert_eq!(
            decode(&[2, 0xF0, 0x00, 0x32, 1, 0]),
            Ok(Tpdu::Dt {
                eot: false,
                payload: &[0x32, 1, 0]
            })
        );
        assert_eq!(decode(&[3, 0xF0, 0x80, 0x32]), Err(ProtoError::DtLi(3)));
        assert_eq!(
            decode(&[2, 0xE0, 0x80, 0x32]),
            Err(ProtoError::HeaderTooShort { tpdu: "CR", li: 2 })
        );
        assert_eq!(decode(&[2, 0xF0, 0x81, 0x32]), Err(ProtoError::DtTpduNr(1)));
        assert_eq!(decode(&[2, 0xF1, 0x80]), Err(ProtoError::DtCode(0xF1)));
    }

    #[test]
    fn cc_from_a_plc_with_parameters_in_any_order() {
        let cc = [
            0x11, 0xD0, 0x00, 0x0F, 0x00, 0x0B, 0x00, 0xC0, 1, 0x0A, 0xC1, 2, 3, 0x11, 0xC2, 2, 1,
            0,
        ];
        let Tpdu::Cc(c) = decode(&cc).unwrap() else {
            panic!()
        };
        assert_eq!((c.dst_ref, c.src_ref, c.class_options), (0x000F, 0x000B, 0));
        assert_eq!(c.params.get(param::TPDU_SIZE), Some(&[0x0A][..]));
        assert_eq!(c.params.get(param::CALLING_TSAP), Some(&[3, 0x11][..]));
        assert_eq!(c.params.get(param::CALLED_TSAP), Some(&[1, 0][..]));
    }

    #[test]
    fn malformed_headers() {
        // LI pointing past the packet.
        assert_eq!(
            decode(&[0x20, 0xD0, 0, 1]),
            Err(ProtoError::BadLi { li: 0x20, room: 3 })
        );
        // A parameter running past the header.
        assert_eq!(
            decode(&[9, 0xD0, 0, 1, 0, 1, 0, 0xC1, 5, 1]),
            Err(ProtoError::ParamPastHeader {
                code: 0xC1,
                len: 5,
                room: 1
            })
        );
        // Bytes after a CC.
        assert_eq!(
            decode(&[6, 0xD0, 0, 1, 0, 1, 0, 9]),
            Err(ProtoError::TrailingBytes { tpdu: "CC", len: 1 })
        );
        // Class 0 has no AK, RJ, ED...
        assert_eq!(
            decode(&[4, 0x60, 0, 1, 0]),
            Err(ProtoError::UnexpectedTpdu(0x60))
        );
        assert_eq!(decode(&[0]), Err(ProtoError::TpduTooShort(1)));
        assert_eq!(
            decode(&[0, 0xF0]),
            Err(ProtoError::BadLi { li: 0, room: 1 })
        );
    }

    #[test]
    fn dr_and_er() {
        let dr = encode_dr(1, 0x44, 0x85);
        assert_eq!(dr, [3, 0, 0, 11, 6, 0x80, 0, 1, 0, 0x44, 0x85]);
        assert_eq!(
            decode(&dr[4..]),
            Ok(Tpdu::Dr {
                dst_ref: 1,
                src_ref: 0x44,
                reason: 0x85,
                params: Params(&[]),
                user_data: &[]
            })
        );
        let er = encode_er(1, 2, &[2, 0xF0]);
        let Tpdu::Er {
            dst_ref,
            cause,
            params,
        } = decode(&er[4..]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (dst_ref, cause, params.get(param::INVALID_TPDU)),
            (1, 2, Some(&[2, 0xF0][..]))
        );
    }
}
