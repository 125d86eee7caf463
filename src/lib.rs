//! isotcp: ISO on TCP (RFC 1006 TPKT + ISO 8073 class 0 COTP) for Siemens S7 communication.
//!
//! Three layers, each depending only on the one below:
//! - [`proto`]: the protocol, sans-IO (framing, TPDUs, handshake, segmentation);
//! - [`net`]: sockets and deadlines (connect, the connection state machine);
//! - `ffi`: the C ABI (`iso_*` functions, result codes, the panic boundary).

/// cbindgen:ignore
pub mod error;
pub mod ffi;
/// cbindgen:ignore
pub mod net;
/// cbindgen:ignore
pub mod proto;

pub use error::{Error, Result};
