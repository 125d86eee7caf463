//! `iso_listener`: the passive (PLC or gateway) side, `iso_listen` ... `iso_listener_destroy`.
//!
//! Thread rules: `iso_accept` calls on one listener are serialised (a second waits for the first);
//! setters may be called at any time and apply to handshakes judged afterwards;
//! `iso_listener_destroy` must be the last call, with no other call in progress.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

use super::args::{bytes, non_null, opt_c_str, out_arg};
use super::boundary::{with_handle, without_handle, Handle, HandleState};
use super::codes::ISO_OK;
use super::conn::{iso_conn, ms};
use super::text::last_error_out;
use crate::error::Error;
use crate::net::Listener;
use crate::proto::tsap::Tsap;

/// A listening endpoint (opaque). Create with `iso_listen`, free with `iso_listener_destroy`.
#[allow(non_camel_case_types)]
pub struct iso_listener {
    inner: Listener,
    state: HandleState,
    /// The refusal count when `state` last recorded something: a refusal since then is newer
    /// than the recorded error, so the last error reports it (also while `iso_accept` waits).
    refusals_seen: AtomicU64,
}

impl Handle for iso_listener {
    fn state(&self) -> &HandleState {
        &self.state
    }
}

/// Decides on a valid CR: `calling`/`called` are the CR's TSAPs (length 0 when absent; valid
/// only during the call). Return 0 to accept, or 1..255 to refuse with that DR reason (e.g. 0x03
/// "address unknown", 0x81 "congestion"); any other value refuses with 0x03. Runs on the thread
/// calling `iso_accept`; must not call functions of the same listener.
#[allow(non_camel_case_types)]
pub type iso_cr_filter = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        calling: *const u8,
        calling_len: usize,
        called: *const u8,
        called_len: usize,
    ) -> i32,
>;

/// Listens on `bind_host` and `port`. `bind_host` NULL, "" or "::" listens on every IPv6 and
/// IPv4 address; "0.0.0.0" on every IPv4 address; "127.0.0.1", "::1" or a host name on that
/// address. Port 0 picks a free port (see `iso_listener_port`).
/// Defaults: grants TPDU sizes up to 8192, a client has 5000 ms to send its CR, 64 handshakes
/// pending at most, any called TSAP accepted; accepted connections get the defaults of
/// `iso_create` (maximum message 65536, send timeout 5000 ms, keep-alive).
/// On error `*out` is NULL and `iso_thread_last_error` has the message.
/// Errors: ISO_E_INVALID (NULL out, bad host), ISO_E_RESOLVE, ISO_E_IO (e.g. port in use).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listen(
    bind_host: *const c_char,
    port: u16,
    out: *mut *mut iso_listener,
) -> i32 {
    without_handle(|| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        out.write(std::ptr::null_mut());
        // SAFETY: `bind_host` is NULL or a NUL-terminated string (the header's pointer contract).
        let host = unsafe { opt_c_str(bind_host, "bind_host") }?;
        let l = Listener::bind(host, port)?;
        out.write(Box::into_raw(Box::new(iso_listener {
            inner: l,
            state: HandleState::default(),
            refusals_seen: AtomicU64::new(0),
        })));
        Ok(ISO_OK)
    })
}

/// Stops listening and frees the listener. Connections it accepted stay open (each is destroyed
/// on its own); handshakes still pending are closed. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_destroy(l: *mut iso_listener) {
    if l.is_null() {
        return;
    }
    let _ = without_handle(|| {
        // SAFETY: not NULL, so a listener from `iso_listen` (made by `Box::into_raw`) that no
        // other call uses any more, as this function requires.
        drop(unsafe { Box::from_raw(l) });
        Ok(ISO_OK)
    });
}

/// Stops accepting for good, from any thread: a thread blocked in `iso_accept` on this listener
/// returns ISO_E_STATE promptly, later `iso_accept` calls return ISO_E_STATE, handshakes in
/// progress are closed. Connections already accepted are not affected. Call it before
/// `iso_listener_destroy` when another thread may be in `iso_accept`; destroy only after that
/// thread has returned. Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_shutdown(l: *const iso_listener) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", true, |l| {
        l.inner.shutdown();
        Ok(ISO_OK)
    })
}

/// Writes the port listened on to `*out`. Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_port(l: *const iso_listener, out: *mut u16) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        unsafe { out_arg(out, "out") }?.write(l.inner.port());
        Ok(ISO_OK)
    })
}

