//! The C ABI. Every export goes through [`boundary`], which catches panics, checks pointers and
//! records the last error; [`codes`] holds the stable result codes.

// The safety contract of every export is the C one, stated once in the header's preamble and
// README: pointers are NULL (rejected) or valid for the sizes given, handles are live.
#![allow(clippy::missing_safety_doc)]

mod args;
pub mod boundary;
pub mod codes;
pub mod conn;
pub mod listener;
pub mod queue;
pub mod snap7;
mod text;
pub mod trace;
