"""s7commplus 0.3.0's own client on isotcp (``isotcp.s7commplus``), against its S7-1500 emulator
(tests/peers/s7commplus_server.py: protocol V2, TLS inside COTP).

``S7CommPlusClient().connect(..., use_tls=True)`` runs a whole V2 session: COTP with the HMI
TSAPs, InitSSL, the TLS handshake, CreateObject, the session setup; then ``db_read`` and
``db_write`` over TLS. The transport is ``isotcp.ISOTCPConnection`` and the library does the
TLS: Python's ``ssl`` module is made to fail in this process for the duration of each test.

Needs the s7commplus package in the python running the tests (its venv,
ISOTCP_VENV_S7COMMPLUS); under any other python this module contributes no tests, so that a
``unittest discover`` with python-snap7's venv runs the rest.
"""

import logging
import os
import ssl
import sys
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
# ISOTCP_TEST_INSTALLED=1: test the installed package (a wheel), not the source next to here.
if os.environ.get("ISOTCP_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)  # s7commplus_peer

import isotcp  # noqa: E402
import s7commplus_peer as peer  # noqa: E402

try:
    import s7commplus.connection
    from s7commplus.client import S7CommPlusClient
    from s7commplus.error import S7CertificateError, S7ConnectionError

    import isotcp.s7commplus

    HAVE_S7COMMPLUS = True
except ImportError:
    HAVE_S7COMMPLUS = False


def load_tests(loader, tests, pattern):
    if not HAVE_S7COMMPLUS:
        return unittest.TestSuite()
    return tests


def _no_python_ssl(*args, **kwargs):
    raise AssertionError("Python's ssl module was used: the TLS must be the library's")


class S7CommPlusClientTests(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        # s7commplus warns that the emulator reports no protection level; not this test's matter.
        logging.getLogger("s7commplus").setLevel(logging.ERROR)
        cls.server = peer.Server(sys.executable)  # this python has s7commplus

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.close()

    def setUp(self):
        for name in ("wrap_bio", "wrap_socket"):
            patcher = mock.patch.object(ssl.SSLContext, name, _no_python_ssl)
            patcher.start()
            self.addCleanup(patcher.stop)
        isotcp.s7commplus.install()
        self.addCleanup(isotcp.s7commplus.uninstall)

    def connect(self, **kwargs):
        client = S7CommPlusClient()
        client.connect("127.0.0.1", port=self.server.port, use_tls=True, **kwargs)
        self.addCleanup(client.disconnect)
        return client

    def test_v2_session_reads_and_writes_over_isotcp_tls(self):
        client = self.connect(tls_cert_fingerprint=self.server.pin.hex(":"))
        session = client._connection
        transport = session._iso_conn
        self.assertIsInstance(transport, isotcp.ISOTCPConnection)
        self.assertTrue(transport.tls_active, "the library runs the TLS session")
        self.assertTrue(session.tls_active)
        self.assertIsNone(session._ssl_object, "s7commplus's own TLS object was never made")
        self.assertEqual(session.protocol_version, 2)
        self.assertEqual(session.peer_certificate_fingerprint(), self.server.pin)
        # The password login's key, from the library's exporter.
        self.assertEqual(session.oms_secret, transport.export_keying_material(b"EXPERIMENTAL_OMS", 32))

        self.assertEqual(client.db_read(1, 0, 8), bytes(range(8)))
        self.assertEqual(client.db_read(1, 40, 24), bytes(range(40, 64)))
        client.db_write(2, 4, b"\xde\xad\xbe\xef")
        self.assertEqual(client.db_read(2, 0, 10), bytes(4) + b"\xde\xad\xbe\xef" + bytes(2))
        client.db_write(2, 4, bytes(4))
        self.assertEqual(client.db_read(2, 4, 4), bytes(4))
        # A read of more than a TPDU (the answer's record comes in one large DT), and a larger
        # write (s7commplus keeps each request under 900 bytes).
        self.assertEqual(client.db_read(3, 0, 3000), bytes((i * 7) & 0xFF for i in range(3000)))
        block = bytes(range(200)) * 3
        client.db_write(2, 100, block)
        self.assertEqual(client.db_read(2, 100, 600), block)
        self.assertTrue(transport.tls_active)

    def test_ca_file_verifies_the_chain_and_host_name(self):
        # The emulator's certificate (CN=plc, no subject alternative name) is its own CA: the
        # chain verifies, and the host name check that s7commplus does with a CA refuses it.
        with self.assertRaises(S7CertificateError) as caught:
            self.connect(tls_ca=self.server.cert_path)
        self.assertIn('"127.0.0.1"', str(caught.exception), "the message names the host")
        self.assertIsInstance(caught.exception.__cause__, isotcp.TlsError)

    def test_wrong_pin_is_refused(self):
        wrong = bytes(b ^ 1 for b in self.server.pin).hex()
        with self.assertRaises(S7CertificateError) as caught:
            self.connect(tls_cert_fingerprint=wrong)
        self.assertIn("pin", str(caught.exception))

    def test_unverified_needs_allow_unverified(self):
        with self.assertRaises(S7CertificateError):
            self.connect()
        isotcp.s7commplus.install(allow_unverified=True)
        client = self.connect()
        self.assertTrue(client._connection._iso_conn.tls_active)
        self.assertEqual(client.db_read(1, 1, 3), bytes([1, 2, 3]))

    def test_uninstall_restores_s7commplus(self):
        isotcp.s7commplus.uninstall()
        self.assertFalse(isotcp.s7commplus.installed())
        self.assertIs(s7commplus.connection.ISOTCPConnection, s7commplus.transport.ISOTCPConnection)
        for name in ("_activate_tls", "_send_s7_data", "_recv_s7_data"):
            self.assertIsNot(getattr(s7commplus.connection.S7CommPlusConnection, name), getattr(isotcp.s7commplus, name))
        # With s7commplus's own TLS back, the connect reaches the ssl module, made to fail here.
        with self.assertRaisesRegex(AssertionError, "Python's ssl module was used"):
            self.connect(tls_cert_fingerprint=self.server.pin.hex())
        isotcp.s7commplus.install()
        self.assertIs(s7commplus.connection.ISOTCPConnection, isotcp.s7commplus.Transport)

    def test_swapped_puts_back_what_was_there(self):
        isotcp.s7commplus.uninstall()
        with isotcp.s7commplus.swapped():
            self.assertTrue(isotcp.s7commplus.installed())
            client = self.connect(tls_cert_fingerprint=self.server.pin.hex())
            self.assertTrue(client._connection._iso_conn.tls_active)
        self.assertFalse(isotcp.s7commplus.installed())
        self.assertIs(s7commplus.connection.ISOTCPConnection, s7commplus.transport.ISOTCPConnection)
        isotcp.s7commplus.install(allow_unverified=True)
        with isotcp.s7commplus.swapped():
            with self.assertRaises(S7CertificateError):
                self.connect()
        # Installed before the block, with its setting: still so after it.
        self.assertTrue(isotcp.s7commplus.installed())
        self.assertEqual(self.connect().db_read(1, 5, 2), bytes([5, 6]))

    def test_exceptions_are_s7commplus_classes(self):
        client = S7CommPlusClient()
        with self.assertRaises(S7ConnectionError) as caught:
            # Nothing listens on port 1 of the loopback address.
            client.connect("127.0.0.1", port=1, use_tls=True, tls_cert_fingerprint=self.server.pin.hex())
        self.assertIsInstance(caught.exception.__cause__, isotcp.S7ConnectionError)


if __name__ == "__main__":
    unittest.main()
