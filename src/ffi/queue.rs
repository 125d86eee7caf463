//! Non-blocking sends for event loops: `iso_queue_send` never waits for the socket; what it
//! cannot write at once is queued, and `iso_flush` writes it when the socket is writable.
//!
//! A loop driving many connections from one thread waits on `iso_get_fd` for readability, and
//! also for writability while `iso_get_send_pending` reports queued bytes.

use super::args::{bytes, non_null, out_arg};
use super::boundary::with_handle;
use super::codes::ISO_OK;
use super::conn::{configure, iso_conn, ms};

/// Sends one whole message without blocking: the DTs the socket does not take at once are
/// copied into the connection's send queue, in order, to be written by `iso_flush` (or by the
/// next `iso_queue_send`/`iso_send`, which write queued bytes first). A message is always
/// accepted when nothing is queued; otherwise it must fit within the queue limit
/// (`iso_set_max_queued`).
/// Errors: ISO_E_INVALID (NULL data, len 0 or above PTRDIFF_MAX), ISO_E_STATE, ISO_E_TOO_LARGE
/// (above the maximum message), ISO_E_WOULD_BLOCK (the queue is full: nothing of this message
/// was queued; wait for writability and call `iso_flush`), ISO_E_CLOSED, ISO_E_IO, ISO_E_TLS.
/// After `iso_start_tls` the message is encrypted as by `iso_send` (its records one per DT
/// by default) and queued in order with every other send; a full queue is found before
/// anything is encrypted, so ISO_E_WOULD_BLOCK loses nothing.
/// Thread rules: as `iso_send`, with which it is serialised.
#[no_mangle]
pub unsafe extern "C" fn iso_queue_send(conn: *mut iso_conn, data: *const u8, len: usize) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        non_null(data, "data")?;
        // SAFETY: `data` is valid for `len` bytes (the header's pointer contract).
        let data = unsafe { bytes(data, len, "data") }?;
        #[cfg(feature = "tls")]
        if let Some(tls) = c.tls_session() {
            return tls.queue_send(&c.inner, data).map(|()| ISO_OK);
        }
        c.inner.queue_send(data).map(|()| ISO_OK)
    })
}

/// Writes queued bytes, waiting up to `timeout_ms` for the socket to take them. ISO_OK when the
/// queue is empty (also when nothing was queued). Bytes that do not go out stay queued, in order.
/// Errors: ISO_E_STATE, ISO_E_WOULD_BLOCK (timeout 0 and bytes remain), ISO_E_TIMEOUT,
/// ISO_E_CLOSED, ISO_E_IO.
/// Thread rules: as `iso_send`.
#[no_mangle]
pub unsafe extern "C" fn iso_flush(conn: *mut iso_conn, timeout_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        c.inner.flush(ms(timeout_ms)).map(|()| ISO_OK)
    })
}

/// Writes to `*out` the number of queued bytes not yet written (0 when not connected). While it
/// is above 0, wait for the socket to be writable and call `iso_flush(conn, 0)`.
/// Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_get_send_pending(conn: *const iso_conn, out: *mut usize) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        unsafe { out_arg(out, "out") }?.write(c.inner.send_pending());
        Ok(ISO_OK)
    })
}

/// Sets how many bytes `iso_queue_send` may hold queued (0..268435456, default 262144). A
/// message is always accepted when the queue is empty, so the bound is this limit plus one
/// message.
/// Errors: ISO_E_INVALID (above the range), ISO_E_STATE (connected).
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_max_queued(conn: *mut iso_conn, bytes: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        c.transfer_mut().set_max_queued(bytes as usize)
    })
}
