//! A library built without the `tls` feature keeps every `iso_tls_*` export, so the header is
//! the same for every build; each says TLS is not built in. Run with
//! `cargo test --no-default-features --test tls_absent`.
#![cfg(not(feature = "tls"))]

use std::ptr::{null, null_mut};

use isotcp::ffi::codes::*;
use isotcp::ffi::conn::*;
use isotcp::ffi::tls::*;

fn thread_error() -> String {
    let mut buf = [0u8; 512];
    let mut needed = 0;
    unsafe { iso_thread_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
    String::from_utf8_lossy(&buf[..needed.saturating_sub(1).min(511)]).into_owned()
}

#[test]
fn tls_exports_exist_and_say_tls_is_not_built_in() {
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(iso_tls_config_create(&mut cfg), ISO_E_INVALID);
        assert!(cfg.is_null());
        assert!(
            thread_error().contains("built without TLS"),
            "{}",
            thread_error()
        );
        iso_tls_config_destroy(null_mut());
        let mut c = null_mut();
        assert_eq!(iso_create(c"127.0.0.1".as_ptr(), 102, &mut c), ISO_OK);
        assert_eq!(iso_tls_active(c), 0);
        let mut out = [0u8; 32];
        let label = b"EXPERIMENTAL_OMS";
        let rc = iso_tls_export_keying_material(
            c,
            label.as_ptr(),
            label.len(),
            null(),
            0,
            out.as_mut_ptr(),
            32,
        );
        assert_eq!(rc, ISO_E_INVALID);
        assert!(
            thread_error().contains("built without TLS"),
            "{}",
            thread_error()
        );
        let mut needed = 0;
        assert_eq!(
            iso_tls_peer_certificate(c, null_mut(), 0, &mut needed),
            ISO_E_INVALID
        );
        iso_destroy(c);
    }
}
