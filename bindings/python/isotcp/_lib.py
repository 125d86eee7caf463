"""The C ABI of libisotcp, one ctypes declaration per function of include/isotcp.h.

Nothing here adds behaviour: every ``iso_*`` name is the library function itself with its
argument and result types set, returning the raw ``int32`` code. The helpers at the end turn
the last-error functions (size query + caller buffer) and ``iso_strerror`` into Python strings.

The library is looked up in this order:

1. the path in the environment variable ``ISOTCP_LIBRARY`` (nothing else is tried when set);
2. next to this module (``isotcp/libisotcp.so``): where the wheel built by setup.py puts it;
3. ``target/release`` then ``target/debug`` of the source tree this package lives in
   (in a checkout of the repository);
4. the system's search path (``ctypes.util.find_library("isotcp")``).

ctypes releases the GIL around every call, so a call that blocks (``iso_connect``,
``iso_recv``, ``iso_poll``, ``iso_accept``) lets other Python threads run.
"""

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_char,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)

# --------------------------------------------------------------------------------------------
# Result codes (stable, never renumbered)
# --------------------------------------------------------------------------------------------

ISO_OK = 0
ISO_E_INVALID = -1
ISO_E_STATE = -2
ISO_E_RESOLVE = -3
ISO_E_REFUSED = -4
ISO_E_TIMEOUT = -5
ISO_E_WOULD_BLOCK = -6
ISO_E_CLOSED = -7
ISO_E_REJECTED = -8
ISO_E_PROTOCOL = -9
ISO_E_TOO_LARGE = -10
ISO_E_BUFFER_TOO_SMALL = -11
ISO_E_IO = -12
ISO_E_PANIC = -13
ISO_E_POISONED = -14
ISO_E_TLS = -15

CODE_NAMES = {
    value: name
    for name, value in globals().copy().items()
    if name == "ISO_OK" or name.startswith("ISO_E_")
}

# The library versions this module's declarations match: same major and minor (0.x minors may
# change the ABI), any patch.
ABI_MAJOR = 0
ABI_MINOR = 1

# --------------------------------------------------------------------------------------------
# Opaque handle types: distinct pointer types, so a listener cannot be passed where a
# connection is expected. A NULL pointer is falsy.
# --------------------------------------------------------------------------------------------


class iso_conn(ctypes.Structure):
    """Opaque connection (``iso_conn``); only pointers to it are used."""


class iso_listener(ctypes.Structure):
    """Opaque listener (``iso_listener``); only pointers to it are used."""


ConnPtr = POINTER(iso_conn)
ListenerPtr = POINTER(iso_listener)

# Callback types. A callback object made from them must stay referenced for as long as it is
# installed: ctypes frees its trampoline when the object is collected.
#
# int32_t (*iso_cr_filter)(void *user, const uint8_t *calling, size_t calling_len,
#                          const uint8_t *called, size_t called_len)
iso_cr_filter = CFUNCTYPE(c_int32, c_void_p, POINTER(c_uint8), c_size_t, POINTER(c_uint8), c_size_t)

# void (*iso_trace_fn)(void *user, int32_t direction, const uint8_t *frame, size_t len)
iso_trace_fn = CFUNCTYPE(None, c_void_p, c_int32, POINTER(c_uint8), c_size_t)
ISO_TRACE_RECEIVED = 0
ISO_TRACE_SENT = 1

# iso_set_user_timeout: the bound follows the keep-alive settings (the default).
ISO_USER_TIMEOUT_FROM_KEEPALIVE = 0xFFFFFFFF

# iso_get_connect_phase: how far the last failed connect got.
ISO_PHASE_NONE = 0
ISO_PHASE_RESOLVE = 1
ISO_PHASE_TCP = 2
ISO_PHASE_COTP = 3

# --------------------------------------------------------------------------------------------
# Finding and loading the library
# --------------------------------------------------------------------------------------------

if sys.platform == "win32":
    LIBRARY_NAME = "isotcp.dll"
