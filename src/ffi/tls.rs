//! TLS inside COTP through the C ABI: `iso_tls_config_*`, `iso_start_tls` and what a started
//! session offers (the exporter, the peer's certificate). After `iso_start_tls`, `iso_send`,
//! `iso_recv`, `iso_poll` and `iso_queue_send` carry TLS.
//!
//! A build without the `tls` feature keeps every export, so the header is the same for every
//! build: each then fails with ISO_E_INVALID and says the library was built without TLS
//! (`iso_tls_active` answers 0).

use std::ffi::c_char;

use parking_lot::Mutex;

use super::args::{bytes, bytes_mut, c_str, non_null, opt_c_str, out_arg};
use super::boundary::{with_handle, without_handle, Handle, HandleState};
use super::codes::ISO_OK;
use super::conn::iso_conn;
use crate::error::{Error, StateKind};
#[cfg(feature = "tls")]
use crate::net::tls::TlsConfig;
#[cfg(not(feature = "tls"))]
use without_tls::TlsConfig;

/// TLS settings (opaque): what to verify and what to present. Create with
/// `iso_tls_config_create`, free with `iso_tls_config_destroy`; `iso_start_tls` copies it.
#[allow(non_camel_case_types)]
pub struct iso_tls_config {
    inner: Mutex<TlsConfig>,
    state: HandleState,
}

impl Handle for iso_tls_config {
    fn state(&self) -> &HandleState {
        &self.state
    }
}

fn set(cfg: *mut iso_tls_config, f: impl FnOnce(&mut TlsConfig) -> Result<(), Error>) -> i32 {
    // SAFETY: `cfg` is NULL or a live config (the header's pointer contract).
    with_handle(unsafe { cfg.as_ref() }, "cfg", false, |c| {
        if cfg!(not(feature = "tls")) {
            return Err(unsupported());
        }
        f(&mut c.inner.lock()).map(|()| ISO_OK)
    })
}

/// Creates a TLS configuration that verifies nothing yet: set a CA file, a pin, or (labs only)
/// insecure before `iso_start_tls`. On error `*out` is NULL. Errors: ISO_E_INVALID (NULL out;
/// a library built without TLS).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_create(out: *mut *mut iso_tls_config) -> i32 {
    without_handle(|| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        out.write(std::ptr::null_mut());
        if cfg!(not(feature = "tls")) {
            return Err(unsupported());
        }
        let cfg = Box::new(iso_tls_config {
            inner: Mutex::new(TlsConfig::new()),
            state: HandleState::default(),
        });
        out.write(Box::into_raw(cfg));
        Ok(ISO_OK)
    })
}

/// Frees a TLS configuration. NULL is a no-op. Sessions started with it are not affected.
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_destroy(cfg: *mut iso_tls_config) {
    if cfg.is_null() {
        return;
    }
    let _ = without_handle(|| {
        // SAFETY: not NULL, so a config from `iso_tls_config_create` (made by `Box::into_raw`)
        // that no other call uses any more.
        drop(unsafe { Box::from_raw(cfg) });
        Ok(ISO_OK)
    });
}

/// The PEM file of CA certificates the peer's chain must verify against (read at
/// `iso_start_tls`). On the server role it also requires a client certificate, verified
/// against these CAs (mutual TLS). Errors: ISO_E_INVALID (NULL, not UTF-8).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_ca_file(
    cfg: *mut iso_tls_config,
    pem_path: *const c_char,
) -> i32 {
    // SAFETY: `pem_path` is NULL or a NUL-terminated string (the header's pointer contract).
    let path = unsafe { c_str(pem_path, "pem_path") };
    set(cfg, |c| {
        c.set_ca_file(path?);
        Ok(())
    })
}

