"""Tests of the isotcp Python package (unittest; no other packages needed).

    <venv python> -m unittest discover -s bindings/python/tests -v

- SwapTests: python-snap7's own ``snap7.client.Client`` with its connection class replaced by
  ``isotcp.ISOTCPConnection``, against python-snap7's S7 server (tests/peers/server.py, started
  here with this same python): connect, PDU length, reads checked against DB1 (byte i = i & 0xFF),
  writes to DB2 read back, multi-variable reads on the parallel path, routed connect.
- BehaviourTests: every error and state case, run on both ``isotcp.ISOTCPConnection`` and
  python-snap7's ``snap7.connection.ISOTCPConnection`` with the same expectations, against
  scripted peers on loopback and the S7 server.
- IsotcpOnlyTests: what only the library does (nothing lost on a timeout, reassembly,
  segmentation, disconnect waking a blocked receive, the OS error and connect phase of a
  failure, reconnect against the S7 server, the user-timeout and attempt-delay settings).
- LowLevelTests: the ctypes layer (every header function declared, codes, last errors).

The package is the source next to this directory, or with ISOTCP_TEST_INSTALLED=1 the installed
one (test_install.py then checks that it is). The library comes from ISOTCP_LIBRARY or the usual
places (see isotcp/_lib.py). Without
python-snap7 the tests that need it are skipped, or fail when ISOTCP_REQUIRE_PEERS=1.
"""

import errno
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# ISOTCP_TEST_INSTALLED=1: test the installed package (a wheel), not the source next to here.
INSTALLED = os.environ.get("ISOTCP_TEST_INSTALLED") == "1"
if not INSTALLED:
    sys.path.insert(0, os.path.dirname(HERE))
TREE = os.path.normpath(os.path.join(HERE, "..", "..", ".."))

import isotcp  # noqa: E402
from isotcp import _lib  # noqa: E402
from isotcp.errors import S7ConnectionError, S7TimeoutError  # noqa: E402

try:
    import snap7
    import snap7.client
    import snap7.connection
    import snap7.error
    import snap7.type

    HAVE_SNAP7 = True
except ImportError:
    HAVE_SNAP7 = False

PEERS_REQUIRED = os.environ.get("ISOTCP_REQUIRE_PEERS") == "1"
SERVER_PY = os.path.join(TREE, "tests", "peers", "server.py")
HEADER = os.path.join(TREE, "include", "isotcp.h")

DB1 = bytes(i & 0xFF for i in range(1024))
# S7 "setup communication" request asking for PDU 480.
SETUP_REQUEST = bytes.fromhex("32010000000000080000f0000001000101e0")


def need_snap7(test):
    """Skips (or, with ISOTCP_REQUIRE_PEERS=1, fails) when python-snap7 is not importable."""
    if HAVE_SNAP7:
        return
    if PEERS_REQUIRED:
        test.fail(f"ISOTCP_REQUIRE_PEERS=1 and python-snap7 3.x (snap7.connection) is not importable by {sys.executable}")
    test.skipTest(f"python-snap7 3.x (snap7.connection) is not importable by {sys.executable}")


# ---------------------------------------------------------------------------------------------
# The S7 server (python-snap7's, through tests/peers/server.py)
# ---------------------------------------------------------------------------------------------


class S7Server:
    """tests/peers/server.py under this python; ends when its stdin is closed."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, SERVER_PY, "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if ready else ""
        words = line.split()
        if len(words) != 3 or words[0] != "READY":
            self.close()
            raise RuntimeError(f"server.py did not start: {line!r}")
        self.port = int(words[1])
        self.flavor = words[2]

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


_server = None


def server():
    global _server
    if _server is None:
        _server = S7Server()
    return _server


def tearDownModule():
    if _server is not None:
        _server.close()


# ---------------------------------------------------------------------------------------------
# Scripted peers: a loopback listener that takes one client, reads its CR and runs a script
# ---------------------------------------------------------------------------------------------


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return bytes(data)


def read_tpkt(sock):
    header = recv_exact(sock, 4)
    length = struct.unpack(">H", header[2:])[0]
    return header + recv_exact(sock, length - 4)


def tpkt(payload):
    return struct.pack(">BBH", 3, 0, len(payload) + 4) + payload


def dt(data, eot=True):
    return tpkt(bytes([2, 0xF0, 0x80 if eot else 0x00]) + data)


def cr_params(cr):
    """The CR's parameters as {code: value}."""
    params, i = {}, 11
    while i + 2 <= len(cr):
        code, length = cr[i], cr[i + 1]
        params[code] = cr[i + 2 : i + 2 + length]
        i += 2 + length
    return params


