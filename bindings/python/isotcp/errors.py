"""The exceptions raised by ``isotcp.ISOTCPConnection``.

When python-snap7 is importable these are python-snap7's own classes (``snap7.error``), so code
that catches ``S7ConnectionError`` or ``S7TimeoutError`` keeps working after swapping the
connection class. Without python-snap7, local classes with the same names, hierarchy and
constructor (``message, error_code=None``) stand in.

Every exception raised for a library result code also carries ``iso_code`` (the negative
``ISO_E_*`` value), ``iso_name`` (its symbolic name), ``os_error`` (the OS error code behind
it, e.g. 111 ECONNREFUSED; 0 when it had none) and ``phase`` (an ``isotcp.ConnectPhase``: for a
failed ``connect``/``reconnect`` where it stopped, ``ConnectPhase.NONE`` for other failures),
both read right after the failing call.

``TlsError`` (an ``S7ConnectionError``) is the library's ISO_E_TLS: the TLS handshake failed,
the peer's certificate was rejected (no chain to the CA file, or not the pinned one), or a
record or alert ended the session. A failed handshake closes the connection.
"""

try:
    from snap7.error import S7ConnectionError, S7Error, S7TimeoutError

    FROM_SNAP7 = True
except ImportError:
    FROM_SNAP7 = False

    class S7Error(Exception):  # type: ignore[no-redef]
        """Base exception for all S7 errors."""

        def __init__(self, message, error_code=None):
            super().__init__(message)
            self.error_code = error_code

    class S7ConnectionError(S7Error):  # type: ignore[no-redef]
        """The connection could not be made, was lost, or is not there."""

    class S7TimeoutError(S7Error):  # type: ignore[no-redef]
        """An operation did not complete within its timeout."""


class S7ConnectionTimeoutError(S7ConnectionError, S7TimeoutError):
    """A deadline passed while connecting or sending.

    python-snap7 reports a connect that times out in the TCP stage, and a send that times out,
    as ``S7ConnectionError``, and one that times out waiting for the COTP answer as
    ``S7TimeoutError``; the library has one deadline for the whole connect, so this class is
    both and either ``except`` clause catches it.
    """


class TlsError(S7ConnectionError):
    """TLS failed (ISO_E_TLS): handshake, certificate rejected, a bad record or an alert; the
    message says which."""


__all__ = [
    "FROM_SNAP7",
    "S7ConnectionError",
    "S7ConnectionTimeoutError",
    "S7Error",
    "S7TimeoutError",
    "TlsError",
]