elif sys.platform == "darwin":
    LIBRARY_NAME = "libisotcp.dylib"
else:
    LIBRARY_NAME = "libisotcp.so"


def _candidates():
    """(paths to try in order, every place looked at) for the library."""
    explicit = os.environ.get("ISOTCP_LIBRARY")
    if explicit:
        return [explicit], [f"ISOTCP_LIBRARY={explicit}"]
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.normpath(os.path.join(here, "..", "..", ".."))
    paths = [os.path.join(here, LIBRARY_NAME)]
    if os.path.exists(os.path.join(tree, "Cargo.toml")):  # a checkout, not an installed copy
        paths += [
            os.path.join(tree, "target", "release", LIBRARY_NAME),
            os.path.join(tree, "target", "debug", LIBRARY_NAME),
        ]
    found = [p for p in paths if os.path.exists(p)]
    looked = paths + ["the system library path"]
    system = ctypes.util.find_library("isotcp")
    if system:
        found.append(system)
    return found, looked


def _load():
    found, looked = _candidates()
    tried = []
    for path in found:
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path}: {e}")
    why = "; ".join(tried) if tried else "not found in " + ", ".join(looked)
    raise ImportError(
        f"isotcp: cannot load {LIBRARY_NAME} ({why}). Install the package with "
        "`pip install ./bindings/python` (it builds and includes the library), or build it "
        "with `cargo build --release`, or set ISOTCP_LIBRARY to its path."
    )


lib, LIBRARY_PATH = _load()

# --------------------------------------------------------------------------------------------
# Declarations: (name, restype, argtypes), in the order of include/isotcp.h
# --------------------------------------------------------------------------------------------

