//! TSAPs (transport service access points) and the two routing encodings
//! (docs/PROTOCOL.md §6, §7).
//!
//! A TSAP is an opaque byte string carried in the CR and CC as C1 (calling) or C2 (called).
//! S7 CPUs are addressed by a two-byte called TSAP built from connection type, rack and slot:
//!
//! ```
//! use isotcp::proto::tsap::{rack_slot, Tsap};
//!
//! // S7 basic communication (type 3) to rack 1, slot 3 (docs/PROTOCOL.md §6.2).
//! let called = Tsap::s7(3, 1, 3)?;
//! assert_eq!(called.as_bytes(), &[0x03, 0x23]);
//! assert_eq!(called, Tsap::from_u16(0x0323));
//! assert_eq!(called.to_string(), "0x0323");
//! assert_eq!(rack_slot(0, 2)?, 0x02);
//! assert!(Tsap::s7(1, 8, 0).is_err()); // rack above 7
//! # Ok::<(), isotcp::proto::ProtoError>(())
//! ```

use std::fmt;

use super::ProtoError;

/// Longest TSAP accepted from a caller (the extended routing TSAPs are 28 bytes).
pub const MAX_TSAP_LEN: usize = 32;

/// A TSAP: 1 to 32 bytes. Most S7 TSAPs are 2 bytes (`0x0102`); S7CommPlus uses ASCII strings.
///
/// [`Tsap::new`] checks the 1 to 32 bytes; [`Tsap::from_wire`] takes a peer's TSAP at any
/// length. `Display` (and `Debug`) show printable ASCII of 3 bytes or more quoted,
/// anything else as hex: `0x0102`, `"SIMATIC-ROOT-HMI"` (docs/PROTOCOL.md §6.1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tsap(Vec<u8>);

impl Tsap {
    /// A TSAP from a caller: a copy of `bytes`.
    ///
    /// # Errors
    ///
    /// [`ProtoError::BadTsapLen`] when `bytes` is empty or longer than [`MAX_TSAP_LEN`].
    ///
    /// ```
    /// use isotcp::proto::tsap::Tsap;
    ///
    /// let hmi = Tsap::new(b"SIMATIC-ROOT-HMI")?;
    /// assert_eq!(hmi.as_bytes().len(), 16); // no terminating NUL (docs/PROTOCOL.md §6.3)
    /// assert_eq!(hmi.to_string(), "\"SIMATIC-ROOT-HMI\"");
    /// assert!(Tsap::new(&[]).is_err());
    /// # Ok::<(), isotcp::proto::ProtoError>(())
    /// ```
    pub fn new(bytes: &[u8]) -> Result<Self, ProtoError> {
        if bytes.is_empty() || bytes.len() > MAX_TSAP_LEN {
            return Err(ProtoError::BadTsapLen(bytes.len()));
        }
        Ok(Tsap(bytes.to_vec()))
    }

    /// A two-byte TSAP, high byte first: `0x0102` is `01 02`.
    pub fn from_u16(v: u16) -> Self {
        Tsap(v.to_be_bytes().to_vec())
    }

    /// A TSAP as it arrived in a CR or CC; any length the parameter allows, even 0.
    ///
    /// No check is made, so this is for values read from the wire, not for values to send: a
    /// TSAP longer than 255 bytes cannot be encoded (see [`ConnectRequest::encode`]).
    ///
    /// [`ConnectRequest::encode`]: super::handshake::ConnectRequest::encode
    pub fn from_wire(bytes: &[u8]) -> Self {
        Tsap(bytes.to_vec())
    }

    /// The TSAP's bytes, as they go into the C1 or C2 parameter.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The S7 remote TSAP for a connection type (1 PG, 2 OP, 3..0x10 S7 basic), rack and slot:
    /// `conn_type` in the first byte, [`rack_slot`] in the second (docs/PROTOCOL.md §6.2).
    ///
    /// `conn_type` is written as it is, without a range check (the C ABI's `iso_s7_tsap` checks
    /// it).
    ///
    /// # Errors
    ///
    /// [`ProtoError::BadRackSlot`] when `rack` is above 7 or `slot` above 31.
    pub fn s7(conn_type: u8, rack: u8, slot: u8) -> Result<Self, ProtoError> {
        Ok(Tsap(vec![conn_type, rack_slot(rack, slot)?]))
    }
}

