//! The one helper every export goes through: it checks the handle pointer, refuses poisoned
//! handles, catches panics (a panic escaping `extern "C"` would abort the host program), and
//! records the message of every error, on the handle and for the calling thread.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use parking_lot::Mutex;

use super::args::null_arg;
use super::codes::{code_of, hint, ISO_E_INVALID, ISO_E_PANIC, ISO_E_POISONED};
use crate::error::Error;

thread_local! {
    static THREAD_LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    static THREAD_LAST_OS_ERROR: Cell<i32> = const { Cell::new(0) };
}

/// What every exported object carries besides its Rust value.
#[derive(Default)]
pub struct HandleState {
    poisoned: AtomicBool,
    last_error: Mutex<String>,
    /// The OS error code of the last failure (0: it had none).
    last_os_error: AtomicI32,
}

impl HandleState {
    /// The handle's last error message; "no error" before the first.
    pub fn last_error(&self) -> String {
        let e = self.last_error.lock();
        if e.is_empty() {
            "no error".into()
        } else {
            e.clone()
        }
    }

    /// The OS error code (errno, WSA code) of the handle's last failure; 0 when it had none.
    pub fn last_os_error(&self) -> i32 {
        self.last_os_error.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, msg: &str) {
        let mut e = self.last_error.lock();
        e.clear();
        e.push_str(msg);
    }

    /// Records `err` on the handle and for the calling thread, reusing both buffers: an event
    /// loop meets "would block" on every turn, and reporting it must not allocate.
    fn record_error(&self, err: &Error) {
        let mut e = self.last_error.lock();
        e.clear();
        let _ = write_error(&mut e, err);
        let os = err.os_error().unwrap_or(0);
        self.last_os_error.store(os, Ordering::Relaxed);
        record_thread(&e);
        THREAD_LAST_OS_ERROR.with(|c| c.set(os));
    }
}

/// An error's message as the C caller sees it: the message, then the C layer's hint if any.
fn write_error(out: &mut String, err: &Error) -> std::fmt::Result {
    use std::fmt::Write;
    write!(out, "{err}")?;
    match hint(err) {
        Some(h) => write!(out, "; {h}"),
        None => Ok(()),
    }
}

/// Exported objects expose their [`HandleState`].
pub trait Handle {
    /// The object's poison flag and last error.
    fn state(&self) -> &HandleState;
}

/// The calling thread's last error message (any handle, or none).
pub fn thread_last_error() -> String {
    THREAD_LAST_ERROR.with(|e| {
        if e.borrow().is_empty() {
            "no error".into()
        } else {
            e.borrow().clone()
        }
    })
}

/// The OS error code of the calling thread's last failure (0: it had none).
pub fn thread_last_os_error() -> i32 {
    THREAD_LAST_OS_ERROR.with(Cell::get)
}

fn record_thread(msg: &str) {
    THREAD_LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(msg);
    });
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (panic: {what}); the handle is poisoned: destroy it")
}

/// Runs `f` on the handle an export was given. `f` returns a non-negative value or an error.
///
/// `None` (a NULL handle) gives ISO_E_INVALID; a poisoned handle ISO_E_POISONED (unless
/// `allow_poisoned`, for functions that must still work on one: reading the last error,
/// destroying it). The export turns its pointer into the reference itself, with
/// `ptr.as_ref()`, so that the one unsafe step of every export is visible where it is taken.
pub fn with_handle<T: Handle>(
    handle: Option<&T>,
    name: &str,
    allow_poisoned: bool,
    f: impl FnOnce(&T) -> Result<i32, Error>,
) -> i32 {
    let Some(obj) = handle else {
        record_thread(&null_arg(name).to_string());
        return ISO_E_INVALID;
    };
    let state = obj.state();
    if !allow_poisoned && state.poisoned.load(Ordering::Acquire) {
        record_thread("the handle is poisoned by an earlier internal error: destroy it");
        return ISO_E_POISONED;
    }
    match catch_unwind(AssertUnwindSafe(|| f(obj))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            state.record_error(&e);
            code_of(&e)
        }
        Err(p) => {
            state.poisoned.store(true, Ordering::Release);
            let msg = panic_message(&*p);
            state.record(&msg);
            record_thread(&msg);
            ISO_E_PANIC
        }
    }
}

/// Runs `f` for a function without a handle (create, listen, helpers).
pub fn without_handle(f: impl FnOnce() -> Result<i32, Error>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            let mut text = String::new();
            let _ = write_error(&mut text, &e);
            record_thread(&text);
            THREAD_LAST_OS_ERROR.with(|c| c.set(e.os_error().unwrap_or(0)));
            code_of(&e)
        }
        Err(p) => {
            record_thread(&panic_message(&*p));
            ISO_E_PANIC
        }
    }
}
