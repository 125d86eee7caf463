//! `iso_conn`: the client connection handle, `iso_create` ... `iso_destroy`.
//!
//! Thread rules, in short: every function may be called from any thread. Setters and
//! `iso_connect` must not race each other on one handle (the second gets ISO_E_STATE or waits).
//! One thread may be in `iso_send` while another is in `iso_recv`/`iso_poll`. `iso_disconnect`
//! from any thread wakes a blocked `iso_recv`/`iso_poll`/`iso_send`, which then returns
//! ISO_E_STATE. `iso_destroy` must be the last call on a handle, with no other call in progress.

use std::ffi::c_char;

use super::args::{bytes, bytes_mut, c_str, non_null, out_arg};
use super::boundary::{with_handle, without_handle, Handle, HandleState};
use super::codes::ISO_OK;
use super::text::last_error_out;
use crate::error::{ConnectPhase, Error, StateKind};
use crate::net::{Config, Connection, Keepalive, UserTimeout};
use crate::proto::tsap::{self, S7Route, Tsap};

/// Version string of the library, e.g. "0.1.0" (equal to ISO_VERSION).
pub const ISO_VERSION: &str = "0.1.0";
/// major << 16 | minor << 8 | patch; equal to `iso_version_number()`.
pub const ISO_VERSION_NUMBER: u32 = 0x00_01_00;

const fn parse_version_part(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The header's constants are literals (cbindgen copies them); these keep them equal to Cargo.toml.
const _: () = assert!(
    ISO_VERSION_NUMBER
        == parse_version_part(env!("CARGO_PKG_VERSION_MAJOR")) << 16
            | parse_version_part(env!("CARGO_PKG_VERSION_MINOR")) << 8
            | parse_version_part(env!("CARGO_PKG_VERSION_PATCH"))
);
const _: () = assert!(str_eq(ISO_VERSION, env!("CARGO_PKG_VERSION")));

/// An ISO-on-TCP connection handle (opaque). Create with `iso_create`, free with `iso_destroy`.
#[allow(non_camel_case_types)]
pub struct iso_conn {
    pub(crate) inner: Connection,
    pub(crate) state: HandleState,
    /// The TLS session on the current connection, once `iso_start_tls` ran.
    #[cfg(feature = "tls")]
    pub(crate) tls: TlsSlot,
}

/// Where a handle keeps its TLS session. `iso_send` and `iso_recv` ask it on every call, so it
/// keeps a flag beside the lock: a plaintext connection pays one atomic load, not a lock and a
/// reference count, per message.
#[cfg(feature = "tls")]
#[derive(Default)]
pub(crate) struct TlsSlot {
    started: std::sync::atomic::AtomicBool,
    session: parking_lot::Mutex<Option<std::sync::Arc<crate::net::TlsSession>>>,
}

#[cfg(feature = "tls")]
impl TlsSlot {
    /// The slot, locked; the flag follows what it holds when the guard is dropped.
    pub(crate) fn lock(&self) -> TlsSlotGuard<'_> {
        TlsSlotGuard {
            started: &self.started,
            session: self.session.lock(),
        }
    }

    fn get(&self) -> Option<std::sync::Arc<crate::net::TlsSession>> {
        if !self.started.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.session.lock().clone()
    }
}

/// The locked [`TlsSlot`]: derefs to the session it holds.
#[cfg(feature = "tls")]
pub(crate) struct TlsSlotGuard<'a> {
    started: &'a std::sync::atomic::AtomicBool,
    session: parking_lot::MutexGuard<'a, Option<std::sync::Arc<crate::net::TlsSession>>>,
}

#[cfg(feature = "tls")]
impl std::ops::Deref for TlsSlotGuard<'_> {
    type Target = Option<std::sync::Arc<crate::net::TlsSession>>;
    fn deref(&self) -> &Self::Target {
        &self.session
    }
}

#[cfg(feature = "tls")]
impl std::ops::DerefMut for TlsSlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.session
    }
}

#[cfg(feature = "tls")]
impl Drop for TlsSlotGuard<'_> {
    fn drop(&mut self) {
        self.started
            .store(self.session.is_some(), std::sync::atomic::Ordering::Release);
    }
}

impl iso_conn {
    pub(crate) fn new(inner: Connection) -> iso_conn {
        iso_conn {
            inner,
            state: HandleState::default(),
            #[cfg(feature = "tls")]
            tls: TlsSlot::default(),
        }
    }