/// The SHA-256 of the peer's certificate (DER) that it must match; `len` must be 32. On the
/// server role it also requires a client certificate, which must match the pin (mutual TLS).
/// Errors: ISO_E_INVALID (NULL, wrong length).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_pin_sha256(
    cfg: *mut iso_tls_config,
    digest: *const u8,
    len: usize,
) -> i32 {
    set(cfg, |c| {
        non_null(digest, "digest")?;
        // SAFETY: `digest` is valid for `len` bytes (the header's pointer contract).
        let digest = unsafe { bytes(digest, len, "digest") }?;
        c.set_pin_sha256(digest)
    })
}

/// 1: accept any peer certificate (labs only: anyone on the path can read and change the
/// traffic); on the server role, ask no client for a certificate. 0: verify (the default).
/// Errors: ISO_E_INVALID (NULL).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_insecure(
    cfg: *mut iso_tls_config,
    no_verification: i32,
) -> i32 {
    set(cfg, |c| {
        c.set_insecure(no_verification != 0);
        Ok(())
    })
}

/// The name the peer's certificate must carry, also sent as SNI; NULL: no name check (the
/// default, as PLC certificates rarely name their address). Errors: ISO_E_INVALID.
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_server_name(
    cfg: *mut iso_tls_config,
    name: *const c_char,
) -> i32 {
    // SAFETY: `name` is NULL or a NUL-terminated string (the header's pointer contract).
    let name = unsafe { opt_c_str(name, "name") };
    set(cfg, |c| c.set_server_name(name?))
}

/// Our certificate chain and private key (PEM files, read at `iso_start_tls`): needed by the
/// server role; for a client, needed only by a server that requires client certificates (one
/// without fails the handshake with ISO_E_TLS, the last error naming the server's alert and
/// that no identity is set). Errors: ISO_E_INVALID (NULL, not UTF-8).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_identity_files(
    cfg: *mut iso_tls_config,
    cert_chain_pem: *const c_char,
    key_pem: *const c_char,
) -> i32 {
    // SAFETY: both are NULL or NUL-terminated strings (the header's pointer contract).
    let chain = unsafe { c_str(cert_chain_pem, "cert_chain_pem") };
    // SAFETY: as above.
    let key = unsafe { c_str(key_pem, "key_pem") };
    set(cfg, |c| {
        c.set_identity_files(chain?, key?);
        Ok(())
    })
}

/// The protocol versions allowed: 0x0303 (TLS 1.2) to 0x0304 (TLS 1.3), the default both.
/// Errors: ISO_E_INVALID (NULL, unknown version, min above max).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_versions(
    cfg: *mut iso_tls_config,
    min: u16,
    max: u16,
) -> i32 {
    set(cfg, |c| c.set_versions(min, max))
}

/// An NSS key log file (SSLKEYLOGFILE format) that each session started with this config appends
/// its secrets to: with a frame trace (pcap) it lets Wireshark decrypt the payloads. Anyone who
/// can read the file can read the traffic. Errors: ISO_E_INVALID (NULL, not UTF-8).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_keylog_file(
    cfg: *mut iso_tls_config,
    path: *const c_char,
) -> i32 {
    // SAFETY: `path` is NULL or a NUL-terminated string (the header's pointer contract).
    let path = unsafe { c_str(path, "path") };
    set(cfg, |c| {
        c.set_keylog_file(Some(path?.into()));
        Ok(())
    })
}

/// The largest plaintext of one TLS record we send: 0 (the default) sizes records so that each
/// fits one DT of the negotiated TPDU; 32 to 16384 allows larger records, which then span
/// several DTs of their TSDU (not every PLC is known to accept that). Either way no DT
/// exceeds the negotiated TPDU size. Errors: ISO_E_INVALID (NULL, out of range).
#[no_mangle]
pub unsafe extern "C" fn iso_tls_config_set_max_record_size(
    cfg: *mut iso_tls_config,
    bytes: u32,
) -> i32 {
    set(cfg, |c| c.set_max_record_size(bytes as usize))
}

