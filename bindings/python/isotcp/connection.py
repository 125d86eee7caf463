"""``ISOTCPConnection`` with the interface of python-snap7 3.x's ``snap7.connection``, on libisotcp.

Same constructor, methods, attributes and exceptions as python-snap7's class, so
``snap7.client.Client`` (or any code written against that class) runs on it unchanged. The
transport underneath is the library: segmentation and reassembly, one deadline per operation,
no data lost on a timeout, exact error reasons.
"""

import contextlib
import ctypes
import logging
import math
import threading
from enum import IntEnum
from types import TracebackType
from typing import Optional, Type, Union

from . import _lib
from .errors import S7ConnectionError, S7ConnectionTimeoutError, S7TimeoutError, TlsError
from .tls import TlsConfig

logger = logging.getLogger(__name__)

_U32_MAX = 0xFFFFFFFF
# The library's default largest message; the receive buffer grows if a larger one is reported.
_RECV_BUFFER = 65536


class ConnectPhase(IntEnum):
    """Where a connect failed (``iso_get_connect_phase``)."""

    #: The connect succeeded, or none ran (also: the failure was not a connect's).
    NONE = _lib.ISO_PHASE_NONE
    #: Resolving the host name failed.
    RESOLVE = _lib.ISO_PHASE_RESOLVE
    #: No address completed the TCP connect: the PLC is unreachable.
    TCP = _lib.ISO_PHASE_TCP
    #: TCP was up and the CR sent, but no CC confirmed it: the PLC is reachable and refused
    #: (usually TSAP, rack or slot) or did not answer.
    COTP = _lib.ISO_PHASE_COTP


# iso_set_user_timeout's range in ms (0 is the system's default) and
# iso_set_connect_attempt_delay's.
_USER_TIMEOUT_MAX_MS = 2073600000
_ATTEMPT_DELAY_MAX_MS = 10000


class TPDUSize(IntEnum):
    """TPDU sizes of ISO 8073, as the exponent: size = 2 ** value bytes."""

    S_128 = 0x07
    S_256 = 0x08
    S_512 = 0x09
    S_1024 = 0x0A
    S_2048 = 0x0B
    S_4096 = 0x0C
    S_8192 = 0x0D


def _timeout_ms(seconds):
    """A timeout in seconds (float, None = no limit) as the library's milliseconds."""
    if seconds is None:
        return _U32_MAX
    value = float(seconds)
    if math.isnan(value) or value < 0:
        raise ValueError("Timeout value out of range")
    return min(math.ceil(value * 1000), _U32_MAX)


def _check_u16(name, value):
    value = int(value)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} {value} is outside 0..65535")
    return value


def _tsap_bytes(name, tsap):
    if isinstance(tsap, (bytes, bytearray, memoryview)):
        return bytes(tsap)
    return _check_u16(name, tsap).to_bytes(2, "big")


def _error(cls, text, code, detail, os_error=0, phase=ConnectPhase.NONE):
    e = cls(f"{text}: {detail}" if detail else text)
    e.iso_code = code
    e.iso_name = _lib.code_name(code)
    e.os_error = os_error
    e.phase = ConnectPhase(phase)
    return e


def _connect_phase(ptr):
    phase = ctypes.c_int32(_lib.ISO_PHASE_NONE)
    _lib.iso_get_connect_phase(ptr, ctypes.byref(phase))
    return ConnectPhase(phase.value)


def _ms_in_range(name, seconds, low_ms, high_ms):
    """Seconds as whole milliseconds (rounded up), which must lie in low_ms..high_ms."""
    value = float(seconds)
    ms = math.ceil(value * 1000) if value == value and value >= 0 else -1
    if not low_ms <= ms <= high_ms:
        raise ValueError(f"{name} {seconds!r} s is outside {low_ms / 1000:g}..{high_ms / 1000:g} s")
    return ms


