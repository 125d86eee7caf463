"""TLS settings for ``ISOTCPConnection.start_tls`` (secure S7 communication: TLS inside COTP).

    from isotcp import ISOTCPConnection, TlsConfig

    conn = ISOTCPConnection(host, local_tsap=0x0600, remote_tsap=b"SIMATIC-ROOT-HMI")
    conn.connect()
    ...  # the plaintext S7CommPlus InitSSL request and response
    conn.start_tls(TlsConfig(pin_sha256=bytes.fromhex("...")))   # or start_tls(pin_sha256=...)
    key = conn.export_keying_material(b"EXPERIMENTAL_OMS", 32)

The peer is verified by a CA file or a SHA-256 pin of its certificate; with neither, and without
the explicit ``insecure=True``, ``start_tls`` refuses (ValueError).
"""

import ctypes
import os

from . import _lib

#: ``versions`` values: TLS 1.2 and TLS 1.3 (the default allows both).
TLS1_2 = 0x0303
TLS1_3 = 0x0304


def _path(value):
    return (os.fsencode(value),)


def _text(value):
    return (None if value is None else str(value).encode("utf-8"),)


def _digest(value):
    return _lib.as_u8(value)


def _flag(value):
    return (1 if value else 0,)


def _pair(convert):
    def both(value):
        first, second = value
        return convert(first) + convert(second)

    return both


def _u16_pair(value):
    low, high = value
    return (int(low), int(high))


# keyword -> (the library's setter, argument -> its C arguments). A setter the library gains
# is one line here (and its declaration in _lib).
_OPTIONS = {
    "ca_file": ("iso_tls_config_set_ca_file", _path),
    "pin_sha256": ("iso_tls_config_set_pin_sha256", _digest),
    "insecure": ("iso_tls_config_set_insecure", _flag),
    "server_name": ("iso_tls_config_set_server_name", _text),
    "identity_files": ("iso_tls_config_set_identity_files", _pair(_path)),
    "versions": ("iso_tls_config_set_versions", _u16_pair),
    "keylog_file": ("iso_tls_config_set_keylog_file", _path),
    "max_record_size": ("iso_tls_config_set_max_record_size", lambda v: (int(v),)),
}


class TlsConfig:
    """What ``start_tls`` verifies and presents; owns an ``iso_tls_config``.

    Keyword arguments (each also a method ``set(name, value)``):

    - ``ca_file``: PEM file of CA certificates the peer's chain must verify against;
    - ``pin_sha256``: the SHA-256 (32 bytes) of the peer's certificate (DER) it must match;
    - ``insecure``: True accepts any certificate (labs only: anyone on the path can read and
      change the traffic);
    - ``server_name``: the name the peer's certificate must carry, also sent as SNI (default:
      no name check, as PLC certificates rarely name their address);
    - ``identity_files``: (certificate chain PEM, private key PEM), our certificate: needed by
      the server role, optional for a client;
    - ``versions``: (lowest, highest) of ``TLS1_2`` and ``TLS1_3`` (default both);
    - ``keylog_file``: a file each session appends its secrets to in the NSS key log format
      (Wireshark decrypts a capture with it; anyone who can read it can read the traffic);
    - ``max_record_size``: the largest TLS record in bytes; 0 (the default) sizes each record
      to fill one DT of the negotiated TPDU, larger records are split over several DTs.

    Files are read by ``start_tls``. A bad value raises ValueError with the library's reason.
    ``start_tls`` copies the settings: the object may be changed or closed afterwards.
    """

    def __init__(self, **options):
        ptr = ctypes.c_void_p()
        rc = _lib.iso_tls_config_create(ctypes.byref(ptr))
        if rc != _lib.ISO_OK:
            raise MemoryError(f"iso_tls_config_create: {_lib.thread_last_error()}")
        self._ptr = ptr
        try:
            for name, value in options.items():
                self.set(name, value)
        except BaseException:
            self.close()
            raise

    def set(self, name, value):
        """Applies one setting by its keyword name; returns self."""
        try:
            setter, convert = _OPTIONS[name]
        except KeyError:
            raise TypeError(
                f"unknown TLS setting {name!r}; known: {', '.join(sorted(_OPTIONS))}"
            ) from None
        rc = getattr(_lib, setter)(self._handle(), *convert(value))
        if rc != _lib.ISO_OK:
            raise ValueError(f"TLS setting {name}: {_lib.thread_last_error()}")
        return self

    def close(self):
        """Frees the configuration (sessions started with it keep their copy). Idempotent."""
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            _lib.iso_tls_config_destroy(ptr)

    def _handle(self):
        if not self._ptr:
            raise ValueError("TlsConfig is closed")
        return self._ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (at interpreter exit the library may be gone already)
            pass


__all__ = ["TLS1_2", "TLS1_3", "TlsConfig"]