/// Runs the TLS handshake on a connected handle within `timeout_ms`: the client role on a
/// handle `iso_connect` connected, the server role on one `iso_accept` returned (which needs
/// the identity files, and with a CA file or pin set requires a client certificate). The config
/// is copied. From then on `iso_send`, `iso_recv`, `iso_poll` and `iso_queue_send` carry TLS,
/// and `iso_disconnect`/`iso_destroy` send a close_notify first (best effort, at most ~100 ms).
/// Errors: ISO_E_INVALID (NULL; no CA file, pin or insecure set; unreadable files; TLS already
/// started; a library built without TLS), ISO_E_STATE (not connected), ISO_E_TIMEOUT,
/// ISO_E_TLS (handshake failed, certificate rejected, an alert from the peer: the last error
/// says which, in words), ISO_E_CLOSED, ISO_E_IO. A failed handshake closes the connection.
/// A client without a certificate that a server asked for waits up to 150 ms after its side of
/// the handshake for the server's verdict. With insecure set, the last error says so on
/// success.
/// Thread rules: no other call in progress on the handle.
#[no_mangle]
pub unsafe extern "C" fn iso_start_tls(
    conn: *mut iso_conn,
    cfg: *const iso_tls_config,
    timeout_ms: u32,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `cfg` is NULL or a live config (the header's pointer contract).
        let Some(cfg) = (unsafe { cfg.as_ref() }) else {
            return Err(super::args::null_arg("cfg"));
        };
        start(c, cfg.inner.lock().clone(), timeout_ms)
    })
}

#[cfg(feature = "tls")]
fn start(c: &iso_conn, cfg: TlsConfig, timeout_ms: u32) -> Result<i32, Error> {
    use crate::net::tls::TlsSession;
    let mut slot = c.tls.lock();
    if slot.is_some() {
        return Err(Error::Invalid(
            "TLS is already started on this connection".into(),
        ));
    }
    c.inner.tpdu_size()?;
    let timeout = super::conn::ms(timeout_ms);
    let session = if c.inner.is_passive() {
        TlsSession::server(&c.inner, &cfg, timeout)?
    } else {
        TlsSession::client(&c.inner, &cfg, timeout)?
    };
    *slot = Some(std::sync::Arc::new(session));
    if cfg.is_insecure() && !c.inner.is_passive() {
        c.state.record(
            "TLS started WITHOUT verifying the peer's certificate (insecure): anyone on the path can read and change the traffic",
        );
    }
    Ok(ISO_OK)
}

#[cfg(not(feature = "tls"))]
fn start(_: &iso_conn, _: TlsConfig, _: u32) -> Result<i32, Error> {
    Err(unsupported())
}

/// 1 when TLS is started on the handle's current connection, 0 otherwise (also after a TLS
/// failure closed it, and always in a library built without TLS); ISO_E_INVALID for NULL.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_tls_active(conn: *const iso_conn) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        Ok(i32::from(session(c).is_ok() && c.inner.tpdu_size().is_ok()))
    })
}

/// Keying material from the TLS exporter (RFC 5705, RFC 8446 §7.5) into `out` (1 to 255
/// bytes): `label`, and `context` (NULL with `context_len` 0: no context, as S7CommPlus uses).
/// Errors: ISO_E_INVALID (NULL, bad length), ISO_E_STATE (TLS not started), ISO_E_TLS.
#[no_mangle]
pub unsafe extern "C" fn iso_tls_export_keying_material(
    conn: *const iso_conn,
    label: *const u8,
    label_len: usize,
    context: *const u8,
    context_len: usize,
    out: *mut u8,
    out_len: usize,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        non_null(label, "label")?;
        // SAFETY: `label` is valid for `label_len` bytes (the header's pointer contract).
        let label = unsafe { bytes(label, label_len, "label") }?;
        let context = if context.is_null() && context_len == 0 {
            None
        } else {
            non_null(context, "context")?;
            // SAFETY: `context` is valid for `context_len` bytes (the header's pointer contract).
            Some(unsafe { bytes(context, context_len, "context") }?)
        };
        non_null(out, "out")?;
        // SAFETY: `out` is valid for writing `out_len` bytes (the header's pointer contract).
        let out = unsafe { bytes_mut(out, out_len, "out") }?;
        let session = session(c)?;
        session.export_keying_material(out, label, context)?;
        Ok(ISO_OK)
    })
}

