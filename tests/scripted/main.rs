//! The library driven through its C ABI against scripted, often misbehaving peers on loopback.
//!
//! Each peer is a thread with a `TcpListener` on 127.0.0.1:0 that reads the CR and then does
//! exactly what its script says. Every test runs under a watchdog ([`bounded`]) and asserts the
//! result code together with a distinctive part of the handle's last error message.
//!
//! One test binary, one module per theme; the peer and the handle wrapper are in tests/common.

#[path = "../common/mod.rs"]
mod common;

mod api_misuse;
mod connect_failures;
mod corner_cases;
mod normal_operation;
mod receiving;
mod threads;
mod tpdu_size;

use std::time::Duration;

use common::conn::assert_library_usable;
use common::peer::bounded;

const LIMIT: Duration = Duration::from_secs(15);

/// Runs a test body under the watchdog, then checks the library is still usable.
fn run(body: impl FnOnce() + Send + 'static) {
    bounded(LIMIT, body);
    assert_library_usable();
}