def cc_for(cr):
    """A CC answering `cr`: DST-REF = its SRC-REF, its TPDU size and both TSAPs echoed."""
    params = cr_params(cr)
    body = struct.pack(">BHHB", 0xD0, struct.unpack(">H", cr[8:10])[0], 0x0001, 0)
    body += bytes([0xC0, 1]) + params.get(0xC0, b"\x0a")
    for code in (0xC1, 0xC2):
        if code in params:
            body += bytes([code, len(params[code])]) + params[code]
    return tpkt(bytes([len(body)]) + body)


class Peer:
    """Accepts one TCP client on 127.0.0.1, reads its CR into ``cr``, then runs ``script(peer,
    sock)``. ``release`` is an event scripts may wait on; ``close()`` ends everything."""

    def __init__(self, script):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.cr = None
        self.errors = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script):
        try:
            self.listener.settimeout(10)
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(10)
                self.cr = read_tpkt(sock)
                script(self, sock)
        except Exception as e:  # reported by close()
            self.errors.append(e)

    def close(self):
        self.release.set()
        self.listener.close()
        self.thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def silent(peer, sock):
    peer.release.wait(10)


def cc_then_hold(peer, sock):
    sock.sendall(cc_for(peer.cr))
    peer.release.wait(10)


def cc_then_close(peer, sock):
    sock.sendall(cc_for(peer.cr))


def dr_reply(peer, sock):
    # DR: DST-REF = CR's SRC-REF, reason 0x03 (address unknown)
    body = bytes([0x80]) + peer.cr[8:10] + b"\x00\x00" + b"\x03"
    sock.sendall(tpkt(bytes([len(body)]) + body))
    peer.release.wait(10)


def free_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def implementations():
    """(name, class) for isotcp and, when importable, python-snap7's own class."""
    impls = [("isotcp", isotcp.ISOTCPConnection)]
    if HAVE_SNAP7:
        impls.append(("python-snap7", snap7.connection.ISOTCPConnection))
    return impls


# ---------------------------------------------------------------------------------------------
# python-snap7's Client on isotcp
# ---------------------------------------------------------------------------------------------


