"""Runs the s7commplus package's client (0.3.x, PyPI) on isotcp, with the library doing its TLS.

    import isotcp.s7commplus
    from s7commplus.client import S7CommPlusClient

    with isotcp.s7commplus.swapped():      # or isotcp.s7commplus.install()
        client = S7CommPlusClient()
        client.connect("192.168.0.1", use_tls=True, tls_cert_fingerprint="3a:5f:...")
        data = client.db_read(1, 0, 4)

``install()`` changes, in ``s7commplus.connection``:

- the transport class ``ISOTCPConnection`` becomes ``Transport``: ``isotcp.ISOTCPConnection``
  raising s7commplus's own exception classes;
- ``S7CommPlusConnection._activate_tls`` runs the handshake with ``start_tls`` of the transport,
  and ``_send_s7_data`` / ``_recv_s7_data`` send and receive through it, so the library seals
  and opens the records inside the DTs and Python's ``ssl`` module is not used. The secret of
  the password login (``oms_secret``) comes from the library's TLS exporter, not from a key log.

Verification follows the arguments of ``connect``: ``tls_cert_fingerprint`` pins the PLC's
certificate, ``tls_ca`` verifies its chain and, as s7commplus does, that it names the host
connected to (given both, the library checks the pin alone: the exact certificate);
``tls_cert`` and ``tls_key`` present a client certificate. s7commplus itself
verifies nothing when given neither a CA nor a pin; here that is refused (S7CertificateError)
unless installed with ``allow_unverified=True``. ``uninstall()`` restores s7commplus,
``installed()`` tells whether it is in place. The asyncio client (``s7commplus.async_client``)
keeps its own transport and is not changed.
"""

import contextlib
import hashlib

try:
    from s7commplus import connection as _connection
    from s7commplus.error import S7CertificateError, S7ConnectionError, S7TimeoutError, S7TlsHandshakeError
except ImportError as e:
    raise ImportError(f"isotcp.s7commplus needs the s7commplus package 0.3.x (pip install 's7commplus>=0.3,<0.4'): {e}") from e

from . import errors as _errors
from .connection import ISOTCPConnection

#: The exporter label and length of S7CommPlus's password login (no context).
OMS_LABEL = b"EXPERIMENTAL_OMS"
OMS_LENGTH = 32

_REPLACED_METHODS = ("_activate_tls", "_send_s7_data", "_recv_s7_data")


@contextlib.contextmanager
def _as_s7commplus_errors():
    """Re-raises the binding's exceptions as s7commplus's classes, which its client catches."""
    try:
        yield
    except (S7ConnectionError, S7TimeoutError):
        raise
    except _errors.S7ConnectionError as e:
        raise S7ConnectionError(str(e)) from e
    except _errors.S7TimeoutError as e:
        raise S7TimeoutError(str(e)) from e


class Transport(ISOTCPConnection):
    """``isotcp.ISOTCPConnection`` in place of s7commplus's transport: the same calls, with
    s7commplus's ``S7ConnectionError`` and ``S7TimeoutError``."""

    def connect(self, timeout: float = 5.0) -> None:
        with _as_s7commplus_errors():
            super().connect(timeout)

    def send_data(self, data: bytes) -> None:
        with _as_s7commplus_errors():
            super().send_data(data)

    def receive_data(self) -> bytes:
        with _as_s7commplus_errors():
            return super().receive_data()


def _activate_tls(self, tls_cert=None, tls_key=None, tls_ca=None):
    """``S7CommPlusConnection._activate_tls`` on the library: the handshake inside COTP."""
    transport = self._iso_conn
    if not isinstance(transport, ISOTCPConnection):
        raise S7ConnectionError("isotcp.s7commplus was installed after this connection was made")
    options = {}
    if self._tls_cert_fingerprint is not None:
        options["pin_sha256"] = self._tls_cert_fingerprint
    if tls_ca:
        options["ca_file"] = tls_ca
        options["server_name"] = self.host
    if not options:
        if not _installed["allow_unverified"]:
            raise S7CertificateError(
                "no way to verify the PLC: pass tls_cert_fingerprint or tls_ca to connect(), or "
                "install isotcp.s7commplus with allow_unverified=True (labs only)"
            )
        options["insecure"] = True
    if tls_cert and tls_key:
        options["identity_files"] = (tls_cert, tls_key)
    try:
        transport.start_tls(timeout=transport.timeout, **options)
    except _errors.TlsError as e:
        cls = S7CertificateError if "certificate" in str(e) else S7TlsHandshakeError
        raise cls(f"TLS with the PLC failed: {e}") from e
    except (ValueError, _errors.S7Error) as e:
        raise S7TlsHandshakeError(f"TLS handshake with the PLC did not complete: {e}") from e
    self._tls_active = True
    self._peer_certificate_fingerprint = hashlib.sha256(transport.peer_certificate()).digest()
    self._oms_secret = transport.export_keying_material(OMS_LABEL, OMS_LENGTH)


def _send_s7_data(self, data):
    """``S7CommPlusConnection._send_s7_data``: the transport seals it once TLS is started."""
    self._iso_conn.send_data(data)


def _recv_s7_data(self):
    """``S7CommPlusConnection._recv_s7_data``: the transport opens it once TLS is started."""
    return self._iso_conn.receive_data()


_REPLACEMENTS = {"_activate_tls": _activate_tls, "_send_s7_data": _send_s7_data, "_recv_s7_data": _recv_s7_data}
# What install() replaced (restored by uninstall), and its setting.
_saved = {}
_installed = {"allow_unverified": False}


def install(allow_unverified: bool = False) -> None:
    """Makes connections s7commplus creates from now on use isotcp (see the module's text).
    ``allow_unverified``: accept any PLC certificate when ``connect`` names neither a CA nor a
    pin, as s7commplus does on its own (labs only). Calling it again changes the setting."""
    cls = _connection.S7CommPlusConnection
    missing = [name for name in _REPLACED_METHODS if not hasattr(cls, name)]
    if missing or not hasattr(_connection, "ISOTCPConnection"):
        raise RuntimeError(
            f"this s7commplus has no {', '.join(missing) or 'ISOTCPConnection'}: isotcp.s7commplus "
            "knows the structure of s7commplus 0.3"
        )
    if not _saved:
        _saved["ISOTCPConnection"] = _connection.ISOTCPConnection
        for name in _REPLACED_METHODS:
            _saved[name] = cls.__dict__[name]
        _connection.ISOTCPConnection = Transport
        for name, function in _REPLACEMENTS.items():
            setattr(cls, name, function)
    _installed["allow_unverified"] = bool(allow_unverified)


def uninstall() -> None:
    """Restores s7commplus's own transport and TLS. Connections made meanwhile keep isotcp."""
    if not _saved:
        return
    _connection.ISOTCPConnection = _saved.pop("ISOTCPConnection")
    for name in _REPLACED_METHODS:
        setattr(_connection.S7CommPlusConnection, name, _saved.pop(name))
    _installed["allow_unverified"] = False


def installed() -> bool:
    """True between ``install()`` and ``uninstall()``."""
    return bool(_saved)


@contextlib.contextmanager
def swapped(allow_unverified: bool = False):
    """``install()`` for a ``with`` block; whatever was in place before is put back after."""
    was_installed, was_allowed = installed(), _installed["allow_unverified"]
    install(allow_unverified)
    try:
        yield
    finally:
        if was_installed:
            install(was_allowed)
        else:
            uninstall()


__all__ = ["OMS_LABEL", "OMS_LENGTH", "Transport", "install", "installed", "swapped", "uninstall"]
