//! The crate's one error type. Each variant carries what a user needs to act on it; the C layer
//! maps each variant to one stable code (`ffi::codes`).

use std::borrow::Cow;

use thiserror::Error;

use crate::proto::ProtoError;

#[derive(Debug, Error)]
pub enum Error {
    /// A bad argument from the caller.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The call is not allowed in the handle's current state.
    #[error("{0}")]
    State(String),
    #[error("cannot resolve host {host:?}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("TCP connection to {addr} refused")]
    Refused { addr: String },
    /// The deadline passed. The text is usually static: an event loop meets timeouts all the
    /// time, and reporting one must not allocate.
    #[error("{0}: deadline passed")]
    Timeout(Cow<'static, str>),
    /// Timeout 0 and the operation cannot complete now.
    #[error("{0}: would block")]
    WouldBlock(Cow<'static, str>),
    /// The peer closed or reset the connection, or ended it with DR/ER.
    #[error("{0}")]
    Closed(String),
    /// The peer refused the COTP connection with DR or ER.
    #[error("{0}")]
    Rejected(String),
    /// Malformed or unexpected bytes from the peer.
    #[error("protocol error: {0}")]
    Protocol(ProtoError),
    /// A message above a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The caller's buffer is too small for the message, which stays queued.
    #[error("buffer of {cap} bytes is too small for the {needed}-byte message")]
    BufferTooSmall { needed: usize, cap: usize },
    #[error("{context}: {source} (OS error {code})", code = source.raw_os_error().unwrap_or(0))]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ProtoError> for Error {
    fn from(e: ProtoError) -> Self {
        if e.is_size_limit() {
            Error::TooLarge(e.to_string())
        } else {
            Error::Protocol(e)
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
