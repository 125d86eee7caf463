//! Copying text out to caller buffers, the one way every last-error function does it.

use super::args::bytes_mut;

/// Writes `text` NUL-terminated into `buf` (truncated to fit), and the size it needs (including
/// the NUL) into `out_needed`. Returns true when it fitted.
///
/// # Safety
/// `buf` must be NULL or valid for `cap` bytes; `out_needed` NULL or valid for one write.
pub unsafe fn copy_c_string(text: &str, buf: *mut u8, cap: usize, out_needed: *mut usize) -> bool {
    let text = text.as_bytes();
    // Optional, unlike other out-pointers: a caller that sized its buffer need not ask.
    if !out_needed.is_null() {
        // SAFETY: not NULL, so valid for one write by the caller's guarantee.
        unsafe { out_needed.write(text.len() + 1) };
    }
    // SAFETY: `buf` is NULL or valid for `cap` bytes, and no more than `cap` are asked for.
    let dst = match unsafe { bytes_mut(buf, cap.min(text.len() + 1), "buf") } {
        Ok(dst) if !dst.is_empty() => dst,
        // No room even for the NUL, or no buffer: the caller asked only for the size.
        _ => return false,
    };
    let n = dst.len() - 1;
    dst[..n].copy_from_slice(&text[..n]);
    dst[n] = 0;
    n == text.len()
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
    // SAFETY: the caller's guarantee is the one `copy_c_string` needs.
    if unsafe { copy_c_string(text, buf.cast(), cap, out_needed) } {
        super::codes::ISO_OK
    } else {
        super::codes::ISO_E_BUFFER_TOO_SMALL
    }
}
