//! Heap allocations per message with TLS, in steady state (after the handshake and a warm-up),
//! counted by a global allocator in this test binary of its own.
//!
//! The target is zero, as for plaintext. What stands in the way is rustls' buffered API: it
//! allocates one buffer per record sealed and one per record opened. (Its unbuffered API
//! seals and opens in place but offers no TLS exporter, which S7CommPlus needs for its
//! legitimation.) isotcp's own TLS path reuses its buffers, so the count is exactly one per
//! record each way, and this test holds it there: anything more is a regression.
#![cfg(feature = "tls")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use isotcp::net::tls::TlsSession;
use isotcp::net::Connection;

mod tls_support;
use tls_support::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call goes to the system allocator unchanged; counting touches only an atomic
// and a const-initialised thread local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// `rounds` round trips of `m`, both ends on this thread (the messages fit the socket
/// buffers, so nothing waits on the other end).
fn round_trips(ends: &(Connection, TlsSession, Connection, TlsSession), m: &[u8], rounds: usize) {
    let (client, c, server, s) = ends;
    let mut buf = vec![0u8; 8192];
    for _ in 0..rounds {
        c.send(client, m).unwrap();
        let n = s.recv(server, &mut buf, T).unwrap();
        assert_eq!(n, m.len());
        s.send(server, &buf[..n]).unwrap();
        let n = c.recv(client, &mut buf, T).unwrap();
        assert_eq!(&buf[..n], m);
    }
}

#[test]
fn allocations_per_tls_message_in_steady_state() {
    let (client, c, server, s) = start(1024, pinned(), server_config());
    let ends = (client, c.unwrap(), server, s.unwrap());
    let per_record = ends.1.record_plaintext();
    for len in [20usize, 4096] {
        let m = message(len);
        round_trips(&ends, &m, 10);
        const ROUNDS: usize = 100;
        let n = count(|| round_trips(&ends, &m, ROUNDS));
        // Four messages per round trip (two sent, two received), each of `records` records.
        let records = len.div_ceil(per_record);
        let per_message = n as f64 / (ROUNDS * 4) as f64;
        println!(
            "TLS, {len}-byte messages ({records} record(s) each): {n} allocations in {ROUNDS} round trips, {per_message:.2} per message sent or received"
        );
        // A few one-off growths of rustls' queues may still happen after the warm-up.
        assert!(
            n <= ROUNDS * 4 * records + 8,
            "{n} allocations in {ROUNDS} round trips of {len} bytes: more than one per record"
        );
    }
}