/// Waits up to `timeout_ms` for a client with a valid, accepted CR; answers it with a CC
/// (DST-REF = its SRC-REF, TPDU = min(requested, maximum), 128 when the CR had none, both TSAPs
/// echoed) and writes the new connection to `*out`, which works like a connected `iso_conn`
/// (except that it cannot `iso_connect`; destroy it with `iso_destroy`).
/// Clients run their handshakes side by side: a slow or silent one delays nobody and is closed
/// after the CR timeout. An invalid or filtered CR is answered with DR and closed, counted in
/// `iso_listener_refused_count` and described by `iso_listener_last_error`; the wait goes on.
/// Timeout 0 never blocks: ISO_E_WOULD_BLOCK when no client is ready.
/// Errors: ISO_E_INVALID (NULL), ISO_E_TIMEOUT, ISO_E_WOULD_BLOCK, ISO_E_IO. `*out` is written
/// only on success.
/// Thread rules: concurrent calls on one listener are serialised.
#[no_mangle]
pub unsafe extern "C" fn iso_accept(
    l: *mut iso_listener,
    timeout_ms: u32,
    out: *mut *mut iso_conn,
) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        let refused_before = l.inner.refused_count();
        let result = l.inner.accept(ms(timeout_ms));
        let refused_after = l.inner.refused_count();
        let refused_meanwhile = refused_after != refused_before;
        // Whatever this call records below already covers the refusals so far.
        l.refusals_seen.store(refused_after, Ordering::Relaxed);
        let conn = match result {
            // Keep what was refused visible in the last error, beside the timeout.
            Err(Error::Timeout(w)) if refused_meanwhile => {
                return Err(Error::Timeout(std::borrow::Cow::Owned(format!(
                    "{w} (refused meanwhile: {})",
                    l.inner.last_refusal()
                ))))
            }
            Err(Error::WouldBlock(w)) if refused_meanwhile => {
                return Err(Error::WouldBlock(std::borrow::Cow::Owned(format!(
                    "{w} (refused meanwhile: {})",
                    l.inner.last_refusal()
                ))))
            }
            Ok(conn) if refused_meanwhile => {
                l.state.record(&l.inner.last_refusal());
                conn
            }
            other => other?,
        };
        out.write(Box::into_raw(Box::new(iso_conn::new(conn))));
        Ok(ISO_OK)
    })
}

/// Writes a descriptor for event loops to `*out`: it becomes readable when `iso_accept(l, 0, ...)`
/// may have work (a new client, or data from a client still in its handshake). On Linux it is an
/// epoll descriptor covering the listening socket and pending handshakes; elsewhere it is the
/// listening socket, and a loop should also call `iso_accept(l, 0, ...)` when
/// `iso_listener_next_timeout` expires. Do not read, close or modify it.
/// Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_get_fd(l: *const iso_listener, out: *mut i64) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        unsafe { out_arg(out, "out") }?.write(l.inner.raw_handle());
        Ok(ISO_OK)
    })
}

/// Writes to `*out` the milliseconds until an event loop should call `iso_accept(l, 0, ...)`
/// even if `iso_listener_get_fd` stayed quiet, or UINT32_MAX when no handshake is pending: the
/// earliest CR timeout, and on systems where that descriptor is only the listening socket (not
/// Linux) at most 20 ms while handshakes are pending, since their CRs do not wake it there.
/// Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_next_timeout(l: *const iso_listener, out: *mut u32) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        out.write(
            l.inner
                .next_timeout()
                .map_or(u32::MAX, |d| d.as_millis().min(u32::MAX as u128 - 1) as u32),
        );
        Ok(ISO_OK)
    })
}

/// Sets the largest TPDU size granted: 128, 256, ..., 8192 (default 8192).
/// Errors: ISO_E_INVALID (another value or NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_set_max_tpdu(l: *mut iso_listener, size: u32) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        l.inner.configure(|c| c.set_max_tpdu(size).map(|()| ISO_OK))
    })
}

/// Sets how long a client has to send its CR after connecting (1..3600000 ms, default 5000).
/// Errors: ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_set_cr_timeout(l: *mut iso_listener, timeout_ms: u32) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        l.inner
            .configure(|c| c.set_cr_timeout(ms(timeout_ms)).map(|()| ISO_OK))
    })
}

