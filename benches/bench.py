#!/usr/bin/env python3
"""Runs the benchmark of benches/README.md and writes BENCHMARKS.md.

Started by `bash benches/run` once the programs are built (target/bench/). Python standard
library only. Environment:
    BENCH_QUICK=1      3 rounds, smaller batches, 2,000 idle connections (about a minute);
                       writes target/bench/BENCHMARKS-quick.md instead of BENCHMARKS.md
    BENCH_ROUNDS=N     rounds of the timed workloads (default 9, quick 3)
    BENCH_OUTPUT=PATH  where to write the report
    BENCH_CLIENT_CPU / BENCH_PEER_CPU   CPU numbers for taskset (default 0 and 1)
    BENCH_RT=0         do not run the timed batches and the peers SCHED_FIFO (chrt -f 10)
    ISOTCP_VENV_PY3 / ISOTCP_VENV_NATIVE  pythons of the python-snap7 3.3.0 / 2.0.2 venvs
    BENCH_SNAP7_KIT    the snap7 kit's libsnap7.so (default target/snap7-kit/libsnap7.so)
    BENCH_SNAP7_KIT_ERROR  why benches/run could not build the kit (shown instead of its rows)

Exit status: 0 when every program ran; 1 when a benchmark program failed (a crash, a wrong
echo). A target that is missed is reported, never turned into a failure.
"""
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
CLIENT = os.path.join(OUT, "client")
CLIENT_ALLOCS = os.path.join(OUT, "client-allocs")
PEER = os.path.join(OUT, "peer")
# The TLS floor and peer (benches/tls_floor.rs, built by `cargo build --release --example tls_floor`).
TLS_FLOOR = os.path.join(ROOT, "target", "release", "examples", "tls_floor")
TLS_SIZES = (20, 4096, 65536)
PYCLIENT = os.path.join(ROOT, "benches", "pyclient.py")
S7SERVER = os.path.join(ROOT, "tests", "peers", "server.py")
# The snap7 kit (snap7/build.sh): libsnap7.so with isotcp as the client's transport. benches/run
# builds it and sets BENCH_SNAP7_KIT, or BENCH_SNAP7_KIT_ERROR when it could not.
SNAP7_KIT = os.environ.get("BENCH_SNAP7_KIT") or os.path.join(ROOT, "target", "snap7-kit", "libsnap7.so")

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (3 if QUICK else 9))
SCALE = 0.25 if QUICK else 1.0
IDLE_CONNS = 2000 if QUICK else 10000
MANY_CONNS = 1000
CLIENT_CPU = os.environ.get("BENCH_CLIENT_CPU", "0")
PEER_CPU = os.environ.get("BENCH_PEER_CPU", "1")
if (os.cpu_count() or 1) < 2:
    PEER_CPU = CLIENT_CPU
DEFAULT_OUTPUT = os.path.join(OUT, "BENCHMARKS-quick.md") if QUICK else os.path.join(ROOT, "BENCHMARKS.md")
OUTPUT = os.environ.get("BENCH_OUTPUT", DEFAULT_OUTPUT)

failures = []


def log(msg):
    print(msg, flush=True)


def n(x):
    """Iterations scaled for quick runs (at least 1)."""
    return max(1, int(x * SCALE))


def rt_available():
    if os.environ.get("BENCH_RT", "1") == "0" or not shutil.which("chrt"):
        return False
    return subprocess.run(["chrt", "-f", RT_PRIO, "true"], capture_output=True).returncode == 0


RT_PRIO = "10"
RT = None  # set in main(): SCHED_FIFO for the timed batches and the peers when allowed


def pinned(cpu, argv, rt=False):
    """argv pinned to one CPU; with rt, also SCHED_FIFO (same for every contender)."""
    pre = ["chrt", "-f", RT_PRIO] if rt and RT else []
    return pre + ["taskset", "-c", str(cpu)] + list(argv)


# ------------------------------------------------------------------------------------------
# peers


class Server:
    """A peer process that prints "READY <port> ..." and runs until its stdin reaches EOF."""

    def __init__(self, name, argv, cpu):
        self.name = name
        self.proc = subprocess.Popen(pinned(cpu, argv, rt=True), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT)
        line = self.proc.stdout.readline().decode().split()
        if len(line) < 2 or line[0] != "READY":
            err = self.proc.stderr.read().decode()
            raise RuntimeError(f"{name} did not start: {err.strip()}")
        self.port = int(line[1])

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------
# running one batch


def parse_result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            out = {}
            for item in line.split()[1:]:
                k, _, v = item.partition("=")
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
            return out
    return None


def run(argv, what, timeout=300, env=None):
    """Runs argv; returns (parsed RESULT, completed process) or (None, process) on failure."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        failures.append(f"{what}: timed out after {timeout} s")
        log(f"  ! {what}: timed out")
        return None, None
    res = parse_result(p.stdout.decode(errors="replace"))
    if p.returncode != 0 or res is None:
        err = p.stderr.decode(errors="replace").strip().splitlines()[-3:]
        failures.append(f"{what}: exit {p.returncode}: {' / '.join(err)}")
        log(f"  ! {what}: exit {p.returncode}: {' / '.join(err)}")
        return None, p
    return res, p


# ------------------------------------------------------------------------------------------
# machine description


def cmd_out(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine(py3, native):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lscpu = cmd_out(["lscpu"])
    hyper = re.search(r"Hypervisor vendor:\s*(.+)", lscpu)
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass

    def snap7_version(py):
        if not py:
            return "not found"
        return cmd_out([py, "-c", "from importlib.metadata import version; print(version('python-snap7'))"]) or "?"

    commit = cmd_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "hypervisor": hyper.group(1).strip() if hyper else "none",
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "gcc": cmd_out(["gcc", "--version"]).splitlines()[0] if cmd_out(["gcc", "--version"]) else "?",
        "rustc": cmd_out(["rustc", "--version"]),
        "cargo": cmd_out(["cargo", "--version"]),
        "python": platform.python_version(),
        "py3_snap7": snap7_version(py3),
        "native_snap7": snap7_version(native),
        "valgrind": cmd_out(["valgrind", "--version"]) or "not installed",
        "strace": (cmd_out(["strace", "-V"]).splitlines() or ["not installed"])[0],
        "perf": cmd_out(["perf", "--version"]) or "not installed",
        "commit": commit + (" with uncommitted changes in src/" if dirty else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": load_text(),
    }


def cpu_ticks():
    """(busy, steal) seconds of all CPUs since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / hz, steal / hz


def load_text():
    """Load average and CPU pressure: how busy the machine was besides the benchmark."""
    parts = []
    try:
        with open("/proc/loadavg") as f:
            parts.append("load average " + " ".join(f.read().split()[:3]))
    except OSError:
        pass
    try:
        with open("/proc/pressure/cpu") as f:
            m = re.search(r"some avg10=([\d.]+) avg60=([\d.]+)", f.readline())
            if m:
                parts.append(f"CPU pressure {m.group(1)}% (10 s), {m.group(2)}% (60 s)")
    except OSError:
        pass
    return ", ".join(parts) or "unknown"


def find_venvs():
    home = os.environ.get("HOME") or os.path.expanduser("~")
    peers = os.environ.get("ISOTCP_PEERS_DIR", os.path.join(home, ".cache", "isotcp-peers"))

    def pick(env, name, opt):
        for cand in (os.environ.get(env), os.path.join(peers, name, "bin", "python"), opt):
            if cand and os.access(cand, os.X_OK):
                return cand
        return None

    return (pick("ISOTCP_VENV_PY3", "venv-snap7-3", "/opt/venv-snap7-3/bin/python"),
            pick("ISOTCP_VENV_NATIVE", "venv-snap7-2", "/opt/venv-snap7-2/bin/python"))


def find_libsnap7(native):
    if not native:
        return None
    d = cmd_out([native, "-c", "import os, snap7; print(os.path.dirname(snap7.__file__))"])
    for cand in glob.glob(os.path.join(d, "lib", "libsnap7*.so*")) if d else []:
        return cand
    return None


