//! The connection handle through the C ABI: [`Conn`], a small safe wrapper over the `iso_*`
//! connection functions (the handle is destroyed on drop), with [`Conn::expect`] to assert a
//! result code together with a piece of the handle's last error message; the result codes and
//! their names; the calling thread's last error.

use std::ffi::{CStr, CString};

pub use isotcp::ffi::codes::*;
use isotcp::ffi::conn::{self as c, iso_conn};

/// The OS error codes `iso_last_os_error` reports: errno values, WSA codes on Windows.
pub mod os_code {
    /// Connection refused.
    #[cfg(not(windows))]
    pub const CONNREFUSED: i32 = libc::ECONNREFUSED;
    /// Connection refused (WSAECONNREFUSED).
    #[cfg(windows)]
    pub const CONNREFUSED: i32 = 10061;
    /// Connection reset by peer.
    #[cfg(not(windows))]
    pub const CONNRESET: i32 = libc::ECONNRESET;
    /// Connection reset by peer (WSAECONNRESET).
    #[cfg(windows)]
    pub const CONNRESET: i32 = 10054;
}

/// A generous timeout for operations that must succeed.
pub const LONG_MS: u32 = 5000;

// ---------------------------------------------------------------------------------------------
// Result codes
// ---------------------------------------------------------------------------------------------

/// The symbolic name of a result code, for readable assertion messages.
pub fn code_name(code: i32) -> String {
    let name = match code {
        ISO_OK => "ISO_OK",
        ISO_E_INVALID => "ISO_E_INVALID",
        ISO_E_STATE => "ISO_E_STATE",
        ISO_E_RESOLVE => "ISO_E_RESOLVE",
        ISO_E_REFUSED => "ISO_E_REFUSED",
        ISO_E_TIMEOUT => "ISO_E_TIMEOUT",
        ISO_E_WOULD_BLOCK => "ISO_E_WOULD_BLOCK",
        ISO_E_CLOSED => "ISO_E_CLOSED",
        ISO_E_REJECTED => "ISO_E_REJECTED",
        ISO_E_PROTOCOL => "ISO_E_PROTOCOL",
        ISO_E_TOO_LARGE => "ISO_E_TOO_LARGE",
        ISO_E_BUFFER_TOO_SMALL => "ISO_E_BUFFER_TOO_SMALL",
        ISO_E_IO => "ISO_E_IO",
        ISO_E_PANIC => "ISO_E_PANIC",
        ISO_E_POISONED => "ISO_E_POISONED",
        ISO_E_TLS => "ISO_E_TLS",
        other => return format!("{other}"),
    };
    format!("{name} ({code})")
}

/// `iso_strerror(code)` as a Rust string (panics on NULL).
pub fn strerror(code: i32) -> String {
    let p = c_strerror(code);
    assert!(!p.is_null(), "iso_strerror({code}) returned NULL");
    // SAFETY: non-NULL, static, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .expect("iso_strerror text is UTF-8")
        .to_owned()
}

fn c_strerror(code: i32) -> *const std::ffi::c_char {
    isotcp::ffi::codes::iso_strerror(code)
}

