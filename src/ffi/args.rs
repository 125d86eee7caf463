//! Turning the raw arguments of an export into Rust values, the one way every export does it:
//! out-pointers, C strings and (pointer, length) buffers. Each check that fails names the
//! argument, so the caller's last error says which one was wrong.
//!
//! What the checks cannot see (that a non-NULL pointer is valid for what it is used for) is the
//! caller's side of the contract stated in the header: every pointer is NULL or valid for the
//! size given, and stays so for the call. Each helper's `# Safety` section restates its part.

use std::ffi::{c_char, CStr};
use std::mem::MaybeUninit;

use crate::error::Error;

/// An error for a NULL argument other than the handle.
#[cold]
#[inline(never)]
pub fn null_arg(name: &str) -> Error {
    Error::Invalid(format!("{name} is NULL"))
}

/// Returns `Err` when `ptr` is NULL: for an argument the export refuses as NULL whatever else
/// it is given (a message to send must exist even when its length is wrong).
#[inline]
pub fn non_null<T>(ptr: *const T, name: &str) -> Result<(), Error> {
    if ptr.is_null() {
        Err(null_arg(name))
    } else {
        Ok(())
    }
}

/// The place an out-pointer names, to write the result into once it is known. Taking it before
/// the work starts keeps a NULL out-pointer an ISO_E_INVALID, whatever the work would fail with.
///
/// The place is `MaybeUninit`: C callers usually pass uninitialised variables, which Rust must
/// not read (nor drop) before writing.
///
/// # Safety
/// `ptr` is NULL or valid for writing one `T`, and nothing else accesses it while the returned
/// reference is in use.
#[inline]
pub unsafe fn out_arg<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut MaybeUninit<T>, Error> {
    // SAFETY: the caller guarantees a non-NULL `ptr` is valid for one write and not aliased;
    // `MaybeUninit<T>` has the layout of `T` and may hold anything, so no read is implied.
    unsafe { ptr.cast::<MaybeUninit<T>>().as_mut() }.ok_or_else(|| null_arg(name))
}

/// An optional C string argument: NULL is `None`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged for `'a`.
pub unsafe fn opt_c_str<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: not NULL, so by the caller's guarantee a NUL-terminated string that outlives 'a.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map(Some)
        .map_err(|_| Error::Invalid(format!("{name} is not valid UTF-8")))
}

/// A C string argument that must be given.
///
/// # Safety
/// As [`opt_c_str`].
pub unsafe fn c_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    // SAFETY: the caller's guarantee is the one `opt_c_str` needs.
    unsafe { opt_c_str(ptr, name) }?.ok_or_else(|| null_arg(name))
}

/// A caller's input buffer as a slice. Length 0 is an empty slice, whatever the pointer (C
/// callers often pass NULL then); NULL with a length is an error.
///
/// # Safety
/// Unless `len` is 0, `ptr` is NULL or valid for reading `len` bytes, unchanged for `'a`.
#[inline]
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(ptr, name)?;
    check_len(len, name)?;
    // SAFETY: `ptr` is not NULL, so by the caller's guarantee valid for `len` bytes for 'a;
    // `len` is at most isize::MAX, as a slice requires.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A caller's output buffer as a mutable slice, with the rules of [`bytes`].
///
/// # Safety
/// Unless `len` is 0, `ptr` is NULL or valid for writing `len` bytes, and nothing else accesses
/// them for `'a`.
#[inline]
pub unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize, name: &str) -> Result<&'a mut [u8], Error> {
    if len == 0 {
        return Ok(&mut []);
    }
    non_null(ptr, name)?;
    check_len(len, name)?;
    // SAFETY: `ptr` is not NULL, so by the caller's guarantee valid and unaliased for `len`
    // bytes for 'a; `len` is at most isize::MAX, as a slice requires.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// No object can be larger than isize::MAX bytes, so such a length is a caller's error (and
/// building a slice from it would be undefined behaviour).
#[inline]
fn check_len(len: usize, name: &str) -> Result<(), Error> {
    if len > isize::MAX as usize {
        return Err(too_long(len, name));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn too_long(len: usize, name: &str) -> Error {
    Error::Invalid(format!(
        "length {len} of {name} is larger than any buffer can be"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn out_arg_names_a_null_argument_and_writes_otherwise() {
        // SAFETY: NULL is allowed.
        let err = unsafe { out_arg::<u32>(std::ptr::null_mut(), "out") }.unwrap_err();
        assert_eq!(message(err), "invalid argument: out is NULL");
        let mut v = 0u32;
        // SAFETY: `v` is a live local, used only through the returned place meanwhile.
        unsafe { out_arg(&mut v, "out") }.unwrap().write(7);
        assert_eq!(v, 7);
    }

    #[test]
    fn c_strings_null_utf8_and_text() {
        // SAFETY: NULL is allowed.
        let absent = unsafe { opt_c_str(std::ptr::null(), "host") };
        assert_eq!(absent.unwrap(), None);
        // SAFETY: as above.
        let err = unsafe { c_str(std::ptr::null(), "host") }.unwrap_err();
        assert_eq!(message(err), "invalid argument: host is NULL");
        let bad = b"\xff\0";
        // SAFETY: NUL-terminated static bytes.
        let err = unsafe { c_str(bad.as_ptr().cast(), "host") }.unwrap_err();
        assert_eq!(message(err), "invalid argument: host is not valid UTF-8");
        // SAFETY: as above.
        let given = unsafe { c_str(c"plc".as_ptr(), "host") };
        assert_eq!(given.unwrap(), "plc");
    }

    #[test]
    fn buffers_empty_null_too_long_and_given() {
        // SAFETY: length 0 allows any pointer.
        let empty = unsafe { bytes(std::ptr::null(), 0, "data") };
        assert!(empty.unwrap().is_empty());
        // SAFETY: as above.
        let empty = unsafe { bytes_mut(std::ptr::null_mut(), 0, "buf") };
        assert!(empty.unwrap().is_empty());
        // SAFETY: NULL is checked before the length is used.
        let err = unsafe { bytes(std::ptr::null(), 3, "data") }.unwrap_err();
        assert_eq!(message(err), "invalid argument: data is NULL");
        let mut buf = [1u8, 2, 3];
        // SAFETY: a length above isize::MAX is refused before any slice is made.
        let err = unsafe { bytes_mut(buf.as_mut_ptr(), usize::MAX, "buf") }.unwrap_err();
        assert!(message(err).contains("larger than any buffer"));
        // SAFETY: `buf` is valid for its 3 bytes.
        let given = unsafe { bytes(buf.as_ptr(), 3, "data") };
        assert_eq!(given.unwrap(), &[1, 2, 3]);
    }
}
