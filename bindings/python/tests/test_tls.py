"""Secure communication through the Python binding: ``ISOTCPConnection.start_tls`` against
s7commplus 0.3.0's S7-1500 emulator (protocol V2, TLS inside COTP; tests/peers/s7commplus_server.py,
which runs Python's ssl module on the other side of the wire).

Each test connects with the HMI TSAPs, sends the plaintext InitSSL request and reads its
response, then starts TLS pinned to the emulator's certificate and sends an encrypted
CreateObject, whose answer carries a new session: the emulator could only decrypt the request
and the binding only decrypt the answer if the TLS inside the DTs was right.
"""

import hashlib
import hmac
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# ISOTCP_TEST_INSTALLED=1: test the installed package (a wheel), not the source next to here.
if os.environ.get("ISOTCP_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)  # s7commplus_peer

import isotcp  # noqa: E402
import s7commplus_peer as peer  # noqa: E402
from isotcp import TlsConfig, TlsError  # noqa: E402
from isotcp.errors import S7ConnectionError  # noqa: E402


def hkdf_expand_label(digest, secret, label, context, length):
    """HKDF-Expand-Label of RFC 8446 section 7.1."""
    info = length.to_bytes(2, "big") + bytes([6 + len(label)]) + b"tls13 " + label
    info += bytes([len(context)]) + context
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), digest).digest()
        out += block
        counter += 1
    return out[:length]


def tls13_exporter(digest, exporter_secret, label, context, length):
    """TLS-Exporter of RFC 8446 section 7.5."""
    empty = digest(b"").digest()
    derived = hkdf_expand_label(digest, exporter_secret, label, empty, digest().digest_size)
    return hkdf_expand_label(digest, derived, b"exporter", digest(context).digest(), length)


class SecureSessionTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = None

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.close()

    def setUp(self):
        python = peer.need_peer(self)
        if SecureSessionTests.server is None:
            SecureSessionTests.server = peer.Server(python)
        self.server = SecureSessionTests.server

    def connect(self):
        """A connection that has exchanged the plaintext InitSSL request and response."""
        conn = isotcp.ISOTCPConnection(
            "127.0.0.1", port=self.server.port, local_tsap=peer.LOCAL_TSAP, remote_tsap=peer.REMOTE_TSAP
        )
        self.addCleanup(conn.disconnect)
        conn.connect(timeout=5.0)
        conn.send_data(peer.INIT_SSL)
        _, opcode, function, sequence, _ = peer.response_header(conn.receive_data())
        self.assertEqual((opcode, function, sequence), (peer.OPCODE_RESPONSE, peer.FUNCTION_INIT_SSL, 0))
        self.assertFalse(conn.tls_active)
        return conn

    def assert_session_created(self, conn, sequence):
        conn.send_data(peer.create_object(sequence))
        version, opcode, function, seq, body = peer.response_header(conn.receive_data())
        self.assertEqual(version, 0x02, "the emulator answers in protocol V2")
        self.assertEqual((opcode, function, seq), (peer.OPCODE_RESPONSE, peer.FUNCTION_CREATE_OBJECT, sequence))
        # Return value 0, one object id: the new session's (VLQ, non-zero).
        self.assertEqual(body[0], 0x00)
        self.assertEqual(body[1], 0x01)
        self.assertNotEqual(body[2], 0x00)

    def test_pinned_session_carries_requests(self):
        conn = self.connect()
        conn.start_tls(pin_sha256=self.server.pin, timeout=5.0)
        self.assertTrue(conn.tls_active)
        self.assert_session_created(conn, 1)
        self.assert_session_created(conn, 2)

    def test_config_object_and_ca_file(self):
        # The emulator's self-signed certificate is its own CA.
        conn = self.connect()
        with TlsConfig(ca_file=self.server.cert_path, versions=(isotcp.TLS1_2, isotcp.TLS1_3)) as cfg:
            conn.start_tls(cfg)
        self.assertTrue(conn.tls_active)
        self.assert_session_created(conn, 1)

    def test_peer_certificate_is_the_pinned_one(self):
        conn = self.connect()
        conn.start_tls(pin_sha256=self.server.pin)
        der = conn.peer_certificate()
        self.assertEqual(der[0], 0x30, "a DER SEQUENCE")
        self.assertEqual(hashlib.sha256(der).digest(), self.server.pin)

    def test_exporter(self):
        conn = self.connect()
        conn.start_tls(pin_sha256=self.server.pin)
        oms = conn.export_keying_material(peer.OMS_LABEL, 32)
        self.assertEqual(len(oms), 32)
        self.assertNotEqual(oms, bytes(32))
        # Deterministic for one session; label, length and context all change the output.
        self.assertEqual(conn.export_keying_material("EXPERIMENTAL_OMS", 32), oms)
        self.assertEqual(len(conn.export_keying_material(peer.OMS_LABEL, 255)), 255)
        self.assertNotEqual(conn.export_keying_material(b"EXPERIMENTAL_OMT", 32), oms)
        self.assertNotEqual(conn.export_keying_material(peer.OMS_LABEL, 32, context=b"x"), oms)
        # TLS 1.3 (what the emulator negotiates) defines no context as the empty one.
        self.assertEqual(conn.export_keying_material(peer.OMS_LABEL, 32, context=b""), oms)
        for bad in (0, 256):
            with self.assertRaises(ValueError):
                conn.export_keying_material(peer.OMS_LABEL, bad)
        # The session still works after all that.
        self.assert_session_created(conn, 1)

    def test_exporter_matches_the_key_log(self):
        # The exporter derived here from the key log's EXPORTER_SECRET (RFC 8446 section 7.5,
        # with Python's hmac) must equal the library's: an independent check of the value the
        # S7CommPlus password login depends on.
        keylog = os.path.join(self.tmpdir(), "keys.log")
        conn = self.connect()
        conn.start_tls(pin_sha256=self.server.pin, keylog_file=keylog)
        secrets = {}
        with open(keylog) as f:
            for line in f:
                label, _, secret = line.split()
                secrets[label] = bytes.fromhex(secret)
        self.assertIn("EXPORTER_SECRET", secrets)
        secret = secrets["EXPORTER_SECRET"]
        digest = {32: hashlib.sha256, 48: hashlib.sha384}[len(secret)]
        for context, length in ((None, 32), (b"ctx", 17)):
            expected = tls13_exporter(digest, secret, peer.OMS_LABEL, context or b"", length)
            self.assertEqual(conn.export_keying_material(peer.OMS_LABEL, length, context), expected)

    def tmpdir(self):
        d = tempfile.TemporaryDirectory(prefix="isotcp-tls-")
        self.addCleanup(d.cleanup)
        return d.name

    def test_wrong_pin_is_a_tls_error(self):
        conn = self.connect()
        wrong = bytes(b ^ 0xFF for b in self.server.pin)
        with self.assertRaises(TlsError) as caught:
            conn.start_tls(pin_sha256=wrong, timeout=5.0)
        e = caught.exception
        self.assertIsInstance(e, S7ConnectionError)
        self.assertEqual(e.iso_code, isotcp._lib.ISO_E_TLS)
        self.assertEqual(e.iso_name, "ISO_E_TLS")
        self.assertIn("pin", str(e))
        self.assertIn(self.server.pin.hex(), str(e), "the message names the certificate's digest")
        self.assertFalse(conn.connected)
        self.assertFalse(conn.tls_active)

    def test_unverified_start_is_refused(self):
        conn = self.connect()
        with self.assertRaises(ValueError) as caught:
            conn.start_tls()
        self.assertIn("verify", str(caught.exception))
        # Nothing was sent: the connection still carries plaintext.
        self.assertTrue(conn.connected)
        self.assertFalse(conn.tls_active)

    def test_insecure_must_be_named(self):
        conn = self.connect()
        conn.start_tls(insecure=True)
        self.assertTrue(conn.tls_active)
        self.assert_session_created(conn, 1)

    def test_tls_calls_before_start(self):
        conn = self.connect()
        with self.assertRaises(S7ConnectionError):
            conn.export_keying_material(peer.OMS_LABEL, 32)
        with self.assertRaises(S7ConnectionError):
            conn.peer_certificate()

    def test_reconnect_needs_a_new_start(self):
        # A reconnect makes a new connection, in clear: InitSSL and start_tls again.
        conn = self.connect()
        conn.start_tls(pin_sha256=self.server.pin)
        conn.reconnect(timeout=5.0)
        self.assertFalse(conn.tls_active)
        conn.send_data(peer.INIT_SSL)
        _, opcode, function, _, _ = peer.response_header(conn.receive_data())
        self.assertEqual((opcode, function), (peer.OPCODE_RESPONSE, peer.FUNCTION_INIT_SSL))
        conn.start_tls(pin_sha256=self.server.pin)
        self.assertTrue(conn.tls_active)
        self.assert_session_created(conn, 1)

    def test_start_twice_is_refused(self):
        conn = self.connect()
        conn.start_tls(pin_sha256=self.server.pin)
        with self.assertRaises(ValueError):
            conn.start_tls(pin_sha256=self.server.pin)
        self.assertTrue(conn.tls_active)
        self.assert_session_created(conn, 1)


class ConfigTests(unittest.TestCase):
    """TlsConfig alone: no peer needed."""

    def test_bad_values(self):
        with self.assertRaises(ValueError):
            TlsConfig(pin_sha256=bytes(31))
        with self.assertRaises(ValueError):
            TlsConfig(versions=(isotcp.TLS1_3, isotcp.TLS1_2))
        with self.assertRaises(ValueError):
            TlsConfig(versions=(0x0302, isotcp.TLS1_3))
        with self.assertRaises(TypeError):
            TlsConfig(pinned=bytes(32))

    def test_closed_config(self):
        cfg = TlsConfig(insecure=True)
        cfg.close()
        cfg.close()
        with self.assertRaises(ValueError):
            cfg.set("insecure", False)

    def test_not_connected(self):
        conn = isotcp.ISOTCPConnection("127.0.0.1", port=1)
        with self.assertRaises(S7ConnectionError):
            conn.start_tls(insecure=True)
        self.assertFalse(conn.tls_active)
        with self.assertRaises(TypeError):
            conn.start_tls(TlsConfig(insecure=True), insecure=True)


if __name__ == "__main__":
    unittest.main()
