"""The secure S7-1500 stand-in for the TLS tests: tests/peers/s7commplus_server.py (s7commplus
0.3.0's server emulator, protocol V2, TLS inside COTP) run with the python of the s7commplus
venv, and the few S7CommPlus frames the tests send.

The venv's python is ISOTCP_VENV_S7COMMPLUS, by default
~/.cache/isotcp-peers/venv-s7commplus/bin/python (what .ci/setup makes). Without it the tests
skip, or fail when ISOTCP_REQUIRE_PEERS=1.
"""

import os
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
SERVER_PY = os.path.join(TREE, "tests", "peers", "s7commplus_server.py")
PEERS_REQUIRED = os.environ.get("ISOTCP_REQUIRE_PEERS") == "1"

# The S7CommPlus HMI endpoint: calling TSAP 0x0600, called TSAP the 16-byte string.
LOCAL_TSAP = 0x0600
REMOTE_TSAP = b"SIMATIC-ROOT-HMI"

OPCODE_REQUEST = 0x31
OPCODE_RESPONSE = 0x32
FUNCTION_INIT_SSL = 0x05B3
FUNCTION_CREATE_OBJECT = 0x04CA
# The session object a client asks to create (ObjectNullServerSession).
NULL_SERVER_SESSION = 288
OMS_LABEL = b"EXPERIMENTAL_OMS"


def venv_python():
    value = os.environ.get("ISOTCP_VENV_S7COMMPLUS")
    if value:
        return value
    return os.path.expanduser("~/.cache/isotcp-peers/venv-s7commplus/bin/python")


def need_peer(test):
    """Skips (or, with ISOTCP_REQUIRE_PEERS=1, fails) when the s7commplus venv is missing."""
    python = venv_python()
    if os.path.exists(python):
        return python
    why = f"no s7commplus 0.3.0 venv python at {python} (set ISOTCP_VENV_S7COMMPLUS or run .ci/setup)"
    if PEERS_REQUIRED:
        test.fail(f"ISOTCP_REQUIRE_PEERS=1 and {why}")
    test.skipTest(why)


def frame(version, body):
    """An S7CommPlus frame: header 72 <version> <length>, the body, trailer 72 <version> 00 00."""
    return struct.pack(">BBH", 0x72, version, len(body)) + body + struct.pack(">BBH", 0x72, version, 0)


def request(function, sequence, session, transport_flags):
    """A request with no data: the 14-byte request header and 4 bytes of fill."""
    body = struct.pack(">BHHHHIB", OPCODE_REQUEST, 0, function, 0, sequence, session, transport_flags)
    return frame(0x01, body + bytes(4))


#: The plaintext InitSSL request that opens every secure session (sequence 0, V1 framing).
INIT_SSL = request(FUNCTION_INIT_SSL, 0, 0, 0x30)


def create_object(sequence):
    """A CreateObject request for a new session (V1 framing, as clients send it)."""
    return request(FUNCTION_CREATE_OBJECT, sequence, NULL_SERVER_SESSION, 0x36)


def response_header(data):
    """(version, opcode, function, sequence, body after the 10-byte header) of a response."""
    if len(data) < 14 or data[0] != 0x72:
        raise AssertionError(f"not an S7CommPlus frame: {data.hex()}")
    version, length = data[1], struct.unpack_from(">H", data, 2)[0]
    body = data[4 : 4 + length]
    opcode, _, function, _, sequence, _ = struct.unpack_from(">BHHHHB", body, 0)
    return version, opcode, function, sequence, body[10:]


class Server:
    """tests/peers/s7commplus_server.py; ends when its stdin is closed."""

    def __init__(self, python):
        self.proc = subprocess.Popen(
            [python, SERVER_PY, "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        line = self.proc.stdout.readline().decode().split()
        if len(line) != 4 or line[0] != "READY":
            self.close()
            raise RuntimeError(f"s7commplus_server.py did not start: {self.proc.stderr.read().decode()}")
        self.port = int(line[1])
        self.pin = bytes.fromhex(line[2])
        self.cert_path = line[3]

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