class _Handle:
    """Owns one ``iso_conn``.

    Calls run between ``acquire()`` and ``release()``. ``close()`` disconnects at once, which
    wakes calls blocked in other threads, and the handle is destroyed by whoever finishes last,
    since ``iso_destroy`` must be the last call on it with nothing in progress.
    """

    __slots__ = ("_ptr", "_users", "_closed", "_lock")

    def __init__(self, ptr):
        self._ptr = ptr
        self._users = 0
        self._closed = False
        self._lock = threading.Lock()

    def acquire(self):
        """The pointer, counted as in use; None once closed."""
        with self._lock:
            if self._closed:
                return None
            self._users += 1
            return self._ptr

    def release(self):
        with self._lock:
            self._users -= 1
            if not (self._closed and self._users == 0 and self._ptr):
                return
            ptr, self._ptr = self._ptr, None
        _lib.iso_destroy(ptr)

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._users:
                # Wakes blocked calls; the last of them to release destroys the handle.
                _lib.iso_disconnect(self._ptr)
                return
            ptr, self._ptr = self._ptr, None
        _lib.iso_destroy(ptr)


class _SocketView:
    """What code written for python-snap7 reads from ``connection.socket``: the descriptor
    (for ``select``) and the timeout. The descriptor belongs to the library: do not read,
    write or close it."""

    __slots__ = ("_conn",)

    def __init__(self, conn):
        self._conn = conn

    def fileno(self):
        """The connection's socket descriptor, or -1 when there is none."""
        return self._conn._fileno()

    def gettimeout(self):
        return self._conn.timeout

    def settimeout(self, value):
        """Sets the receive timeout (the connection's ``timeout``)."""
        if value is not None:
            _timeout_ms(value)
        self._conn.timeout = value

    def close(self):
        self._conn.disconnect()


