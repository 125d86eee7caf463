#!/usr/bin/env python3
"""S7 test client: connect, optionally write, read a DB range, check it.

    client.py --port N [--host 127.0.0.1] [--rack R --slot S]
              [--db 1 --start 0 --size 4] [--write-hex HEX] [--expect-hex HEX]

Uses snap7.client.Client of whichever python-snap7 runs it: the pure-Python
client with 3.x, the native snap7 1.4.2 client with 2.x.
Prints "PDU <negotiated PDU length>" and "READ <hex>" to stdout.
Exit 0 on success, 1 with a message on stderr on any failure or mismatch.
"""
import argparse
import sys

from snap7.client import Client


def parse_hex(text):
    return bytearray.fromhex(text.replace(" ", "").replace(":", ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 literal (native client needs one)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rack", type=int, default=0)
    parser.add_argument("--slot", type=int, default=2)
    parser.add_argument("--db", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--write-hex", help="bytes to db_write at --start before the read")
    parser.add_argument("--expect-hex", help="bytes the read must return")
    args = parser.parse_args()

    try:
        write = parse_hex(args.write_hex) if args.write_hex else None
        expect = parse_hex(args.expect_hex) if args.expect_hex is not None else None
    except ValueError as e:
        print(f"client.py: bad hex argument: {e}", file=sys.stderr)
        return 1

    cli = Client()
    step = "connect"
    try:
        cli.connect(args.host, args.rack, args.slot, args.port)
        print(f"PDU {cli.get_pdu_length()}", flush=True)
        if write is not None:
            step = "db_write"
            cli.db_write(args.db, args.start, write)
        step = "db_read"
        data = bytes(cli.db_read(args.db, args.start, args.size))
        print(f"READ {data.hex()}", flush=True)
        step = "disconnect"
        cli.disconnect()
    except Exception as e:
        print(f"client.py: {step} failed ({type(e).__name__}): {e}", file=sys.stderr)
        return 1

    if expect is not None and data != expect:
        print(f"client.py: read {data.hex()}, expected {expect.hex()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
