//! The C ABI. Every export goes through [`boundary`], which catches panics, checks pointers and
//! records the last error; [`codes`] holds the stable result codes.

pub mod boundary;
pub mod codes;
pub mod conn;
pub mod listener;
mod text;