class ISOTCPConnection:
    """
    ISO on TCP connection (RFC 1006 TPKT + ISO 8073 class 0 COTP) through libisotcp.

    Attributes, as in python-snap7: ``host``, ``port``, ``local_tsap``, ``remote_tsap``,
    ``tpdu_size`` (the TPDU size offered, a ``TPDUSize``), ``connected`` (a flag: True after
    ``connect``, False after a failed send or receive, as python-snap7 keeps it), ``pdu_size``
    (the negotiated TPDU size in bytes; 240 before connecting), ``timeout`` (seconds: the
    connect deadline, each send's deadline as set at connect, and each receive's deadline),
    ``src_ref``, ``dst_ref`` and ``socket`` (None when not connected).

    Beyond python-snap7: ``reconnect``, ``set_user_timeout``, ``set_connect_attempt_delay``,
    ``last_os_error`` and ``connect_phase``; the exceptions raised for a library result code
    carry ``os_error`` and ``phase`` besides ``iso_code`` and ``iso_name``. Secure
    communication (TLS inside COTP): ``start_tls``, ``tls_active``, ``export_keying_material``
    and ``peer_certificate``.
    """

    # COTP PDU types
    COTP_CR = 0xE0
    COTP_CC = 0xD0
    COTP_DR = 0x80
    COTP_DC = 0xC0
    COTP_DT = 0xF0
    COTP_ED = 0x10
    COTP_AK = 0x60
    COTP_EA = 0x20
    COTP_RJ = 0x50
    COTP_ER = 0x70

    # COTP parameter codes
    COTP_PARAM_PDU_SIZE = 0xC0
    COTP_PARAM_CALLING_TSAP = 0xC1
    COTP_PARAM_CALLED_TSAP = 0xC2

    # S7 routing parameter codes
    COTP_PARAM_SUBNET_ID = 0xC6
    COTP_PARAM_ROUTING_TSAP = 0xC7

    def __init__(
        self,
        host: str,
        port: int = 102,
        local_tsap: int = 0x0100,
        remote_tsap: Union[int, bytes] = 0x0102,
        tpdu_size: TPDUSize = TPDUSize.S_1024,
    ):
        """
        Args:
            host: PLC host name, IPv4 or IPv6 address
            port: TCP port (102 for S7)
            local_tsap: local TSAP (int for 2 bytes, or bytes)
            remote_tsap: remote TSAP (int for 2 bytes, or bytes such as b"SIMATIC-ROOT-HMI")
            tpdu_size: TPDU size offered in the connection request
        """
        self.host = host
        self.port = port
        self.local_tsap = local_tsap
        self.remote_tsap = remote_tsap
        self.tpdu_size = tpdu_size
        self.connected = False
        self.pdu_size = 240
        self.timeout = 5.0

        # The references of the connection request (the library's SRC-REF is 0x0001); the
        # library does not report the peer's reference, so dst_ref stays 0.
        self.src_ref = 0x0001
        self.dst_ref = 0x0000

        self._routing: bool = False
        self._subnet_id: int = 0
        self._routing_tsap: int = 0
        self._dest_rack = 0
        self._dest_slot = 0

        self._user_timeout_ms = _lib.ISO_USER_TIMEOUT_FROM_KEEPALIVE
        self._attempt_delay_ms = 250
        self._os_error = 0
        self._phase = ConnectPhase.NONE

        self._handle: Optional[_Handle] = None
        self._recv_lock = threading.Lock()
        self._recv_buf = ctypes.create_string_buffer(_RECV_BUFFER)
        self._recv_len = ctypes.c_size_t(0)

    # ----------------------------------------------------------------------------------------
    # python-snap7's interface
    # ----------------------------------------------------------------------------------------

    @property
    def socket(self) -> Optional[_SocketView]:
        """None when not connected; else an object with ``fileno()``, ``gettimeout()``,
        ``settimeout()`` and ``close()``. The socket itself belongs to the library."""
        return _SocketView(self) if self._handle is not None else None

    @socket.setter
    def socket(self, value):
        raise AttributeError(
            "isotcp.ISOTCPConnection owns its socket; an existing socket cannot be attached"
        )

    def set_routing(self, subnet_id: int, dest_rack: int, dest_slot: int) -> None:
        """Routes the connection to a PLC on another subnet (python-snap7's encoding: the CR
        gets ``C6`` with the subnet ID and ``C7`` with the destination's rack and slot).
        Takes effect at the next ``connect``. Rack 0..7, slot 0..31 (ValueError otherwise)."""
        if not 0 <= int(dest_rack) <= 7:
            raise ValueError(f"dest_rack {dest_rack} is outside 0..7")
        if not 0 <= int(dest_slot) <= 31:
            raise ValueError(f"dest_slot {dest_slot} is outside 0..31")
        self._routing = True
        self._subnet_id = int(subnet_id) & 0xFFFF
        self._dest_rack = int(dest_rack)
        self._dest_slot = int(dest_slot)
        self._routing_tsap = 0x0100 | (self._dest_rack << 5) | self._dest_slot

    # ----------------------------------------------------------------------------------------
    # Beyond python-snap7
    # ----------------------------------------------------------------------------------------

    def set_user_timeout(self, seconds: Optional[float]) -> None:
        """Bounds how long sent data may stay unacknowledged before the system gives up on the
        connection (TCP_USER_TIMEOUT; whole seconds on Windows), so a PLC that vanished under a
        pending request fails ``receive_data``/``send_data`` (``os_error`` ETIMEDOUT) instead of
        after about 15 minutes of retransmissions. ``seconds``: 0.001..2073600 (rounded up to
        whole milliseconds); 0 for the system's default; None (the default) for idle + interval
        x count of the keep-alive settings. Takes effect at the next ``connect``; ValueError
        outside the range."""
        if seconds is None:
            self._user_timeout_ms = _lib.ISO_USER_TIMEOUT_FROM_KEEPALIVE
        else:
            self._user_timeout_ms = _ms_in_range("user timeout", seconds, 0, _USER_TIMEOUT_MAX_MS)

    @property
    def user_timeout(self) -> Optional[float]:
        """The user timeout in seconds as set by ``set_user_timeout`` (None: from keep-alive)."""
        if self._user_timeout_ms == _lib.ISO_USER_TIMEOUT_FROM_KEEPALIVE:
            return None
        return self._user_timeout_ms / 1000

    def set_connect_attempt_delay(self, seconds: float) -> None:
        """Sets the delay between the starts of TCP connects to successive addresses of a host
        name that resolves to several (IPv6 and IPv4, the two CPUs of a redundant pair):
        0..10 s, rounded up to whole milliseconds (default 0.25). Takes effect at the next
        ``connect``; ValueError outside the range."""
        self._attempt_delay_ms = _ms_in_range("connect attempt delay", seconds, 0, _ATTEMPT_DELAY_MAX_MS)

    @property
    def connect_attempt_delay(self) -> float:
        """The connect attempt delay in seconds (default 0.25)."""
        return self._attempt_delay_ms / 1000

    @property
    def last_os_error(self) -> int:
        """The OS error code (errno; the WSA code on Windows) behind the last failure this
        connection raised, e.g. 111 (ECONNREFUSED); 0 when it had none or before any."""
        return self._os_error

    @property
    def connect_phase(self) -> ConnectPhase:
        """Where the last ``connect``/``reconnect`` failed; ``ConnectPhase.NONE`` after a
        successful one or before any."""
        return self._phase

    def reconnect(self, timeout: float = 5.0) -> None:
        """Ends the connection and connects again within ``timeout`` seconds, with the settings
        of the last ``connect`` (attributes changed since take effect at the next ``connect``):
        while the COTP connection is up a DR goes out first, so the PLC releases its side at
        once; after a lost connection (``connected`` False) it just connects. Without a
        connection made before it is ``connect(timeout)``. ``timeout`` becomes the receive
        deadline, as with ``connect``. Raises as ``connect``."""
        handle = self._handle
        ptr = handle.acquire() if handle is not None else None
        if ptr is None:
            self.connect(timeout)
            return
        self.timeout = timeout
        try:
            self.connected = False
            try:
                self._connect_handle(ptr, _lib.iso_reconnect, _timeout_ms(timeout))
            finally:
                handle.release()
            self.connected = True
            logger.info(f"Reconnected to {self.host}:{self.port}, PDU size: {self.pdu_size}")
        except Exception as e:
            self.disconnect()
            if isinstance(e, (S7ConnectionError, S7TimeoutError)):
                raise
            raise S7ConnectionError(f"Connection failed: {e}") from e

    def connect(self, timeout: float = 5.0) -> None:
        """Connects (TCP, then COTP CR/CC) within ``timeout`` seconds.

        Raises S7ConnectionError (refused, unreachable, name not resolved, rejected, closed,
        malformed answer, bad parameters), or S7ConnectionTimeoutError (both an
        S7ConnectionError and an S7TimeoutError) when the deadline passed. The exception's
        ``phase`` says where it stopped (``ConnectPhase.TCP``: unreachable, ``os_error`` e.g.
        111 ECONNREFUSED; ``ConnectPhase.COTP``: reachable, but ISO refused or unanswered).
        """
        self.timeout = timeout
        try:
            self._open()
            self.connected = True
            logger.info(f"Connected to {self.host}:{self.port}, PDU size: {self.pdu_size}")
        except Exception as e:
            self.disconnect()
            if isinstance(e, (S7ConnectionError, S7TimeoutError)):
                raise
            raise S7ConnectionError(f"Connection failed: {e}") from e

    def disconnect(self) -> None:
        """Closes the connection (class 0 releases by closing TCP). Calls blocked in other
        threads on this connection return at once with S7ConnectionError."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
            self.connected = False
            logger.info(f"Disconnected from {self.host}:{self.port}")

    def send_data(self, data: bytes) -> None:
        """Sends one S7 PDU, segmented into DTs of the negotiated size when it is larger.

        Raises S7ConnectionError (not connected, empty or too large message, connection lost),
        or S7ConnectionTimeoutError when the send deadline passed.
        """
        handle = self._handle
        if not self.connected or handle is None:
            raise S7ConnectionError("Not connected")
        if not isinstance(data, bytes):
            data = bytes(data)
        if not data:
            raise S7ConnectionError("Send failed: an empty message cannot be sent")
        ptr = handle.acquire()
        if ptr is None:
            raise S7ConnectionError("Not connected")
        try:
            rc = _lib.iso_send(ptr, data, len(data))
            if rc == _lib.ISO_OK:
                return
            detail = _lib.last_error(ptr)
            os_error = self._os_error = _lib.last_os_error(ptr)
        finally:
            handle.release()
        if rc == _lib.ISO_E_TOO_LARGE or rc == _lib.ISO_E_INVALID:
            raise _error(S7ConnectionError, "Send failed", rc, detail, os_error)
        self.connected = False
        if rc == _lib.ISO_E_TIMEOUT or rc == _lib.ISO_E_WOULD_BLOCK:
            raise _error(S7ConnectionTimeoutError, "Send timeout", rc, detail, os_error)
        if rc == _lib.ISO_E_TLS:
            raise _error(TlsError, "Send failed", rc, detail, os_error)
        raise _error(S7ConnectionError, "Send failed", rc, detail, os_error)

    def receive_data(self) -> bytes:
        """Receives one whole S7 PDU (reassembled from its DTs), waiting up to ``timeout``.

        Raises S7TimeoutError when none arrived in time (what did arrive stays buffered and the
        next call continues; ``connected`` becomes False as in python-snap7, and setting it to
        True again resumes), S7ConnectionError when not connected or the connection was lost.
        """
        handle = self._handle
        if not self.connected or handle is None:
            raise S7ConnectionError("Not connected")
        timeout_ms = _timeout_ms(self.timeout)
        with self._recv_lock:
            ptr = handle.acquire()
            if ptr is None:
                raise S7ConnectionError("Not connected")
            try:
                while True:
                    buf = self._recv_buf
                    rc = _lib.iso_recv(ptr, buf, len(buf), ctypes.byref(self._recv_len), timeout_ms)
                    if rc == _lib.ISO_OK:
                        return ctypes.string_at(buf, self._recv_len.value)
                    if rc == _lib.ISO_E_BUFFER_TOO_SMALL:
                        self._recv_buf = ctypes.create_string_buffer(self._recv_len.value)
                        continue
                    detail = _lib.last_error(ptr)
                    os_error = self._os_error = _lib.last_os_error(ptr)
                    break
            finally:
                handle.release()
        self.connected = False
        if rc == _lib.ISO_E_TIMEOUT or rc == _lib.ISO_E_WOULD_BLOCK:
            raise _error(S7TimeoutError, "Receive timeout", rc, detail, os_error)
        if rc == _lib.ISO_E_CLOSED:
            raise _error(S7ConnectionError, "Connection closed by peer", rc, detail, os_error)
        if rc == _lib.ISO_E_TLS:
            raise _error(TlsError, "Receive failed", rc, detail, os_error)
        raise _error(S7ConnectionError, "Receive failed", rc, detail, os_error)

    def data_available(self, timeout: float = 0.0) -> bool:
        """Waits up to ``timeout`` seconds (0 = just look, None = no limit) until
        ``receive_data`` would return without waiting.

        True when a whole PDU is buffered, and also when the connection has failed or the peer
        has closed it (as ``select`` reports a socket at EOF readable): ``receive_data`` then
        raises at once. False when nothing completed in time or when not connected.
        """
        handle = self._handle
        if not self.connected or handle is None:
            return False
        timeout_ms = _timeout_ms(timeout)
        ptr = handle.acquire()
        if ptr is None:
            return False
        try:
            rc = _lib.iso_poll(ptr, timeout_ms)
        finally:
            handle.release()
        if rc == 1:
            return True
        if rc == 0 or rc == _lib.ISO_E_TIMEOUT or rc == _lib.ISO_E_WOULD_BLOCK:
            return False
        return True

    def check_connection(self) -> bool:
        """True when the connection can carry a new request; False when not connected or the
        peer has closed or reset it (``connected`` then becomes False). Never blocks and
        consumes nothing."""
        handle = self._handle
        if not self.connected or handle is None:
            return False
        ptr = handle.acquire()
        if ptr is None:
            return False
        try:
            rc = _lib.iso_check_connection(ptr)
        finally:
            handle.release()
        if rc == 1:
            return True
        self.connected = False
        return False

    # ----------------------------------------------------------------------------------------
    # Secure communication: TLS inside COTP
    # ----------------------------------------------------------------------------------------

    def start_tls(self, config: Optional[TlsConfig] = None, timeout: Optional[float] = None, **options) -> None:
        """Runs the TLS handshake inside COTP on the connected connection (for S7CommPlus: after
        the plaintext InitSSL request and response); from then on ``send_data`` and
        ``receive_data`` carry TLS, each message's records in DTs of the negotiated size.

        ``config``: a ``TlsConfig``; or its keyword arguments here (``pin_sha256=...``,
        ``ca_file=...``; see ``TlsConfig``), not both. ``timeout``: seconds (default: the
        connection's ``timeout``).

        TLS belongs to the connection: after ``reconnect`` or ``connect`` the new connection is
        in clear until ``start_tls`` runs again (after a new InitSSL exchange). No other thread
        may send or receive on the connection while the handshake runs.

        Raises TlsError (handshake failed, certificate rejected: the message says why; the
        connection is closed), S7ConnectionTimeoutError, S7ConnectionError (not connected,
        closed), ValueError (no CA file, pin or ``insecure`` set; unreadable files; TLS already
        started).
        """
        if config is not None and options:
            raise TypeError("start_tls takes a TlsConfig or its keyword arguments, not both")
        if config is None:
            with TlsConfig(**options) as own:
                self._start_tls(own, timeout)
        else:
            self._start_tls(config, timeout)

    @property
    def tls_active(self) -> bool:
        """True when TLS is started on the current connection."""
        handle = self._handle
        ptr = handle.acquire() if handle is not None else None
        if ptr is None:
            return False
        try:
            return _lib.iso_tls_active(ptr) == 1
        finally:
            handle.release()

    def export_keying_material(self, label: Union[bytes, str], length: int, context: Optional[bytes] = None) -> bytes:
        """``length`` (1..255) bytes from the TLS exporter (RFC 5705, RFC 8446 section 7.5) for
        ``label``; ``context`` None means no context (S7CommPlus's password login uses label
        ``EXPERIMENTAL_OMS``, 32 bytes, no context), which differs from an empty one.

        Raises S7ConnectionError when TLS is not started, ValueError for a bad length, TlsError
        when the exporter fails.
        """
        if isinstance(label, str):
            label = label.encode("utf-8")
        length = int(length)
        if not 1 <= length <= 255:
            raise ValueError(f"length {length} is outside 1..255")
        label_arr, label_len = _lib.as_u8(label)
        if context is None:
            context_arr, context_len = None, 0
        else:
            context = bytes(context)
            # A NULL context means "none": an empty one is passed as a real (1-byte) array.
            context_arr, context_len = _lib.as_u8(context)
        out = (ctypes.c_uint8 * length)()
        with self._tls_call("export_keying_material") as ptr:
            rc = _lib.iso_tls_export_keying_material(
                ptr, label_arr, label_len, context_arr, context_len, out, length
            )
            self._tls_check(ptr, rc, "export_keying_material")
        return bytes(out)

    def peer_certificate(self) -> bytes:
        """The certificate (DER) the peer presented in the TLS handshake.

        Raises S7ConnectionError when TLS is not started.
        """
        with self._tls_call("peer_certificate") as ptr:
            needed = ctypes.c_size_t(0)
            while True:
                buf = (ctypes.c_uint8 * max(needed.value, 1))()
                rc = _lib.iso_tls_peer_certificate(ptr, buf, needed.value, ctypes.byref(needed))
                if rc == _lib.ISO_E_BUFFER_TOO_SMALL:
                    continue
                self._tls_check(ptr, rc, "peer_certificate")
                return bytes(buf[: needed.value])

    def _start_tls(self, config, timeout):
        handle = self._handle
        if not self.connected or handle is None:
            raise S7ConnectionError("start_tls: not connected")
        timeout_ms = _timeout_ms(self.timeout if timeout is None else timeout)
        ptr = handle.acquire()
        if ptr is None:
            raise S7ConnectionError("start_tls: not connected")
        try:
            rc = _lib.iso_start_tls(ptr, config._handle(), timeout_ms)
            if rc == _lib.ISO_OK:
                logger.info(f"TLS started with {self.host}:{self.port}")
                return
            detail = _lib.last_error(ptr)
            os_error = self._os_error = _lib.last_os_error(ptr)
        finally:
            handle.release()
        if rc == _lib.ISO_E_INVALID:
            raise _error(ValueError, "start_tls", rc, detail, os_error)
        # Any other failure has closed the connection.
        self.connected = False
        if rc == _lib.ISO_E_TLS:
            raise _error(TlsError, "TLS failed", rc, detail, os_error)
        if rc == _lib.ISO_E_TIMEOUT or rc == _lib.ISO_E_WOULD_BLOCK:
            raise _error(S7ConnectionTimeoutError, "TLS handshake timeout", rc, detail, os_error)
        raise _error(S7ConnectionError, "TLS handshake failed", rc, detail, os_error)

    @contextlib.contextmanager
    def _tls_call(self, operation):
        """The handle's pointer, held in use, for a call that needs a started TLS session."""
        handle = self._handle
        ptr = handle.acquire() if handle is not None else None
        if ptr is None:
            raise S7ConnectionError(f"{operation}: not connected")
        try:
            if _lib.iso_tls_active(ptr) != 1:
                raise S7ConnectionError(f"{operation}: TLS is not started on this connection (start_tls)")
            yield ptr
        finally:
            handle.release()

    def _tls_check(self, ptr, rc, operation):
        if rc == _lib.ISO_OK:
            return
        detail = _lib.last_error(ptr)
        if rc == _lib.ISO_E_TLS:
            raise _error(TlsError, operation, rc, detail)
        if rc == _lib.ISO_E_INVALID:
            raise _error(ValueError, operation, rc, detail)
        raise _error(S7ConnectionError, operation, rc, detail)

    def __enter__(self) -> "ISOTCPConnection":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        self.disconnect()

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()

    def __repr__(self):
        state = "connected" if self.connected else "not connected"
        return f"<isotcp.ISOTCPConnection {self.host}:{self.port} {state}>"

    # ----------------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------------

    def _open(self):
        """Creates and configures a handle from the attributes, then connects it."""
        if self._handle is not None:
            # Connecting again replaces the current connection, as in python-snap7.
            self.disconnect()
        timeout_ms = _timeout_ms(self.timeout)
        host = self.host.encode("utf-8") if isinstance(self.host, str) else bytes(self.host)
        port = _check_u16("port", self.port)
        local = _tsap_bytes("local_tsap", self.local_tsap)
        remote = _tsap_bytes("remote_tsap", self.remote_tsap)
        exponent = int(self.tpdu_size)
        if not TPDUSize.S_128 <= exponent <= TPDUSize.S_8192:
            raise ValueError(f"tpdu_size {exponent:#04x} is outside 0x07..0x0D")

        ptr = _lib.ConnPtr()
        rc = _lib.iso_create(host, port, ctypes.byref(ptr))
        if rc != _lib.ISO_OK:
            detail = _lib.thread_last_error()
            self._os_error = _lib.thread_last_os_error()
            self._phase = ConnectPhase.NONE
            raise _error(S7ConnectionError, "Connection failed", rc, detail, self._os_error)
        handle = _Handle(ptr)
        self._handle = handle
        # Counted as in use, so a disconnect from another thread cannot free it meanwhile.
        ptr = handle.acquire()
        try:
            self._configure_and_connect(ptr, local, remote, exponent, timeout_ms)
        finally:
            handle.release()

    def _configure_and_connect(self, ptr, local, remote, exponent, timeout_ms):
        def setup(rc):
            if rc != _lib.ISO_OK:
                detail = _lib.last_error(ptr)
                self._os_error = _lib.last_os_error(ptr)
                self._phase = ConnectPhase.NONE
                raise _error(S7ConnectionError, "Connection failed", rc, detail, self._os_error)

        if len(local) == 2 and len(remote) == 2:
            setup(_lib.iso_set_tsap(ptr, int.from_bytes(local, "big"), int.from_bytes(remote, "big")))
        else:
            local_arr, local_len = _lib.as_u8(local)
            remote_arr, remote_len = _lib.as_u8(remote)
            setup(_lib.iso_set_tsap_bytes(ptr, local_arr, local_len, remote_arr, remote_len))
        setup(_lib.iso_set_tpdu_size(ptr, 1 << exponent))
        if self._routing:
            setup(_lib.iso_set_routing(ptr, self._subnet_id, self._dest_rack, self._dest_slot))
        setup(_lib.iso_set_send_timeout(ptr, timeout_ms))
        setup(_lib.iso_set_user_timeout(ptr, self._user_timeout_ms))
        setup(_lib.iso_set_connect_attempt_delay(ptr, self._attempt_delay_ms))
        self._connect_handle(ptr, _lib.iso_connect, timeout_ms)

    def _connect_handle(self, ptr, connect, timeout_ms):
        """Runs iso_connect or iso_reconnect; records the phase, and the failure's OS error."""
        rc = connect(ptr, timeout_ms)
        self._phase = _connect_phase(ptr)
        if rc != _lib.ISO_OK:
            detail = _lib.last_error(ptr)
            self._os_error = _lib.last_os_error(ptr)
            cls, text = S7ConnectionError, "Connection failed"
            if rc == _lib.ISO_E_TIMEOUT or rc == _lib.ISO_E_WOULD_BLOCK:
                cls, text = S7ConnectionTimeoutError, "Connection timeout"
            raise _error(cls, text, rc, detail, self._os_error, self._phase)
        size = ctypes.c_uint32(0)
        if _lib.iso_get_tpdu_size(ptr, ctypes.byref(size)) == _lib.ISO_OK:
            self.pdu_size = size.value

    def _fileno(self):
        handle = self._handle
        ptr = handle.acquire() if handle is not None else None
        if ptr is None:
            return -1
        try:
            fd = ctypes.c_int64(-1)
            if _lib.iso_get_fd(ptr, ctypes.byref(fd)) != _lib.ISO_OK:
                return -1
            return fd.value
        finally:
            handle.release()
