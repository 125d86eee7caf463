#!/usr/bin/env python3
"""S7 server for the snap7 kit's tests, from whichever python-snap7 runs this script.

    server.py --port N [--lib LIBSNAP7]

python-snap7 3.x: its pure-Python server. python-snap7 2.x: the native snap7 server, from the
wheel's libsnap7.so, or from LIBSNAP7 (the kit's build, whose server keeps snap7's transport).
Areas: DB1 of 65535 bytes with byte i = i & 0xFF (the largest DB the native server serves),
DB2 of 65535 zero bytes for writes. Prints "READY <port> <flavor>" once the port accepts TCP,
then serves until stdin reaches EOF (the harness ended) or SIGTERM.
"""
import argparse
import ctypes
import signal
import socket
import sys
import time

import snap7
import snap7.server
from snap7.type import SrvArea

HOST = "127.0.0.1"
DB_SIZE = 65535


def major_version():
    from importlib.metadata import version
    return int(version("python-snap7").split(".")[0])


def start_py3(port):
    srv = snap7.server.Server(log=False)
    srv.register_area(SrvArea.DB, 1, bytearray(i & 0xFF for i in range(DB_SIZE)))
    srv.register_area(SrvArea.DB, 2, bytearray(DB_SIZE))
    srv.port = port
    srv.start_to(HOST, port)
    return srv, []


def start_native(port, lib):
    if lib:
        # Server() loads the library through this name; the kit's build replaces the wheel's.
        loaded = snap7.common.load_library(lib)
        snap7.server.load_library = lambda *args, **kwargs: loaded
    srv = snap7.server.Server(log=False)
    db1 = (ctypes.c_uint8 * DB_SIZE)(*(i & 0xFF for i in range(DB_SIZE)))
    db2 = (ctypes.c_uint8 * DB_SIZE)()
    srv.register_area(SrvArea.DB, 1, db1)
    srv.register_area(SrvArea.DB, 2, db2)
    srv.start_to(HOST, port)
    return srv, [db1, db2]  # the native server works on the buffers in place


def wait_listening(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"server.py: port {port} does not accept connections")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lib")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if major_version() >= 3:
        srv, keep = start_py3(args.port)
        flavor = "py3"
    else:
        srv, keep = start_native(args.port, args.lib)
        flavor = "kit" if args.lib else "native"
    wait_listening(args.port)
    print(f"READY {args.port} {flavor}", flush=True)
    sys.stdin.read()
    srv.stop()
    del keep


if __name__ == "__main__":
    main()
