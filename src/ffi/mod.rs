//! The C ABI. Every export goes through [`boundary`], which catches panics, refuses NULL and
//! poisoned handles and records the last error; its other pointer arguments become Rust values
//! through `args`; [`codes`] holds the stable result codes.

// The safety contract of every export is the C one, stated once in the header's preamble and
// README: pointers are NULL (rejected) or valid for the sizes given, handles are live.
#![allow(clippy::missing_safety_doc)]
// Each unsafe operation is marked on its own and its `// SAFETY:` comment names the part of that
// contract it relies on, so a reader sees every place a caller's mistake could cause harm.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
pub mod boundary;
pub mod codes;
pub mod conn;
pub mod listener;
pub mod queue;
pub mod snap7;
mod text;
pub mod tls;
pub mod trace;