    /// The TLS session, if TLS was started on the current connection.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_session(&self) -> Option<std::sync::Arc<crate::net::TlsSession>> {
        self.tls.get()
    }

    /// Forgets the TLS session: the connection it ran on is gone.
    fn end_tls(&self) {
        #[cfg(feature = "tls")]
        self.tls.lock().take();
    }

    /// Sends our close_notify on the current connection if TLS runs on it (best effort, within
    /// a short bound). The session stays in place until the connection is closed, so a send
    /// from another thread meanwhile still goes out encrypted, never in clear.
    fn close_tls(&self) {
        #[cfg(feature = "tls")]
        if let Some(session) = self.tls_session() {
            session.close(&self.inner);
        }
    }
}

impl Handle for iso_conn {
    fn state(&self) -> &HandleState {
        &self.state
    }
}

/// The library version, e.g. "0.1.0". Static, never NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn iso_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The version as major << 16 | minor << 8 | patch, equal to ISO_VERSION_NUMBER in the header
/// the program was compiled with (compare them to detect a mismatched library). Thread-safe.
#[no_mangle]
pub extern "C" fn iso_version_number() -> u32 {
    ISO_VERSION_NUMBER
}

/// Creates a connection handle for `host` (a name, an IPv4 literal, or an IPv6 literal with or
/// without brackets) and TCP `port` (102 for S7). No network I/O happens here.
///
/// Defaults: local TSAP 0x0100, remote TSAP 0x0102 (rack 0, slot 2), TPDU size 1024, send
/// timeout 5000 ms, maximum message 65536 bytes, 4096 fragments per message, TCP keep-alive
/// (idle 60 s, interval 10 s, 3 probes).
///
/// On success `*out` is the new handle; on error `*out` is set to NULL (if `out` is not NULL)
/// and the message is available from `iso_thread_last_error`.
/// Errors: ISO_E_INVALID (NULL argument, host not UTF-8, empty or not a host name).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_create(
    host: *const c_char,
    port: u16,
    out: *mut *mut iso_conn,
) -> i32 {
    without_handle(|| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        out.write(std::ptr::null_mut());
        // SAFETY: `host` is NULL or a NUL-terminated string (the header's pointer contract).
        let host = unsafe { c_str(host, "host") }?;
        let config = Config::new(host, port)?;
        let conn = Box::new(iso_conn::new(Connection::new(config)));
        out.write(Box::into_raw(conn));
        Ok(ISO_OK)
    })
}

/// Closes the connection (if any; with TLS, after a best-effort close_notify) and frees the
/// handle. NULL is a no-op.
/// Thread rules: must be the last call on the handle; no other call may be in progress on it.
#[no_mangle]
pub unsafe extern "C" fn iso_destroy(conn: *mut iso_conn) {
    if conn.is_null() {
        return;
    }
    let _ = without_handle(|| {
        // SAFETY: not NULL, so a handle from `iso_create` or `iso_accept` (both made by
        // `Box::into_raw`) that no other call uses any more, as this function requires.
        let conn = unsafe { Box::from_raw(conn) };
        conn.close_tls();
        drop(conn);
        Ok(ISO_OK)
    });
}

/// Runs a setter's change on a copy of the configuration, as [`with_handle`] runs an export.
pub(crate) fn configure(
    conn: Option<&iso_conn>,
    f: impl FnOnce(&mut Config) -> Result<(), Error>,
) -> i32 {
    with_handle(conn, "conn", false, |c| {
        c.inner.configure(f).map(|()| ISO_OK)
    })
}

/// Sets the local (calling, C1) and remote (called, C2) TSAPs as 16-bit values, e.g. 0x0100 and
/// 0x0102 (rack 0, slot 2; see `iso_s7_tsap`).
/// Errors: ISO_E_INVALID (NULL), ISO_E_STATE (connected or connecting).
/// Thread rules: not concurrently with `iso_connect` or other setters on the same handle.
#[no_mangle]
pub unsafe extern "C" fn iso_set_tsap(
    conn: *mut iso_conn,
    local_tsap: u16,
    remote_tsap: u16,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        c.set_tsaps(Tsap::from_u16(local_tsap), Tsap::from_u16(remote_tsap))
    })
}

