//! Sockets and time over the protocol core: connecting within a deadline, the connection
//! ([`Connection`](crate::net::Connection)), the passive side
//! ([`Listener`](crate::net::Listener)) and their settings.
//!
//! Everything here moves bytes, waits and locks; what the bytes mean is decided by
//! [`proto`](crate::proto).

pub mod connection;
pub(crate) mod deadline;
pub mod listener;
mod pcap;
pub mod settings;
pub(crate) mod socket;
pub(crate) mod sys;
#[cfg(feature = "tls")]
pub mod tls;
pub(crate) mod trace;
mod transmit;

pub use connection::{Connection, ConnectionSocket};
pub use listener::{CrFilter, Listener};
pub use settings::{Config, Keepalive, ListenerConfig, TransferSettings, UserTimeout};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsSession};
pub use trace::TraceFn;
