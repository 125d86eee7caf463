"""isotcp: python-snap7's ``ISOTCPConnection`` on libisotcp (ISO on TCP for Siemens S7).

    from isotcp import ISOTCPConnection

    with ISOTCPConnection("192.168.0.10", remote_tsap=0x0102) as conn:
        conn.connect(timeout=3.0)
        conn.send_data(request)
        reply = conn.receive_data()

To run python-snap7's ``snap7.client.Client`` on it (see ``isotcp.snap7``):

    import isotcp.snap7; isotcp.snap7.install()

``isotcp._lib`` is the C ABI as plain ctypes declarations.
"""

from . import _lib
from .connection import ConnectPhase, ISOTCPConnection, TPDUSize
from .errors import S7ConnectionError, S7ConnectionTimeoutError, S7Error, S7TimeoutError

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
    "TPDUSize",
    "library_path",
    "library_version",
]
