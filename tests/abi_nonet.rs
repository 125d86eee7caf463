//! The C ABI without network I/O: version, result texts, handle creation with good and bad
//! hosts, every setter with good and bad values, last-error sizing and truncation, iso_s7_tsap,
//! calls in the wrong state and NULL for every pointer parameter. Written to run under Miri as
//! well as under `cargo test`:
//!
//!     cargo +nightly miri test --test abi_nonet
//!
//! (Miri: `rustup +nightly component add miri`.) The only Miri warning expected is
//! parking_lot_core's integer-to-pointer cast inside its lock queue.
//!
//! Tests that need sockets (listener creation) are ignored under Miri.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use isotcp::ffi::codes::*;
use isotcp::ffi::conn::*;
use isotcp::ffi::listener::*;
use isotcp::ffi::queue::*;

/// Loops shortened under Miri, which runs code thousands of times slower.
const ROUNDS: usize = if cfg!(miri) { 8 } else { 1000 };

fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn create(host: &[u8]) -> (i32, *mut iso_conn) {
    let host: Vec<u8> = host.iter().copied().chain([0]).collect();
    // Not NULL before the call: iso_create must write NULL on failure.
    let mut out = std::ptr::NonNull::<iso_conn>::dangling().as_ptr();
    let rc = unsafe { iso_create(host.as_ptr().cast(), 102, &mut out) };
    (rc, out)
}

/// A handle moved to other threads (the C ABI allows any thread to use it).
#[derive(Clone, Copy)]
struct Shared(*mut iso_conn);
// SAFETY: iso_conn handles may be used from any thread (the header's thread rules).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer, through a method so closures capture the whole (Send) struct.
    fn get(self) -> *mut iso_conn {
        self.0
    }
}

fn new_conn() -> *mut iso_conn {
    let (rc, c) = create(b"127.0.0.1");
    assert_eq!(rc, ISO_OK);
    assert!(!c.is_null());
    c
}