/// `rack << 5 | slot` (rack 0..7, slot 0..31). PLC4X's `rack << 4` is wrong for rack > 0.
///
/// The low byte of an S7 TSAP and of the routing destinations (docs/PROTOCOL.md §6.2, §7).
///
/// # Errors
///
/// [`ProtoError::BadRackSlot`] when `rack` is above 7 or `slot` above 31.
pub fn rack_slot(rack: u8, slot: u8) -> Result<u8, ProtoError> {
    if rack > 7 || slot > 31 {
        return Err(ProtoError::BadRackSlot { rack, slot });
    }
    Ok(rack << 5 | slot)
}

impl fmt::Display for Tsap {
    /// Printable ASCII strings of 3 or more bytes are shown quoted; anything else as hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 2 && self.0.iter().all(|b| b.is_ascii_graphic()) {
            write!(f, "\"{}\"", String::from_utf8_lossy(&self.0))
        } else {
            f.write_str("0x")?;
            self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
        }
    }
}

impl fmt::Debug for Tsap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// python-snap7 3.x routing: parameters `C6 02 <subnet:2>` and `C7 02 01 <rack<<5|slot>`,
/// appended after C0. Only python-snap7's own server is known to accept it.
///
/// The result goes into [`ConnectRequest::extra`]; the TSAPs stay as they are, the called one
/// addressing the gateway (docs/PROTOCOL.md §7.1). `subnet_id` is the S7 subnet ID of the
/// destination, `dest_rack` and `dest_slot` the destination CPU's.
///
/// [`ConnectRequest::extra`]: super::handshake::ConnectRequest::extra
///
/// # Errors
///
/// [`ProtoError::BadRackSlot`] when `dest_rack` is above 7 or `dest_slot` above 31.
///
/// ```
/// use isotcp::proto::tsap::snap7_routing_params;
///
/// assert_eq!(
///     snap7_routing_params(0x0001, 0, 3)?,
///     vec![(0xC6, vec![0x00, 0x01]), (0xC7, vec![0x01, 0x03])]
/// );
/// # Ok::<(), isotcp::proto::ProtoError>(())
/// ```
pub fn snap7_routing_params(
    subnet_id: u16,
    dest_rack: u8,
    dest_slot: u8,
) -> Result<Vec<(u8, Vec<u8>)>, ProtoError> {
    Ok(vec![
        (0xC6, subnet_id.to_be_bytes().to_vec()),
        (0xC7, vec![0x01, rack_slot(dest_rack, dest_slot)?]),
    ])
}

/// The S7 routing form used by real Siemens gateways: both TSAPs become 28-byte extended TSAPs.
///
/// Layout in docs/PROTOCOL.md §7.2; [`S7Route::tsaps`] builds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S7Route {
    /// S7 subnet ID as shown in STEP 7 ("0152-0013" is `0x0152`, `0x0013`): the first group.
    pub subnet_high: u16,
    /// The second group of the subnet ID (`0x0013` in "0152-0013").
    pub subnet_low: u16,
    /// Destination address: 1 byte for MPI/PROFIBUS, 4 for IPv4 (at most 16).
    pub dest_addr: Vec<u8>,
    /// Connection type of the destination (1 PG, 2 OP, 3.. S7 basic); also used locally.
    pub conn_type: u8,
    /// Rack of the destination CPU, 0 to 7.
    pub dest_rack: u8,
    /// Slot of the destination CPU, 0 to 31.
    pub dest_slot: u8,
}

