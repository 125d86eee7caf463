#!/usr/bin/env python3
"""The s7commplus 0.3.0 PLC emulator (an S7-1500 speaking S7CommPlus V2 with TLS inside COTP).

  s7commplus_emulator.py CERT KEY CA

Starts two emulators on 127.0.0.1 with the certificate CERT/KEY: the first accepts any client,
the second requires a client certificate signed by CA (mutual TLS). Each holds DB1, 64 bytes,
byte i = i. Prints "READY <port> <mutual-tls-port>" and runs until stdin reaches EOF.
"""

import logging
import os
import sys

from s7commplus.protocol import ProtocolVersion
from s7commplus.server import S7CommPlusServer


def start(cert, key, ca=None):
    server = S7CommPlusServer(protocol_version=ProtocolVersion.V2)
    server.register_raw_db(1, bytearray(range(64)))
    # Port 0: the system picks a free port; the emulator keeps the socket it bound.
    server.start(host="127.0.0.1", port=0, use_tls=True, tls_cert=cert, tls_key=key, tls_ca=ca)
    return server._server_socket.getsockname()[1]


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    cert, key, ca = sys.argv[1:]
    if os.environ.get("ISOTCP_EMULATOR_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    print(f"READY {start(cert, key)} {start(cert, key, ca)}", flush=True)
    sys.stdin.read()
    # stop() waits for client threads; the test is over, so leave at once.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