/// Sets the TSAPs as byte strings of 1 to 32 bytes each, e.g. local {0x06, 0x00} and remote
/// "SIMATIC-ROOT-HMI" (16 bytes, no NUL) for S7CommPlus. The bytes are copied.
/// Errors: ISO_E_INVALID (NULL, a length outside 1..32, or a CR that would exceed 128 bytes),
/// ISO_E_STATE (connected or connecting).
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_tsap_bytes(
    conn: *mut iso_conn,
    local: *const u8,
    local_len: usize,
    remote: *const u8,
    remote_len: usize,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        let mut given = [&[][..]; 2];
        for (tsap, (ptr, len, which)) in given
            .iter_mut()
            .zip([(local, local_len, "local"), (remote, remote_len, "remote")])
        {
            // Checked here, since an empty buffer may come with any pointer.
            if len == 0 {
                return Err(Error::Invalid(format!(
                    "{which} TSAP is empty (1..32 bytes)"
                )));
            }
            // SAFETY: `ptr` is NULL or valid for `len` bytes (the header's pointer contract).
            *tsap = unsafe { bytes(ptr, len, which) }?;
        }
        let invalid = |e: crate::proto::ProtoError| Error::Invalid(e.to_string());
        c.set_tsaps(
            Tsap::new(given[0]).map_err(invalid)?,
            Tsap::new(given[1]).map_err(invalid)?,
        )
    })
}

/// Sets the TPDU size offered in the CR: 128, 256, 512, 1024 (default), 2048, 4096 or 8192.
/// The peer's CC may lower it; `iso_get_tpdu_size` tells the result.
/// Errors: ISO_E_INVALID (another value), ISO_E_STATE (connected or connecting).
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_tpdu_size(conn: *mut iso_conn, size: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| c.set_tpdu_size(size))
}

/// Routing to a PLC behind a gateway, python-snap7 3.x encoding: appends the CR parameters
/// `C6 02 <subnet_id>` and `C7 02 01 <rack << 5 | slot>` after C0; the TSAPs stay as set (the
/// remote TSAP addresses the gateway). Only python-snap7's server is known to accept this form;
/// real Siemens gateways need `iso_set_routing_s7`. Rack 0..7, slot 0..31.
/// Errors: ISO_E_INVALID (rack or slot out of range, CR too long), ISO_E_STATE.
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_routing(
    conn: *mut iso_conn,
    subnet_id: u16,
    dest_rack: u16,
    dest_slot: u16,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        let (rack, slot) = rack_slot_args(dest_rack, dest_slot)?;
        c.set_snap7_routing(subnet_id, rack, slot)
    })
}

fn rack_slot_args(rack: u16, slot: u16) -> Result<(u8, u8), Error> {
    if rack > 7 || slot > 31 {
        return Err(Error::Invalid(format!(
            "rack {rack} / slot {slot} out of range (rack 0..7, slot 0..31)"
        )));
    }
    Ok((rack as u8, slot as u8))
}

/// A C timeout in milliseconds.
pub(crate) fn ms(timeout_ms: u32) -> std::time::Duration {
    std::time::Duration::from_millis(timeout_ms.into())
}

/// S7 connection types: 1 PG, 2 OP, 3..0x10 S7 basic.
fn conn_type_arg(conn_type: u8) -> Result<(), Error> {
    if !(1..=0x10).contains(&conn_type) {
        return Err(Error::Invalid(format!(
            "connection type 0x{conn_type:02X} is outside 1..0x10 (1 PG, 2 OP, 3..0x10 S7 basic)"
        )));
    }
    Ok(())
}

/// Routing through a real Siemens gateway (S7 routing, libnodave's form): replaces both TSAPs by
/// 28-byte extended TSAPs naming the destination subnet and station.
///
/// `subnet_high` and `subnet_low` are the two halves of the S7 subnet ID as STEP 7 shows it
/// ("0152-0013" is 0x0152, 0x0013). `dest_addr` is the destination's address on that subnet:
/// 1 byte (MPI/PROFIBUS address) or 4 bytes (IPv4), at most 16; it is copied. `conn_type` is
/// 1 (PG), 2 (OP) or 3..0x10 (S7 basic); rack 0..7, slot 0..31 of the destination CPU.
/// A later `iso_set_tsap`/`iso_set_tsap_bytes` replaces the TSAPs again.
/// Errors: ISO_E_INVALID (NULL, lengths, ranges), ISO_E_STATE.
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_routing_s7(
    conn: *mut iso_conn,
    subnet_high: u16,
    subnet_low: u16,
    dest_addr: *const u8,
    dest_addr_len: usize,
    conn_type: u8,
    dest_rack: u16,
    dest_slot: u16,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        non_null(dest_addr, "dest_addr")?;
        if !(1..=16).contains(&dest_addr_len) {
            return Err(Error::Invalid(format!(
                "destination address length {dest_addr_len} is outside 1..16"
            )));
        }
        conn_type_arg(conn_type)?;
        let (rack, slot) = rack_slot_args(dest_rack, dest_slot)?;
        // SAFETY: `dest_addr` is valid for `dest_addr_len` bytes (the header's pointer contract).
        let dest_addr = unsafe { bytes(dest_addr, dest_addr_len, "dest_addr") }?;
        let route = S7Route {
            subnet_high,
            subnet_low,
            dest_addr: dest_addr.to_vec(),
            conn_type,
            dest_rack: rack,
            dest_slot: slot,
        };
        c.set_s7_routing(&route)
    })
}

