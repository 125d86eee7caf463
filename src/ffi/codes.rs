//! Stable result codes. Values are part of the ABI: never renumber, only add.

use std::ffi::c_char;

use crate::error::{Error, StateKind};

/// Success.
pub const ISO_OK: i32 = 0;
/// Invalid argument: NULL pointer, bad host string, TSAP empty or too long, TPDU size not allowed, empty message.
pub const ISO_E_INVALID: i32 = -1;
/// Not allowed now: send/recv before connect, connect while connected, a setter after connect.
pub const ISO_E_STATE: i32 = -2;
/// The host name could not be resolved.
pub const ISO_E_RESOLVE: i32 = -3;
/// The TCP connection was refused.
pub const ISO_E_REFUSED: i32 = -4;
/// The operation's deadline passed; nothing received is lost.
pub const ISO_E_TIMEOUT: i32 = -5;
/// Timeout 0 was given and the operation cannot complete now.
pub const ISO_E_WOULD_BLOCK: i32 = -6;
/// The peer closed or reset the connection (also during COTP connect), or ended it with DR/ER.
pub const ISO_E_CLOSED: i32 = -7;
/// The peer refused the COTP connection with DR or ER (reason/cause in the last error).
pub const ISO_E_REJECTED: i32 = -8;
/// Malformed or unexpected TPKT/COTP data from the peer; the connection is closed.
pub const ISO_E_PROTOCOL: i32 = -9;
/// A message above a limit (send above the maximum message size; received message above the receive limit).
pub const ISO_E_TOO_LARGE: i32 = -10;
/// The caller's buffer is too small; `*out_len` gets the size needed; the message stays queued.
pub const ISO_E_BUFFER_TOO_SMALL: i32 = -11;
/// Other operating-system error (OS error code in the last error).
pub const ISO_E_IO: i32 = -12;
/// Internal error caught at the boundary; the handle is now poisoned.
pub const ISO_E_PANIC: i32 = -13;
/// The handle is unusable after an internal error; destroy it.
pub const ISO_E_POISONED: i32 = -14;
/// TLS failed: handshake, certificate rejected, a bad record or an alert (the last error says
/// which).
pub const ISO_E_TLS: i32 = -15;

/// The code for an error: one exhaustive mapping.
pub fn code_of(e: &Error) -> i32 {
    match e {
        Error::Invalid(_) => ISO_E_INVALID,
        Error::State { .. } => ISO_E_STATE,
        Error::Resolve { .. } => ISO_E_RESOLVE,
        Error::Refused { .. } => ISO_E_REFUSED,
        Error::Timeout(_) => ISO_E_TIMEOUT,
        Error::WouldBlock(_) => ISO_E_WOULD_BLOCK,
        Error::Closed { .. } => ISO_E_CLOSED,
        Error::Rejected(_) => ISO_E_REJECTED,
        Error::Protocol(_) => ISO_E_PROTOCOL,
        Error::TooLarge(_) => ISO_E_TOO_LARGE,
        Error::BufferTooSmall { .. } => ISO_E_BUFFER_TOO_SMALL,
        Error::Io { .. } => ISO_E_IO,
        Error::Tls(_) => ISO_E_TLS,
    }
}

/// What a C caller should do about an error, naming the C function, where the Rust message
/// (which speaks of operations, not of C functions) leaves it open.
pub(crate) fn hint(e: &Error) -> Option<&'static str> {
    let Error::State { kind, .. } = e else {
        return None;
    };
    Some(match kind {
        StateKind::NotConnected => "call iso_connect first",
        StateKind::AlreadyConnected | StateKind::SettingsLocked => "call iso_disconnect first",
        StateKind::Interrupted => "iso_disconnect was called on this handle",
        StateKind::Passive => "accept a new connection with iso_accept",
        StateKind::ListenerShutDown => "destroy it with iso_listener_destroy",
        StateKind::TlsNotStarted => "call iso_start_tls first",
        _ => return None,
    })
}

/// Static text for each code (NUL-terminated for C).
fn text_of(code: i32) -> &'static str {
    match code {
        ISO_OK => "success\0",
        ISO_E_INVALID => "invalid argument\0",
        ISO_E_STATE => "operation not allowed in the current state\0",
        ISO_E_RESOLVE => "host name could not be resolved\0",
        ISO_E_REFUSED => "TCP connection refused\0",
        ISO_E_TIMEOUT => "deadline passed\0",
        ISO_E_WOULD_BLOCK => "operation would block\0",
        ISO_E_CLOSED => "connection closed by peer\0",
        ISO_E_REJECTED => "COTP connection rejected by peer\0",
        ISO_E_PROTOCOL => "protocol error in TPKT/COTP data from the peer\0",
        ISO_E_TOO_LARGE => "message above a limit\0",
        ISO_E_BUFFER_TOO_SMALL => "buffer too small\0",
        ISO_E_IO => "operating-system error\0",
        ISO_E_PANIC => "internal error; the handle is poisoned\0",
        ISO_E_POISONED => "handle unusable after an internal error\0",
        ISO_E_TLS => "TLS failure (handshake, certificate, record or alert)\0",
        _ => "unknown isotcp result code\0",
    }
}

/// Static text describing a result code. Never NULL, never to be freed; an unknown code gives
/// a text saying so. Thread-safe.
#[no_mangle]
pub extern "C" fn iso_strerror(code: i32) -> *const c_char {
    text_of(code).as_ptr().cast()
}
