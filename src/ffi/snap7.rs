//! Help for programs that come from snap7: the snap7 error value closest to an isotcp code, for
//! logs and error paths that expect snap7's numbers (MIGRATING.md maps the rest).

use super::codes::*;

// snap7's TCP error values (low 16 bits) and ISO error values (bits 16..19).
const ERR_TCP_CONNECTION_FAILED: i32 = 0x0000_0003;
const ERR_TCP_RECEIVE_TIMEOUT: i32 = 0x0000_0004;
const ERR_TCP_DATA_RECEIVE: i32 = 0x0000_0005;
const ERR_TCP_CONNECTION_RESET: i32 = 0x0000_0008;
const ERR_TCP_NOT_CONNECTED: i32 = 0x0000_0009;
const ERR_ISO_CONNECT: i32 = 0x0001_0000;
const ERR_ISO_INVALID_PDU: i32 = 0x0003_0000;
const ERR_ISO_INVALID_DATA_SIZE: i32 = 0x0004_0000;
const ERR_ISO_PDU_OVERFLOW: i32 = 0x0008_0000;
const ERR_ISO_INVALID_PARAMS: i32 = 0x000B_0000;

/// The snap7 error value closest to an isotcp code: 0 for ISO_OK; for example ISO_E_REFUSED ->
/// 0x0003 (errTCPConnectionFailed), ISO_E_TIMEOUT -> 0x0004 (errTCPReceiveTimeout),
/// ISO_E_CLOSED -> 0x0008 (errTCPConnectionReset), ISO_E_REJECTED -> 0x00010000
/// (errIsoConnect), ISO_E_PROTOCOL -> 0x00030000 (errIsoInvalidPDU). The full table is in
/// MIGRATING.md. An unknown code gives 0x000B0000 (errIsoInvalidParams). Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn iso_snap7_error(code: i32) -> i32 {
    match code {
        ISO_OK => 0,
        ISO_E_INVALID => ERR_ISO_INVALID_PARAMS,
        ISO_E_STATE => ERR_TCP_NOT_CONNECTED,
        ISO_E_RESOLVE | ISO_E_REFUSED => ERR_TCP_CONNECTION_FAILED,
        ISO_E_TIMEOUT | ISO_E_WOULD_BLOCK => ERR_TCP_RECEIVE_TIMEOUT,
        ISO_E_CLOSED => ERR_TCP_CONNECTION_RESET,
        ISO_E_REJECTED => ERR_ISO_CONNECT,
        ISO_E_PROTOCOL => ERR_ISO_INVALID_PDU,
        ISO_E_TOO_LARGE => ERR_ISO_PDU_OVERFLOW,
        ISO_E_BUFFER_TOO_SMALL => ERR_ISO_INVALID_DATA_SIZE,
        ISO_E_IO => ERR_TCP_DATA_RECEIVE,
        ISO_E_PANIC | ISO_E_POISONED => ERR_TCP_NOT_CONNECTED,
        ISO_E_TLS => ERR_ISO_CONNECT,
        _ => ERR_ISO_INVALID_PARAMS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_a_snap7_value() {
        assert_eq!(iso_snap7_error(ISO_OK), 0);
        for code in ISO_E_TLS..=ISO_E_INVALID {
            let v = iso_snap7_error(code);
            assert!(v > 0, "code {code}");
            // A snap7 value is either a TCP error (low 16 bits) or an ISO error (bits 16..19).
            assert!(
                v & !0xF_FFFF == 0 && (v & 0xFFFF == 0) != (v & 0xF_0000 == 0),
                "{code}: {v:#x}"
            );
        }
        assert_eq!(iso_snap7_error(ISO_E_REJECTED), 0x0001_0000);
        assert_eq!(iso_snap7_error(12345), 0x000B_0000);
    }
}
