//! One deadline per operation: every wait inside a call takes what is left of it, so a call that
//! makes several system calls still ends on time.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use crate::error::Error;

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    /// Timeout 0: do not wait at all ("would block" rather than "timed out").
    immediate: bool,
}

impl Deadline {
    pub fn after_ms(timeout_ms: u32) -> Self {
        Deadline {
            at: Instant::now() + Duration::from_millis(timeout_ms as u64),
            immediate: timeout_ms == 0,
        }
    }

    pub fn after(d: Duration) -> Self {
        Deadline {
            at: Instant::now() + d,
            immediate: d.is_zero(),
        }
    }

    pub fn is_immediate(&self) -> bool {
        self.immediate
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The error for `what` not finishing in time: "would block" for timeout 0, else a timeout.
    pub fn ran_out(&self, what: impl Into<Cow<'static, str>>) -> Error {
        if self.immediate {
            Error::WouldBlock(what.into())
        } else {
            Error::Timeout(what.into())
        }
    }
}