def find_snap7_kit(libsnap7):
    """(the kit's libsnap7.so, None), or (None, why its rows are not measured)."""
    if os.environ.get("BENCH_SNAP7_KIT_ERROR"):
        return None, os.environ["BENCH_SNAP7_KIT_ERROR"]
    if not libsnap7:
        return None, "the stock libsnap7.so and the native snap7 server (python-snap7 2.0.2 venv) were not found"
    if not os.path.isfile(SNAP7_KIT):
        return None, f"{os.path.relpath(SNAP7_KIT, ROOT)} not found (`bash snap7/build.sh` builds it)"
    return SNAP7_KIT, None


# ------------------------------------------------------------------------------------------
# the timed workloads


class Row:
    """One line of a results table: contenders measured on the same workload.

    metric: key of the RESULT line; lower: smaller is better (a time); target: (ratio text,
    function of the medians returning (value shown, holds)) or None.
    """

    def __init__(self, group, label, metric, lower, contenders, target=None, unit=""):
        self.group, self.label, self.metric, self.lower = group, label, metric, lower
        self.contenders = contenders  # list of (name, argv)
        self.target = target
        self.unit = unit
        self.samples = {name: [] for name, _ in contenders}
        self.cpu = {name: [] for name, _ in contenders}  # client CPU microseconds per operation
        self.rounds = []  # per round: {name: value}

    def median(self, name):
        s = self.samples.get(name) or []
        return statistics.median(s) if s else None

    def cpu_median(self, name):
        s = self.cpu.get(name) or []
        return statistics.median(s) if s else None

    def cpu_text(self, a="raw", b="isotcp"):
        x, y = self.cpu_median(a), self.cpu_median(b)
        return f"{fmt(x)} / {fmt(y)}" if x is not None and y is not None else "n/a"


def ratio(a, b):
    return a / b if a and b else None