_u8p = POINTER(c_uint8)
_DECLARATIONS = [
    ("iso_strerror", c_char_p, [c_int32]),
    ("iso_version", c_char_p, []),
    ("iso_version_number", c_uint32, []),
    ("iso_create", c_int32, [c_char_p, c_uint16, POINTER(ConnPtr)]),
    ("iso_destroy", None, [ConnPtr]),
    ("iso_set_tsap", c_int32, [ConnPtr, c_uint16, c_uint16]),
    ("iso_set_tsap_bytes", c_int32, [ConnPtr, _u8p, c_size_t, _u8p, c_size_t]),
    ("iso_set_tpdu_size", c_int32, [ConnPtr, c_uint32]),
    ("iso_set_routing", c_int32, [ConnPtr, c_uint16, c_uint16, c_uint16]),
    ("iso_set_routing_s7", c_int32,
     [ConnPtr, c_uint16, c_uint16, _u8p, c_size_t, c_uint8, c_uint16, c_uint16]),
    ("iso_set_send_timeout", c_int32, [ConnPtr, c_uint32]),
    ("iso_set_max_message", c_int32, [ConnPtr, c_uint32]),
    ("iso_set_max_fragments", c_int32, [ConnPtr, c_uint32]),
    ("iso_set_keepalive", c_int32, [ConnPtr, c_int32, c_uint32, c_uint32, c_uint32]),
    ("iso_connect", c_int32, [ConnPtr, c_uint32]),
    ("iso_send", c_int32, [ConnPtr, c_char_p, c_size_t]),
    ("iso_poll", c_int32, [ConnPtr, c_uint32]),
    ("iso_recv", c_int32, [ConnPtr, POINTER(c_char), c_size_t, POINTER(c_size_t), c_uint32]),
    ("iso_check_connection", c_int32, [ConnPtr]),
    ("iso_disconnect", c_int32, [ConnPtr]),
    ("iso_get_tpdu_size", c_int32, [ConnPtr, POINTER(c_uint32)]),
    ("iso_get_fd", c_int32, [ConnPtr, POINTER(c_int64)]),
    ("iso_get_remote_tsap", c_int32, [ConnPtr, _u8p, c_size_t, POINTER(c_size_t)]),
    ("iso_get_calling_tsap", c_int32, [ConnPtr, _u8p, c_size_t, POINTER(c_size_t)]),
    ("iso_last_error", c_int32, [ConnPtr, POINTER(c_char), c_size_t, POINTER(c_size_t)]),
    ("iso_thread_last_error", c_int32, [POINTER(c_char), c_size_t, POINTER(c_size_t)]),
    ("iso_last_os_error", c_int32, [ConnPtr, POINTER(c_int32)]),
    ("iso_reconnect", c_int32, [ConnPtr, c_uint32]),
    ("iso_set_user_timeout", c_int32, [ConnPtr, c_uint32]),
    ("iso_set_connect_attempt_delay", c_int32, [ConnPtr, c_uint32]),
    ("iso_get_connect_phase", c_int32, [ConnPtr, POINTER(c_int32)]),
    ("iso_thread_last_os_error", c_int32, [POINTER(c_int32)]),
    ("iso_s7_tsap", c_int32, [c_uint8, c_uint8, c_uint8, POINTER(c_uint16)]),
    ("iso_tls_config_create", c_int32, [POINTER(c_void_p)]),
    ("iso_tls_config_destroy", None, [c_void_p]),
    ("iso_tls_config_set_ca_file", c_int32, [c_void_p, c_char_p]),
    ("iso_tls_config_set_pin_sha256", c_int32, [c_void_p, _u8p, c_size_t]),
    ("iso_tls_config_set_insecure", c_int32, [c_void_p, c_int32]),
    ("iso_tls_config_set_server_name", c_int32, [c_void_p, c_char_p]),
    ("iso_tls_config_set_identity_files", c_int32, [c_void_p, c_char_p, c_char_p]),
    ("iso_tls_config_set_versions", c_int32, [c_void_p, c_uint16, c_uint16]),
    ("iso_tls_config_set_keylog_file", c_int32, [c_void_p, c_char_p]),
    ("iso_tls_config_set_max_record_size", c_int32, [c_void_p, c_uint32]),
    ("iso_start_tls", c_int32, [ConnPtr, c_void_p, c_uint32]),
    ("iso_tls_active", c_int32, [ConnPtr]),
    (
        "iso_tls_export_keying_material",
        c_int32,
        [ConnPtr, _u8p, c_size_t, _u8p, c_size_t, _u8p, c_size_t],
    ),
    ("iso_tls_peer_certificate", c_int32, [ConnPtr, _u8p, c_size_t, POINTER(c_size_t)]),
    ("iso_listen", c_int32, [c_char_p, c_uint16, POINTER(ListenerPtr)]),
    ("iso_listener_destroy", None, [ListenerPtr]),
    ("iso_listener_shutdown", c_int32, [ListenerPtr]),
    ("iso_listener_port", c_int32, [ListenerPtr, POINTER(c_uint16)]),
    ("iso_accept", c_int32, [ListenerPtr, c_uint32, POINTER(ConnPtr)]),
    ("iso_listener_get_fd", c_int32, [ListenerPtr, POINTER(c_int64)]),
    ("iso_listener_next_timeout", c_int32, [ListenerPtr, POINTER(c_uint32)]),
    ("iso_listener_set_max_tpdu", c_int32, [ListenerPtr, c_uint32]),
    ("iso_listener_set_cr_timeout", c_int32, [ListenerPtr, c_uint32]),
    ("iso_listener_set_max_pending", c_int32, [ListenerPtr, c_uint32]),
    ("iso_listener_set_max_queued", c_int32, [ListenerPtr, c_uint32]),
    ("iso_listener_set_max_message", c_int32, [ListenerPtr, c_uint32]),
    ("iso_listener_allow_tsap", c_int32, [ListenerPtr, _u8p, c_size_t]),
    ("iso_listener_set_filter", c_int32, [ListenerPtr, iso_cr_filter, c_void_p]),
    ("iso_listener_refused_count", c_int32, [ListenerPtr, POINTER(c_uint64)]),
    ("iso_listener_last_error", c_int32, [ListenerPtr, POINTER(c_char), c_size_t, POINTER(c_size_t)]),
    ("iso_queue_send", c_int32, [ConnPtr, c_char_p, c_size_t]),
    ("iso_flush", c_int32, [ConnPtr, c_uint32]),
    ("iso_get_send_pending", c_int32, [ConnPtr, POINTER(c_size_t)]),
    ("iso_set_max_queued", c_int32, [ConnPtr, c_uint32]),
    ("iso_snap7_error", c_int32, [c_int32]),
    ("iso_set_trace", c_int32, [ConnPtr, iso_trace_fn, c_void_p]),
    ("iso_set_trace_file", c_int32, [ConnPtr, c_char_p]),
]