/// Sets the deadline of each `iso_send` (default 5000 ms). 0 means "never wait": a send the
/// socket cannot take at once returns ISO_E_WOULD_BLOCK.
/// Errors: ISO_E_STATE (connected or connecting).
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_send_timeout(conn: *mut iso_conn, timeout_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        c.transfer_mut().set_send_timeout(ms(timeout_ms));
        Ok(())
    })
}

/// Sets the largest message sent or received, 128 to 16777216 bytes (default 65536). A larger
/// message to send gives ISO_E_TOO_LARGE; a larger message from the peer gives ISO_E_TOO_LARGE
/// and closes the connection.
/// Errors: ISO_E_INVALID (out of range), ISO_E_STATE.
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_max_message(conn: *mut iso_conn, bytes: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        c.transfer_mut().set_max_message(bytes as usize)
    })
}

/// Sets the largest number of DTs one received message may have (default 4096, 1..1048576).
/// More gives ISO_E_TOO_LARGE and closes the connection.
/// Errors: ISO_E_INVALID (out of range), ISO_E_STATE.
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_max_fragments(conn: *mut iso_conn, fragments: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        c.transfer_mut().set_max_fragments(fragments)
    })
}

/// Sets TCP keep-alive: `enable` 0 turns it off; otherwise probes start after `idle_s` seconds
/// of silence, repeat every `interval_s` seconds, and `count` unanswered probes end the
/// connection (count is ignored on Windows, which uses 10). Default: on, 60, 10, 3.
/// Errors: ISO_E_INVALID (a zero time or count while enabled, or above 32767), ISO_E_STATE.
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_keepalive(
    conn: *mut iso_conn,
    enable: i32,
    idle_s: u32,
    interval_s: u32,
    count: u32,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        let keepalive = match enable {
            0 => Keepalive::OFF,
            _ => Keepalive::new(idle_s, interval_s, count)?,
        };
        c.transfer_mut().set_keepalive(keepalive);
        Ok(())
    })
}

/// `iso_set_user_timeout` value restoring the default: the bound follows the keep-alive
/// settings.
pub const ISO_USER_TIMEOUT_FROM_KEEPALIVE: u32 = u32::MAX;

/// Bounds how long data sent may stay unacknowledged before the system gives up on the
/// connection (TCP_USER_TIMEOUT on Linux, TCP_MAXRT on Windows, whole seconds there). Keep-alive
/// only probes an idle connection; this finds a peer that vanished under a pending request,
/// which the system would otherwise retransmit to for about 15 minutes. The loss is then
/// reported by `iso_recv`, `iso_poll`, `iso_send` and `iso_check_connection` (ISO_E_IO, "no
/// acknowledgement from the peer for N s: the link or the peer is down", OS error ETIMEDOUT).
/// `timeout_ms`: 1..2073600000; 0 for the system's default; ISO_USER_TIMEOUT_FROM_KEEPALIVE
/// (the default) for idle + interval x count of the keep-alive settings while keep-alive is on
/// (the system's default when it is off), so that one setting governs both cases.
/// Errors: ISO_E_INVALID (above the range), ISO_E_STATE (connected or connecting).
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_user_timeout(conn: *mut iso_conn, timeout_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        let t = match timeout_ms {
            ISO_USER_TIMEOUT_FROM_KEEPALIVE => UserTimeout::FromKeepalive,
            0 => UserTimeout::System,
            ms_ => UserTimeout::After(ms(ms_)),
        };
        c.transfer_mut().set_user_timeout(t)
    })
}

/// Sets the delay between the starts of TCP connects to successive addresses of a host name
/// that resolves to several (IPv6 and IPv4, or the two CPUs of an S7-1500R/H or S7-400H pair),
/// 0..10000 ms (default 250, RFC 8305's connection attempt delay): an attempt not complete by
/// then keeps running while the next starts; the first to complete TCP and the CC is kept, the
/// others closed, all within the one `iso_connect` deadline. A dead first address thus costs
/// this delay, not a share of the deadline.
/// Errors: ISO_E_INVALID (above the range), ISO_E_STATE (connected or connecting).
/// Thread rules: as `iso_set_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_set_connect_attempt_delay(conn: *mut iso_conn, delay_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    configure(unsafe { conn.as_ref() }, |c| {
        c.set_attempt_delay(ms(delay_ms))
    })
}

