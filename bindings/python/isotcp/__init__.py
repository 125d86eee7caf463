"""isotcp: python-snap7's ``ISOTCPConnection`` on libisotcp (ISO on TCP for Siemens S7).

    from isotcp import ISOTCPConnection

    with ISOTCPConnection("192.168.0.10", remote_tsap=0x0102) as conn:
        conn.connect(timeout=3.0)
        conn.send_data(request)
        reply = conn.receive_data()

To run python-snap7's ``snap7.client.Client`` on it (see ``isotcp.snap7``):

    import isotcp.snap7; isotcp.snap7.install()

Secure communication (TLS inside COTP, S7-1200/1500 with secure PG/HMI communication):
``conn.start_tls(pin_sha256=...)`` after the plaintext InitSSL exchange, then ``send_data`` and
``receive_data`` carry TLS; ``isotcp.TlsConfig`` holds the settings, ``isotcp.TlsError`` is
what a failed handshake or a rejected certificate raises. ``isotcp.s7commplus`` runs the
s7commplus package's client on this transport with the library doing its TLS.

``isotcp._lib`` is the C ABI as plain ctypes declarations.
"""

from . import _lib
from .connection import ConnectPhase, ISOTCPConnection, TPDUSize
from .errors import S7ConnectionError, S7ConnectionTimeoutError, S7Error, S7TimeoutError, TlsError
from .tls import TLS1_2, TLS1_3, TlsConfig

__version__ = "0.1.0"
library_version = _lib.version()
library_path = _lib.LIBRARY_PATH

__all__ = [
    "ConnectPhase",
    "ISOTCPConnection",
    "S7ConnectionError",
    "S7ConnectionTimeoutError",
    "S7Error",
    "S7TimeoutError",
    "TLS1_2",
    "TLS1_3",
    "TPDUSize",
    "TlsConfig",
    "TlsError",
    "library_path",
    "library_version",
]
