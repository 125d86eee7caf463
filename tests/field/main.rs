//! The field suite: the library through its C ABI on two hosts joined by a cable, with the
//! faults of a plant network made for real (issue 11). The hosts are two network namespaces
//! joined by a veth pair ([`net::Net`]); the PLC is python-snap7's server or the native snap7
//! server in the PLC namespace ([`plc::Plc`]), or a scripted peer on a listener there; the
//! client runs on a thread moved into the HMI namespace (see net.rs for why a thread).
//!
//! Needs root and `ip netns` (iproute2). Without them every test prints a SKIP line and passes,
//! unless ISOTCP_REQUIRE_FIELD=1 (`.ci/run` sets it), which turns that into a failure. Tests that
//! need what issue 11 adds to the library are `#[ignore]`d with the reason; their assertions are
//! the ones to hold once it is there (`cargo test --test field -- --ignored` runs them).
//!
//! Each case asserts exact result codes and time bounds. The whole suite is meant to take well
//! under two minutes with `--test-threads=2`.

#[path = "../common/mod.rs"]
mod common;

mod cable;
mod link;
mod net;
mod plc;
mod restart;
mod s7;
mod unreachable;

use std::time::Duration;

/// The limit of one test body (a hung call fails its test instead of the run).
const LIMIT: Duration = Duration::from_secs(40);

/// Slack allowed past a deadline: scheduling on a busy 2-core machine, never protocol time.
const SLACK: Duration = Duration::from_millis(250);