/// `iso_get_connect_phase`: the last connect succeeded, or none ran.
pub const ISO_PHASE_NONE: i32 = 0;
/// `iso_get_connect_phase`: resolving the host name failed.
pub const ISO_PHASE_RESOLVE: i32 = 1;
/// `iso_get_connect_phase`: no address completed the TCP connect: the PLC is unreachable.
pub const ISO_PHASE_TCP: i32 = 2;
/// `iso_get_connect_phase`: TCP was up and the CR sent, but no CC confirmed it: the PLC is
/// reachable and refused (DR/ER, a close or reset: usually TSAP, rack or slot) or did not answer.
pub const ISO_PHASE_COTP: i32 = 3;

/// Writes to `*out` the phase in which the handle's last `iso_connect`/`iso_reconnect` failed:
/// ISO_PHASE_RESOLVE, ISO_PHASE_TCP or ISO_PHASE_COTP, or ISO_PHASE_NONE after a successful
/// connect (or before any). Tells "PLC unreachable" from "PLC reachable, ISO refused" when both
/// end in ISO_E_TIMEOUT. Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_get_connect_phase(conn: *const iso_conn, out: *mut i32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        let phase = match c.inner.last_connect_phase() {
            None => ISO_PHASE_NONE,
            Some(ConnectPhase::Resolve) => ISO_PHASE_RESOLVE,
            Some(ConnectPhase::Tcp) => ISO_PHASE_TCP,
            Some(_) => ISO_PHASE_COTP,
        };
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        unsafe { out_arg(out, "out") }?.write(phase);
        Ok(ISO_OK)
    })
}

/// Connects: resolves the host, opens TCP (trying every address the name resolves to), sends
/// the CR and validates the CC, all within one deadline of `timeout_ms`. Timeout 0 returns
/// ISO_E_WOULD_BLOCK unless everything completes at once.
/// A connection the peer has ended (closed, reset, DR/ER) is replaced; messages it still held
/// are dropped.
/// Errors: ISO_E_STATE (already connected, or ended by `iso_disconnect` from another thread
/// while waiting for the CC), ISO_E_RESOLVE, ISO_E_REFUSED, ISO_E_TIMEOUT,
/// ISO_E_CLOSED (the peer closed or reset TCP after the CR: usually a wrong TSAP, rack or slot),
/// ISO_E_REJECTED (DR or ER; the last error names the reason), ISO_E_PROTOCOL (a malformed CC),
/// ISO_E_IO.
/// Thread rules: not concurrently with setters or another `iso_connect` on the same handle.
#[no_mangle]
pub unsafe extern "C" fn iso_connect(conn: *mut iso_conn, timeout_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        let result = c.inner.connect(ms(timeout_ms));
        // A refused call leaves the current connection, and its TLS, as they were; otherwise
        // the TLS session belonged to a connection that is gone now.
        if !matches!(
            result,
            Err(Error::State {
                kind: StateKind::AlreadyConnected | StateKind::ConnectInProgress,
                ..
            })
        ) {
            c.end_tls();
        }
        result.map(|()| ISO_OK)
    })
}

/// Sends one whole message of `len` bytes (copied before return), segmented into DTs of the
/// negotiated TPDU size, within the send timeout.
/// Errors: ISO_E_INVALID (NULL data, len 0 or above PTRDIFF_MAX), ISO_E_STATE (not connected),
/// ISO_E_TOO_LARGE (above the maximum message), ISO_E_TIMEOUT (nothing sent: the connection is
/// intact; part sent: the connection is closed, since the peer would see half a message),
/// ISO_E_CLOSED, ISO_E_IO. After `iso_start_tls` the message is encrypted and its records go
/// out as one TSDU; the maximum message then applies to the records (22 to 29 bytes more per
/// record), and a send that fails after encrypting closes the connection (ISO_E_TLS,
/// ISO_E_TIMEOUT): the records' sequence numbers are spent.
/// Thread rules: may run while another thread is in `iso_recv`/`iso_poll`; concurrent
/// `iso_send` calls on one handle are serialised.
#[no_mangle]
pub unsafe extern "C" fn iso_send(conn: *mut iso_conn, data: *const u8, len: usize) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        non_null(data, "data")?;
        // SAFETY: `data` is valid for `len` bytes (the header's pointer contract).
        let data = unsafe { bytes(data, len, "data") }?;
        #[cfg(feature = "tls")]
        if let Some(tls) = c.tls_session() {
            return tls.send(&c.inner, data).map(|()| ISO_OK);
        }
        c.inner.send(data).map(|()| ISO_OK)
    })
}