class SwapTests(unittest.TestCase):
    def setUp(self):
        need_snap7(self)
        self.port = server().port
        created = self.created = []
        calls = self.calls = {"data_available": 0, "receive_data": 0, "send_data": 0}

        class Recording(isotcp.ISOTCPConnection):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                created.append(self)

            def data_available(self, timeout=0.0):
                calls["data_available"] += 1
                return super().data_available(timeout)

            def receive_data(self):
                calls["receive_data"] += 1
                return super().receive_data()

            def send_data(self, data):
                calls["send_data"] += 1
                return super().send_data(data)

        self.original = snap7.client.ISOTCPConnection
        snap7.client.ISOTCPConnection = Recording
        self.client = snap7.client.Client()

    def tearDown(self):
        if HAVE_SNAP7:
            self.client.disconnect()
            snap7.client.ISOTCPConnection = self.original

    def connect(self):
        self.client.connect("127.0.0.1", 0, 2, self.port)
        self.assertEqual(len(self.created), 1)
        self.assertIs(self.client.connection, self.created[0])
        self.assertIsInstance(self.client.connection, isotcp.ISOTCPConnection)

    def test_connect_and_pdu_length(self):
        self.connect()
        self.assertEqual(self.client.get_pdu_length(), 480)
        self.assertTrue(self.client.get_connected())
        conn = self.client.connection
        self.assertTrue(conn.connected)
        self.assertEqual(conn.pdu_size, 1024)  # TPDU size granted in the CC
        self.assertIsNotNone(conn.socket)
        self.assertGreaterEqual(conn.socket.fileno(), 0)
        self.assertGreater(self.calls["send_data"], 0)

    def test_db_read_checks_data(self):
        self.connect()
        self.assertEqual(bytes(self.client.db_read(1, 0, 4)), DB1[0:4])
        self.assertEqual(bytes(self.client.db_read(1, 100, 8)), DB1[100:108])
        # Larger than one PDU: the client splits it into several requests.
        self.assertEqual(bytes(self.client.db_read(1, 0, 1024)), DB1)
        for _ in range(50):
            self.assertEqual(bytes(self.client.db_read(1, 250, 6)), DB1[250:256])

    def test_db_write_then_read_back(self):
        self.connect()
        self.client.db_write(2, 10, bytearray(b"\xde\xad\xbe\xef"))
        self.assertEqual(bytes(self.client.db_read(2, 10, 4)), b"\xde\xad\xbe\xef")
        block = bytes((i * 7) & 0xFF for i in range(600))  # over one PDU: several writes
        self.client.db_write(2, 100, bytearray(block))
        self.assertEqual(bytes(self.client.db_read(2, 100, 600)), block)
        self.assertEqual(bytes(self.client.db_read(2, 8, 2)), b"\x00\x00")

    def test_read_multi_vars_parallel_uses_data_available(self):
        self.connect()
        self.assertGreater(self.client.max_parallel, 1)
        items = [
            {"area": snap7.type.Area.DB, "db_number": 1, "start": i * 50, "size": 30}
            for i in range(20)
        ]
        rc, results = self.client.read_multi_vars(items)
        self.assertEqual(rc, 0)
        for i, data in enumerate(results):
            self.assertEqual(bytes(data), DB1[i * 50 : i * 50 + 30])
        self.assertGreater(self.calls["data_available"], 0)

    def test_disconnect(self):
        self.connect()
        conn = self.client.connection
        self.client.disconnect()
        self.assertFalse(self.client.get_connected())
        self.assertFalse(conn.connected)
        self.assertIsNone(conn.socket)

    def test_connect_routed(self):
        self.client.connect_routed("127.0.0.1", 0, 2, 0x0152, 1, 3, port=self.port, timeout=3.0)
        self.assertIsInstance(self.client.connection, isotcp.ISOTCPConnection)
        self.assertEqual(bytes(self.client.db_read(1, 20, 4)), DB1[20:24])

    def test_refused_port(self):
        with self.assertRaises(S7ConnectionError):
            self.client.connect("127.0.0.1", 0, 2, free_port())
        self.assertFalse(self.client.get_connected())

    def test_auto_reconnect_uses_the_swapped_class(self):
        self.client = snap7.client.Client(auto_reconnect=True, max_retries=2, retry_delay=0.01)
        self.connect()
        # Close the transport under the client; the next read reconnects with a new instance.
        self.client.connection.disconnect()
        with self.assertLogs("snap7.client", "WARNING"):
            self.assertEqual(bytes(self.client.db_read(1, 40, 4)), DB1[40:44])
        self.assertEqual(len(self.created), 2)


# ---------------------------------------------------------------------------------------------
# The same expectations on isotcp's class and python-snap7's
# ---------------------------------------------------------------------------------------------


