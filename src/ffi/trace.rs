//! Frame tracing for diagnostics: every TPKT packet of a connection, to a callback or to a
//! capture file that Wireshark opens. Off by default; when off it costs nothing measurable.

use std::ffi::{c_char, c_void};
use std::path::Path;

use super::args::opt_c_str;
use super::boundary::with_handle;
use super::codes::ISO_OK;
use super::conn::iso_conn;

/// `direction` of a traced frame received from the peer.
pub const ISO_TRACE_RECEIVED: i32 = 0;
/// `direction` of a traced frame we sent.
pub const ISO_TRACE_SENT: i32 = 1;

/// Receives one traced frame: a whole TPKT packet (4-byte header included) as on the wire,
/// valid only during the call. `direction` is ISO_TRACE_SENT or ISO_TRACE_RECEIVED. Runs on the
/// thread doing the I/O, inside the library; it must return promptly and must not call isotcp
/// functions on the same connection.
#[allow(non_camel_case_types)]
pub type iso_trace_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, direction: i32, frame: *const u8, len: usize)>;

/// Installs (or with NULL `callback`, removes) a trace callback. May be called at any time, also while
/// connected; `user` is passed back unchanged and must stay valid while installed. Frames sent
/// are traced when handed to the socket (or to the send queue), frames received when processed.
/// Errors: ISO_E_INVALID (NULL conn). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_set_trace(
    conn: *mut iso_conn,
    callback: iso_trace_fn,
    user: *mut c_void,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        let user = user as usize;
        c.inner.set_trace_callback(callback.map(|f| {
            Box::new(move |sent: bool, frame: &[u8]| {
                let direction = if sent {
                    ISO_TRACE_SENT
                } else {
                    ISO_TRACE_RECEIVED
                };
                // SAFETY: the caller installed `f` and guarantees `user` stays valid.
                unsafe { f(user as *mut c_void, direction, frame.as_ptr(), frame.len()) }
            }) as crate::net::trace::TraceFn
        }));
        Ok(ISO_OK)
    })
}

/// Writes every frame of the connection to a pcap capture file at `path` (created or truncated;
/// NULL stops and closes it). Frames carry synthetic IP/TCP headers with the connection's real
/// addresses and ports, so Wireshark decodes TPKT/COTP/S7comm directly on port 102 (elsewhere:
/// Decode As TPKT, or `tshark -d tcp.port==PORT,tpkt`). The file is flushed after each frame.
/// If writing fails (disk full), file tracing stops and the connection carries on.
/// May be called at any time. Errors: ISO_E_INVALID (NULL conn, path not UTF-8), ISO_E_IO (the
/// file cannot be created). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_set_trace_file(conn: *mut iso_conn, path: *const c_char) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `path` is NULL or a NUL-terminated string (the header's pointer contract).
        let path = unsafe { opt_c_str(path, "path") }?;
        c.inner.set_trace_file(path.map(Path::new))?;
        Ok(ISO_OK)
    })
}
