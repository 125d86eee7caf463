//! isotcp: ISO on TCP (RFC 1006 TPKT + ISO 8073 class 0 COTP) for Siemens S7 communication.
//!
//! Three layers, each depending only on the one below:
//! - [`proto`]: the protocol, sans-IO: framing, TPDUs, the handshake, segmentation and the
//!   receiver that applies every rule of data transfer. Bytes in, messages out; no sockets,
//!   no clock.
//! - [`net`]: sockets, deadlines and locks over it: [`net::Connection`] connects (resolve, TCP,
//!   CR/CC within one deadline) and carries whole messages, [`net::Listener`] is the passive
//!   (PLC or gateway) side, and [`net::Config`] / [`net::ListenerConfig`] hold their validated
//!   settings.
//! - `ffi`: the C ABI (`iso_*` functions, result codes, the panic boundary), for C, C++, C#,
//!   Go and Python programs; Rust programs use `net` directly.
//!
//! Every fallible call returns [`Error`](enum@Error), whose variants carry what a caller
//! matches on: the DR reason of a refused connect, how the peer ended a connection, the
//! kind of state error, the OS error.
//!
//! # Example
//!
//! A listener (the PLC side) and a connection (the HMI side) exchange one message each way.
//!
//! ```
//! use std::time::Duration;
//!
//! use isotcp::net::{Config, Connection, Listener};
//! use isotcp::proto::tsap::Tsap;
//!
//! let listener = Listener::bind(Some("127.0.0.1"), 0)?;
//! let port = listener.port();
//! let plc = std::thread::spawn(move || -> isotcp::Result<()> {
//!     let conn = listener.accept(Duration::from_secs(5))?;
//!     let mut buf = [0u8; 1024];
//!     let n = conn.recv(&mut buf, Duration::from_secs(5))?;
//!     conn.send(&buf[..n])?; // echo
//!     Ok(())
//! });
//!
//! let mut config = Config::new("127.0.0.1", port)?;
//! config.set_tsaps(Tsap::from_u16(0x0100), Tsap::s7(1, 0, 2)?)?; // PG, rack 0, slot 2
//! let conn = Connection::new(config);
//! conn.connect(Duration::from_secs(5))?;
//! assert_eq!(conn.tpdu_size()?, 1024);
//! conn.send(b"\x32\x01 S7 request")?;
//! let mut answer = [0u8; 1024];
//! let n = conn.recv(&mut answer, Duration::from_secs(5))?;
//! assert_eq!(&answer[..n], b"\x32\x01 S7 request");
//! plc.join().expect("the PLC thread")?;
//! # Ok::<(), isotcp::Error>(())
//! ```
//!
//! A refused connect says why as a value:
//!
//! ```
//! use std::time::Duration;
//!
//! use isotcp::net::{Config, Connection, Listener};
//! use isotcp::proto::transfer::PeerEnd;
//! use isotcp::proto::tsap::Tsap;
//! use isotcp::Error;
//!
//! let listener = Listener::bind(Some("127.0.0.1"), 0)?;
//! listener.configure(|c| c.allow_called(Tsap::from_u16(0x0102)))?;
//! let port = listener.port();
//! std::thread::spawn(move || listener.accept(Duration::from_secs(5)));
//!
//! let mut config = Config::new("127.0.0.1", port)?;
//! config.set_tsaps(Tsap::from_u16(0x0100), Tsap::from_u16(0x0301))?;
//! let conn = Connection::new(config);
//! match conn.connect(Duration::from_secs(5)) {
//!     Err(Error::Rejected(PeerEnd::Disconnect { reason })) => assert_eq!(reason, 0x03),
//!     other => panic!("expected a DR, got {other:?}"),
//! }
//! # Ok::<(), isotcp::Error>(())
//! ```

#![warn(missing_docs)]

/// cbindgen:ignore
pub mod error;
pub mod ffi;
/// cbindgen:ignore
pub mod net;
/// cbindgen:ignore
pub mod proto;

pub use error::{Error, Result};