DECLARED = []


def _declare(name, restype, argtypes):
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise ImportError(
            f"isotcp: {LIBRARY_PATH} does not export {name}; rebuild it from this source tree"
        ) from None
    fn.restype = restype
    fn.argtypes = argtypes
    globals()[name] = fn
    DECLARED.append(name)


for _name, _res, _args in _DECLARATIONS:
    _declare(_name, _res, _args)
del _name, _res, _args

# --------------------------------------------------------------------------------------------
# Version check
# --------------------------------------------------------------------------------------------

VERSION_NUMBER = iso_version_number()  # noqa: F821 (declared above)
_major, _minor = VERSION_NUMBER >> 16, (VERSION_NUMBER >> 8) & 0xFF
if _major != ABI_MAJOR or (_major == 0 and _minor != ABI_MINOR) or _minor < ABI_MINOR:
    raise ImportError(
        f"isotcp: {LIBRARY_PATH} is version {_major}.{_minor}.{VERSION_NUMBER & 0xFF}; "
        f"these bindings need {ABI_MAJOR}.{ABI_MINOR}.x"
    )
del _major, _minor

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def strerror(code):
    """The library's static text for a result code."""
    return iso_strerror(code).decode("utf-8", "replace")  # noqa: F821


def version():
    """The library version string, e.g. "0.1.0"."""
    return iso_version().decode("ascii", "replace")  # noqa: F821


def code_name(code):
    """The symbolic name of a result code ("ISO_E_TIMEOUT"), or the number as text."""
    return CODE_NAMES.get(code, str(code))


def _read_message(fetch):
    """Runs a last-error function (buf, cap, &needed) until the whole message fits."""
    needed = c_size_t(0)
    fetch(None, 0, ctypes.byref(needed))
    while True:
        cap = max(needed.value, 1)
        buf = ctypes.create_string_buffer(cap)
        rc = fetch(buf, cap, ctypes.byref(needed))
        if rc == ISO_OK:
            return buf.value.decode("utf-8", "replace")
        if rc != ISO_E_BUFFER_TOO_SMALL:
            return ""
        # The message changed between the size query and the copy: try again with the new size.


def last_error(conn):
    """The connection handle's last error message."""
    return _read_message(lambda b, c, n: iso_last_error(conn, b, c, n))  # noqa: F821


def thread_last_error():
    """The calling thread's last error message (also set by iso_create and iso_listen)."""
    return _read_message(iso_thread_last_error)  # noqa: F821


def last_os_error(conn):
    """The OS error code (errno, WSA code) of the handle's last failure; 0 when it had none."""
    code = c_int32(0)
    iso_last_os_error(conn, ctypes.byref(code))  # noqa: F821
    return code.value


def thread_last_os_error():
    """The OS error code of the calling thread's last failure; 0 when it had none."""
    code = c_int32(0)
    iso_thread_last_os_error(ctypes.byref(code))  # noqa: F821
    return code.value


def listener_last_error(listener):
    """The listener's last error or refusal."""
    return _read_message(lambda b, c, n: iso_listener_last_error(listener, b, c, n))  # noqa: F821


def as_u8(data):
    """(array, length) for a bytes-like argument declared as const uint8_t *: ctypes passes the
    array as a pointer to its first byte. The library copies it before returning."""
    data = bytes(data)
    if not data:
        return (c_uint8 * 1)(), 0
    return (c_uint8 * len(data)).from_buffer_copy(data), len(data)
