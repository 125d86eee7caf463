"""The benchmark's python-snap7 contender: python-snap7 3.3.0's transport,
snap7.connection.ISOTCPConnection, against the benchmark's peer (benches/peer.c).

    python pyclient.py rtt --port P --size S --iters N [--warmup W]
    python pyclient.py handshake --port P --iters N [--warmup W]

rtt: connect (TPDU 1024, TSAPs 0x0100 -> 0x0102), then N times send_data(message) and
receive_data() of its echo. python-snap7 sends every message as one DT whatever the TPDU size
(it does not segment), so a 4 KiB message is one 4103-byte packet here, and a 64 KiB message
does not fit a TPKT at all (its length field ends at 65535): that size is refused here.
handshake: N times connect() (TCP + CR/CC) and disconnect() (DR, then close).

Prints one line "RESULT workload=... contender=py3 ... us_per_op=..." like benches/client.c.
"""
import argparse
import os
import sys
import time

from snap7.connection import ISOTCPConnection, TPDUSize


def marker(text):
    # A failing write that strace shows with its text (see client.c).
    try:
        os.write(-1, text.encode())
    except OSError:
        pass


def make_conn(port):
    return ISOTCPConnection("127.0.0.1", port, local_tsap=0x0100, remote_tsap=0x0102,
                            tpdu_size=TPDUSize.S_1024)


def run_rtt(args):
    if args.size + 7 > 65535:
        print(f"pyclient: a {args.size}-byte message does not fit one TPKT, and python-snap7 "
              "does not segment", file=sys.stderr)
        return 2
    message = bytes((i * 131 + 7) & 0xFF for i in range(args.size))
    conn = make_conn(args.port)
    conn.connect(10.0)
    send, receive = conn.send_data, conn.receive_data
    answer = b""
    for _ in range(args.warmup):
        send(message)
        answer = receive()
    marker("BENCH_BEGIN")
    t0 = time.perf_counter()
    for _ in range(args.iters):
        send(message)
        answer = receive()
    t1 = time.perf_counter()
    marker("BENCH_END")
    if answer != message:
        print("pyclient: echo differs", file=sys.stderr)
        return 1
    conn.disconnect()
    print(f"RESULT workload=rtt contender=py3 size={args.size} tpdu=1024 iters={args.iters} "
          f"seconds={t1 - t0:.6f} us_per_op={(t1 - t0) * 1e6 / args.iters:.3f}", flush=True)
    return 0


def run_handshake(args):
    conn = make_conn(args.port)
    for _ in range(args.warmup):
        conn.connect(10.0)
        conn.disconnect()
    marker("BENCH_BEGIN")
    t0 = time.perf_counter()
    for _ in range(args.iters):
        conn.connect(10.0)
        conn.disconnect()
    t1 = time.perf_counter()
    marker("BENCH_END")
    print(f"RESULT workload=handshake contender=py3 iters={args.iters} seconds={t1 - t0:.6f} "
          f"us_per_op={(t1 - t0) * 1e6 / args.iters:.3f}", flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["rtt", "handshake"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    return run_rtt(args) if args.workload == "rtt" else run_handshake(args)


if __name__ == "__main__":
    sys.exit(main())
