//! The crate's one error type. Each variant carries what a caller needs to act on it as values
//! (the DR reason, the kind of state error, the limit crossed, the OS error), and its message
//! says what happened in words. The C layer maps each variant to one stable code
//! (`ffi::codes`) and may add a hint naming the C function to call.

use std::borrow::Cow;
use std::fmt;
use std::io;

use thiserror::Error;

use crate::proto::transfer::PeerEnd;
use crate::proto::{cotp, ProtoError};

/// Everything that can go wrong in isotcp.
///
/// Matching on it tells a caller what to do next: retry later ([`Error::Timeout`],
/// [`Error::WouldBlock`]), connect again ([`Error::Closed`], [`Error::Io`]), fix the settings
/// ([`Error::Invalid`], [`Error::Rejected`]) or the call sequence ([`Error::State`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad argument or setting from the caller; nothing was changed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The call is not allowed in the connection's or listener's current state.
    #[error("{message}")]
    State {
        /// Which state refused the call.
        kind: StateKind,
        /// What happened, in words.
        message: Cow<'static, str>,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve host {host:?}: {detail}")]
    Resolve {
        /// The host as given.
        host: String,
        /// What the resolver said.
        detail: String,
    },
    /// The TCP connection was refused: nothing listens on that port, or a firewall said no.
    #[error("TCP connection to {addr} refused")]
    Refused {
        /// The address tried.
        addr: String,
        /// The OS error the connect returned.
        source: io::Error,
    },
    /// The operation's deadline passed before it completed. The text is usually static: an
    /// event loop meets timeouts all the time, and reporting one must not allocate.
    #[error("{0}: deadline passed")]
    Timeout(Cow<'static, str>),
    /// Timeout 0 was given and the operation cannot complete now.
    #[error("{0}: would block")]
    WouldBlock(Cow<'static, str>),
    /// TLS failed: the handshake, the peer's certificate, a bad record or an alert; the text
    /// says which.
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer closed or reset the connection, or ended it with DR or ER. Messages already
    /// received stay readable before this is reported.
    #[error("{message}")]
    Closed {
        /// How the peer ended the connection.
        by: PeerClose,
        /// What happened, in words (with what was lost, when a message was cut off).
        message: String,
    },
    /// The peer refused the COTP connection: its answer to the CR was a DR or an ER. Usually
    /// a wrong TSAP, rack or slot.
    #[error("{}", rejection_text(.0))]
    Rejected(PeerEnd),
    /// Malformed or unexpected bytes from the peer; the connection was closed.
    #[error("protocol error: {0}")]
    Protocol(ProtoError),
    /// A message or packet above a configured limit.
    #[error("{0}")]
    TooLarge(Limit),
    /// The caller's buffer is too small for the message, which stays queued.
    #[error("buffer of {cap} bytes is too small for the {needed}-byte message")]
    BufferTooSmall {
        /// The message's size, in bytes.
        needed: usize,
        /// The buffer's size, in bytes.
        cap: usize,
    },
    /// A system call failed; `context` names the operation. The OS error appears once, in
    /// `source`'s text, and numerically from [`Error::os_error`].
    #[error("{context}: {source}")]
    Io {
        /// The operation that failed.
        context: String,
        /// What the system said.
        source: io::Error,
    },
}

/// Why a call was refused by the state it found ([`Error::State`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateKind {
    /// Not connected: never connected, or disconnected.
    NotConnected,
    /// The connection was closed after an earlier error, which the message names.
    Ended,
    /// Already connected: disconnect first.
    AlreadyConnected,
    /// Another connect is running on this connection.
    ConnectInProgress,
    /// Settings cannot change while connected or connecting.
    SettingsLocked,
    /// An accepted connection cannot connect again.
    Passive,
    /// A disconnect from another thread ended this call.
    Interrupted,
    /// The listener was shut down.
    ListenerShutDown,
    /// A TLS query before TLS was started on the connection.
    TlsNotStarted,
}

/// How far a failed connect got ([`Connection::last_connect_phase`](crate::net::Connection::last_connect_phase)):
/// tells "PLC unreachable" from "PLC reachable, ISO refused" when both end in a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectPhase {
    /// Resolving the host name.
    Resolve,
    /// The TCP connect: no address of the host completed it.
    Tcp,
    /// The COTP exchange: TCP was up and the CR sent, but no CC confirmed it (refused with
    /// DR or ER, closed, reset, or no answer in time).
    Cotp,
}

/// How the peer ended a connection ([`Error::Closed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerClose {
    /// TCP closed in order (FIN).
    Fin,
    /// TCP reset; the OS error as reported.
    Reset {
        /// The OS error code (ECONNRESET, WSAECONNRESET, ...), when the system gave one.
        os_error: Option<i32>,
    },
    /// A DR or an ER during data transfer.
    Tpdu(PeerEnd),
    /// The peer ended the TLS session with its close_notify alert (TCP may still be open).
    CloseNotify,
}

/// Which limit a message crossed ([`Error::TooLarge`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// A message to send is above the maximum message size; nothing was sent.
    Send {
        /// The message's size, in bytes.
        len: usize,
        /// The maximum message size, in bytes.
        max: usize,
    },
    /// What the peer sent crossed a receive limit (packet length, message size, fragment
    /// count: see [`ProtoError::is_size_limit`]); the connection was closed.
    Received(ProtoError),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Send { len, max } => write!(
                f,
                "message of {len} bytes is above the maximum message size of {max}"
            ),
            Limit::Received(e) => write!(f, "{e}"),
        }
    }
}

fn rejection_text(end: &PeerEnd) -> String {
    match *end {
        PeerEnd::Disconnect { reason } => format!(
            "COTP connection refused by peer with DR, reason 0x{reason:02X} ({})",
            cotp::dr_reason_text(reason)
        ),
        PeerEnd::Error { cause } => format!(
            "COTP connection request rejected by peer with ER, cause {cause} ({})",
            cotp::er_cause_text(cause)
        ),
    }
}

impl Error {
    /// An [`Error::Io`] for `context`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::State`] of `kind`.
    pub fn state(kind: StateKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::State {
            kind,
            message: message.into(),
        }
    }

    /// The OS error code behind this error (errno on Unix, the WSA code on Windows), when a
    /// system call reported one: what snap7 calls `LastTcpError`.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Refused { source, .. } => source.raw_os_error(),
            Error::Closed {
                by: PeerClose::Reset { os_error },
                ..
            } => *os_error,
            _ => None,
        }
    }
}

impl From<ProtoError> for Error {
    fn from(e: ProtoError) -> Self {
        if e.is_size_limit() {
            Error::TooLarge(Limit::Received(e))
        } else {
            Error::Protocol(e)
        }
    }
}

/// `Result` with the crate's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_its_os_error_once() {
        let e = Error::io("receive", io::Error::from_raw_os_error(110));
        let text = e.to_string();
        assert_eq!(text.matches("os error 110").count(), 1, "{text}");
        assert!(!text.contains("OS error"), "{text}");
        assert_eq!(e.os_error(), Some(110));
    }

    #[test]
    fn a_rejection_keeps_its_reason_as_a_value() {
        let e = Error::Rejected(PeerEnd::Disconnect { reason: 0x85 });
        assert!(matches!(
            e,
            Error::Rejected(PeerEnd::Disconnect { reason: 0x85 })
        ));
        assert!(e.to_string().contains("DR, reason 0x85"), "{e}");
        assert_eq!(e.os_error(), None);
    }
}