class BehaviourTests(unittest.TestCase):
    def each(self):
        for name, cls in implementations():
            with self.subTest(implementation=name):
                yield name, cls

    def test_exceptions_are_python_snap7s(self):
        need_snap7(self)
        self.assertIs(isotcp.S7ConnectionError, snap7.error.S7ConnectionError)
        self.assertIs(isotcp.S7TimeoutError, snap7.error.S7TimeoutError)
        self.assertTrue(issubclass(isotcp.S7ConnectionTimeoutError, snap7.error.S7TimeoutError))
        self.assertTrue(issubclass(isotcp.S7ConnectionTimeoutError, snap7.error.S7ConnectionError))

    def test_constructor_defaults_and_attributes(self):
        for name, cls in self.each():
            conn = cls("127.0.0.1")
            self.assertEqual(conn.port, 102)
            self.assertEqual(conn.local_tsap, 0x0100)
            self.assertEqual(conn.remote_tsap, 0x0102)
            self.assertEqual(int(conn.tpdu_size), 0x0A)
            self.assertEqual(conn.pdu_size, 240)
            self.assertEqual(conn.timeout, 5.0)
            self.assertFalse(conn.connected)
            self.assertIsNone(conn.socket)
            self.assertEqual((conn.src_ref, conn.dst_ref), (1, 0))
            self.assertEqual((conn.COTP_CR, conn.COTP_DT, conn.COTP_PARAM_ROUTING_TSAP), (0xE0, 0xF0, 0xC7))

    def test_refused_port_is_a_connection_error(self):
        port = free_port()
        for name, cls in self.each():
            conn = cls("127.0.0.1", port)
            with self.assertRaises(S7ConnectionError) as ctx:
                conn.connect(timeout=2.0)
            self.assertNotIsInstance(ctx.exception, S7TimeoutError)
            self.assertFalse(conn.connected)
            self.assertIsNone(conn.socket)
            if name == "isotcp":
                self.assertEqual(ctx.exception.iso_code, _lib.ISO_E_REFUSED)

    def test_no_answer_to_the_cr_is_a_timeout(self):
        for name, cls in self.each():
            with Peer(silent) as peer:
                conn = cls("127.0.0.1", peer.port)
                start = time.monotonic()
                with self.assertRaises(S7TimeoutError):
                    conn.connect(timeout=0.3)
                elapsed = time.monotonic() - start
                self.assertGreaterEqual(elapsed, 0.25)
                self.assertLess(elapsed, 3.0)
                self.assertFalse(conn.connected)
                self.assertIsNone(conn.socket)

    def test_dr_answer_is_a_connection_error(self):
        for name, cls in self.each():
            with Peer(dr_reply) as peer:
                conn = cls("127.0.0.1", peer.port)
                with self.assertRaises(S7ConnectionError) as ctx:
                    conn.connect(timeout=2.0)
                self.assertFalse(conn.connected)
                if name == "isotcp":
                    self.assertEqual(ctx.exception.iso_code, _lib.ISO_E_REJECTED)
                    self.assertIn("0x03", str(ctx.exception))

    def test_not_connected(self):
        for name, cls in self.each():
            conn = cls("127.0.0.1", free_port())
            with self.assertRaises(S7ConnectionError):
                conn.send_data(SETUP_REQUEST)
            with self.assertRaises(S7ConnectionError):
                conn.receive_data()
            self.assertFalse(conn.data_available(0.05))
            self.assertFalse(conn.check_connection())
            conn.disconnect()  # no-op

    def test_receive_timeout(self):
        need_snap7(self)
        for name, cls in self.each():
            conn = cls("127.0.0.1", server().port)
            conn.connect(timeout=3.0)
            try:
                conn.timeout = 0.2
                start = time.monotonic()
                with self.assertRaises(S7TimeoutError):
                    conn.receive_data()
                self.assertGreaterEqual(time.monotonic() - start, 0.19)
                self.assertFalse(conn.connected)  # python-snap7 drops the flag on a timeout
                with self.assertRaises(S7ConnectionError):
                    conn.send_data(SETUP_REQUEST)
            finally:
                conn.disconnect()

    def test_data_available(self):
        need_snap7(self)
        for name, cls in self.each():
            conn = cls("127.0.0.1", server().port)
            conn.connect(timeout=3.0)
            try:
                self.assertFalse(conn.data_available())
                start = time.monotonic()
                self.assertFalse(conn.data_available(timeout=0.15))
                self.assertGreaterEqual(time.monotonic() - start, 0.14)
                conn.send_data(SETUP_REQUEST)
                self.assertTrue(conn.data_available(timeout=5.0))
                reply = conn.receive_data()
                self.assertEqual(reply[:2], b"\x32\x03")
                self.assertFalse(conn.data_available())
                self.assertTrue(conn.check_connection())
            finally:
                conn.disconnect()
            self.assertFalse(conn.data_available())

    def test_peer_closing(self):
        for name, cls in self.each():
            with Peer(cc_then_close) as peer:
                conn = cls("127.0.0.1", peer.port)
                conn.connect(timeout=2.0)
                self.assertTrue(conn.connected)
                # Readable at EOF: a receive will not wait, it fails.
                self.assertTrue(conn.data_available(timeout=5.0))
                with self.assertRaises(S7ConnectionError):
                    conn.receive_data()
                self.assertFalse(conn.connected)
                conn.disconnect()

            with Peer(cc_then_close) as peer:
                conn = cls("127.0.0.1", peer.port)
                conn.connect(timeout=2.0)
                peer.thread.join(5)
                deadline = time.monotonic() + 5
                while conn.check_connection() and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.assertFalse(conn.check_connection())
                self.assertFalse(conn.connected)
                conn.disconnect()

    def test_context_manager_disconnects(self):
        for name, cls in self.each():
            with Peer(cc_then_hold) as peer:
                with cls("127.0.0.1", peer.port) as conn:
                    conn.connect(timeout=2.0)
                    self.assertTrue(conn.connected)
                    self.assertEqual(conn.pdu_size, 1024)
                self.assertFalse(conn.connected)
                self.assertIsNone(conn.socket)

    def test_connection_requests_are_byte_identical(self):
        """The CR on the wire for the same arguments, from both classes."""
        cases = [
            ({}, None),
            ({"local_tsap": 0x1000, "remote_tsap": 0x1001}, None),
            ({"remote_tsap": b"SIMATIC-ROOT-HMI"}, None),
            ({"tpdu_size": isotcp.TPDUSize.S_512}, None),
            ({"remote_tsap": 0x0102}, (0x0152, 1, 3)),
        ]
        for kwargs, routing in cases:
            wires = {}
            for name, cls in implementations():
                with Peer(cc_then_hold) as peer:
                    conn = cls("127.0.0.1", peer.port, **kwargs)
                    if routing:
                        conn.set_routing(*routing)
                    conn.connect(timeout=2.0)
                    conn.disconnect()
                wires[name] = peer.cr
            with self.subTest(kwargs=kwargs, routing=routing):
                if "python-snap7" in wires:
                    self.assertEqual(wires["isotcp"].hex(), wires["python-snap7"].hex())
                params = cr_params(wires["isotcp"])
                remote = kwargs.get("remote_tsap", 0x0102)
                if isinstance(remote, int):
                    remote = remote.to_bytes(2, "big")
                self.assertEqual(params[0xC2], remote)
                if routing:
                    self.assertEqual(params[0xC6], b"\x01\x52")
                    self.assertEqual(params[0xC7], bytes([0x01, (1 << 5) | 3]))

        default = "0300001611e00000000100c1020100c2020102c0010a"
        with Peer(cc_then_hold) as peer:
            conn = isotcp.ISOTCPConnection("127.0.0.1", peer.port)
            conn.connect(timeout=2.0)
            conn.disconnect()
        self.assertEqual(peer.cr.hex(), default)


