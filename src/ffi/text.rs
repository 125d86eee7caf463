//! Copying strings and bytes out to caller buffers, the one way every export does it.

use crate::error::Error;

/// Writes `text` NUL-terminated into `buf` (truncated to fit), and the size it needs (including
/// the NUL) into `out_needed`. Returns true when it fitted.
///
/// # Safety
/// `buf` must be NULL or valid for `cap` bytes; `out_needed` NULL or valid for one write.
pub unsafe fn copy_c_string(text: &str, buf: *mut u8, cap: usize, out_needed: *mut usize) -> bool {
    let bytes = text.as_bytes();
    if !out_needed.is_null() {
        *out_needed = bytes.len() + 1;
    }
    if buf.is_null() || cap == 0 {
        return false;
    }
    let n = bytes.len().min(cap - 1);
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, n);
    *buf.add(n) = 0;
    n == bytes.len()
}

/// A caller's byte buffer as a slice (an empty slice for length 0, whatever the pointer).
///
/// # Safety
/// Unless `len` is 0, `ptr` must be non-NULL and valid for `len` bytes.
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Error> {
    check_len(len)?;
    Ok(if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    })
}

/// No object can be larger than isize::MAX bytes, so such a length is a caller's error (and
/// building a slice from it would be undefined behaviour).
pub fn check_len(len: usize) -> Result<(), Error> {
    if len > isize::MAX as usize {
        return Err(Error::Invalid(format!(
            "length {len} is larger than any buffer can be"
        )));
    }
    Ok(())
}

/// The common tail of the last-error functions: ISO_OK when the text fitted, else
/// ISO_E_BUFFER_TOO_SMALL (with the text truncated and NUL-terminated).
///
/// # Safety
/// As [`copy_c_string`].
pub unsafe fn last_error_out(
    text: &str,
    buf: *mut std::ffi::c_char,
    cap: usize,
    out_needed: *mut usize,
) -> i32 {
    if copy_c_string(text, buf.cast(), cap, out_needed) {
        super::codes::ISO_OK
    } else {
        super::codes::ISO_E_BUFFER_TOO_SMALL
    }
}