/// Waits up to `timeout_ms` for a whole message. Returns 1 when one is ready (the next
/// `iso_recv` returns it at once), 0 when none completed within the timeout (bytes of a partial
/// message stay buffered), or a negative error: ISO_E_STATE, ISO_E_CLOSED (the peer closed and
/// no whole message is buffered), ISO_E_PROTOCOL, ISO_E_TOO_LARGE, ISO_E_IO, ISO_E_TLS.
/// With TLS it looks through TLS: 1 only when plaintext is ready; TSDUs holding only TLS
/// handshake records or part of a record are read and kept but are not a message.
/// Thread rules: as `iso_recv`.
#[no_mangle]
pub unsafe extern "C" fn iso_poll(conn: *mut iso_conn, timeout_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        #[cfg(feature = "tls")]
        if let Some(tls) = c.tls_session() {
            return tls.poll(&c.inner, ms(timeout_ms)).map(i32::from);
        }
        c.inner.poll(ms(timeout_ms)).map(i32::from)
    })
}

/// Receives one whole message into `buf` (capacity `cap`), waiting up to `timeout_ms`.
/// On success `*out_len` is the message length. `buf` NULL with `cap` 0 asks for the size of the
/// next message: ISO_E_BUFFER_TOO_SMALL with the size in `*out_len`, the message stays queued.
/// Errors: ISO_E_INVALID (NULL out_len, NULL buf with cap > 0, cap above PTRDIFF_MAX),
/// ISO_E_STATE, ISO_E_TIMEOUT / ISO_E_WOULD_BLOCK (timeout 0) when no whole message arrived:
/// nothing is lost, the next call continues;
/// ISO_E_BUFFER_TOO_SMALL: `*out_len` is the size needed and the message stays queued;
/// ISO_E_CLOSED (peer closed, reset, or sent DR/ER, after any buffered messages were read);
/// ISO_E_PROTOCOL and ISO_E_TOO_LARGE (the connection is closed), ISO_E_IO.
/// After `iso_start_tls` it returns the plaintext of one TSDU (reading on while a record spans
/// TSDUs); ISO_E_TLS for a bad record or an alert (the connection is closed); ISO_E_CLOSED,
/// "the peer ended the TLS session (close_notify)", after the data that came before it.
/// Thread rules: may run while another thread is in `iso_send`; `iso_disconnect` from another
/// thread makes it return ISO_E_STATE promptly. Two concurrent receivers are serialised.
#[no_mangle]
pub unsafe extern "C" fn iso_recv(
    conn: *mut iso_conn,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: u32,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `out_len` is NULL or valid for one write (the header's pointer contract).
        let out_len = unsafe { out_arg(out_len, "out_len") }?;
        // NULL with capacity 0 asks for the size of the next message (ISO_E_BUFFER_TOO_SMALL).
        // SAFETY: `buf` is NULL or valid for writing `cap` bytes (the header's pointer contract).
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        #[cfg(feature = "tls")]
        let received = match c.tls_session() {
            Some(tls) => tls.recv(&c.inner, buf, ms(timeout_ms)),
            None => c.inner.recv(buf, ms(timeout_ms)),
        };
        #[cfg(not(feature = "tls"))]
        let received = c.inner.recv(buf, ms(timeout_ms));
        match received {
            Ok(n) => {
                out_len.write(n);
                Ok(ISO_OK)
            }
            Err(e @ Error::BufferTooSmall { needed, .. }) => {
                out_len.write(needed);
                Err(e)
            }
            Err(e) => Err(e),
        }
    })
}

/// Returns 1 when the connection can carry a new request, 0 as soon as anything says it is gone:
/// not connected; the peer closed (FIN) or reset it; a DR or ER was received; the socket has a
/// pending error, which is how the system reports that it gave up on the peer (the user timeout
/// with data in flight, or unanswered keep-alive probes when idle). Messages already received
/// stay readable. Never blocks, consumes nothing.
/// What it cannot know: a peer that went silent (cable pulled, PLC switched off) without a FIN
/// or RST is indistinguishable from an idle one until keep-alive or the user timeout
/// (`iso_set_keepalive`, `iso_set_user_timeout`) gives up on it; and a DR still in the socket's
/// buffer is seen once `iso_poll`/`iso_recv` reads it (PLCs close TCP after a DR, which is
/// seen at once). NULL gives ISO_E_INVALID. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_check_connection(conn: *mut iso_conn) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        Ok(i32::from(c.inner.is_alive()))
    })
}

