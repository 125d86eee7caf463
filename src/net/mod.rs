//! Sockets and time: connecting within a deadline, the connection state machine.

pub mod connection;
pub mod deadline;
pub mod listener;
mod pcap;
pub mod socket;
pub mod sys;
pub mod trace;
mod transmit;

pub use connection::{Config, Connection};
pub use deadline::Deadline;
pub use listener::{Listener, ListenerConfig};
pub use socket::Keepalive;
