//! Shared helpers of the integration tests. For the tests that drive the library through its C
//! ABI:
//!
//! - [`conn`]: `Conn`, a small safe wrapper over the `iso_*` connection functions (the handle is
//!   destroyed on drop), with `Conn::expect` to assert a result code together with a piece of the
//!   handle's last error message; result codes and their names;
//! - [`peer`]: `Peer`, a scripted peer on loopback. It accepts one TCP connection, reads the CR,
//!   then runs the test's script against the raw stream (`PeerConn`), so it can misbehave at
//!   will; `bounded`, a watchdog that fails a test instead of letting it hang; fault injection,
//!   timing and recovery checks;
//! - [`packets`]: packet builders (`tpkt`, `dt`, `cc`, `dr`, `er`), test payloads, and hex
//!   text both ways (`hex` parses it, `to_hex` prints it).
//!
//! For the tests that run other programs:
//!
//! - [`process`]: running a program with a time limit, its outputs captured;
//! - [`py3_server`]: python-snap7 3.3.0's S7 server, for tests of installed or packaged builds;
//! - [`examples`]: building the C programs of examples-c/;
//! - [`s7commplus_peer`]: s7commplus's S7-1500 emulator with TLS inside COTP, for the bindings'
//!   secure-communication tests.
//!
//! Every test binary that needs a helper declares `mod common;` and so compiles all of it.
// Each test binary uses only part of this module; the rest would warn as dead code there.
#![allow(dead_code)]

pub mod conn;
pub mod examples;
pub mod packets;
pub mod peer;
pub mod process;
pub mod py3_server;
pub mod s7commplus_peer;
