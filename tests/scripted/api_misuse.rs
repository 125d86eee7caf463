//! API misuse: NULL arguments, calls in the wrong state, invalid values, empty and oversized
//! sends, the result texts, and the last-error buffers.

use std::thread;

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;
use isotcp::ffi::conn as c;

#[track_caller]
fn assert_null(rc: i32, what: &str) {
    assert_code_msg(rc, ISO_E_INVALID, &thread_last_error(), &["is NULL"]);
    let _ = what;
}

#[test]
fn null_arguments_are_invalid() {
    run(|| unsafe {
        let null_conn: *mut c::iso_conn = std::ptr::null_mut();
        let host = c"127.0.0.1";
        let mut out: *mut c::iso_conn = std::ptr::dangling_mut();
        assert_null(c::iso_create(std::ptr::null(), 102, &mut out), "host");
        assert!(out.is_null(), "*out is NULL after a failed iso_create");
        assert_null(
            c::iso_create(host.as_ptr(), 102, std::ptr::null_mut()),
            "out",
        );
        c::iso_destroy(std::ptr::null_mut());

        let byte = [1u8, 2];
        let mut u32v = 0u32;
        let mut i64v = 0i64;
        let mut len = 0usize;
        let mut buf = [0u8; 16];
        assert_null(c::iso_set_tsap(null_conn, 1, 2), "conn");
        assert_null(
            c::iso_set_tsap_bytes(null_conn, byte.as_ptr(), 2, byte.as_ptr(), 2),
            "conn",
        );
        assert_null(c::iso_set_tpdu_size(null_conn, 1024), "conn");
        assert_null(c::iso_set_routing(null_conn, 1, 0, 2), "conn");
        assert_null(
            c::iso_set_routing_s7(null_conn, 1, 2, byte.as_ptr(), 1, 1, 0, 2),
            "conn",
        );
        assert_null(c::iso_set_send_timeout(null_conn, 10), "conn");
        assert_null(c::iso_set_max_message(null_conn, 1000), "conn");
        assert_null(c::iso_set_max_fragments(null_conn, 10), "conn");
        assert_null(c::iso_set_keepalive(null_conn, 1, 1, 1, 1), "conn");
        assert_null(c::iso_connect(null_conn, 10), "conn");
        assert_null(c::iso_send(null_conn, byte.as_ptr(), 2), "conn");
        assert_null(c::iso_poll(null_conn, 0), "conn");
        assert_null(
            c::iso_recv(null_conn, buf.as_mut_ptr(), 16, &mut len, 0),
            "conn",
        );
        assert_null(c::iso_check_connection(null_conn), "conn");
        assert_null(c::iso_disconnect(null_conn), "conn");
        assert_null(c::iso_get_tpdu_size(null_conn, &mut u32v), "conn");
        assert_null(c::iso_get_fd(null_conn, &mut i64v), "conn");
        assert_null(
            c::iso_get_remote_tsap(null_conn, buf.as_mut_ptr(), 16, &mut len),
            "conn",
        );
        assert_null(
            c::iso_get_calling_tsap(null_conn, buf.as_mut_ptr(), 16, &mut len),
            "conn",
        );
        let mut needed = 0usize;
        assert_null(
            c::iso_last_error(null_conn, buf.as_mut_ptr().cast(), 16, &mut needed),
            "conn",
        );
        assert_null(c::iso_s7_tsap(1, 0, 2, std::ptr::null_mut()), "out");

        // Other pointers, on a connected handle so that the state check cannot hide them.
        let (conn, peer) = connected(|_| {});
        let p = conn.raw();
        assert_null(
            c::iso_set_tsap_bytes(std::ptr::null_mut(), std::ptr::null(), 2, byte.as_ptr(), 2),
            "conn",
        );
        assert_null(c::iso_send(p, std::ptr::null(), 2), "data");
        assert_null(c::iso_send(p, std::ptr::null(), 0), "data");
        assert_null(c::iso_recv(p, std::ptr::null_mut(), 16, &mut len, 0), "buf");
        // NULL with capacity 0 is a size query, not a NULL argument.
        assert_eq!(
            c::iso_recv(p, std::ptr::null_mut(), 0, &mut len, 0),
            ISO_E_WOULD_BLOCK
        );
        assert_null(
            c::iso_recv(p, buf.as_mut_ptr(), 16, std::ptr::null_mut(), 0),
            "out_len",
        );
        assert_null(c::iso_get_tpdu_size(p, std::ptr::null_mut()), "out");
        assert_null(c::iso_get_fd(p, std::ptr::null_mut()), "out");
        assert_null(
            c::iso_get_remote_tsap(p, std::ptr::null_mut(), 16, &mut len),
            "buf",
        );
        assert_null(
            c::iso_get_remote_tsap(p, buf.as_mut_ptr(), 16, std::ptr::null_mut()),
            "out_len",
        );
        assert_null(
            c::iso_get_calling_tsap(p, std::ptr::null_mut(), 16, &mut len),
            "buf",
        );
        assert_null(
            c::iso_get_calling_tsap(p, buf.as_mut_ptr(), 16, std::ptr::null_mut()),
            "out_len",
        );
        assert_eq!(
            conn.check(),
            1,
            "NULL arguments did not disturb the connection"
        );
        drop(conn);
        peer.finish();

        // Setter pointer arguments on an idle handle.
        let conn = Conn::local(102);
        let p = conn.raw();
        assert_null(
            c::iso_set_tsap_bytes(p, std::ptr::null(), 2, byte.as_ptr(), 2),
            "local",
        );
        assert_null(
            c::iso_set_tsap_bytes(p, byte.as_ptr(), 2, std::ptr::null(), 2),
            "remote",
        );
        assert_null(
            c::iso_set_routing_s7(p, 1, 2, std::ptr::null(), 1, 1, 0, 2),
            "dest_addr",
        );
        // iso_last_error and iso_thread_last_error accept NULL outputs.
        assert_eq!(
            c::iso_last_error(p, std::ptr::null_mut(), 0, std::ptr::null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(
            c::iso_thread_last_error(std::ptr::null_mut(), 0, std::ptr::null_mut()),
            ISO_E_BUFFER_TOO_SMALL
        );
    });
}

#[test]
fn calls_in_the_wrong_state_are_state_errors() {
    run(|| {
        let conn = Conn::local(closed_port());
        conn.expect(
            conn.send(b"x"),
            ISO_E_STATE,
            &["not connected", "iso_connect"],
        );
        conn.expect(
            conn.recv(16, 0).unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(
            conn.recv(16, 100).unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(conn.poll(100), ISO_E_STATE, &["not connected"]);
        conn.expect(
            conn.tpdu_size().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(conn.fd().unwrap_err(), ISO_E_STATE, &["not connected"]);
        conn.expect(
            conn.remote_tsap().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        conn.expect(
            conn.calling_tsap().unwrap_err(),
            ISO_E_STATE,
            &["not connected"],
        );
        assert_eq!(conn.check(), 0);
        conn.ok(conn.disconnect());
        drop(conn);

        let (conn, peer) = connected(|p| p.read_message().map(|m| m.0));
        conn.expect(conn.connect(LONG_MS), ISO_E_STATE, &["already connected"]);
        let setter_codes = [
            conn.set_tsap(1, 2),
            conn.set_tsap_bytes(&[1], &[2]),
            conn.set_tpdu_size(512),
            conn.set_routing(1, 0, 2),
            conn.set_routing_s7(1, 2, &[2], 1, 0, 2),
            conn.set_send_timeout(10),
            conn.set_max_message(1000),
            conn.set_max_fragments(10),
            conn.set_keepalive(0, 0, 0, 0),
        ];
        for (i, rc) in setter_codes.into_iter().enumerate() {
            conn.expect(rc, ISO_E_STATE, &["while connected", "iso_disconnect"]);
            let _ = i;
        }
        // Nothing changed: the connection still works with the negotiated settings.
        assert_eq!(conn.tpdu_size(), Ok(1024));
        assert_eq!(conn.check(), 1);
        conn.ok(conn.send(b"still fine"));
        conn.ok(conn.disconnect());
        conn.ok(conn.disconnect());
        conn.ok(conn.set_tpdu_size(512));
        assert_eq!(peer.finish(), Some(b"still fine".to_vec()));
    });
}

#[test]
fn invalid_values_are_refused_and_change_nothing() {
    run(|| {
        let peer = Peer::answering(cc_snap7());
        let conn = Conn::local(peer.port());
        conn.ok(conn.set_tsap(0x0200, 0x0201));
        for size in [0u32, 64, 100, 1000, 16384, 65536, u32::MAX] {
            conn.expect(
                conn.set_tpdu_size(size),
                ISO_E_INVALID,
                &["TPDU size", &size.to_string()],
            );
        }
        for size in [128u32, 256, 512, 2048, 4096, 8192, 1024] {
            conn.ok(conn.set_tpdu_size(size));
        }
        conn.expect(
            conn.set_tsap_bytes(&[], &[1]),
            ISO_E_INVALID,
            &["local TSAP is empty"],
        );
        conn.expect(
            conn.set_tsap_bytes(&[1], &[]),
            ISO_E_INVALID,
            &["remote TSAP is empty"],
        );
        conn.expect(
            conn.set_tsap_bytes(&[1; 33], &[1]),
            ISO_E_INVALID,
            &["TSAP length 33"],
        );
        conn.expect(
            conn.set_tsap_bytes(&[1], &[1; 33]),
            ISO_E_INVALID,
            &["TSAP length 33"],
        );
        for bytes in [0u32, 127, 16_777_217, u32::MAX] {
            conn.expect(
                conn.set_max_message(bytes),
                ISO_E_INVALID,
                &["maximum message", &bytes.to_string()],
            );
        }
        conn.ok(conn.set_max_message(128));
        conn.ok(conn.set_max_message(16_777_216));
        conn.ok(conn.set_max_message(65_536));
        conn.expect(
            conn.set_max_fragments(0),
            ISO_E_INVALID,
            &["fragment limit 0"],
        );
        conn.expect(
            conn.set_max_fragments(1_048_577),
            ISO_E_INVALID,
            &["fragment limit"],
        );
        conn.expect(
            conn.set_keepalive(1, 0, 10, 3),
            ISO_E_INVALID,
            &["keep-alive"],
        );
        conn.expect(
            conn.set_keepalive(1, 60, 10, 32768),
            ISO_E_INVALID,
            &["keep-alive"],
        );
        conn.expect(conn.set_routing(1, 8, 0), ISO_E_INVALID, &["rack 8"]);
        conn.expect(conn.set_routing(1, 0, 32), ISO_E_INVALID, &["slot 32"]);
        conn.expect(
            conn.set_routing_s7(1, 2, &[], 1, 0, 2),
            ISO_E_INVALID,
            &["address length 0"],
        );
        conn.expect(
            conn.set_routing_s7(1, 2, &[0; 17], 1, 0, 2),
            ISO_E_INVALID,
            &["address length 17"],
        );
        conn.expect(
            conn.set_routing_s7(1, 2, &[2], 1, 8, 2),
            ISO_E_INVALID,
            &["rack 8"],
        );
        let mut t = 0u16;
        // SAFETY: valid out pointer.
        unsafe {
            assert_eq!(c::iso_s7_tsap(1, 0, 2, &mut t), ISO_OK);
            assert_eq!(t, 0x0102);
            assert_eq!(c::iso_s7_tsap(3, 1, 3, &mut t), ISO_OK);
            assert_eq!(t, 0x0323);
            assert_eq!(c::iso_s7_tsap(1, 8, 2, &mut t), ISO_E_INVALID);
            assert_eq!(c::iso_s7_tsap(1, 0, 32, &mut t), ISO_E_INVALID);
            assert_eq!(t, 0x0323, "*out untouched on failure");
        }
        // None of the refused calls changed the CR.
        conn.ok(conn.connect(LONG_MS));
        drop(conn);
        assert_eq!(
            peer.finish(),
            hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 02 00 C2 02 02 01 C0 01 0A")
        );
    });
}

#[test]
fn empty_and_oversized_sends() {
    run(|| {
        let (conn, peer) = connected_with(
            |c| c.ok(c.set_max_message(128)),
            |p| p.read_message().map(|m| m.0),
        );
        conn.expect(conn.send(&[]), ISO_E_INVALID, &["empty message"]);
        conn.expect(
            conn.send(&[0; 129]),
            ISO_E_TOO_LARGE,
            &["129 bytes", "maximum message size of 128"],
        );
        assert_eq!(conn.check(), 1, "refused sends leave the connection intact");
        conn.ok(conn.send(&[5; 128]));
        drop(conn);
        assert_eq!(peer.finish(), Some(vec![5; 128]));
        // Empty message before connect: invalid argument comes first.
        let idle = Conn::local(102);
        idle.expect(idle.send(&[]), ISO_E_INVALID, &["empty message"]);
    });
}

#[test]
fn strerror_covers_every_code() {
    let codes = [
        ISO_OK,
        ISO_E_INVALID,
        ISO_E_STATE,
        ISO_E_RESOLVE,
        ISO_E_REFUSED,
        ISO_E_TIMEOUT,
        ISO_E_WOULD_BLOCK,
        ISO_E_CLOSED,
        ISO_E_REJECTED,
        ISO_E_PROTOCOL,
        ISO_E_TOO_LARGE,
        ISO_E_BUFFER_TOO_SMALL,
        ISO_E_IO,
        ISO_E_PANIC,
        ISO_E_POISONED,
        ISO_E_TLS,
    ];
    assert_eq!(
        codes.to_vec(),
        (-15..=0).rev().collect::<Vec<i32>>(),
        "codes are stable"
    );
    let texts: Vec<String> = codes.iter().map(|&c| strerror(c)).collect();
    for (c, t) in codes.iter().zip(&texts) {
        assert!(!t.is_empty() && !t.contains("unknown"), "{c}: {t:?}");
    }
    let mut uniq = texts.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), texts.len(), "every code has its own text");
    for unknown in [1, -16, 100, i32::MIN, i32::MAX] {
        assert!(
            strerror(unknown).contains("unknown"),
            "{unknown}: {:?}",
            strerror(unknown)
        );
    }
    // Static: the same pointer every time.
    assert_eq!(
        isotcp::ffi::codes::iso_strerror(-7),
        isotcp::ffi::codes::iso_strerror(-7)
    );
}

#[test]
fn last_error_size_query_and_truncation() {
    run(|| unsafe {
        let conn = Conn::local(102);
        assert_eq!(conn.last_error(), "no error");
        conn.expect(conn.send(b"x"), ISO_E_STATE, &["not connected"]);
        let full = conn.last_error();
        let p = conn.raw();

        let mut needed = 0usize;
        let rc = c::iso_last_error(p, std::ptr::null_mut(), 0, &mut needed);
        assert_eq!(rc, ISO_E_BUFFER_TOO_SMALL, "size query: nothing copied");
        assert_eq!(needed, full.len() + 1, "needed includes the NUL");

        let mut small = [0x55u8; 5];
        needed = 0;
        let rc = c::iso_last_error(p, small.as_mut_ptr().cast(), small.len(), &mut needed);
        assert_eq!(rc, ISO_E_BUFFER_TOO_SMALL);
        assert_eq!(needed, full.len() + 1);
        assert_eq!(&small[..4], &full.as_bytes()[..4]);
        assert_eq!(small[4], 0, "truncated text is NUL-terminated");

        let mut one = [0x55u8; 1];
        assert_eq!(
            c::iso_last_error(p, one.as_mut_ptr().cast(), 1, &mut needed),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(one[0], 0);

        let mut exact = vec![0x55u8; full.len() + 1];
        assert_eq!(
            c::iso_last_error(
                p,
                exact.as_mut_ptr().cast(),
                exact.len(),
                std::ptr::null_mut()
            ),
            ISO_OK
        );
        assert_eq!(&exact[..full.len()], full.as_bytes());
        assert_eq!(exact[full.len()], 0);

        // Same for the thread's last error.
        let mut tneeded = 0usize;
        assert_eq!(
            c::iso_thread_last_error(std::ptr::null_mut(), 0, &mut tneeded),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(
            tneeded,
            full.len() + 1,
            "the thread's last error is the same message"
        );

        // Successful calls do not clear the message.
        conn.ok(conn.set_tpdu_size(512));
        assert_eq!(conn.last_error(), full);
    });
}

#[test]
fn thread_last_error_after_a_failed_create() {
    run(|| {
        let h = thread::spawn(|| {
            assert_eq!(
                thread_last_error(),
                "no error",
                "a fresh thread has no error"
            );
            let (rc, m) = Conn::try_create("no such host!", 102)
                .err()
                .expect("iso_create must fail");
            assert_code_msg(rc, ISO_E_INVALID, &m, &["no such host!"]);
            m
        });
        let m = h.join().unwrap();
        // Per thread: this thread did not see it.
        assert_ne!(thread_last_error(), m);
    });
}