def build_rows(ports, libsnap7, py3, kit=None):
    """The timed rows; kit is the snap7 kit's libsnap7.so (its rows need libsnap7 too)."""
    rows = []
    seq, same, multi, s7 = ports["seq"], ports["same"], ports["multi"], ports.get("s7")
    c = lambda *a: pinned(CLIENT_CPU, [CLIENT] + [str(x) for x in a], rt=True)  # noqa: E731
    pyc = lambda *a: pinned(CLIENT_CPU, [py3, PYCLIENT] + [str(x) for x in a], rt=True)  # noqa: E731

    def time_target(limit):
        return (f"isotcp/raw <= {limit:.2f}",
                lambda r: (ratio(r.median("isotcp"), r.median("raw")),
                           (ratio(r.median("isotcp"), r.median("raw")) or 99) <= limit))

    def rate_target(limit):
        return (f"isotcp/raw >= {limit:.2f}",
                lambda r: (ratio(r.median("isotcp"), r.median("raw")),
                           (ratio(r.median("isotcp"), r.median("raw")) or 0) >= limit))

    rtt_iters = {20: 4000, 240: 4000, 960: 4000, 4096: 4000, 65536: 2500}
    for size, iters in rtt_iters.items():
        cont = [("raw", c("rtt", "raw", "--port", seq, "--size", size, "--iters", n(iters), "--warmup", 200)),
                ("isotcp", c("rtt", "iso", "--port", seq, "--size", size, "--iters", n(iters), "--warmup", 200))]
        if py3 and size + 7 <= 65535:
            cont.append(("python-snap7", pyc("rtt", "--port", seq, "--size", size, "--iters", n(3000), "--warmup", 200)))
        rows.append(Row("rtt", f"{size} B" + (" (5 DTs)" if size == 4096 else " (65 DTs)" if size == 65536 else ""),
                        "us_per_op", True, cont, time_target(1.05 if size <= 960 else 1.10), "us"))
    for size in (20, 4096):
        cont = [("raw", c("rtt", "raw", "--port", same, "--size", size, "--iters", n(20000), "--warmup", 500)),
                ("isotcp", c("rtt", "iso", "--port", same, "--size", size, "--iters", n(20000), "--warmup", 500))]
        rows.append(Row("rtt-same", f"{size} B, client and peer both on CPU {CLIENT_CPU}", "us_per_op", True, cont,
                        None, "us"))
    for tpdu, limit in ((1024, 0.85), (8192, 0.90)):
        # Short batches (about 100 MB): after a few hundred MB of loopback traffic these virtual
        # machines often drop into a regime 3-4 times slower for every contender (see README).
        cont = [(name, c("stream", arg, "--port", seq, "--size", 65536, "--tpdu", tpdu, "--iters", n(1500),
                         "--warmup", 200)) for name, arg in (("raw", "raw"), ("isotcp", "iso"), ("raw writev", "rawv"))]
        rows.append(Row("stream", f"64 KiB messages, TPDU {tpdu}", "mb_per_s", False, cont, rate_target(limit), "MB/s"))
    cont = [(name, c("pipe", arg, "--port", seq, "--size", 240, "--depth", 8, "--iters", n(30000), "--warmup", 200))
            for name, arg in (("raw", "raw"), ("isotcp", "iso"))]
    rows.append(Row("pipe", "240 B, 8 requests in flight", "msgs_per_s", False, cont, None, "msg/s"))
    cont = [(name, c("many", arg, "--port", multi, "--conns", MANY_CONNS, "--size", 240, "--iters", n(60)))
            for name, arg in (("raw", "raw"), ("isotcp", "iso"))]
    rows.append(Row("many", f"{MANY_CONNS} connections, one thread, 240 B", "msgs_per_s", False, cont,
                    rate_target(0.80), "msg/s"))
    cont = [(name, c("handshake", arg, "--port", seq, "--iters", n(2000), "--warmup", 100))
            for name, arg in (("raw", "raw"), ("isotcp", "iso"))]
    if py3:
        cont.append(("python-snap7", pyc("handshake", "--port", seq, "--iters", n(2000), "--warmup", 100)))
    rows.append(Row("handshake", "TCP connect + CR/CC (22 B each way) + close", "us_per_op", True, cont,
                    time_target(1.10), "us"))
    if s7 and libsnap7:
        cont = [("snap7", c("s7read", "snap7", "--port", s7, "--lib", libsnap7, "--iters", n(300), "--warmup", 20)),
                ("isotcp", c("s7read", "iso", "--port", s7, "--iters", n(4000), "--warmup", 100)),
                ("raw", c("s7read", "raw", "--port", s7, "--iters", n(4000), "--warmup", 100))]
        rows.append(Row("s7", "S7 read of 4 bytes (DB1), native snap7 server", "us_per_op", True, cont,
                        ("snap7/isotcp >= 20",
                         lambda r: (ratio(r.median("snap7"), r.median("isotcp")),
                                    (ratio(r.median("snap7"), r.median("isotcp")) or 0) >= 20)), "us"))
        s7same = ports.get("s7same")
        if s7same:
            cont = [("snap7", c("s7read", "snap7", "--port", s7same, "--lib", libsnap7, "--iters", n(300),
                                "--warmup", 20)),
                    ("isotcp", c("s7read", "iso", "--port", s7same, "--iters", n(4000), "--warmup", 100)),
                    ("raw", c("s7read", "raw", "--port", s7same, "--iters", n(4000), "--warmup", 100))]
            rows.append(Row("s7", f"S7 read of 4 bytes (DB1), client and server both on CPU {CLIENT_CPU}",
                            "us_per_op", True, cont,
                            ("snap7/isotcp >= 20 (same CPU)",
                             lambda r: (ratio(r.median("snap7"), r.median("isotcp")),
                                        (ratio(r.median("snap7"), r.median("isotcp")) or 0) >= 20)), "us"))
        cont = [("snap7", c("s7connect", "snap7", "--port", s7, "--lib", libsnap7, "--iters", n(100), "--warmup", 5)),
                ("isotcp", c("s7connect", "iso", "--port", s7, "--iters", n(1000), "--warmup", 20)),
                ("raw", c("s7connect", "raw", "--port", s7, "--iters", n(1000), "--warmup", 20))]
        rows.append(Row("s7", "S7 connect: TCP + CR/CC + setup communication + close", "us_per_op", True, cont, None,
                        "us"))
        # One program, one snap7 above the transport: only the library loaded differs.
        for key, where in (("s7", "native snap7 server"), ("s7same", f"client and server both on CPU {CLIENT_CPU}")):
            if kit and ports.get(key):
                cont = [("stock", c("s7read", "snap7", "--port", ports[key], "--lib", libsnap7, "--iters", n(300),
                                    "--warmup", 20)),
                        ("kit", c("s7read", "snap7", "--port", ports[key], "--lib", kit, "--iters", n(2000),
                                  "--warmup", 100))]
                rows.append(Row("kit", f"Cli_DBRead of 4 bytes (DB1), {where}", "us_per_op", True, cont, None, "us"))
    tls = ports.get("tls")
    if tls:
        floor = lambda *a: pinned(CLIENT_CPU, [TLS_FLOOR] + [str(x) for x in a], rt=True)  # noqa: E731

        def floor_target(limit):
            return (f"isotcp/floor <= {limit:.2f}",
                    lambda r: (ratio(r.median("isotcp"), r.median("floor")),
                               (ratio(r.median("isotcp"), r.median("floor")) or 99) <= limit))

        for size, iters in ((20, 4000), (4096, 4000), (65536, 1500)):
            records = -(-size // TLS_PLAIN_PER_RECORD)
            cont = [("floor", floor("rtt", "--port", tls["tcp"][size], "--pin", tls["pin"], "--size", size,
                                    "--iters", n(iters), "--warmup", 200)),
                    ("isotcp", c("tlsrtt", "iso", "--port", tls["cotp"], "--pin", tls["pin"], "--size", size,
                                 "--iters", n(iters), "--warmup", 200))]
            rows.append(Row("tls", f"round trip {size} B" + (f" ({records} records)" if records > 1 else ""),
                            "us_per_op", True, cont, floor_target(1.10), "us"))
        cont = [("floor", floor("handshake", "--port", tls["tcp"][20], "--pin", tls["pin"], "--iters", n(800),
                                "--warmup", 20)),
                ("isotcp", c("tlshandshake", "iso", "--port", tls["cotp"], "--pin", tls["pin"], "--iters", n(800),
                             "--warmup", 20))]
        rows.append(Row("tls", "handshake: connect + TLS 1.3 handshake + close", "us_per_op", True, cont,
                        floor_target(1.10), "us"))
        # The same programs, timing the TLS handshake alone on the open connection: what the
        # library adds to it, without the CR/CC round trip the floor does not have.
        rows.append(Row("tls", "TLS handshake alone, on the open connection", "tls_us_per_op", True, cont, None, "us"))
    return rows


# Plaintext bytes per TLS 1.3 record at TPDU 1024: a record (5-byte header, 17 bytes of tag and
# content type) fills one DT payload of 1021 bytes.
TLS_PLAIN_PER_RECORD = 1021 - 5 - 17


def tls_setup(tmp):
    """Makes a CA and a server certificate (P-256) with openssl in tmp: {cert, key, pin} or None."""
    if not shutil.which("openssl"):
        log("bench: openssl not found: the TLS rows are left out")
        return None
    if not os.access(TLS_FLOOR, os.X_OK):
        log(f"bench: {TLS_FLOOR} is missing (cargo build --release --example tls_floor): the TLS rows are left out")
        return None
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["req", "-x509", "-days", "2", "-subj", "/CN=isotcp bench CA"] + ec
        + ["-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE"],
        ["req", "-new", "-subj", "/CN=plc"] + ec + ["-keyout", "server.key", "-out", "server.csr"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", "ext.cnf", "-out", "server.pem"],
        ["x509", "-in", "server.pem", "-outform", "DER", "-out", "server.der"],
    ]
    with open(os.path.join(tmp, "ext.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=DNS:plc.example\nextendedKeyUsage=serverAuth\n")
    for args in steps:
        p = subprocess.run(["openssl"] + args, cwd=tmp, capture_output=True)
        if p.returncode != 0:
            failures.append(f"openssl {args[0]}: {p.stderr.decode(errors='replace').strip()[:200]}")
            return None
    with open(os.path.join(tmp, "server.der"), "rb") as f:
        pin = hashlib.sha256(f.read()).hexdigest()
    return {"cert": os.path.join(tmp, "server.pem"), "key": os.path.join(tmp, "server.key"), "pin": pin}


def run_rounds(rows):
    for r in range(ROUNDS):
        t0 = time.time()
        for row in rows:
            order = row.contenders[r % len(row.contenders):] + row.contenders[:r % len(row.contenders)]
            this = {}
            for name, argv in order:
                res, _ = run(argv, f"{row.group} {row.label} {name}")
                if res is not None and row.metric in res:
                    row.samples[name].append(res[row.metric])
                    this[name] = res[row.metric]
                    ops = res.get("messages") or res.get("iters")
                    if "cpu_s" in res and ops:
                        row.cpu[name].append(res["cpu_s"] * 1e6 / ops)
            row.rounds.append(this)
        log(f"round {r + 1}/{ROUNDS}: {time.time() - t0:.1f} s")


# ------------------------------------------------------------------------------------------
# counts: memory, heap calls, system calls, instructions


def measure_idle(port):
    samples = {"raw": [], "isotcp": []}
    heap = {"raw": [], "isotcp": []}
    rounds = 3
    for r in range(rounds):
        order = [("raw", "raw"), ("isotcp", "iso")]
        if r % 2:
            order.reverse()
        for name, arg in order:
            res, _ = run(pinned(CLIENT_CPU, [CLIENT, "idle", arg, "--port", str(port), "--conns", str(IDLE_CONNS)]),
                         f"idle {name}")
            if res:
                samples[name].append(res["rss_per_conn"])
                heap[name].append(res["heap_per_conn"])
            time.sleep(0.5)  # let the peer close the previous connections
    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    return {name: {"rss": med(samples[name]), "heap": med(heap[name])} for name in samples}


def measure_allocs(ports, s7):
    """Heap calls (malloc, calloc, realloc, posix_memalign, aligned_alloc) per message inside
    the measured loop, by the client linked with --wrap."""
    seq, multi = ports["seq"], ports["multi"]
    a = lambda *x: pinned(CLIENT_CPU, [CLIENT_ALLOCS] + [str(v) for v in x])  # noqa: E731
    cases = [
        ("round trip 20 B", a("rtt", "iso", "--port", seq, "--size", 20, "--iters", 2000), "iters"),
        ("round trip 240 B", a("rtt", "iso", "--port", seq, "--size", 240, "--iters", 2000), "iters"),
        ("round trip 4 KiB (5 DTs each way)", a("rtt", "iso", "--port", seq, "--size", 4096, "--iters", 2000), "iters"),
        ("round trip 64 KiB (65 DTs each way)", a("rtt", "iso", "--port", seq, "--size", 65536, "--iters", 500), "iters"),
        ("streaming 64 KiB, TPDU 1024", a("stream", "iso", "--port", seq, "--size", 65536, "--tpdu", 1024, "--iters", 1000), "iters"),
        ("streaming 64 KiB, TPDU 8192", a("stream", "iso", "--port", seq, "--size", 65536, "--tpdu", 8192, "--iters", 1000), "iters"),
        ("pipelined, 8 in flight, 240 B", a("pipe", "iso", "--port", seq, "--size", 240, "--iters", 5000), "iters"),
        (f"{MANY_CONNS} connections, event loop, 240 B",
         a("many", "iso", "--port", multi, "--conns", MANY_CONNS, "--size", 240, "--iters", 20), "messages"),
    ]
    if s7:
        cases.append(("S7 read of 4 bytes", a("s7read", "iso", "--port", s7, "--iters", 2000), "iters"))
    cases.append(("connect + CR/CC + close (per connection; not a message)",
                  a("handshake", "iso", "--port", seq, "--iters", 200), "iters"))
    out = []
    for label, argv, per in cases:
        res, _ = run(argv, f"allocs {label}")
        if res:
            out.append((label, res["allocs"] / res[per], res["frees"] / res[per], "connect" not in label))
    return out


def measure_tls(ports):
    """Heap calls per TLS round trip (isotcp by client-allocs, the floor by its counting
    allocator) and instructions per 20-byte TLS round trip (callgrind), for the TLS section."""
    tls = ports.get("tls")
    if not tls:
        return None
    out = {"allocs": [], "instr": []}
    a = lambda *x: pinned(CLIENT_CPU, [CLIENT_ALLOCS] + [str(v) for v in x])  # noqa: E731
    f = lambda *x: pinned(CLIENT_CPU, [TLS_FLOOR] + [str(v) for v in x])  # noqa: E731
    for size, iters in ((20, 2000), (4096, 2000), (65536, 500)):
        res_i, _ = run(a("tlsrtt", "iso", "--port", tls["cotp"], "--pin", tls["pin"], "--size", size,
                         "--iters", iters), f"tls allocs isotcp {size} B")
        res_f, _ = run(f("rtt", "--port", tls["tcp"][size], "--pin", tls["pin"], "--size", size, "--iters", iters),
                       f"tls allocs floor {size} B")
        out["allocs"].append((f"round trip {size} B",
                              res_i["allocs"] / res_i["iters"] if res_i else None,
                              res_i["frees"] / res_i["iters"] if res_i else None,
                              res_f["allocs"] / res_f["iters"] if res_f else None))
    res_i, _ = run(a("tlshandshake", "iso", "--port", tls["cotp"], "--pin", tls["pin"], "--iters", 100),
                   "tls allocs isotcp handshake")
    res_f, _ = run(f("handshake", "--port", tls["tcp"][20], "--pin", tls["pin"], "--iters", 100),
                   "tls allocs floor handshake")
    out["allocs"].append(("handshake (per connection; not a message)",
                          res_i["allocs"] / res_i["iters"] if res_i else None,
                          res_i["frees"] / res_i["iters"] if res_i else None,
                          res_f["allocs"] / res_f["iters"] if res_f else None))
    if shutil.which("valgrind"):
        iters, warm = (n(2000) if QUICK else 2000), 100
        for label, prog, funcs, args in (
                ("isotcp: iso_send + iso_recv", CLIENT, ["iso_send", "iso_recv"],
                 ["tlsrtt", "iso", "--port", tls["cotp"]]),
                ("rustls over TCP (floor): floor_send_recv", TLS_FLOOR, ["floor_send_recv"],
                 ["rtt", "--port", tls["tcp"][20]])):
            path = os.path.join(OUT, "callgrind.tls-" + label.split(":")[0].split()[0] + ".out")
            argv = pinned(CLIENT_CPU, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}"]
                          + [f"--toggle-collect={fn}" for fn in funcs] + [prog] + [str(x) for x in args]
                          + ["--pin", tls["pin"], "--size", "20", "--iters", str(iters), "--warmup", str(warm)])
            res, _ = run(argv, f"callgrind tls {label}", timeout=600)
            total = callgrind_total(path) if res else None
            out["instr"].append((label, total / (iters + warm) if total else None))
    return out


SYSCALL_NAMES = ["sendmsg", "sendto", "write", "writev", "recvfrom", "recvmsg", "read", "readv", "poll", "ppoll",
                 "epoll_wait", "epoll_pwait", "epoll_ctl", "select", "pselect6", "setsockopt", "getsockopt", "fcntl",
                 "ioctl", "futex", "nanosleep", "clock_nanosleep", "sched_yield", "socket", "connect", "close",
                 "shutdown", "getsockname", "getpeername"]


def strace_counts(argv):
    """strace -f -c: {syscall: calls} for the whole process."""
    with tempfile.NamedTemporaryFile(prefix="bench-strace-", suffix=".txt", delete=False) as f:
        path = f.name
    try:
        res, _ = run(["strace", "-f", "-c", "-o", path] + argv, "strace " + " ".join(argv[3:6]))
        if res is None:
            return None
        counts = {}
        with open(path) as f:
            for line in f:
                parts = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                    try:
                        counts[parts[-1]] = int(parts[3])
                    except ValueError:
                        pass
        return counts
    finally:
        os.unlink(path)


_tracepoints = None


def perf_counts(argv):
    """perf stat over syscall tracepoints: {syscall: calls, "total": all}; None without perf."""
    global _tracepoints
    if not shutil.which("perf"):
        return None
    if _tracepoints is None:
        listing = cmd_out(["perf", "list", "tracepoint"])
        _tracepoints = [s for s in SYSCALL_NAMES if f"syscalls:sys_enter_{s} " in listing + " "
                        or f"syscalls:sys_enter_{s}\n" in listing + "\n"]
    events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{s}" for s in _tracepoints]
    cmd = ["perf", "stat", "-x", ",", "--no-big-num"]
    for e in events:
        cmd += ["-e", e]
    try:
        p = subprocess.run(cmd + ["--"] + argv, capture_output=True, timeout=300, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0 or parse_result(p.stdout.decode()) is None:
        return None
    counts = {}
    for line in p.stderr.decode().splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[0].strip().isdigit():
            ev = parts[2]
            key = "total" if ev == "raw_syscalls:sys_enter" else ev.replace("syscalls:sys_enter_", "")
            counts[key] = int(parts[0])
    return counts if "total" in counts else None


def per_op(counter, make_argv, n1, n2):
    """(counts(n2) - counts(n1)) / (n2 - n1): the set-up cancels out."""
    c1, c2 = counter(make_argv(n1)), counter(make_argv(n2))
    if not c1 or not c2:
        return None
    keys = set(c1) | set(c2)
    d = {k: (c2.get(k, 0) - c1.get(k, 0)) / (n2 - n1) for k in keys}
    if "total" not in d:
        d["total"] = sum(v for k, v in d.items())
    return {k: v for k, v in d.items() if abs(v) >= 0.005 or k == "total"}


def measure_syscalls(ports, s7, libsnap7, py3, kit=None):
    seq, multi = ports["seq"], ports["multi"]
    cases = []

    def cc(*x):
        return lambda iters: pinned(CLIENT_CPU, [CLIENT] + [str(v) for v in x] + ["--iters", str(iters)])

    both = (("raw", "raw"), ("isotcp", "iso"))
    for size in (20, 240, 4096, 65536):
        for name, arg in both:
            cases.append((f"round trip {size} B", name, cc("rtt", arg, "--port", seq, "--size", size), 200, 2200, 1))
        if py3 and size == 20:
            cases.append(("round trip 20 B", "python-snap7",
                          lambda iters: pinned(CLIENT_CPU, [py3, PYCLIENT, "rtt", "--port", str(seq), "--size", "20",
                                                            "--iters", str(iters)]), 200, 2200, 1))
    for tpdu in (1024, 8192):
        for name, arg in both:
            cases.append((f"streaming 64 KiB, TPDU {tpdu} (per message)", name,
                          cc("stream", arg, "--port", seq, "--size", 65536, "--tpdu", tpdu), 200, 2200, 1))
    for name, arg in both:
        cases.append(("pipelined, 8 in flight, 240 B (per message)", name,
                      cc("pipe", arg, "--port", seq, "--size", 240), 200, 5200, 1))
    for name, arg in both:
        cases.append((f"{MANY_CONNS} connections, event loop, 240 B (per message)", name,
                      cc("many", arg, "--port", multi, "--conns", MANY_CONNS, "--size", 240), 5, 25, MANY_CONNS))
    for name, arg in both:
        cases.append(("connect + CR/CC + close (per connection)", name, cc("handshake", arg, "--port", seq), 50, 550, 1))
    if s7:
        for name, arg in (("raw", "raw"), ("isotcp", "iso"), ("snap7", "snap7")):
            cases.append(("S7 read of 4 bytes", name, cc("s7read", arg, "--port", s7, "--lib", libsnap7 or "-"),
                          20 if arg == "snap7" else 200, 220 if arg == "snap7" else 2200, 1))
        if kit:
            cases.append(("S7 read of 4 bytes", "snap7 kit", cc("s7read", "snap7", "--port", s7, "--lib", kit),
                          200, 2200, 1))
    out = []
    have_strace = shutil.which("strace") is not None
    for label, name, make, n1, n2, div in cases:
        st = per_op(strace_counts, make, n1, n2) if have_strace else None
        pf = per_op(perf_counts, make, n1, n2)
        if st:
            st = {k: v / div for k, v in st.items()}
        if pf:
            pf = {k: v / div for k, v in pf.items()}
        out.append((label, name, st, pf))
    return out


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return None


def measure_instructions(ports):
    """Instructions executed inside the toggled functions (and what they call, libc included),
    per operation, by callgrind."""
    if not shutil.which("valgrind"):
        return [], None
    seq, multi = ports["seq"], ports["multi"]
    cases = [
        ("isotcp round trip 20 B: iso_send + iso_recv", ["iso_send", "iso_recv"],
         ["rtt", "iso", "--port", seq, "--size", 20], 20000, 100, 1, True),
        ("isotcp round trip 240 B: iso_send + iso_recv", ["iso_send", "iso_recv"],
         ["rtt", "iso", "--port", seq, "--size", 240], 20000, 100, 1, False),
        ("isotcp round trip 4 KiB: iso_send + iso_recv", ["iso_send", "iso_recv"],
         ["rtt", "iso", "--port", seq, "--size", 4096], 5000, 100, 1, False),
        ("isotcp event loop 240 B: iso_queue_send + iso_recv(0) + iso_get_send_pending",
         ["iso_queue_send", "iso_recv", "iso_flush", "iso_get_send_pending"],
         ["many", "iso", "--port", multi, "--conns", MANY_CONNS, "--size", 240], 10, 0, MANY_CONNS, False),
        ("raw round trip 20 B: write + read (libc wrappers)", ["raw_send_recv"],
         ["rtt", "raw", "--port", seq, "--size", 20], 20000, 100, 1, False),
    ]
    out = []
    top = None
    for label, funcs, args, iters, warm, mult, keep_top in cases:
        iters = n(iters) if QUICK else iters
        path = os.path.join(OUT, "callgrind." + re.sub(r"[^a-z0-9]+", "-", label.lower())[:40] + ".out")
        argv = pinned(CLIENT_CPU, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}"]
                      + [f"--toggle-collect={fn}" for fn in funcs] + [CLIENT] + [str(a) for a in args]
                      + ["--iters", str(iters)] + (["--warmup", str(warm)] if warm or args[0] == "rtt" else []))
        res, _ = run(argv, f"callgrind {label}", timeout=600)
        if not res:
            continue
        total = callgrind_total(path)
        ops = (iters + warm) * mult
        out.append((label, total / ops if total else None))
        if keep_top and shutil.which("callgrind_annotate"):
            top = callgrind_top(path, ops)
    return out, top


def callgrind_top(path, ops):
    """Self cost per operation of the most expensive functions."""
    text = cmd_out(["callgrind_annotate", "--threshold=99", path])
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            cost = int(m.group(1).replace(",", ""))
            where = m.group(2)
            where = re.sub(r"\s*\[[^\]]*\]$", "", where)
            where = re.sub(r"^/rustc/[0-9a-f]+/", "rust:", where)
            where = re.sub(r"^\./[^:]*/", "libc:", where)
            rows.append((cost / ops, where))
    return rows[:10]


# ------------------------------------------------------------------------------------------
# wire check: raw and isotcp put the same bytes on the wire


def wire_check():
    results = []
    d = tempfile.mkdtemp(prefix="bench-wire-")
    try:
        peer = Server("dump peer", [PEER, "--dump", d], PEER_CPU)
        try:
            cases = [("round trip 20 B", ["rtt", "--size", "20", "--iters", "1", "--warmup", "0"]),
                     ("round trip 4 KiB", ["rtt", "--size", "4096", "--iters", "1", "--warmup", "0"]),
                     ("round trip 64 KiB", ["rtt", "--size", "65536", "--iters", "1", "--warmup", "0"]),
                     ("streaming 64 KiB, TPDU 8192", ["stream", "--size", "65536", "--tpdu", "8192", "--iters", "2",
                                                      "--warmup", "0"]),
                     ("streaming 64 KiB, TPDU 1024", ["stream", "--size", "65536", "--tpdu", "1024", "--iters", "2",
                                                      "--warmup", "0"]),
                     ("pipelined 240 B", ["pipe", "--size", "240", "--iters", "20", "--warmup", "0"])]
            conn = 0
            for label, args in cases:
                files = []
                for arg in ("raw", "iso") + (("rawv",) if args[0] == "stream" else ()):
                    res, _ = run([CLIENT, args[0], arg, "--port", str(peer.port)] + args[1:], f"wire {label} {arg}")
                    files.append(os.path.join(d, f"conn-{conn}.bin"))
                    conn += 1
                time.sleep(0.2)
                try:
                    blobs = [open(f, "rb").read() for f in files]
                    results.append((label, len(blobs[0]), all(x == blobs[0] for x in blobs)))
                except OSError:
                    results.append((label, 0, False))
        finally:
            peer.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return results


# ------------------------------------------------------------------------------------------
# report: BENCHMARKS.md, one function per section. The sections with targets return (lines,
# verdicts), a verdict being (what, measured, wanted, holds); report() lists the verdicts of all
# of them in the Targets section near the top.


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if unit in ("msg/s",):
        return f"{v:,.0f}"
    if unit == "MB/s":
        return f"{v:,.0f}"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def round_ratio_range(row, a, b):
    vals = [r[a] / r[b] for r in row.rounds if r.get(a) and r.get(b)]
    if not vals:
        return "n/a"
    return f"{min(vals):.2f}-{max(vals):.2f}"


def measured_text(val, spec=".2f"):
    """A target's measured value as the Targets table shows it."""
    return format(val, spec) if val else "n/a"


def section_title(info, elapsed):
    return [
        "# Benchmarks",
        "",
        f"Generated by `bash benches/run`{' with BENCH_QUICK=1 (smoke run: fewer rounds, shorter batches)' if QUICK else ''}"
        f" on {info['date']} in {elapsed / 60:.1f} minutes. How the benchmark works and how to read this: "
        "[benches/README.md](benches/README.md). No number here is a pass/fail test.",
        "",
    ]


def section_machine(info):
    return [
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores (hypervisor: {info['hypervisor']}), {info['memory']} memory",
        f"- Kernel: {info['kernel']}",
        f"- Compilers: {info['gcc']}; {info['rustc']}; {info['cargo']}",
        f"- Python {info['python']}; python-snap7 {info['py3_snap7']} (pure Python) and "
        f"{info['native_snap7']} (native snap7 library)",
        f"- Tools: {info['valgrind']}; {info['strace']}; {info['perf']}",
        f"- isotcp: commit {info['commit']}, `cargo build --release --locked`; C programs `gcc -O2`; the TLS "
        "floor `cargo build --release --locked --example tls_floor`",
        f"- Placement: every client (raw, isotcp, python-snap7, native snap7, the TLS floor) on CPU {CLIENT_CPU}, "
        f"every peer (benches/peer.c, the native snap7 server, the TLS peers) on CPU {PEER_CPU}, with taskset; "
        "loopback TCP",
        "- Scheduling: " + (f"clients and peers of the timed workloads run SCHED_FIFO (chrt -f {RT_PRIO}), so "
                            "other work on the machine does not preempt them (BENCH_RT=0 turns this off)"
                            if RT else "normal (SCHED_OTHER): chrt not allowed or BENCH_RT=0"),
        f"- Machine load besides the benchmark: at the start {info['load_start']}; at the end "
        f"{info.get('load_end', 'unknown')} (the benchmark itself keeps about one CPU busy); "
        f"{info.get('cpu_use', '')}",
        f"- {ROUNDS} rounds; in each round every contender of a row runs one batch, in an order rotated "
        "from round to round; a value is the median of the rounds",
        "",
        "Command:",
        "",
        "    bash benches/run" if not QUICK else "    BENCH_QUICK=1 bash benches/run",
        "",
    ]


def section_targets(verdicts, failed):
    L = ["## Targets", "", "| target | measured | wanted | |", "|---|---|---|---|"]
    for what, val, text, holds in verdicts:
        L.append(f"| {what} | {val} | {text} | {'holds' if holds else 'missed' if holds is not None else 'n/a'} |")
    L.append("")
    if failed:
        L.append("Programs that failed during this run (their rows are incomplete):")
        L.append("")
        for f in failed:
            L.append(f"- {f}")
        L.append("")
    return L


def section_round_trips(groups):
    L, verdicts = [], []
    L.append("## Request/response round trips (one connection, TPDU 1024)")
    L.append("")
    L.append("Microseconds per round trip (message out, its echo back). Ratios are times: below 1 is faster "
             "than raw TCP.")
    L.append("")
    L.append("| message | raw TCP | isotcp | isotcp/raw | per-round isotcp/raw | client CPU µs raw / isotcp | "
             "python-snap7 3.3 | python/raw | target | |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for row in groups.get("rtt", []):
        raw, iso, py = row.median("raw"), row.median("isotcp"), row.median("python-snap7")
        text, fn = row.target
        val, holds = fn(row)
        pytxt = fmt(py) if py is not None else ("n/a (no segmentation; > 1 TPKT)" if "65" in row.label else "n/a")
        L.append(f"| {row.label} | {fmt(raw)} | {fmt(iso)} | {fmt(ratio(iso, raw))} | "
                 f"{round_ratio_range(row, 'isotcp', 'raw')} | {row.cpu_text()} | {pytxt} | {fmt(ratio(py, raw))} | "
                 f"{text.split(' ', 1)[1]} | {'holds' if holds else 'missed'} |")
        verdicts.append((f"round trip {row.label}: isotcp/raw time", measured_text(val), text, holds))
    L.append("")
    if groups.get("rtt-same"):
        L.append(f"Same workload with the client and the peer on one CPU (CPU {CLIENT_CPU}): no wake-up across CPUs, "
                 "so the library's own cost weighs more (information, no target):")
        L.append("")
        L.append("| message | raw TCP | isotcp | isotcp/raw | per-round isotcp/raw | client CPU µs raw / isotcp |")
        L.append("|---|---|---|---|---|---|")
        for row in groups["rtt-same"]:
            raw, iso = row.median("raw"), row.median("isotcp")
            L.append(f"| {row.label.split(',')[0]} | {fmt(raw)} | {fmt(iso)} | {fmt(ratio(iso, raw))} | "
                     f"{round_ratio_range(row, 'isotcp', 'raw')} | {row.cpu_text()} |")
        L.append("")
    return L, verdicts


def rate_table(title, note, rows, unit):
    """A section of throughput rows (higher is better): (lines, verdicts)."""
    L, verdicts = [], []
    L.append(title)
    L.append("")
    if note:
        L.append(note)
        L.append("")
    L.append(f"| workload | raw TCP ({unit}) | isotcp ({unit}) | isotcp/raw | per-round isotcp/raw | "
             "client CPU µs per message raw / isotcp | target | |")
    L.append("|---|---|---|---|---|---|---|---|")
    for row in rows:
        raw, iso = row.median("raw"), row.median("isotcp")
        if row.target:
            text, fn = row.target
            val, holds = fn(row)
            tgt, verdict = text.split(" ", 1)[1], ("holds" if holds else "missed")
            verdicts.append((f"{row.label}: isotcp/raw {unit}", measured_text(val), text, holds))
        else:
            tgt, verdict = "none", ""
        L.append(f"| {row.label} | {fmt(raw, unit)} | {fmt(iso, unit)} | {fmt(ratio(iso, raw))} | "
                 f"{round_ratio_range(row, 'isotcp', 'raw')} | {row.cpu_text()} | {tgt} | {verdict} |")
    L.append("")
    return L, verdicts


def section_streaming(groups):
    rows = groups.get("stream", [])
    L, verdicts = rate_table(
        "## One-way streaming", "64 KiB messages written back to back, the peer reads them and answers a "
        "final 20-byte message: payload megabytes per second. Ratios are throughputs: above 1 is faster "
        "than raw TCP. raw TCP writes each message's DTs from one contiguous buffer; \"raw writev\" writes "
        "the same bytes the way isotcp does, one writev with a header entry and a payload entry per DT "
        "(130 entries at TPDU 1024, 18 at 8192), to show what the vectored write itself costs.",
        rows, "MB/s")
    if rows:
        L.append(f"| workload | raw writev (MB/s) | raw writev/raw | isotcp/raw writev | client CPU µs per message "
                 "raw writev |")
        L.append("|---|---|---|---|---|")
        for row in rows:
            raw, iso, rv = row.median("raw"), row.median("isotcp"), row.median("raw writev")
            L.append(f"| {row.label} | {fmt(rv, 'MB/s')} | {fmt(ratio(rv, raw))} | {fmt(ratio(iso, rv))} | "
                     f"{fmt(row.cpu_median('raw writev'))} |")
        L.append("")
    return L, verdicts


def section_pipelining(groups):
    return rate_table("## Pipelining",
                      "8 requests in flight on one connection, 240-byte messages: messages per second.",
                      groups.get("pipe", []), "msg/s")


def section_many_connections(groups):
    return rate_table(
        "## Many connections from one thread",
        f"{MANY_CONNS} connections driven by one thread with epoll, one 240-byte request in flight on each "
        "(isotcp: iso_get_fd, iso_queue_send, iso_recv(..., 0), iso_flush; raw: read/write on ready "
        "sockets): aggregate messages per second. The peer serves all of them from one epoll thread.",
        groups.get("many", []), "msg/s")


def section_connection_setup(groups):
    L, verdicts = [], []
    L.append("## Connection set-up")
    L.append("")
    L.append("Microseconds per TCP connect + CR/CC + close (isotcp: iso_connect + iso_disconnect on one handle; raw: "
             "socket, connect, the same 22-byte CR, read the CC, close; python-snap7: connect() + disconnect(), "
             "which also sends a DR).")
    L.append("")
    L.append("| workload | raw TCP | isotcp | isotcp/raw | per-round isotcp/raw | client CPU µs raw / isotcp | "
             "python-snap7 3.3 | target | |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for row in groups.get("handshake", []):
        raw, iso, py = row.median("raw"), row.median("isotcp"), row.median("python-snap7")
        text, fn = row.target
        val, holds = fn(row)
        L.append(f"| {row.label} | {fmt(raw)} | {fmt(iso)} | {fmt(ratio(iso, raw))} | "
                 f"{round_ratio_range(row, 'isotcp', 'raw')} | {row.cpu_text()} | {fmt(py)} | {text.split(' ', 1)[1]} | "
                 f"{'holds' if holds else 'missed'} |")
        verdicts.append(("handshake: isotcp/raw time", measured_text(val), text, holds))
    L.append("")
    return L, verdicts


def section_tls(groups, tls):
    """TLS inside COTP against rustls over TCP (the floor): only when the TLS rows ran."""
    L, verdicts = [], []
    rows = groups.get("tls", [])
    if not rows:
        return L, verdicts
    L.append("## TLS inside COTP (TPDU 1024)")
    L.append("")
    L.append("isotcp through the C API (`iso_connect`, `iso_start_tls` with a SHA-256 pin, then `iso_send` / "
             "`iso_recv`) against benches/tls_floor.rs's peer, which speaks TLS inside COTP; the floor is rustls "
             "(ring) directly over a TcpStream against the same program's TCP peer: the same server configuration, "
             "TLS 1.3 with the same suite and group, the same pin check, records of at most "
             f"{TLS_PLAIN_PER_RECORD} bytes of plaintext (one record fills one DT), each message's records written "
             "with one write. Microseconds per round trip or per handshake (isotcp: iso_connect + iso_start_tls + "
             "iso_disconnect, so one round trip more for the CR/CC; floor: TCP connect + handshake + close); the "
             "handshake alone is the same batches timing only `iso_start_tls` and the floor's handshake after the "
             "connect.")
    L.append("")
    L.append("| workload | rustls over TCP (floor) | isotcp | isotcp/floor | per-round isotcp/floor | "
             "client CPU µs floor / isotcp | target | |")
    L.append("|---|---|---|---|---|---|---|---|")
    for row in rows:
        floor, iso = row.median("floor"), row.median("isotcp")
        if row.target:
            text, fn = row.target
            val, holds = fn(row)
            tgt, verdict = text.split(" ", 1)[1], ("holds" if holds else "missed")
            verdicts.append((f"TLS {row.label.split(':')[0]}: isotcp/floor time", measured_text(val), text, holds))
        else:
            tgt, verdict = "none", ""
        cpu = row.cpu_text("floor", "isotcp") if row.metric == "us_per_op" else "(as above)"
        L.append(f"| {row.label} | {fmt(floor)} | {fmt(iso)} | {fmt(ratio(iso, floor))} | "
                 f"{round_ratio_range(row, 'isotcp', 'floor')} | {cpu} | {tgt} | {verdict} |")
    L.append("")
    if tls and tls.get("allocs"):
        L.append("Heap calls per operation inside the measured loop (isotcp: `client-allocs`; the floor: a counting "
                 "global allocator). The floor uses rustls' buffered API, which allocates for every record sealed "
                 "or opened, so it is not zero either:")
        L.append("")
        L.append("| workload | isotcp allocations | isotcp frees | floor allocations |")
        L.append("|---|---|---|---|")
        worst = None
        for label, al, fr, fl in tls["allocs"]:
            L.append(f"| {label} | {fmt(al)} | {fmt(fr)} | {fmt(fl)} |")
            if al is not None and "handshake" not in label:
                worst = max(worst or 0.0, al)
        L.append("")
        verdicts.append(("TLS round trips: heap allocations per message, steady state (isotcp, worst)",
                         "n/a" if worst is None else f"{worst:.3f}", "== 0",
                         None if worst is None else worst == 0))
    if tls and tls.get("instr"):
        L.append("Instructions per 20-byte TLS round trip (callgrind, the named functions and all they call in user "
                 "space, crypto included):")
        L.append("")
        L.append("| contender | instructions per round trip |")
        L.append("|---|---|")
        for label, per in tls["instr"]:
            L.append(f"| {label} | {fmt(per)} |")
        L.append("")
    return L, verdicts


def section_s7(groups):
    """Only when the native snap7 server ran."""
    L, verdicts = [], []
    if not groups.get("s7"):
        return L, verdicts
    L.append("## S7 against the native snap7 server (snap7 1.4.2 from python-snap7 2.0.2)")
    L.append("")
    L.append("Microseconds per operation. isotcp and the raw floor send the same S7 bytes as the native client "
             "(setup communication with PDU 480 once, then the read request of docs/PROTOCOL.md §9.5).")
    L.append("")
    L.append("| workload | native snap7 client | isotcp | raw TCP | snap7/isotcp | isotcp/raw | "
             "per-round snap7/isotcp | client CPU µs snap7 / isotcp / raw | target | |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for row in groups["s7"]:
        s, i, r = row.median("snap7"), row.median("isotcp"), row.median("raw")
        if row.target:
            text, fn = row.target
            val, holds = fn(row)
            tgt, verdict = text.replace(" (same CPU)", "").split(" ", 1)[1], "holds" if holds else "missed"
            where = " (client and server on one CPU)" if "same CPU" in text else ""
            verdicts.append((f"S7 4-byte read{where}: native snap7 client time / isotcp time",
                             measured_text(val, ".1f"), text.replace(" (same CPU)", ""), holds))
        else:
            tgt, verdict = "none", ""
        L.append(f"| {row.label} | {fmt(s)} | {fmt(i)} | {fmt(r)} | {fmt(ratio(s, i))}x | {fmt(ratio(i, r))} | "
                 f"{round_ratio_range(row, 'snap7', 'isotcp')} | {fmt(row.cpu_median('snap7'))} / "
                 f"{fmt(row.cpu_median('isotcp'))} / {fmt(row.cpu_median('raw'))} | {tgt} | {verdict} |")
    L.append("")
    return L, verdicts


def section_snap7_kit(groups, info):
    """The kit's rows, or why they were not measured; no target."""
    L = ["## The snap7 kit: stock libsnap7.so against the kit's", ""]
    rows = groups.get("kit")
    if not rows:
        L.append("Not measured in this run: " + (info.get("snap7_kit_missing") or "the native snap7 server did not run")
                 + ".")
        L.append("")
        return L, []
    L.append("Microseconds per `Cli_DBRead` of 4 bytes of DB1. One program (`client s7read snap7`, "
             "benches/client.c) calls snap7's C API (`Cli_Create`, `Cli_SetParam`, `Cli_ConnectTo`, `Cli_DBRead`, "
             "`Cli_Disconnect`, `Cli_Destroy`) from the library it loads with `dlopen`: once the stock libsnap7.so "
             "of python-snap7 2.0.2, once the kit's (`snap7/build.sh`: snap7 1.4.2 with isotcp as the client's "
             "transport, linked with the release libisotcp.a); the same native snap7 server, the same placement. "
             "Everything above the transport is the same snap7 code.")
    L.append("")
    L.append("| workload | stock libsnap7.so | snap7 kit | stock/kit | per-round stock/kit | "
             "client CPU µs stock / kit |")
    L.append("|---|---|---|---|---|---|")
    for row in rows:
        s, k = row.median("stock"), row.median("kit")
        L.append(f"| {row.label} | {fmt(s)} | {fmt(k)} | {fmt(ratio(s, k))}x | "
                 f"{round_ratio_range(row, 'stock', 'kit')} | {row.cpu_text('stock', 'kit')} |")
    L.append("")
    return L, []


def section_costs(allocs, sysc, instr, top, idle):
    """## Costs per message, made of four subsections."""
    L, verdicts = ["## Costs per message", ""], []
    for sub_lines, sub_verdicts in (subsection_heap(allocs), subsection_syscalls(sysc),
                                    subsection_instructions(instr, top), subsection_idle_memory(idle)):
        L += sub_lines
        verdicts += sub_verdicts
    return L, verdicts


def subsection_heap(allocs):
    L, verdicts = [], []
    L.append("### Heap allocations")
    L.append("")
    L.append("Calls of malloc/calloc/realloc/posix_memalign/aligned_alloc (and free) made inside the measured "
             "loop, counted by the client linked with `-Wl,--wrap=...` (isotcp is linked statically, so its Rust "
             "allocator's calls are counted), divided by the messages of the loop.")
    L.append("")
    L.append("| workload (isotcp) | allocations per message | frees per message |")
    L.append("|---|---|---|")
    worst = 0.0
    for label, al, fr, counted in allocs:
        L.append(f"| {label} | {al:.3f} | {fr:.3f} |")
        if counted:
            worst = max(worst, al)
    L.append("")
    if allocs:
        verdicts.append(("heap allocations per message, steady state (worst workload)", f"{worst:.3f}", "== 0",
                         worst == 0))
    return L, verdicts


def subsection_syscalls(sysc):
    L, verdicts = [], []
    L.append("### System calls")
    L.append("")
    L.append("Per operation, by difference of two runs with different iteration counts (set-up cancels out). "
             "`strace -f -c` is the count asked for; `perf` counts the same system calls through tracepoints "
             "without slowing the process down (strace makes every call slow, which changes how data arrives and "
             "so how many reads a large message takes).")
    L.append("")
    L.append("| workload | contender | strace -f -c | which (strace) | perf | which (perf) |")
    L.append("|---|---|---|---|---|---|")

    def which(d):
        if not d:
            return ""
        return ", ".join(f"{k} {v:.2f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])
                         if k != "total" and v >= 0.01)

    small_iso = None
    for label, name, st, pf in sysc:
        L.append(f"| {label} | {name} | {fmt(st['total']) if st else 'n/a'} | {which(st)} | "
                 f"{fmt(pf['total']) if pf else 'n/a'} | {which(pf)} |")
        if label == "round trip 20 B" and name == "isotcp":
            small_iso = (st or pf)
    L.append("")
    if small_iso:
        verdicts.append(("system calls per small round trip (20 B, isotcp)", f"{small_iso['total']:.2f}", "<= 2",
                         round(small_iso["total"], 2) <= 2.0))
    return L, verdicts


def subsection_instructions(instr, top):
    L, verdicts = [], []
    L.append("### Instructions")
    L.append("")
    L.append("Instructions executed by the named functions and everything they call in user space (the library, "
             "libc wrappers, memcpy), by `valgrind --tool=callgrind --toggle-collect=...`, divided by the "
             "operations; system calls themselves run in the kernel and are not counted.")
    L.append("")
    L.append("| operation | instructions per operation |")
    L.append("|---|---|")
    for label, per in instr:
        L.append(f"| {label} | {fmt(per)} |")
        if label.startswith("isotcp round trip 20 B") and per is not None:
            verdicts.append(("instructions of library code per small send + receive (20 B)", f"{per:,.0f}", "<= 5,000",
                             per <= 5000))
    L.append("")
    if top:
        L.append("Where they go for the 20-byte round trip (self cost per round trip, top functions):")
        L.append("")
        L.append("| instructions | function |")
        L.append("|---|---|")
        for per, where in top:
            L.append(f"| {per:,.0f} | `{where}` |")
        L.append("")
    return L, verdicts


def subsection_idle_memory(idle):
    L = []
    L.append("### Memory of idle connections")
    L.append("")
    L.append(f"{IDLE_CONNS:,} connected, idle connections opened by one client process (the peer is another "
             "process): growth of the client's resident set size divided by the connections, after one "
             "connection was already open; and the growth of the C heap (mallinfo2) per connection. Kernel "
             "socket memory is not user-space memory and is in neither. Median of 3 runs.")
    L.append("")
    L.append("| contender | RSS per connection (bytes) | heap per connection (bytes) | target | |")
    L.append("|---|---|---|---|---|")
    for name in ("raw", "isotcp"):
        d = idle.get(name) or {}
        rss = d.get("rss")
        tgt = "<= 8192" if name == "isotcp" else ""
        verdict = ("holds" if rss is not None and rss <= 8192 else "missed") if name == "isotcp" else ""
        L.append(f"| {name} | {fmt(rss)} | {fmt(d.get('heap'))} | {tgt} | {verdict} |")
    L.append("")
    iso_idle = (idle.get("isotcp") or {}).get("rss")
    verdicts = [("user-space memory per idle connection (bytes)", fmt(iso_idle), "<= 8192",
                 iso_idle is not None and iso_idle <= 8192)]
    return L, verdicts


def section_wire(wire):
    L = []
    L.append("## Same bytes on the wire")
    L.append("")
    L.append("The raw floor is meant to send exactly what isotcp sends. Before the rounds, the peer recorded "
             "everything each client sent (CR included) for one batch of raw and one of isotcp:")
    L.append("")
    L.append("| workload | bytes sent by the client | raw == isotcp (== raw writev for streaming) |")
    L.append("|---|---|---|")
    for label, nbytes, same in wire:
        L.append(f"| {label} | {nbytes:,} | {'identical' if same else 'DIFFERENT'} |")
    L.append("")
    return L


def report(info, rows, idle, allocs, sysc, instr, top, wire, elapsed, tls=None):
    """BENCHMARKS.md: the sections in order, with the Targets of the measured ones near the top."""
    groups = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    measured = [section_round_trips(groups), section_streaming(groups), section_pipelining(groups),
                section_many_connections(groups), section_connection_setup(groups), section_tls(groups, tls),
                section_s7(groups), section_snap7_kit(groups, info),
                section_costs(allocs, sysc, instr, top, idle)]
    verdicts = [v for _, section_verdicts in measured for v in section_verdicts]
    L = section_title(info, elapsed) + section_machine(info) + section_targets(verdicts, failures)
    for section_lines, _ in measured:
        L += section_lines
    L += section_wire(wire)
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------------------


def main():
    global RT
    start = time.time()
    t_start = cpu_ticks()
    RT = rt_available()
    for prog in (CLIENT, CLIENT_ALLOCS, PEER):
        if not os.access(prog, os.X_OK):
            log(f"bench: {prog} is missing: run `bash benches/run`, which builds it")
            return 2
    py3, native = find_venvs()
    libsnap7 = find_libsnap7(native)
    kit, kit_missing = find_snap7_kit(libsnap7)
    info = machine(py3, native)
    log(f"bench: {info['cpu']}, {info['cores']} cores, {info['kernel']}; {ROUNDS} rounds"
        f"{' (quick)' if QUICK else ''}; client CPU {CLIENT_CPU}, peer CPU {PEER_CPU}"
        f"{', SCHED_FIFO' if RT else ''}")
    if not py3:
        log("bench: python-snap7 3.3.0 venv not found: its rows are left out")
    if not libsnap7:
        log("bench: python-snap7 2.0.2 venv (native snap7) not found: the S7 rows are left out")
    if kit_missing:
        log(f"bench: the snap7 kit's rows are not measured: {kit_missing}")

    log("wire check: raw and isotcp bytes")
    wire = wire_check()
    for label, nbytes, same in wire:
        log(f"  {label}: {nbytes} bytes, {'identical' if same else 'DIFFERENT'}")

    servers = []
    ports = {}
    tls_dir = tempfile.mkdtemp(prefix="bench-tls-")
    tls = tls_setup(tls_dir)
    try:
        for key, argv, cpu in (("seq", [PEER], PEER_CPU), ("same", [PEER], CLIENT_CPU),
                               ("multi", [PEER, "--multi"], PEER_CPU)):
            s = Server(f"peer {key}", argv, cpu)
            servers.append(s)
            ports[key] = s.port
        if native and libsnap7:
            try:
                s = Server("native snap7 server", [native, S7SERVER, "--port", "0", "--max-clients", "1024"], PEER_CPU)
                servers.append(s)
                ports["s7"] = s.port
                # The same server on the clients' CPU: the S7 row again without the wake-up
                # across CPUs, which on these virtual machines dominates every round trip.
                s = Server("native snap7 server, client CPU", [native, S7SERVER, "--port", "0", "--max-clients",
                                                               "1024"], CLIENT_CPU)
                servers.append(s)
                ports["s7same"] = s.port
            except RuntimeError as e:
                log(f"bench: {e}: the S7 rows are left out")
        if tls:
            base = [TLS_FLOOR, "peer", "--cert", tls["cert"], "--key", tls["key"]]
            try:
                s = Server("TLS peer, COTP", base + ["--mode", "cotp"], PEER_CPU)
                servers.append(s)
                tls_ports = {"cotp": s.port, "tcp": {}, "pin": tls["pin"]}
                for size in TLS_SIZES:
                    s = Server(f"TLS peer, TCP, {size} B", base + ["--mode", "tcp", "--size", str(size)], PEER_CPU)
                    servers.append(s)
                    tls_ports["tcp"][size] = s.port
                ports["tls"] = tls_ports
            except RuntimeError as e:
                failures.append(str(e))
                log(f"bench: {e}: the TLS rows are left out")
        if kit and "s7" not in ports:
            kit, kit_missing = None, "the native snap7 server did not start"
        if kit_missing:
            info["snap7_kit_missing"] = kit_missing
        rows = build_rows(ports, libsnap7, py3, kit)
        log(f"timed workloads: {len(rows)} rows, {ROUNDS} rounds")
        run_rounds(rows)
        log("heap allocations per message")
        allocs = measure_allocs(ports, ports.get("s7"))
        log("system calls per operation")
        sysc = measure_syscalls(ports, ports.get("s7"), libsnap7, py3, kit)
        log("instructions per operation (callgrind)")
        instr, top = measure_instructions(ports)
        log("TLS: heap allocations and instructions per round trip")
        tls_costs = measure_tls(ports)
        log(f"memory of {IDLE_CONNS} idle connections")
        idle = measure_idle(ports["multi"])
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tls_dir, ignore_errors=True)

    info["load_end"] = load_text()
    t_end = cpu_ticks()
    kids = os.times()
    if t_start and t_end:
        busy = t_end[0] - t_start[0]
        ours = kids.children_user + kids.children_system
        info["cpu_use"] = (f"the benchmark's processes used {ours:.0f} CPU-seconds and the machine as a whole was "
                           f"busy {busy:.0f} CPU-seconds (tick-sampled, so only a large excess means other work "
                           f"ran); {t_end[1] - t_start[1]:.1f} s stolen by the hypervisor")
    text = report(info, rows, idle, allocs, sysc, instr, top, wire, time.time() - start, tls_costs)
    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    with open(OUTPUT, "w") as f:
        f.write(text)
    raw = {"info": info, "rows": [{"group": r.group, "label": r.label, "metric": r.metric, "samples": r.samples,
                                   "cpu_us_per_op": r.cpu} for r in rows],
           "idle": idle, "allocs": allocs, "syscalls": sysc, "instructions": instr, "tls": tls_costs,
           "failures": failures}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    log("")
    log(text)
    log(f"bench: report written to {os.path.relpath(OUTPUT, ROOT)} ({(time.time() - start) / 60:.1f} minutes)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