impl S7Route {
    /// (calling, called) extended TSAPs, 28 bytes each (docs/PROTOCOL.md §7.2).
    ///
    /// They replace both TSAPs of the [`ConnectRequest`]; with no `extra` parameters the CR is
    /// then 74 bytes on the wire.
    /// `conn_type` is written as it is, in both TSAPs.
    ///
    /// [`ConnectRequest`]: super::handshake::ConnectRequest
    ///
    /// # Errors
    ///
    /// - [`ProtoError::BadRouteAddrLen`] when `dest_addr` is empty or longer than 16 bytes;
    /// - [`ProtoError::BadRackSlot`] when `dest_rack` is above 7 or `dest_slot` above 31.
    ///
    /// ```
    /// use isotcp::proto::tsap::S7Route;
    ///
    /// // Station 2 on subnet 0152-0013, PG connection to rack 0, slot 2.
    /// let route = S7Route {
    ///     subnet_high: 0x0152,
    ///     subnet_low: 0x0013,
    ///     dest_addr: vec![2],
    ///     conn_type: 1,
    ///     dest_rack: 0,
    ///     dest_slot: 2,
    /// };
    /// let (calling, called) = route.tsaps()?;
    /// assert_eq!(calling.as_bytes().len(), 28);
    /// assert_eq!(&called.as_bytes()[..10], &[0x01, 0x06, 0x01, 0x02, 0x01, 0x52, 0, 0, 0, 0x13]);
    /// assert_eq!(&called.as_bytes()[26..], &[0x01, 0x02]);
    /// # Ok::<(), isotcp::proto::ProtoError>(())
    /// ```
    pub fn tsaps(&self) -> Result<(Tsap, Tsap), ProtoError> {
        if self.dest_addr.is_empty() || self.dest_addr.len() > 16 {
            return Err(ProtoError::BadRouteAddrLen(self.dest_addr.len()));
        }
        let mut calling = vec![0x01, 0x00, 0x00, 0x02];
        calling.resize(26, 0);
        calling.extend_from_slice(&[self.conn_type, 0x00]);

        let mut called = vec![0x01, 0x06, self.dest_addr.len() as u8, 0x02];
        called.extend_from_slice(&self.subnet_high.to_be_bytes());
        called.extend_from_slice(&[0, 0]);
        called.extend_from_slice(&self.subnet_low.to_be_bytes());
        called.extend_from_slice(&self.dest_addr);
        called.resize(26, 0);
        called.extend_from_slice(&[self.conn_type, rack_slot(self.dest_rack, self.dest_slot)?]);
        Ok((Tsap(calling), Tsap(called)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::handshake::ConnectRequest;
    use super::*;
    use crate::proto::test_util::hex;

    #[test]
    fn rack_slot_tsaps() {
        assert_eq!(Tsap::s7(1, 0, 2).unwrap().as_bytes(), &[0x01, 0x02]);
        assert_eq!(Tsap::s7(3, 1, 3).unwrap().as_bytes(), &[0x03, 0x23]);
        assert!(Tsap::s7(1, 8, 0).is_err());
        assert!(Tsap::s7(1, 0, 32).is_err());
        assert_eq!(Tsap::new(b"").unwrap_err(), ProtoError::BadTsapLen(0));
        assert_eq!(Tsap::new(&[0; 33]).unwrap_err(), ProtoError::BadTsapLen(33));
        assert_eq!(Tsap::from_u16(0x0102).to_string(), "0x0102");
        assert_eq!(
            Tsap::new(b"SIMATIC-ROOT-HMI").unwrap().to_string(),
            "\"SIMATIC-ROOT-HMI\""
        );
    }

    #[test]
    fn snap7_routing_is_the_wire_vector() {
        let req = ConnectRequest {
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: 1024,
            extra: snap7_routing_params(1, 0, 3).unwrap(),
        };
        assert_eq!(
            req.encode().unwrap(),
            hex("03 00 00 1E 19 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A C6 02 00 01 C7 02 01 03")
        );
    }

    #[test]
    fn s7_routing_is_the_74_byte_wire_vector() {
        let route = S7Route {
            subnet_high: 0x0152,
            subnet_low: 0x0013,
            dest_addr: vec![2],
            conn_type: 1,
            dest_rack: 0,
            dest_slot: 2,
        };
        let (calling, called) = route.tsaps().unwrap();
        let req = ConnectRequest {
            calling,
            called,
            tpdu_size: 1024,
            extra: vec![],
        };
        let expected = hex(
            "03 00 00 4A 45 E0 00 00 00 01 00
             C1 1C 01 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00
             C2 1C 01 06 01 02 01 52 00 00 00 13 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 02
             C0 01 0A",
        );
        assert_eq!(expected.len(), 74);
        assert_eq!(req.encode().unwrap(), expected);
    }
}