/// The calling thread's last error (`iso_thread_last_error`).
pub fn thread_last_error() -> String {
    let mut needed = 0usize;
    // SAFETY: NULL buffer with cap 0 is the documented size query.
    unsafe { c::iso_thread_last_error(std::ptr::null_mut(), 0, &mut needed) };
    assert!(needed >= 1, "iso_thread_last_error needs at least the NUL");
    let mut buf = vec![0u8; needed];
    // SAFETY: buf is valid for `needed` bytes.
    let rc = unsafe { c::iso_thread_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
    assert_eq!(
        rc, ISO_OK,
        "iso_thread_last_error with a buffer of the size it asked for"
    );
    CStr::from_bytes_until_nul(&buf)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts `rc == want` and that `message` contains every one of `fragments`.
#[track_caller]
pub fn assert_code_msg(rc: i32, want: i32, message: &str, fragments: &[&str]) {
    assert!(
        rc == want,
        "expected {}, got {}; last error: {message:?}",
        code_name(want),
        code_name(rc)
    );
    for f in fragments {
        assert!(
            message.contains(f),
            "{}: last error {message:?} does not contain {f:?}",
            code_name(want)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The connection handle
// ---------------------------------------------------------------------------------------------

/// An `iso_conn` handle, destroyed on drop. Shareable between threads, as the C API allows.
pub struct Conn {
    ptr: *mut iso_conn,
}

// SAFETY: the C API documents every function as callable from any thread, with the concurrent
// combinations the tests use (send while recv, disconnect while blocked) explicitly allowed.
unsafe impl Send for Conn {}
unsafe impl Sync for Conn {}

impl Conn {
    /// `iso_create`; Err carries the code and the thread's last error.
    pub fn try_create(host: &str, port: u16) -> Result<Conn, (i32, String)> {
        let h = CString::new(host).expect("host without NUL");
        // Not NULL, to see it being reset.
        let mut out: *mut iso_conn = std::ptr::dangling_mut::<iso_conn>();
        // SAFETY: valid C string and out pointer.
        let rc = unsafe { c::iso_create(h.as_ptr(), port, &mut out) };
        if rc == ISO_OK {
            assert!(
                !out.is_null(),
                "iso_create returned ISO_OK and a NULL handle"
            );
            Ok(Conn { ptr: out })
        } else {
            assert!(
                out.is_null(),
                "iso_create failed ({}) but left *out non-NULL",
                code_name(rc)
            );
            Err((rc, thread_last_error()))
        }
    }

    #[track_caller]
    pub fn create(host: &str, port: u16) -> Conn {
        match Conn::try_create(host, port) {
            Ok(c) => c,
            Err((rc, msg)) => panic!(
                "iso_create({host:?}, {port}) failed: {} {msg}",
                code_name(rc)
            ),
        }
    }

    /// A handle for 127.0.0.1:`port`.
    #[track_caller]
    pub fn local(port: u16) -> Conn {
        Conn::create("127.0.0.1", port)
    }

    pub fn raw(&self) -> *mut iso_conn {
        self.ptr
    }

    /// The handle's last error message (`iso_last_error`, sized by a size query).
    pub fn last_error(&self) -> String {
        let mut needed = 0usize;
        // SAFETY: valid handle; NULL buffer with cap 0 is the size query.
        unsafe { c::iso_last_error(self.ptr, std::ptr::null_mut(), 0, &mut needed) };
        let mut buf = vec![0u8; needed.max(1)];
        // SAFETY: buf is valid for its length.
        let rc =
            unsafe { c::iso_last_error(self.ptr, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
        assert_eq!(rc, ISO_OK, "iso_last_error with the size it asked for");
        CStr::from_bytes_until_nul(&buf)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Asserts that `rc` is `want` and that the last error contains each of `fragments`.
    #[track_caller]
    pub fn expect(&self, rc: i32, want: i32, fragments: &[&str]) {
        assert_code_msg(rc, want, &self.last_error(), fragments);
    }

    /// Asserts success, printing the last error otherwise.
    #[track_caller]
    pub fn ok(&self, rc: i32) {
        assert!(
            rc == ISO_OK,
            "expected ISO_OK, got {}; last error: {:?}",
            code_name(rc),
            self.last_error()
        );
    }

    pub fn connect(&self, timeout_ms: u32) -> i32 {
        unsafe { c::iso_connect(self.ptr, timeout_ms) }
    }

    /// `iso_get_connect_phase`.
    pub fn connect_phase(&self) -> i32 {
        let mut phase = -1;
        assert_eq!(
            unsafe { c::iso_get_connect_phase(self.ptr, &mut phase) },
            ISO_OK
        );
        phase
    }

    pub fn set_user_timeout(&self, timeout_ms: u32) -> i32 {
        unsafe { c::iso_set_user_timeout(self.ptr, timeout_ms) }
    }

    pub fn reconnect(&self, timeout_ms: u32) -> i32 {
        unsafe { c::iso_reconnect(self.ptr, timeout_ms) }
    }

    pub fn disconnect(&self) -> i32 {
        unsafe { c::iso_disconnect(self.ptr) }
    }

    pub fn send(&self, data: &[u8]) -> i32 {
        // SAFETY: valid handle and slice.
        unsafe { c::iso_send(self.ptr, data.as_ptr(), data.len()) }
    }

    /// `iso_recv` into `buf`: (code, *out_len). `out_len` starts at usize::MAX so an untouched
    /// output is visible.
    pub fn recv_into(&self, buf: &mut [u8], timeout_ms: u32) -> (i32, usize) {
        let mut n = usize::MAX;
        // SAFETY: valid handle; buf valid for its length; a dangling non-NULL pointer for cap 0.
        let rc = unsafe { c::iso_recv(self.ptr, buf.as_mut_ptr(), buf.len(), &mut n, timeout_ms) };
        (rc, n)
    }

    /// Receives one message of at most `cap` bytes.
    pub fn recv(&self, cap: usize, timeout_ms: u32) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; cap];
        match self.recv_into(&mut buf, timeout_ms) {
            (ISO_OK, n) => {
                assert!(
                    n <= cap,
                    "iso_recv reported {n} bytes for a {cap}-byte buffer"
                );
                buf.truncate(n);
                Ok(buf)
            }
            (rc, _) => Err(rc),
        }
    }

    /// Receives one message that must arrive (up to 64 KiB, generous timeout).
    #[track_caller]
    pub fn recv_ok(&self) -> Vec<u8> {
        match self.recv(65536, LONG_MS) {
            Ok(m) => m,
            Err(rc) => panic!(
                "iso_recv failed: {}; last error: {:?}",
                code_name(rc),
                self.last_error()
            ),
        }
    }

    pub fn poll(&self, timeout_ms: u32) -> i32 {
        unsafe { c::iso_poll(self.ptr, timeout_ms) }
    }

    /// `iso_last_os_error`: the OS error code of the last failure (0: none).
    pub fn last_os_error(&self) -> i32 {
        let mut code = -1;
        assert_eq!(unsafe { c::iso_last_os_error(self.ptr, &mut code) }, ISO_OK);
        code
    }

    pub fn check(&self) -> i32 {
        unsafe { c::iso_check_connection(self.ptr) }
    }

    pub fn tpdu_size(&self) -> Result<u32, i32> {
        let mut v = 0u32;
        // SAFETY: valid handle and out pointer.
        match unsafe { c::iso_get_tpdu_size(self.ptr, &mut v) } {
            ISO_OK => Ok(v),
            rc => Err(rc),
        }
    }

    pub fn fd(&self) -> Result<i64, i32> {
        let mut v = -1i64;
        // SAFETY: valid handle and out pointer.
        match unsafe { c::iso_get_fd(self.ptr, &mut v) } {
            ISO_OK => Ok(v),
            rc => Err(rc),
        }
    }

    pub fn remote_tsap(&self) -> Result<Vec<u8>, i32> {
        self.tsap_with(|p, b, cap, n| unsafe { c::iso_get_remote_tsap(p, b, cap, n) })
    }

    pub fn calling_tsap(&self) -> Result<Vec<u8>, i32> {
        self.tsap_with(|p, b, cap, n| unsafe { c::iso_get_calling_tsap(p, b, cap, n) })
    }

    fn tsap_with(
        &self,
        f: impl Fn(*const iso_conn, *mut u8, usize, *mut usize) -> i32,
    ) -> Result<Vec<u8>, i32> {
        let mut buf = [0u8; 64];
        let mut n = 0usize;
        match f(self.ptr, buf.as_mut_ptr(), buf.len(), &mut n) {
            ISO_OK => Ok(buf[..n].to_vec()),
            rc => Err(rc),
        }
    }

    pub fn set_tsap(&self, local: u16, remote: u16) -> i32 {
        unsafe { c::iso_set_tsap(self.ptr, local, remote) }
    }

    pub fn set_tsap_bytes(&self, local: &[u8], remote: &[u8]) -> i32 {
        // SAFETY: valid handle and slices.
        unsafe {
            c::iso_set_tsap_bytes(
                self.ptr,
                local.as_ptr(),
                local.len(),
                remote.as_ptr(),
                remote.len(),
            )
        }
    }

    pub fn set_tpdu_size(&self, size: u32) -> i32 {
        unsafe { c::iso_set_tpdu_size(self.ptr, size) }
    }

    pub fn set_routing(&self, subnet: u16, rack: u16, slot: u16) -> i32 {
        unsafe { c::iso_set_routing(self.ptr, subnet, rack, slot) }
    }

    pub fn set_routing_s7(
        &self,
        high: u16,
        low: u16,
        addr: &[u8],
        conn_type: u8,
        rack: u16,
        slot: u16,
    ) -> i32 {
        // SAFETY: valid handle and slice.
        unsafe {
            c::iso_set_routing_s7(
                self.ptr,
                high,
                low,
                addr.as_ptr(),
                addr.len(),
                conn_type,
                rack,
                slot,
            )
        }
    }

    pub fn set_send_timeout(&self, ms: u32) -> i32 {
        unsafe { c::iso_set_send_timeout(self.ptr, ms) }
    }

    pub fn set_max_message(&self, bytes: u32) -> i32 {
        unsafe { c::iso_set_max_message(self.ptr, bytes) }
    }

    pub fn set_max_fragments(&self, n: u32) -> i32 {
        unsafe { c::iso_set_max_fragments(self.ptr, n) }
    }

    pub fn set_keepalive(&self, enable: i32, idle: u32, interval: u32, count: u32) -> i32 {
        unsafe { c::iso_set_keepalive(self.ptr, enable, idle, interval, count) }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the handle came from iso_create and is destroyed exactly once.
        unsafe { c::iso_destroy(self.ptr) };
    }
}

/// Creates, uses and destroys a fresh handle: the library (and process) still works.
#[track_caller]
pub fn assert_library_usable() {
    let conn = Conn::local(102);
    assert_eq!(conn.check(), 0);
    assert_eq!(conn.last_error(), "no error");
    assert!(!strerror(ISO_E_STATE).is_empty());
}