# ---------------------------------------------------------------------------------------------
# What only the library does
# ---------------------------------------------------------------------------------------------


class IsotcpOnlyTests(unittest.TestCase):
    def test_timeout_loses_nothing(self):
        """Half a message, a receive timeout, the rest: the next receive returns it whole."""
        gate = threading.Event()

        def script(peer, sock):
            sock.sendall(cc_for(peer.cr))
            sock.sendall(dt(b"first half,", eot=False))
            gate.wait(10)
            sock.sendall(dt(b" second half", eot=True))
            peer.release.wait(10)

        with Peer(script) as peer:
            conn = isotcp.ISOTCPConnection("127.0.0.1", peer.port)
            conn.connect(timeout=2.0)
            conn.timeout = 0.2
            with self.assertRaises(S7TimeoutError) as ctx:
                conn.receive_data()
            self.assertEqual(ctx.exception.iso_code, _lib.ISO_E_TIMEOUT)
            self.assertFalse(conn.connected)
            gate.set()
            conn.connected = True  # as python-snap7's Partner does after a timeout
            conn.timeout = 5.0
            self.assertEqual(conn.receive_data(), b"first half, second half")
            conn.disconnect()

    def test_reassembles_and_segments(self):
        """A reply in 3 DTs comes back whole; a send above the TPDU size goes out in DTs."""
        message = bytes(range(256)) * 4

        def script(peer, sock):
            sock.sendall(cc_for(peer.cr))
            got = bytearray()
            dts = 0
            while True:
                frame = read_tpkt(sock)
                dts += 1
                got += frame[7:]
                if frame[6] & 0x80:
                    break
            peer.sent_dts = dts
            peer.got = bytes(got)
            sock.sendall(dt(b"one,", False) + dt(b"two,", False) + dt(b"three", True))
            peer.release.wait(10)

        with Peer(script) as peer:
            conn = isotcp.ISOTCPConnection("127.0.0.1", peer.port, tpdu_size=isotcp.TPDUSize.S_128)
            conn.connect(timeout=2.0)
            self.assertEqual(conn.pdu_size, 128)
            conn.send_data(message)
            self.assertEqual(conn.receive_data(), b"one,two,three")
            conn.disconnect()
        self.assertEqual(peer.got, message)
        self.assertEqual(peer.sent_dts, -(-len(message) // 125))

    def test_too_large_and_empty_sends_keep_the_connection(self):
        got = threading.Event()

        def script(peer, sock):
            sock.sendall(cc_for(peer.cr))
            peer.frame = read_tpkt(sock)
            got.set()
            peer.release.wait(10)

        with Peer(script) as peer:
            conn = isotcp.ISOTCPConnection("127.0.0.1", peer.port)
            conn.connect(timeout=2.0)
            with self.assertRaises(S7ConnectionError) as ctx:
                conn.send_data(bytes(70000))
            self.assertEqual(ctx.exception.iso_code, _lib.ISO_E_TOO_LARGE)
            with self.assertRaises(S7ConnectionError):
                conn.send_data(b"")
            self.assertTrue(conn.connected)
            conn.send_data(bytearray(b"still here"))
            self.assertTrue(got.wait(5))
            conn.disconnect()
        self.assertEqual(peer.frame[7:], b"still here")

    def test_disconnect_wakes_a_blocked_receive(self):
        with Peer(cc_then_hold) as peer:
            conn = isotcp.ISOTCPConnection("127.0.0.1", peer.port)
            conn.connect(timeout=2.0)
            conn.timeout = 20.0
            outcome = []

            def receiver():
                start = time.monotonic()
                try:
                    conn.receive_data()
                    outcome.append(("returned", time.monotonic() - start))
                except Exception as e:
                    outcome.append((e, time.monotonic() - start))

            t = threading.Thread(target=receiver)
            t.start()
            time.sleep(0.2)
            conn.disconnect()
            t.join(10)
            self.assertFalse(t.is_alive())
            error, elapsed = outcome[0]
            self.assertIsInstance(error, S7ConnectionError)
            self.assertLess(elapsed, 5.0)

    def test_refused_port_has_os_error_and_tcp_phase(self):
        conn = isotcp.ISOTCPConnection("127.0.0.1", free_port())
        self.assertEqual(conn.last_os_error, 0)
        self.assertEqual(conn.connect_phase, isotcp.ConnectPhase.NONE)
        with self.assertRaises(S7ConnectionError) as ctx:
            conn.connect(timeout=3.0)
        e = ctx.exception
        self.assertEqual(e.iso_code, _lib.ISO_E_REFUSED)
        self.assertEqual(e.os_error, errno.ECONNREFUSED)  # 111 on Linux
        self.assertIs(e.phase, isotcp.ConnectPhase.TCP)
        self.assertEqual(conn.last_os_error, errno.ECONNREFUSED)
        self.assertIs(conn.connect_phase, isotcp.ConnectPhase.TCP)
        # reconnect without a connection is a connect: the same again.
        with self.assertRaises(S7ConnectionError) as ctx:
            conn.reconnect(timeout=3.0)
        self.assertEqual(ctx.exception.os_error, errno.ECONNREFUSED)
        self.assertIs(ctx.exception.phase, isotcp.ConnectPhase.TCP)
        self.assertFalse(conn.connected)

    def test_unanswered_cr_and_dr_fail_in_the_cotp_phase(self):
        cases = ((silent, S7TimeoutError, _lib.ISO_E_TIMEOUT), (dr_reply, S7ConnectionError, _lib.ISO_E_REJECTED))
        for script, cls, code in cases:
            with self.subTest(script=script.__name__), Peer(script) as peer:
                conn = isotcp.ISOTCPConnection("127.0.0.1", peer.port)
                with self.assertRaises(cls) as ctx:
                    conn.connect(timeout=0.3)
                e = ctx.exception
                self.assertEqual(e.iso_code, code)
                self.assertIs(e.phase, isotcp.ConnectPhase.COTP)
                self.assertEqual(e.os_error, 0)  # the library's own deadline, or a DR
                self.assertIs(conn.connect_phase, isotcp.ConnectPhase.COTP)

    def test_user_timeout_and_attempt_delay(self):
        conn = isotcp.ISOTCPConnection("127.0.0.1", server().port if HAVE_SNAP7 else 102)
        self.assertIsNone(conn.user_timeout)
        self.assertEqual(conn.connect_attempt_delay, 0.25)
        for seconds, expected in ((0, 0.0), (0.001, 0.001), (0.0001, 0.001), (20, 20.0), (2073600, 2073600.0), (None, None)):
            conn.set_user_timeout(seconds)
            self.assertEqual(conn.user_timeout, expected)
        for seconds in (-0.001, 2073600.001, float("nan"), 1e12):
            with self.assertRaises(ValueError):
                conn.set_user_timeout(seconds)
        self.assertIsNone(conn.user_timeout)
        for seconds in (0, 0.1, 10):
            conn.set_connect_attempt_delay(seconds)
            self.assertEqual(conn.connect_attempt_delay, seconds)
        for seconds in (-1, 10.001, float("nan")):
            with self.assertRaises(ValueError):
                conn.set_connect_attempt_delay(seconds)
        self.assertEqual(conn.connect_attempt_delay, 10)
        # Values the library refuses surface as its invalid-argument error at connect.
        conn._user_timeout_ms = 2073600001
        with self.assertRaises(S7ConnectionError) as ctx:
            conn.connect(timeout=1.0)
        self.assertEqual(ctx.exception.iso_code, _lib.ISO_E_INVALID)
        self.assertIs(ctx.exception.phase, isotcp.ConnectPhase.NONE)
        conn.set_user_timeout(None)
        conn._attempt_delay_ms = 10001
        with self.assertRaises(S7ConnectionError) as ctx:
            conn.connect(timeout=1.0)
        self.assertEqual(ctx.exception.iso_code, _lib.ISO_E_INVALID)

    def test_reconnect_five_times_against_the_s7_server(self):
        need_snap7(self)
        conn = isotcp.ISOTCPConnection("127.0.0.1", server().port)
        conn.set_user_timeout(20)
        conn.set_connect_attempt_delay(0.1)
        conn.connect(timeout=5.0)
        try:
            for attempt in range(6):
                if attempt:
                    conn.reconnect(timeout=5.0)
                self.assertTrue(conn.connected)
                self.assertTrue(conn.check_connection())
                self.assertIs(conn.connect_phase, isotcp.ConnectPhase.NONE)
                self.assertEqual(conn.pdu_size, 1024)
                conn.send_data(SETUP_REQUEST)
                reply = conn.receive_data()
                self.assertEqual(reply[:2], b"\x32\x03")
                self.assertEqual(reply[12], 0xF0)
                self.assertEqual(struct.unpack(">H", reply[18:20])[0], 480)
        finally:
            conn.disconnect()

    def test_bad_arguments_are_connection_errors(self):
        for kwargs in ({"port": 70000}, {"local_tsap": 0x10000}, {"tpdu_size": 0x0E}, {"remote_tsap": b""}):
            with self.subTest(kwargs=kwargs):
                args = {"host": "127.0.0.1"}
                args.update(kwargs)
                conn = isotcp.ISOTCPConnection(**args)
                with self.assertRaises(S7ConnectionError):
                    conn.connect(timeout=1.0)
                self.assertFalse(conn.connected)
        with self.assertRaises(ValueError):
            isotcp.ISOTCPConnection("127.0.0.1").set_routing(1, 8, 0)

    def test_unresolvable_host(self):
        conn = isotcp.ISOTCPConnection("no-such-host.invalid", 102)
        with self.assertRaises(S7ConnectionError) as ctx:
            conn.connect(timeout=5.0)
        self.assertIn(ctx.exception.iso_code, (_lib.ISO_E_RESOLVE, _lib.ISO_E_TIMEOUT))

    def test_against_isotcps_own_listener(self):
        """ISOTCPConnection against the library's listener, driven through isotcp._lib."""
        listener = _lib.ListenerPtr()
        self.assertEqual(_lib.iso_listen(b"127.0.0.1", 0, _lib.ctypes.byref(listener)), _lib.ISO_OK)
        try:
            port = _lib.ctypes.c_uint16()
            self.assertEqual(_lib.iso_listener_port(listener, _lib.ctypes.byref(port)), _lib.ISO_OK)
            accepted = []

            def accept():
                c = _lib.ConnPtr()
                rc = _lib.iso_accept(listener, 5000, _lib.ctypes.byref(c))
                accepted.append((rc, c))

            t = threading.Thread(target=accept)
            t.start()
            conn = isotcp.ISOTCPConnection("127.0.0.1", port.value, tpdu_size=isotcp.TPDUSize.S_256)
            conn.connect(timeout=5.0)
            t.join(10)
            rc, server_side = accepted[0]
            self.assertEqual(rc, _lib.ISO_OK, _lib.listener_last_error(listener))
            try:
                self.assertEqual(conn.pdu_size, 256)
                remote = (_lib.ctypes.c_uint8 * 32)()
                n = _lib.ctypes.c_size_t()
                self.assertEqual(_lib.iso_get_remote_tsap(server_side, remote, 32, _lib.ctypes.byref(n)), 0)
                self.assertEqual(bytes(remote[: n.value]), b"\x01\x02")

                big = bytes((i * 13) & 0xFF for i in range(5000))
                conn.send_data(big)
                buf = _lib.ctypes.create_string_buffer(8192)
                self.assertEqual(_lib.iso_recv(server_side, buf, 8192, _lib.ctypes.byref(n), 5000), 0)
                self.assertEqual(_lib.ctypes.string_at(buf, n.value), big)
                reply = big[::-1]
                self.assertEqual(_lib.iso_send(server_side, reply, len(reply)), 0)
                self.assertTrue(conn.data_available(5.0))
                self.assertEqual(conn.receive_data(), reply)
            finally:
                conn.disconnect()
                _lib.iso_destroy(server_side)
        finally:
            _lib.iso_listener_destroy(listener)


# ---------------------------------------------------------------------------------------------
# The ctypes layer
# ---------------------------------------------------------------------------------------------


class LowLevelTests(unittest.TestCase):
    def test_every_header_function_is_declared(self):
        if not os.path.exists(HEADER):
            self.skipTest(f"no header at {HEADER}")
        with open(HEADER) as f:
            text = f.read()
        names = set(re.findall(r"\b(iso_[a-z0-9_]+)\s*\(", text))
        self.assertGreater(len(names), 40)
        missing = sorted(names - set(_lib.DECLARED))
        self.assertEqual(missing, [], "header functions without a ctypes declaration")
        for name in names:
            fn = getattr(_lib, name)
            self.assertIsNotNone(fn.argtypes, name)
        for name, value in re.findall(r"#define (ISO_[A-Z0-9_]+) (-?\d+)\b", text):
            if not name.startswith("ISO_VERSION"):
                self.assertEqual(getattr(_lib, name, None), int(value), name)

    def test_trace_callback(self):
        """iso_set_trace with a Python callback sees the CR go out and the CC come in."""
        frames = []

        @_lib.iso_trace_fn
        def on_frame(user, direction, frame, length):
            frames.append((direction, _lib.ctypes.string_at(frame, length)))

        with Peer(cc_then_hold) as peer:
            conn = _lib.ConnPtr()
            self.assertEqual(_lib.iso_create(b"127.0.0.1", peer.port, _lib.ctypes.byref(conn)), 0)
            try:
                self.assertEqual(_lib.iso_set_trace(conn, on_frame, None), 0)
                self.assertEqual(_lib.iso_connect(conn, 2000), 0, _lib.last_error(conn))
                self.assertEqual(_lib.iso_set_trace(conn, _lib.iso_trace_fn(), None), 0)
            finally:
                _lib.iso_destroy(conn)
        self.assertEqual(frames[0], (_lib.ISO_TRACE_SENT, peer.cr))
        self.assertEqual(frames[1][0], _lib.ISO_TRACE_RECEIVED)
        self.assertEqual(frames[1][1][5], 0xD0)

    def test_version(self):
        number = _lib.iso_version_number()
        text = "%d.%d.%d" % (number >> 16, (number >> 8) & 0xFF, number & 0xFF)
        self.assertEqual(_lib.version(), text)
        self.assertEqual(isotcp.library_version, text)

    def test_strerror_names_every_code(self):
        for code in range(_lib.ISO_E_POISONED, _lib.ISO_OK + 1):
            self.assertTrue(_lib.strerror(code), code)
            self.assertTrue(_lib.code_name(code).startswith("ISO_"), code)
        self.assertTrue(_lib.strerror(-12345))

    def test_create_failure_reports_through_the_thread_error(self):
        conn = _lib.ConnPtr()
        self.assertEqual(_lib.iso_create(b"", 102, _lib.ctypes.byref(conn)), _lib.ISO_E_INVALID)
        self.assertFalse(conn)
        self.assertTrue(_lib.thread_last_error())

    def test_last_error_and_states(self):
        conn = _lib.ConnPtr()
        self.assertEqual(_lib.iso_create(b"127.0.0.1", free_port(), _lib.ctypes.byref(conn)), 0)
        try:
            self.assertEqual(_lib.iso_send(conn, b"x", 1), _lib.ISO_E_STATE)
            self.assertTrue(_lib.last_error(conn))
            self.assertEqual(_lib.iso_set_tpdu_size(conn, 1000), _lib.ISO_E_INVALID)
            self.assertEqual(_lib.iso_connect(conn, 2000), _lib.ISO_E_REFUSED)
            self.assertIn("refused", _lib.last_error(conn))
            self.assertEqual(_lib.iso_check_connection(conn), 0)
            tsap = _lib.ctypes.c_uint16()
            self.assertEqual(_lib.iso_s7_tsap(1, 1, 3, _lib.ctypes.byref(tsap)), 0)
            self.assertEqual(tsap.value, 0x0123)
        finally:
            _lib.iso_destroy(conn)
        _lib.iso_destroy(None)  # NULL is a no-op


if __name__ == "__main__":
    unittest.main()