/// Closes the connection (without DR: class 0 releases by closing TCP; with TLS, after a
/// close_notify sent best effort within ~100 ms and skipped while another thread is in the
/// middle of a send) and wakes any thread blocked in `iso_recv`, `iso_poll` or `iso_send` on
/// it; an `iso_connect` waiting for the CC ends too (ISO_E_STATE). Not connected: ISO_OK. The handle keeps
/// its settings and may connect again. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_disconnect(conn: *mut iso_conn) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        c.close_tls();
        c.inner.disconnect();
        c.end_tls();
        Ok(ISO_OK)
    })
}

/// Ends the connection and connects again with the same settings, all within one deadline of
/// `timeout_ms`: when the COTP connection is still up a DR (reason 0x80, normal disconnect)
/// goes out first so the PLC releases its side at once, then the socket is closed, then the
/// connect runs as `iso_connect`. Not connected: it just connects. Repeated reconnects leave
/// nothing behind at the PLC: it holds one connection from this handle at most.
/// Errors: those of `iso_connect`; ISO_E_STATE on a handle `iso_accept` returned.
/// Thread rules: as `iso_connect`.
#[no_mangle]
pub unsafe extern "C" fn iso_reconnect(conn: *mut iso_conn, timeout_ms: u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        c.close_tls();
        let result = c.inner.reconnect(ms(timeout_ms));
        c.end_tls();
        result.map(|()| ISO_OK)
    })
}

/// Writes the negotiated TPDU size to `*out`.
/// Errors: ISO_E_INVALID (NULL), ISO_E_STATE (not connected). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_get_tpdu_size(conn: *const iso_conn, out: *mut u32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        out.write(c.inner.tpdu_size()?);
        Ok(ISO_OK)
    })
}

/// Writes the connection's socket (a file descriptor; a SOCKET on Windows) to `*out`, for
/// select/poll/epoll. Wait for readability, then call `iso_poll(conn, 0)`/`iso_recv(..., 0)`.
/// Do not read, write or close it yourself. Valid until `iso_disconnect`/`iso_destroy`.
/// Errors: ISO_E_INVALID (NULL), ISO_E_STATE (not connected). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_get_fd(conn: *const iso_conn, out: *mut i64) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        out.write(c.inner.raw_handle()?);
        Ok(ISO_OK)
    })
}

/// Copies the called TSAP in use (C2: the remote TSAP this connection asked for) into `buf`.
/// `*out_len` gets its length; when `cap` is smaller, ISO_E_BUFFER_TOO_SMALL and nothing is
/// copied. Errors: ISO_E_INVALID (NULL), ISO_E_STATE (not connected). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_get_remote_tsap(
    conn: *const iso_conn,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    // SAFETY: the pointers are what this function's contract makes them, which is what
    // `tsap_out` needs.
    unsafe {
        tsap_out(conn, buf, cap, out_len, |c| {
            c.inner.config().called().clone()
        })
    }
}

/// Copies the calling TSAP in use (C1: the local TSAP) into `buf`; as `iso_get_remote_tsap`.
#[no_mangle]
pub unsafe extern "C" fn iso_get_calling_tsap(
    conn: *const iso_conn,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    // SAFETY: as in `iso_get_remote_tsap`.
    unsafe {
        tsap_out(conn, buf, cap, out_len, |c| {
            c.inner.config().calling().clone()
        })
    }
}

/// The body of the two TSAP getters.
///
/// # Safety
/// `conn` is NULL or a live handle; `buf` NULL or valid for writing `cap` bytes; `out_len` NULL
/// or valid for one write.
unsafe fn tsap_out(
    conn: *const iso_conn,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    pick: impl FnOnce(&iso_conn) -> Tsap,
) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (this function's contract).
    with_handle(unsafe { conn.as_ref() }, "conn", false, |c| {
        // Unlike `iso_recv`, these refuse a NULL buffer even with capacity 0.
        non_null(buf, "buf")?;
        // SAFETY: `out_len` is NULL or valid for one write (this function's contract).
        let out_len = unsafe { out_arg(out_len, "out_len") }?;
        c.inner.tpdu_size()?;
        let tsap = pick(c);
        let tsap = tsap.as_bytes();
        out_len.write(tsap.len());
        if tsap.len() > cap {
            return Err(Error::BufferTooSmall {
                needed: tsap.len(),
                cap,
            });
        }
        // Only the TSAP's length, which fits in `cap`: a larger `cap` need not be a real size.
        // SAFETY: `buf` is not NULL, so valid for `cap` bytes (this function's contract), which
        // are at least the TSAP's.
        unsafe { bytes_mut(buf, tsap.len(), "buf") }?.copy_from_slice(tsap);
        Ok(ISO_OK)
    })
}

