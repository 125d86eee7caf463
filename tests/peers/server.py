#!/usr/bin/env python3
"""S7 test server on 127.0.0.1 (or --host), backed by whichever python-snap7 runs this script.

    server.py --port N [--host ADDR] [--max-clients C]   (N = 0: pick a free port)

python-snap7 3.x gives the pure-Python server (flavor "py3"), 2.x the native
snap7 1.4.2 server through ctypes (flavor "native"). Both serve:
    DB1: 1024 bytes, byte i = i & 0xFF
    DB2: 1024 zero bytes (for write tests)

Once the port accepts TCP connections, one line "READY <port> <flavor>" goes to
stdout. The server then runs until stdin reaches EOF or SIGTERM/SIGINT arrives,
so a harness that dies (and thereby closes our stdin) never leaves it running.
Errors go to stderr with a non-zero exit status.
"""
import argparse
import ctypes
import os
import signal
import socket
import sys
import time

import snap7
from snap7.server import Server
from snap7.type import SrvArea  # same place in 2.x and 3.x

HOST = "127.0.0.1"  # --host replaces it (the field tests listen on a namespace's address)
DB_SIZE = 1024
READY_TIMEOUT = 10.0


def major_version():
    version = getattr(snap7, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version
        version = dist_version("python-snap7")
    return int(version.split(".")[0])


def free_port(port=0):
    """Bind HOST:port without SO_REUSEPORT and return the port: a free one for
    port 0, else port itself; OSError if it is taken. With SO_REUSEADDR, as
    both servers bind: a listener on the port is still a conflict, while the
    closing connections of a server killed a moment ago are not (a restarted
    server binds its old port, as a rebooted PLC does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return s.getsockname()[1]


def start_py3(port, max_clients):
    srv = Server(log=False, max_clients=max_clients)
    # The pure-Python server keeps a reference to a bytearray (no copy).
    srv.register_area(SrvArea.DB, 1, bytearray(i & 0xFF for i in range(DB_SIZE)))
    srv.register_area(SrvArea.DB, 2, bytearray(DB_SIZE))
    # It listens with SO_REUSEPORT, so binding a port that another py3 server
    # holds would succeed and the kernel would split connections between the
    # two. Refuse a taken port, and for port 0 let the kernel pick at bind time.
    if port:
        free_port(port)
    srv.port = port  # start_to() falls back to srv.port when given 102
    srv.start_to(HOST, port)
    return srv, srv.server_socket.getsockname()[1], []


def start_native(port, max_clients):
    srv = Server(log=False)
    from snap7.type import Parameter
    srv.set_param(Parameter.MaxClients, max_clients)
    db1 = (ctypes.c_uint8 * DB_SIZE)(*(i & 0xFF for i in range(DB_SIZE)))
    db2 = (ctypes.c_uint8 * DB_SIZE)()
    # The native server works on these buffers in place: keep them alive.
    srv.register_area(SrvArea.DB, 1, db1)
    srv.register_area(SrvArea.DB, 2, db2)
    # There is no way to ask it which port it got, so port 0 means: find a
    # free port first (it may be taken before we bind it; main() retries).
    port = port or free_port()
    srv.start_to(HOST, port)  # sets LocalPort, then binds HOST only
    return srv, port, [db1, db2]


def wait_until_accepting(port):
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server does not accept connections on {HOST}:{port}")
            time.sleep(0.005)


def on_signal(signum, _frame):
    raise SystemExit(0)


def main():
    global HOST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port, 0 = pick a free one")
    parser.add_argument("--host", default=HOST,
                        help="IPv4 address to listen on (default 127.0.0.1)")
    parser.add_argument("--max-clients", type=int, default=64,
                        help="simultaneous clients the server accepts (default 64)")
    args = parser.parse_args()
    HOST = args.host

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if major_version() >= 3:
        flavor, start = "py3", start_py3
    else:
        flavor, start = "native", start_native
    attempts = 5 if args.port == 0 else 1
    for attempt in range(attempts):
        try:
            srv, port, _buffers = start(args.port, args.max_clients)
            break
        except Exception as e:
            if attempt + 1 == attempts:
                print(f"server.py: cannot start {flavor} server on port {args.port}: {e}", file=sys.stderr)
                return 1
    try:
        wait_until_accepting(port)
    except Exception as e:
        print(f"server.py: {flavor} server: {e}", file=sys.stderr)
        return 1

    print(f"READY {port} {flavor}", flush=True)
    try:
        while sys.stdin.buffer.read(4096):  # until EOF (signals raise SystemExit here)
            pass
    except SystemExit:
        pass
    # No srv.stop(): the py3 server waits up to 1 s per connected client there.
    # Exiting lets the kernel close the listener and every connection at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
