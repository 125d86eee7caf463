//! Threads and the panic boundary: a disconnect waking a blocked receiver or poller, concurrent
//! sends and receives, and a panic caught at the boundary poisoning the handle.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::conn::*;
use crate::common::packets::*;
use crate::common::peer::*;
use crate::run;
use isotcp::ffi::conn as c;

/// One thread waits in `wait` (recv or poll, 10 s timeout); another disconnects after 200 ms.
fn disconnect_wakes(wait: fn(&Conn) -> i32) {
    let (conn, peer) = connected(|_| {});
    let conn = Arc::new(conn);
    let c2 = conn.clone();
    let waiter = thread::spawn(move || {
        let t = Instant::now();
        (wait(&c2), t.elapsed())
    });
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    conn.ok(conn.disconnect());
    let (rc, el) = waiter.join().unwrap();
    let woke = t.elapsed();
    conn.expect(
        rc,
        ISO_E_STATE,
        &[
            "closed by a disconnect from another thread",
            "iso_disconnect was called",
        ],
    );
    assert!(
        el >= Duration::from_millis(150),
        "returned before the disconnect: {el:?}"
    );
    assert!(
        woke < Duration::from_millis(500),
        "woke {woke:?} after the disconnect"
    );
    assert_eq!(conn.check(), 0);
    // The peer sees the connection closed.
    drop(conn);
    peer.finish();
}

#[test]
fn disconnect_wakes_a_blocked_receiver() {
    run(|| disconnect_wakes(|c| c.recv(1024, 10_000).unwrap_err()));
}

#[test]
fn disconnect_wakes_a_blocked_poller() {
    run(|| disconnect_wakes(|c| c.poll(10_000)));
}

#[test]
fn concurrent_send_and_receive_of_2000_echoed_messages() {
    bounded(Duration::from_secs(25), || {
        const N: u32 = 2000;
        let size = |i: u32| 1 + (i as usize * 7919) % 3000;
        let (conn, peer) = connected(|p| {
            // Echo every TPKT as it comes (fragments included, so messages reassemble).
            let mut echoed = 0u32;
            let mut out = p.stream.try_clone().unwrap();
            while echoed < N {
                let pkt = p.read_tpkt().expect("client closed early");
                if pkt[6] & 0x80 != 0 {
                    echoed += 1;
                }
                std::io::Write::write_all(&mut out, &pkt).unwrap();
            }
            echoed
        });
        let conn = Arc::new(conn);
        let sender = {
            let c2 = conn.clone();
            thread::spawn(move || {
                for i in 0..N {
                    let rc = c2.send(&pattern(i, size(i)));
                    assert!(
                        rc == ISO_OK,
                        "send {i}: {} {}",
                        code_name(rc),
                        c2.last_error()
                    );
                }
            })
        };
        let receiver = {
            let c2 = conn.clone();
            thread::spawn(move || {
                for i in 0..N {
                    let got = c2.recv(4096, LONG_MS).unwrap_or_else(|rc| {
                        panic!("recv {i}: {} {}", code_name(rc), c2.last_error())
                    });
                    assert!(got == pattern(i, size(i)), "message {i} differs");
                }
            })
        };
        sender.join().unwrap();
        receiver.join().unwrap();
        assert_eq!(conn.check(), 1);
        assert_eq!(conn.poll(0), 0);
        drop(conn);
        assert_eq!(peer.finish(), N);
    });
    assert_library_usable();
}

#[test]
fn panic_at_the_boundary_poisons_the_handle() {
    run(|| {
        let (conn, peer) = connected(|_| {});
        let p = conn.raw();
        // SAFETY: `p` is the live handle `conn` owns.
        let handle = unsafe { (p as *const c::iso_conn).as_ref() };
        let rc = isotcp::ffi::boundary::with_handle(
            handle,
            "conn",
            false,
            |_| -> Result<i32, isotcp::Error> { panic!("boom") },
        );
        assert_eq!(rc, ISO_E_PANIC);
        let m = conn.last_error();
        assert!(m.contains("boom") && m.contains("poisoned"), "{m}");
        assert!(thread_last_error().contains("boom"));

        let poisoned = |rc: i32, what: &str| {
            assert!(
                rc == ISO_E_POISONED,
                "{what}: expected ISO_E_POISONED, got {}",
                code_name(rc)
            );
        };
        poisoned(conn.send(b"x"), "send");
        poisoned(conn.recv(16, 0).unwrap_err(), "recv");
        poisoned(conn.poll(0), "poll");
        poisoned(conn.check(), "check");
        poisoned(conn.connect(100), "connect");
        poisoned(conn.set_tpdu_size(512), "setter");
        poisoned(conn.tpdu_size().unwrap_err(), "get_tpdu_size");
        poisoned(conn.disconnect(), "disconnect");
        assert!(thread_last_error().contains("poisoned"));
        // The last error still works and still names the panic.
        assert!(conn.last_error().contains("boom"));
        // Destroy works (and closes the connection: the peer sees EOF).
        drop(conn);
        peer.finish();
    });
}