/// Copies the handle's last error message, NUL-terminated, into `buf` (truncated to `cap`), and
/// writes the size it needs including the NUL to `*out_needed` (if not NULL). `buf` may be NULL
/// with `cap` 0 to ask for the size. Works on a poisoned handle. The message stays until the next
/// error on the handle; "no error" before the first.
/// Returns ISO_OK, ISO_E_BUFFER_TOO_SMALL (truncated), or ISO_E_INVALID (NULL conn).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_last_error(
    conn: *const iso_conn,
    buf: *mut c_char,
    cap: usize,
    out_needed: *mut usize,
) -> i32 {
    let mut text = None;
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    let rc = with_handle(unsafe { conn.as_ref() }, "conn", true, |c| {
        text = Some(c.state.last_error());
        Ok(ISO_OK)
    });
    match text {
        // SAFETY: `buf` is NULL or valid for `cap` bytes, `out_needed` NULL or valid for one
        // write (the header's pointer contract).
        Some(t) => unsafe { last_error_out(&t, buf, cap, out_needed) },
        None => rc,
    }
}

/// The calling thread's last error message from any isotcp call (including `iso_create`, which
/// has no handle to keep it), copied as by `iso_last_error`. Thread-safe (per thread).
#[no_mangle]
pub unsafe extern "C" fn iso_thread_last_error(
    buf: *mut c_char,
    cap: usize,
    out_needed: *mut usize,
) -> i32 {
    // SAFETY: as in `iso_last_error`.
    unsafe { last_error_out(&super::boundary::thread_last_error(), buf, cap, out_needed) }
}

/// Writes to `*out` the operating system's error code behind the handle's last failure: errno
/// on Linux and macOS, the WSA code on Windows (what snap7 calls LastTcpError), e.g. 111
/// (ECONNREFUSED) after ISO_E_REFUSED, 104 (ECONNRESET) after a reset, 110 (ETIMEDOUT) after
/// the system gave up on an unanswered connection. 0 when the last failure had no OS error (a
/// deadline of our own, a protocol error, a refusal by DR) or before the first failure.
/// Works on a poisoned handle. Errors: ISO_E_INVALID (NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_last_os_error(conn: *const iso_conn, out: *mut i32) -> i32 {
    // SAFETY: `conn` is NULL or a live handle (the header's pointer contract).
    with_handle(unsafe { conn.as_ref() }, "conn", true, |c| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        unsafe { out_arg(out, "out") }?.write(c.state.last_os_error());
        Ok(ISO_OK)
    })
}

/// Writes to `*out` the OS error code of the calling thread's last failure from any isotcp call
/// (including `iso_create` and `iso_listen`, which have no handle to keep it), as
/// `iso_last_os_error`. Errors: ISO_E_INVALID (NULL). Thread-safe (per thread).
#[no_mangle]
pub unsafe extern "C" fn iso_thread_last_os_error(out: *mut i32) -> i32 {
    if out.is_null() {
        return super::codes::ISO_E_INVALID;
    }
    // SAFETY: `out` is not NULL, so valid for one write (the header's pointer contract).
    unsafe { out.write(super::boundary::thread_last_os_error()) };
    ISO_OK
}

/// The S7 remote TSAP for a connection type (1 PG, 2 OP, 3..0x10 S7 basic), rack (0..7) and slot
/// (0..31): (conn_type << 8) | rack << 5 | slot, written to `*out`.
/// Errors: ISO_E_INVALID (NULL or out of range). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn iso_s7_tsap(conn_type: u8, rack: u8, slot: u8, out: *mut u16) -> i32 {
    without_handle(|| {
        // SAFETY: `out` is NULL or valid for one write (the header's pointer contract).
        let out = unsafe { out_arg(out, "out") }?;
        conn_type_arg(conn_type)?;
        let rs = tsap::rack_slot(rack, slot).map_err(|e| Error::Invalid(e.to_string()))?;
        out.write((conn_type as u16) << 8 | rs as u16);
        Ok(ISO_OK)
    })
}