fn last_error(c: *const iso_conn) -> String {
    let mut buf = [0u8; 512];
    let mut needed = 0usize;
    let rc = unsafe { iso_last_error(c, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
    assert_eq!(rc, ISO_OK);
    let s = CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap();
    assert_eq!(needed, s.len() + 1);
    s.to_owned()
}

fn thread_last_error() -> String {
    let mut buf = [0u8; 512];
    let rc = unsafe { iso_thread_last_error(buf.as_mut_ptr().cast(), buf.len(), null_mut()) };
    assert_eq!(rc, ISO_OK);
    CStr::from_bytes_until_nul(&buf)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn version_and_result_texts() {
    assert_eq!(text(iso_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(text(iso_version()), ISO_VERSION);
    assert_eq!(iso_version_number(), ISO_VERSION_NUMBER);
    let known: Vec<String> = (ISO_E_TLS..=ISO_OK)
        .map(|c| text(iso_strerror(c)))
        .collect();
    assert_eq!(known.len(), 16);
    for (i, t) in known.iter().enumerate() {
        assert!(!t.is_empty());
        for u in &known[i + 1..] {
            assert_ne!(t, u, "two codes share a text");
        }
    }
    let unknown = text(iso_strerror(1));
    assert!(!known.contains(&unknown));
    for code in [2, -16, -100, i32::MIN, i32::MAX] {
        assert_eq!(text(iso_strerror(code)), unknown, "code {code}");
    }
}

#[test]
fn create_and_destroy_with_good_and_bad_hosts() {
    let long_label = "a".repeat(64);
    let long_name = ["abc"; 64].join(".");
    let good: &[&[u8]] = &[
        b"127.0.0.1",
        b"::1",
        b"[::1]",
        b"fe80::1",
        b"localhost",
        b"plc-1.example.com",
        b"a",
        b"255.255.255.255",
    ];
    for host in good {
        let (rc, c) = create(host);
        assert_eq!(rc, ISO_OK, "{:?}", String::from_utf8_lossy(host));
        assert!(!c.is_null());
        assert_eq!(last_error(c), "no error");
        unsafe { iso_destroy(c) };
    }
    let bad: &[&[u8]] = &[
        b"",
        b"a b",
        b"host:102",
        b"..",
        b"a..b",
        b"bad/host",
        b"[]",
        b"[127.0.0.1",
        b"\xff\xfe",
        b"caf\xc3",
        long_label.as_bytes(),
        long_name.as_bytes(),
    ];
    for host in bad {
        let (rc, c) = create(host);
        assert_eq!(rc, ISO_E_INVALID, "{:?}", String::from_utf8_lossy(host));
        assert!(c.is_null(), "*out not NULL after a failed iso_create");
        assert!(thread_last_error().starts_with("invalid argument"));
    }
    unsafe {
        let mut out = std::ptr::NonNull::<iso_conn>::dangling().as_ptr();
        assert_eq!(iso_create(null(), 102, &mut out), ISO_E_INVALID);
        assert!(out.is_null());
        assert_eq!(
            iso_create(c"127.0.0.1".as_ptr(), 102, null_mut()),
            ISO_E_INVALID
        );
        assert_eq!(iso_create(null(), 102, null_mut()), ISO_E_INVALID);
        iso_destroy(null_mut());
        iso_listener_destroy(null_mut());
    }
}

#[test]
fn every_setter_with_good_and_bad_values() {
    let c = new_conn();
    let t32 = [b'T'; 32];
    let t33 = [b'T'; 33];
    let addr = [2u8; 17];
    unsafe {
        assert_eq!(iso_set_tsap(c, 0, 0), ISO_OK);
        assert_eq!(iso_set_tsap(c, 0xFFFF, 0xFFFF), ISO_OK);

        assert_eq!(
            iso_set_tsap_bytes(c, t32.as_ptr(), 1, t32.as_ptr(), 1),
            ISO_OK
        );
        assert_eq!(
            iso_set_tsap_bytes(c, t32.as_ptr(), 32, t32.as_ptr(), 32),
            ISO_OK
        );
        assert_eq!(
            iso_set_tsap_bytes(c, t32.as_ptr(), 0, t32.as_ptr(), 2),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_tsap_bytes(c, t32.as_ptr(), 2, t32.as_ptr(), 0),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_tsap_bytes(c, t33.as_ptr(), 33, t32.as_ptr(), 2),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_tsap_bytes(c, t32.as_ptr(), 2, t33.as_ptr(), 33),
            ISO_E_INVALID
        );
        assert!(last_error(c).contains("33"), "{}", last_error(c));

        for size in [128, 256, 512, 1024, 2048, 4096, 8192] {
            assert_eq!(iso_set_tpdu_size(c, size), ISO_OK, "{size}");
        }
        for size in [0, 1, 127, 129, 1000, 3000, 16384, u32::MAX] {
            assert_eq!(iso_set_tpdu_size(c, size), ISO_E_INVALID, "{size}");
        }

        assert_eq!(iso_set_routing(c, 0x1234, 0, 2), ISO_OK);
        assert_eq!(iso_set_routing(c, 0xFFFF, 7, 31), ISO_OK);
        assert_eq!(iso_set_routing(c, 1, 8, 2), ISO_E_INVALID);
        assert_eq!(iso_set_routing(c, 1, 0, 32), ISO_E_INVALID);
        assert_eq!(iso_set_routing(c, 1, u16::MAX, u16::MAX), ISO_E_INVALID);

        for len in [1, 4, 16] {
            assert_eq!(
                iso_set_routing_s7(c, 0x0152, 0x0013, addr.as_ptr(), len, 1, 0, 2),
                ISO_OK,
                "{len}"
            );
        }
        assert_eq!(
            iso_set_routing_s7(c, 1, 2, addr.as_ptr(), 0, 1, 0, 2),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_routing_s7(c, 1, 2, addr.as_ptr(), 17, 1, 0, 2),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_routing_s7(c, 1, 2, addr.as_ptr(), 1, 1, 8, 2),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_routing_s7(c, 1, 2, addr.as_ptr(), 1, 1, 0, 32),
            ISO_E_INVALID
        );
        assert_eq!(
            iso_set_routing_s7(c, 1, 2, null(), 1, 1, 0, 2),
            ISO_E_INVALID
        );

        for ms in [0, 1, 5000, u32::MAX] {
            assert_eq!(iso_set_send_timeout(c, ms), ISO_OK);
        }

        for (bytes, rc) in [
            (0, ISO_E_INVALID),
            (127, ISO_E_INVALID),
            (128, ISO_OK),
            (16_777_216, ISO_OK),
            (16_777_217, ISO_E_INVALID),
            (u32::MAX, ISO_E_INVALID),
            (65536, ISO_OK),
        ] {
            assert_eq!(iso_set_max_message(c, bytes), rc, "max message {bytes}");
        }
        for (n, rc) in [
            (0, ISO_E_INVALID),
            (1, ISO_OK),
            (1 << 20, ISO_OK),
            ((1 << 20) + 1, ISO_E_INVALID),
            (u32::MAX, ISO_E_INVALID),
        ] {
            assert_eq!(iso_set_max_fragments(c, n), rc, "fragments {n}");
        }
        for (args, rc) in [
            ((1, 60, 10, 3), ISO_OK),
            ((-7, 1, 1, 1), ISO_OK),
            ((1, 32767, 32767, 32767), ISO_OK),
            ((1, 0, 10, 3), ISO_E_INVALID),
            ((1, 60, 0, 3), ISO_E_INVALID),
            ((1, 60, 10, 0), ISO_E_INVALID),
            ((1, 32768, 10, 3), ISO_E_INVALID),
            ((1, 60, u32::MAX, 3), ISO_E_INVALID),
            ((0, 0, 0, 0), ISO_OK),
        ] {
            assert_eq!(
                iso_set_keepalive(c, args.0, args.1, args.2, args.3),
                rc,
                "keepalive {args:?}"
            );
        }
        for (bytes, rc) in [
            (0, ISO_OK),
            (268_435_456, ISO_OK),
            (268_435_457, ISO_E_INVALID),
            (u32::MAX, ISO_E_INVALID),
        ] {
            assert_eq!(iso_set_max_queued(c, bytes), rc, "max queued {bytes}");
        }
        iso_destroy(c);
    }
}

#[test]
fn s7_tsap() {
    let mut t = 0u16;
    unsafe {
        for (ty, rack, slot, want) in [
            (1, 0, 2, 0x0102),
            (2, 1, 3, 0x0223),
            (3, 0, 1, 0x0301),
            (0x10, 7, 31, 0x10FF),
        ] {
            assert_eq!(iso_s7_tsap(ty, rack, slot, &mut t), ISO_OK);
            assert_eq!(t, want);
        }
        t = 0xABCD;
        assert_eq!(iso_s7_tsap(1, 8, 2, &mut t), ISO_E_INVALID);
        assert_eq!(iso_s7_tsap(1, 0, 32, &mut t), ISO_E_INVALID);
        assert_eq!(iso_s7_tsap(1, 255, 255, &mut t), ISO_E_INVALID);
        assert_eq!(t, 0xABCD, "written only on success");
        assert_eq!(iso_s7_tsap(1, 0, 2, null_mut()), ISO_E_INVALID);
    }
}

#[test]
fn last_error_sizing_and_truncation() {
    let c = new_conn();
    unsafe {
        let mut needed = 0usize;
        assert_eq!(
            iso_last_error(c, null_mut(), 0, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(needed, "no error".len() + 1);
        assert_eq!(iso_set_tpdu_size(c, 1000), ISO_E_INVALID);
        let full = last_error(c);
        assert!(full.contains("1000"), "{full}");
        let n = full.len() + 1;

        // Size query, exact fit, one byte short, tiny, one byte; the bytes past `cap` untouched.
        assert_eq!(
            iso_last_error(c, null_mut(), 0, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(needed, n);
        assert_eq!(
            iso_last_error(c, null_mut(), 0, null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
        for cap in [n + 10, n, n - 1, 5, 1] {
            let mut buf = vec![b'#'; n + 16];
            let rc = iso_last_error(c, buf.as_mut_ptr().cast(), cap, &mut needed);
            assert_eq!(needed, n);
            let kept = cap.min(n) - 1;
            assert_eq!(
                rc,
                if cap >= n {
                    ISO_OK
                } else {
                    ISO_E_BUFFER_TOO_SMALL
                }
            );
            assert_eq!(&buf[..kept], &full.as_bytes()[..kept]);
            assert_eq!(buf[kept], 0);
            assert!(buf[kept + 1..].iter().all(|&b| b == b'#'), "cap {cap}");
        }
        // No out_needed.
        let mut buf = [0u8; 512];
        assert_eq!(
            iso_last_error(c, buf.as_mut_ptr().cast(), buf.len(), null_mut()),
            ISO_OK
        );

        // The thread's copy, with the same sizing rules.
        assert_eq!(thread_last_error(), full);
        assert_eq!(
            iso_thread_last_error(null_mut(), 0, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(needed, n);
        let mut small = [b'#'; 8];
        assert_eq!(
            iso_thread_last_error(small.as_mut_ptr().cast(), 3, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(
            &small[..4],
            &[full.as_bytes()[0], full.as_bytes()[1], 0, b'#']
        );

        // Success leaves the handle's message; a NULL handle reaches only the thread's.
        assert_eq!(iso_set_tpdu_size(c, 512), ISO_OK);
        assert_eq!(last_error(c), full);
        assert_eq!(iso_set_tpdu_size(null_mut(), 512), ISO_E_INVALID);
        assert!(thread_last_error().contains("NULL"));
        assert_eq!(last_error(c), full);
        assert_eq!(
            iso_last_error(null(), buf.as_mut_ptr().cast(), buf.len(), &mut needed),
            ISO_E_INVALID
        );
        iso_destroy(c);
    }
}

#[test]
fn thread_last_error_belongs_to_its_thread() {
    let c = new_conn();
    unsafe { assert_eq!(iso_set_tpdu_size(c, 3), ISO_E_INVALID) };
    assert!(thread_last_error().contains('3'));
    let other = std::thread::spawn(thread_last_error).join().unwrap();
    assert_eq!(other, "no error");
    // The handle's message is visible from any thread.
    let shared = Shared(c);
    let seen = std::thread::spawn(move || last_error(shared.get()))
        .join()
        .unwrap();
    assert_eq!(seen, last_error(c));
    unsafe { iso_destroy(c) };
}

#[test]
fn calls_that_need_a_connection_give_state_errors() {
    let c = new_conn();
    let data = [1u8, 2, 3, 4];
    let mut buf = [0u8; 64];
    let mut n = 12345usize;
    let mut u = 777u32;
    let mut fd = -77i64;
    unsafe {
        assert_eq!(iso_send(c, data.as_ptr(), data.len()), ISO_E_STATE);
        assert_eq!(iso_queue_send(c, data.as_ptr(), data.len()), ISO_E_STATE);
        assert_eq!(iso_flush(c, 0), ISO_E_STATE);
        assert_eq!(iso_flush(c, 10), ISO_E_STATE);
        assert_eq!(
            iso_recv(c, buf.as_mut_ptr(), buf.len(), &mut n, 0),
            ISO_E_STATE
        );
        assert_eq!(
            iso_recv(c, buf.as_mut_ptr(), buf.len(), &mut n, 10),
            ISO_E_STATE
        );
        assert_eq!(iso_recv(c, buf.as_mut_ptr(), 0, &mut n, 0), ISO_E_STATE);
        assert_eq!(n, 12345, "written only on success");
        assert_eq!(iso_poll(c, 0), ISO_E_STATE);
        assert_eq!(iso_poll(c, 10), ISO_E_STATE);
        assert_eq!(iso_get_tpdu_size(c, &mut u), ISO_E_STATE);
        assert_eq!(u, 777);
        assert_eq!(iso_get_fd(c, &mut fd), ISO_E_STATE);
        assert_eq!(fd, -77);
        assert_eq!(
            iso_get_remote_tsap(c, buf.as_mut_ptr(), buf.len(), &mut n),
            ISO_E_STATE
        );
        assert_eq!(
            iso_get_calling_tsap(c, buf.as_mut_ptr(), buf.len(), &mut n),
            ISO_E_STATE
        );
        assert_eq!(n, 12345);
        assert!(last_error(c).contains("not connected"), "{}", last_error(c));
        assert_eq!(iso_check_connection(c), 0);
        assert_eq!(iso_disconnect(c), ISO_OK);
        assert_eq!(iso_disconnect(c), ISO_OK);
        assert_eq!(iso_get_send_pending(c, &mut n), ISO_OK);
        assert_eq!(n, 0);
        // An empty message is invalid whatever the state.
        assert_eq!(iso_send(c, data.as_ptr(), 0), ISO_E_INVALID);
        assert_eq!(iso_queue_send(c, data.as_ptr(), 0), ISO_E_INVALID);
        // Setters still work after all that.
        assert_eq!(iso_set_tpdu_size(c, 256), ISO_OK);
        iso_destroy(c);
    }
}

#[test]
fn null_for_every_pointer_parameter() {
    let c = new_conn();
    let b = [0u8; 32];
    let mut out = [0u8; 32];
    let mut n = 0usize;
    let mut u32v = 0u32;
    let mut u16v = 0u16;
    let mut u64v = 0u64;
    let mut fd = 0i64;
    let nc: *mut iso_conn = null_mut();
    let nl: *mut iso_listener = null_mut();
    let bp = b.as_ptr();
    let op = out.as_mut_ptr();
    unsafe {
        // NULL handle.
        for (i, rc) in [
            iso_set_tsap(nc, 1, 2),
            iso_set_tsap_bytes(nc, bp, 2, bp, 2),
            iso_set_tpdu_size(nc, 1024),
            iso_set_routing(nc, 1, 0, 2),
            iso_set_routing_s7(nc, 1, 2, bp, 1, 1, 0, 2),
            iso_set_send_timeout(nc, 1),
            iso_set_max_message(nc, 1024),
            iso_set_max_fragments(nc, 1),
            iso_set_keepalive(nc, 1, 1, 1, 1),
            iso_set_max_queued(nc, 0),
            iso_connect(nc, 0),
            iso_send(nc, bp, 1),
            iso_queue_send(nc, bp, 1),
            iso_flush(nc, 0),
            iso_get_send_pending(nc, &mut n),
            iso_poll(nc, 0),
            iso_recv(nc, op, 32, &mut n, 0),
            iso_check_connection(nc),
            iso_disconnect(nc),
            iso_get_tpdu_size(nc, &mut u32v),
            iso_get_fd(nc, &mut fd),
            iso_get_remote_tsap(nc, op, 32, &mut n),
            iso_get_calling_tsap(nc, op, 32, &mut n),
            iso_last_error(nc, op.cast(), 32, &mut n),
            iso_listener_port(nl, &mut u16v),
            iso_accept(nl, 0, &mut null_mut()),
            iso_listener_get_fd(nl, &mut fd),
            iso_listener_next_timeout(nl, &mut u32v),
            iso_listener_set_max_tpdu(nl, 1024),
            iso_listener_set_cr_timeout(nl, 1000),
            iso_listener_set_max_pending(nl, 1),
            iso_listener_set_max_queued(nl, 0),
            iso_listener_set_max_message(nl, 1024),
            iso_listener_allow_tsap(nl, bp, 2),
            iso_listener_set_filter(nl, None, null_mut()),
            iso_listener_refused_count(nl, &mut u64v),
            iso_listener_last_error(nl, op.cast(), 32, &mut n),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(rc, ISO_E_INVALID, "NULL handle, call #{i}");
        }

        // NULL for the other pointers, on a live handle. Setters and output functions that need
        // no connection: ISO_E_INVALID.
        for (i, rc) in [
            iso_set_tsap_bytes(c, null(), 2, bp, 2),
            iso_set_tsap_bytes(c, bp, 2, null(), 2),
            iso_set_tsap_bytes(c, null(), 0, null(), 0),
            iso_set_routing_s7(c, 1, 2, null(), 1, 1, 0, 2),
            iso_set_routing_s7(c, 1, 2, null(), 0, 1, 0, 2),
            iso_get_send_pending(c, null_mut()),
            iso_s7_tsap(1, 0, 2, null_mut()),
            iso_create(c"127.0.0.1".as_ptr(), 1, null_mut()),
            iso_listen(c"127.0.0.1".as_ptr(), 0, null_mut()),
            iso_listen(null(), 0, null_mut()),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(rc, ISO_E_INVALID, "NULL argument, call #{i}");
        }
        // Where a connection is also missing, either error may be reported first.
        for (i, rc) in [
            iso_send(c, null(), 4),
            iso_send(c, null(), 0),
            iso_queue_send(c, null(), 4),
            iso_recv(c, null_mut(), 32, &mut n, 0),
            iso_recv(c, op, 32, null_mut(), 0),
            iso_recv(c, null_mut(), 0, null_mut(), 0),
            iso_get_tpdu_size(c, null_mut()),
            iso_get_fd(c, null_mut()),
            iso_get_remote_tsap(c, null_mut(), 32, &mut n),
            iso_get_remote_tsap(c, op, 32, null_mut()),
            iso_get_calling_tsap(c, null_mut(), 32, &mut n),
            iso_get_calling_tsap(c, op, 32, null_mut()),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(
                rc == ISO_E_INVALID || rc == ISO_E_STATE,
                "NULL argument on an unconnected handle, call #{i}: {rc}"
            );
        }
        // Size queries with no buffer.
        assert_eq!(
            iso_last_error(c, null_mut(), 0, null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(
            iso_thread_last_error(null_mut(), 0, null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
        iso_destroy(c);
    }
}

/// Setters and last-error reads from several threads at once on one handle: serialised, each
/// reader sees a whole message.
#[test]
fn one_handle_shared_by_threads() {
    let shared = Shared(new_conn());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                let c = shared.get();
                for i in 0..ROUNDS {
                    let bad = 1000 + t;
                    unsafe {
                        assert_eq!(iso_set_tpdu_size(c, bad), ISO_E_INVALID);
                        assert_eq!(iso_set_tpdu_size(c, 128 << (i % 7)), ISO_OK);
                        assert_eq!(iso_set_max_message(c, 1024 + i as u32), ISO_OK);
                        assert_eq!(iso_check_connection(c), 0);
                    }
                    let msg = last_error(c);
                    assert!(
                        msg.starts_with("invalid argument: TPDU size 100"),
                        "torn or unexpected message {msg:?}"
                    );
                    assert!(thread_last_error().contains(&bad.to_string()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    unsafe { iso_destroy(shared.get()) };
}

/// A listener with every setter, good and bad, and accept with nobody connecting.
#[test]
#[cfg_attr(miri, ignore = "opens a socket")]
fn listener_setters_without_clients() {
    unsafe {
        let mut l: *mut iso_listener = null_mut();
        assert_eq!(iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l), ISO_OK);
        assert!(!l.is_null());
        let mut port = 0u16;
        assert_eq!(iso_listener_port(l, &mut port), ISO_OK);
        assert_ne!(port, 0);
        let mut fd = -1i64;
        assert_eq!(iso_listener_get_fd(l, &mut fd), ISO_OK);
        assert!(fd >= 0);
        let mut next = 0u32;
        assert_eq!(iso_listener_next_timeout(l, &mut next), ISO_OK);
        assert_eq!(next, u32::MAX);
        for size in [128, 8192] {
            assert_eq!(iso_listener_set_max_tpdu(l, size), ISO_OK);
        }
        for size in [0, 100, 16384] {
            assert_eq!(iso_listener_set_max_tpdu(l, size), ISO_E_INVALID);
        }
        for (ms, rc) in [
            (0, ISO_E_INVALID),
            (1, ISO_OK),
            (3_600_000, ISO_OK),
            (3_600_001, ISO_E_INVALID),
        ] {
            assert_eq!(iso_listener_set_cr_timeout(l, ms), rc);
        }
        for (n, rc) in [
            (0, ISO_E_INVALID),
            (1, ISO_OK),
            (65536, ISO_OK),
            (65537, ISO_E_INVALID),
        ] {
            assert_eq!(iso_listener_set_max_pending(l, n), rc);
        }
        for (n, rc) in [
            (0, ISO_OK),
            (268_435_456, ISO_OK),
            (268_435_457, ISO_E_INVALID),
        ] {
            assert_eq!(iso_listener_set_max_queued(l, n), rc);
        }
        for (n, rc) in [
            (127, ISO_E_INVALID),
            (128, ISO_OK),
            (16_777_216, ISO_OK),
            (16_777_217, ISO_E_INVALID),
        ] {
            assert_eq!(iso_listener_set_max_message(l, n), rc);
        }
        let t = [b'T'; 33];
        assert_eq!(iso_listener_allow_tsap(l, t.as_ptr(), 0), ISO_E_INVALID);
        assert_eq!(iso_listener_allow_tsap(l, t.as_ptr(), 33), ISO_E_INVALID);
        assert_eq!(iso_listener_allow_tsap(l, t.as_ptr(), 32), ISO_OK);
        assert_eq!(iso_listener_allow_tsap(l, null(), 2), ISO_E_INVALID);
        assert_eq!(iso_listener_set_filter(l, None, null_mut()), ISO_OK);
        let mut refused = 9u64;
        assert_eq!(iso_listener_refused_count(l, &mut refused), ISO_OK);
        assert_eq!(refused, 0);
        let sentinel = std::ptr::NonNull::<iso_conn>::dangling().as_ptr();
        let mut out = sentinel;
        assert_eq!(iso_accept(l, 0, &mut out), ISO_E_WOULD_BLOCK);
        assert_eq!(iso_accept(l, 20, &mut out), ISO_E_TIMEOUT);
        assert_eq!(out, sentinel, "written only on success");
        assert_eq!(iso_accept(l, 0, null_mut()), ISO_E_INVALID);
        let mut needed = 0usize;
        assert_eq!(
            iso_listener_last_error(l, null_mut(), 0, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert!(needed > 1);
        // A second listener on the same port, and bad bind hosts.
        let mut second = std::ptr::NonNull::<iso_listener>::dangling().as_ptr();
        assert_eq!(
            iso_listen(c"127.0.0.1".as_ptr(), port, &mut second),
            ISO_E_IO
        );
        assert!(second.is_null());
        second = std::ptr::NonNull::<iso_listener>::dangling().as_ptr();
        assert_eq!(
            iso_listen(c"not a host!".as_ptr(), 0, &mut second),
            ISO_E_INVALID
        );
        assert!(second.is_null());
        iso_listener_destroy(l);
    }
}
