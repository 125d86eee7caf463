#!/usr/bin/env python3
"""python-snap7 2.x's client on a given libsnap7.so, against a server from server.py.

    client.py --lib LIBSNAP7 --port N [--host H] [--restart]

Connects (rack 0, slot 2), reads DB1 (byte i = i & 0xFF) with 4 bytes to 65535 and checks
every byte, writes DB2 and reads it back, reads three variables in one Cli_ReadMultiVars,
disconnects and connects again. With --restart it then prints "RESTART" and waits for a line on
stdin (the harness restarts the server meanwhile), expects the next read to fail, and
reconnects. One line "OK <step>" per step; anything wrong ends with exit status 1.
"""
import argparse
import ctypes
import os
import sys
import time

import snap7
from snap7.type import Area, S7DataItem, WordLen

SIZES = [1, 4, 222, 462, 463, 480, 1000, 4096, 16384, 65535]


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def ok(step):
    print(f"OK {step}", flush=True)


def expect_pattern(data, start, what):
    for i, b in enumerate(data):
        if b != (start + i) & 0xFF:
            fail(f"{what}: byte {i} is {b}, expected {(start + i) & 0xFF}")


def reads(c):
    for size in SIZES:
        data = c.db_read(1, 0, size)
        if len(data) != size:
            fail(f"db_read {size}: got {len(data)} bytes")
        expect_pattern(data, 0, f"db_read {size}")
    data = c.db_read(1, 1234, 4)
    expect_pattern(data, 1234, "db_read at 1234")
    ok("reads " + " ".join(map(str, SIZES)))


def writes(c):
    for size in [4, 1000, 65535]:
        payload = bytearray(os.urandom(size))
        c.db_write(2, 0, payload)
        back = c.db_read(2, 0, size)
        if back != payload:
            fail(f"db_write {size}: read back differs")
    ok("writes 4 1000 65535")


def multi_vars(c):
    spec = [(1, 0, 4), (1, 100, 2), (1, 1000, 8)]
    items = (S7DataItem * len(spec))()
    buffers = []
    for item, (db, start, amount) in zip(items, spec):
        buf = (ctypes.c_uint8 * amount)()
        buffers.append(buf)
        item.Area = Area.DB
        item.WordLen = WordLen.Byte
        item.DBNumber = db
        item.Start = start
        item.Amount = amount
        item.pData = ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8))
    result, items = c.read_multi_vars(items)
    if result != 0:
        fail(f"read_multi_vars: {result:#x}")
    for item, buf, (db, start, amount) in zip(items, buffers, spec):
        if item.Result != 0:
            fail(f"read_multi_vars item at {start}: result {item.Result:#x}")
        expect_pattern(bytes(buf), start, f"read_multi_vars item at {start}")
    ok("multi-vars 3")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--restart", action="store_true")
    args = ap.parse_args()

    c = snap7.client.Client(lib_location=args.lib)
    c.connect(args.host, 0, 2, args.port)
    if not c.get_connected():
        fail("not connected after connect")
    ok(f"connect pdu {c.get_pdu_length()}")
    reads(c)
    writes(c)
    multi_vars(c)

    c.disconnect()
    if c.get_connected():
        fail("connected after disconnect")
    try:
        c.db_read(1, 0, 4)
        fail("db_read after disconnect succeeded")
    except RuntimeError as e:
        ok(f"read after disconnect fails: {e}")
    c.connect(args.host, 0, 2, args.port)
    expect_pattern(c.db_read(1, 0, 4), 0, "db_read after reconnect")
    ok("reconnect")

    if args.restart:
        print("RESTART", flush=True)
        if not sys.stdin.readline():
            fail("no restart signal")
        try:
            c.db_read(1, 0, 4)
            fail("db_read on the connection of a restarted server succeeded")
        except RuntimeError as e:
            ok(f"read after server restart fails: {e}")
        c.disconnect()
        c.connect(args.host, 0, 2, args.port)
        expect_pattern(c.db_read(1, 0, 4), 0, "db_read after restart")
        ok("reconnect after server restart")
    c.disconnect()
    c.destroy()
    ok("done")


if __name__ == "__main__":
    main()