/// The peer's certificate (DER) into `buf` (capacity `cap`); `*out_needed` gets its size.
/// `buf` NULL with `cap` 0 asks for the size (ISO_E_BUFFER_TOO_SMALL).
/// Errors: ISO_E_INVALID (NULL out_needed, no certificate), ISO_E_STATE (TLS not started),
/// ISO_E_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn iso_tls_peer_certificate(
    conn: *const iso_conn,
    buf: *mut u8,
    cap: usize,
    out_needed: *mut usize,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `out_needed` is NULL or valid for one write (the header's pointer contract).
        let needed = unsafe { out_arg(out_needed, "out_needed") }?;
        // SAFETY: `buf` is NULL or valid for writing `cap` bytes (the header's pointer contract).
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        let session = session(c)?;
        let der = session
            .peer_certificate()
            .ok_or_else(|| Error::Invalid("the peer sent no certificate".into()))?;
        needed.write(der.len());
        if buf.len() < der.len() {
            return Err(Error::BufferTooSmall {
                needed: der.len(),
                cap: buf.len(),
            });
        }
        buf[..der.len()].copy_from_slice(&der);
        Ok(ISO_OK)
    })
}

/// The handle's TLS session, or why there is none.
#[cfg(feature = "tls")]
fn session(c: &iso_conn) -> Result<std::sync::Arc<crate::net::tls::TlsSession>, Error> {
    c.tls_session().ok_or_else(|| {
        Error::state(
            StateKind::TlsNotStarted,
            "TLS is not started on this connection",
        )
    })
}

#[cfg(not(feature = "tls"))]
fn session(_: &iso_conn) -> Result<without_tls::NoSession, Error> {
    let _ = StateKind::TlsNotStarted;
    Err(unsupported())
}

/// The error of every TLS function in a library built without TLS.
fn unsupported() -> Error {
    Error::Invalid(
        "this library was built without TLS (the `tls` feature): TLS functions are not available"
            .into(),
    )
}

/// Stand-ins with the shapes the exports use, for a build without TLS: nothing reaches them
/// but the type checker.
#[cfg(not(feature = "tls"))]
mod without_tls {
    use std::path::PathBuf;

    use crate::error::Error;

    #[derive(Clone, Default)]
    pub(super) struct TlsConfig;

    impl TlsConfig {
        pub(super) fn new() -> TlsConfig {
            TlsConfig
        }
        pub(super) fn set_ca_file(&mut self, _: impl Into<PathBuf>) {}
        pub(super) fn set_pin_sha256(&mut self, _: &[u8]) -> Result<(), Error> {
            Err(super::unsupported())
        }
        pub(super) fn set_insecure(&mut self, _: bool) {}
        pub(super) fn set_server_name(&mut self, _: Option<&str>) -> Result<(), Error> {
            Err(super::unsupported())
        }
        pub(super) fn set_identity_files(&mut self, _: impl Into<PathBuf>, _: impl Into<PathBuf>) {}
        pub(super) fn set_versions(&mut self, _: u16, _: u16) -> Result<(), Error> {
            Err(super::unsupported())
        }
        pub(super) fn set_keylog_file(&mut self, _: Option<PathBuf>) {}
        pub(super) fn set_max_record_size(&mut self, _: usize) -> Result<(), Error> {
            Err(super::unsupported())
        }
    }

    /// No session can exist.
    pub(super) enum NoSession {}

    impl NoSession {
        pub(super) fn export_keying_material(
            &self,
            _: &mut [u8],
            _: &[u8],
            _: Option<&[u8]>,
        ) -> Result<(), Error> {
            match *self {}
        }
        pub(super) fn peer_certificate(&self) -> Option<Vec<u8>> {
            match *self {}
        }
    }
}
