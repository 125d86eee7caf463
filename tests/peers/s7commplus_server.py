#!/usr/bin/env python3
"""A secure S7-1500 stand-in: s7commplus 0.3.0's server emulator with TLS inside COTP.

    s7commplus_server.py --port N [--host ADDR] [--dir DIR]   (N = 0: pick a free port)

Run it with the python of the s7commplus venv (ISOTCP_VENV_S7COMMPLUS, .ci/setup makes it).
It makes a self-signed P-256 certificate for CN=plc (with `cryptography`) in DIR (default: a
new temporary directory, removed at exit), then serves protocol V2 with TLS: after the
plaintext InitSSL exchange the TLS records travel as the payload of COTP DTs. Data blocks:
    DB1: 64 bytes, byte i = i
    DB2: 1024 zero bytes (for write tests)
    DB3: 4096 bytes, byte i = (i * 7) & 0xFF (a read of more than a TPDU)

Once the port accepts connections it prints one line and nothing more on stdout:
    READY <port> <sha256 of the certificate (DER), 64 hex digits> <certificate PEM path>
It runs until stdin reaches EOF, SIGTERM or SIGINT. Start-up errors: a message on stderr,
exit status 1, no READY line.
"""
import argparse
import datetime
import hashlib
import os
import shutil
import signal
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from s7commplus.protocol import ProtocolVersion
from s7commplus.server import S7CommPlusServer



def make_certificate(directory):
    """A self-signed certificate as a PLC has one; returns (cert path, key path, DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plc")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "plc.pem")
    key_path = os.path.join(directory, "plc.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", help="where the certificate and key go (kept at exit)")
    args = parser.parse_args()

    own_dir = args.dir is None
    directory = tempfile.mkdtemp(prefix="isotcp-s7cp-") if own_dir else args.dir
    # SIGTERM ends the process through SystemExit, so the finally below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        try:
            cert_path, key_path, der = make_certificate(directory)
            server = S7CommPlusServer(protocol_version=ProtocolVersion.V2)
            server.register_raw_db(1, bytearray(range(64)))
            server.register_raw_db(2, bytearray(1024))
            server.register_raw_db(3, bytearray((i * 7) & 0xFF for i in range(4096)))
            server.start(host=args.host, port=args.port, use_tls=True, tls_cert=cert_path, tls_key=key_path)
            # start() does not report the port it bound (port 0 picks one); its listening
            # socket does.
            port = server._server_socket.getsockname()[1]
        except Exception as e:  # noqa: BLE001 (any start-up failure ends the script)
            print(f"s7commplus_server.py: cannot start: {e}", file=sys.stderr)
            return 1
        print(f"READY {port} {hashlib.sha256(der).hexdigest()} {cert_path}", flush=True)
        try:
            while sys.stdin.buffer.read(4096):  # until EOF
                pass
        except KeyboardInterrupt:
            pass
        # Not server.stop(): it waits for connected clients; exiting closes everything.
        return 0
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