/// Sets the most handshakes waiting for their CR at once (1..65536, default 64); beyond it the
/// oldest is closed. Errors: ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_set_max_pending(l: *mut iso_listener, count: u32) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        l.inner
            .configure(|c| c.set_max_pending(count as usize).map(|()| ISO_OK))
    })
}

/// Sets the send-queue limit (`iso_set_max_queued`) of connections accepted from now on
/// (0..268435456, default 262144). Errors: ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_set_max_queued(l: *mut iso_listener, bytes: u32) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        l.inner.configure(|c| {
            c.transfer_mut()
                .set_max_queued(bytes as usize)
                .map(|()| ISO_OK)
        })
    })
}

/// Sets the maximum message size of connections accepted from now on (128..16777216).
/// Errors: ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_set_max_message(l: *mut iso_listener, bytes: u32) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        l.inner.configure(|c| {
            c.transfer_mut()
                .set_max_message(bytes as usize)
                .map(|()| ISO_OK)
        })
    })
}

/// Adds a called TSAP (1..32 bytes, copied) to the ones served. While the list is empty every
/// TSAP is accepted; once it has entries, a CR calling another TSAP is refused with DR reason
/// 0x03 (address unknown). Errors: ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_allow_tsap(
    l: *mut iso_listener,
    tsap: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        non_null(tsap, "tsap")?;
        // SAFETY: `tsap` is valid for `len` bytes (the header's pointer contract).
        let tsap = unsafe { bytes(tsap, len, "tsap") }?;
        let t = Tsap::new(tsap).map_err(|e| Error::Invalid(e.to_string()))?;
        l.inner.configure(|c| c.allow_called(t).map(|()| ISO_OK))
    })
}

/// Installs (or with NULL `filter`, removes) a function deciding on each valid CR, after the
/// TSAP list. `user` is passed back unchanged and must stay valid while installed.
/// Errors: ISO_E_INVALID (NULL listener). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_set_filter(
    l: *mut iso_listener,
    filter: iso_cr_filter,
    user: *mut c_void,
) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        let user = user as usize;
        l.inner.configure(|c| {
            c.set_filter(filter.map(|f| {
                Box::new(move |cr: &crate::proto::responder::CrInfo| {
                    let empty = Tsap::from_wire(&[]);
                    let calling = cr.calling.as_ref().unwrap_or(&empty).as_bytes();
                    let called = cr.called.as_ref().unwrap_or(&empty).as_bytes();
                    // SAFETY: the caller installed `f` and guarantees `user` stays valid.
                    let verdict = unsafe {
                        f(
                            user as *mut c_void,
                            calling.as_ptr(),
                            calling.len(),
                            called.as_ptr(),
                            called.len(),
                        )
                    };
                    match verdict {
                        0 => Ok(()),
                        1..=255 => Err(verdict as u8),
                        _ => Err(crate::proto::responder::reason::ADDRESS_UNKNOWN),
                    }
                }) as crate::net::listener::CrFilter
            }));
            Ok(ISO_OK)
        })
    })
}

/// Writes the number of handshakes refused or dropped (bad CR, filter, CR timeout, overflow) to
/// `*out`. Errors: ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_refused_count(l: *const iso_listener, out: *mut u64) -> i32 {
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    with_handle(unsafe { l.as_ref() }, "listener", false, |l| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        unsafe { out_arg(out, "out") }?.write(l.inner.refused_count());
        Ok(ISO_OK)
    })
}

/// The listener's last error or refusal (e.g. "127.0.0.1:40112: CR refused with DR reason 0x84
/// (mismatched references): CR DST-REF is 0x0005, must be 0"), copied as by `iso_last_error`.
#[no_mangle]
pub unsafe extern "C" fn iso_listener_last_error(
    l: *const iso_listener,
    buf: *mut c_char,
    cap: usize,
    out_needed: *mut usize,
) -> i32 {
    let mut text = None;
    // SAFETY: `l` is NULL or a live listener (the header's pointer contract).
    let rc = with_handle(unsafe { l.as_ref() }, "listener", true, |l| {
        let refusals = l.inner.refused_count();
        text = Some(if refusals != l.refusals_seen.load(Ordering::Relaxed) {
            l.inner.last_refusal()
        } else {
            l.state.last_error()
        });
        Ok(ISO_OK)
    });
    match text {
        // SAFETY: `buf` is NULL or valid for `cap` bytes, `out_needed` NULL or valid for one
        // write (the header's pointer contract).
        Some(t) => unsafe { last_error_out(&t, buf, cap, out_needed) },
        None => rc,
    }
}
