#!/usr/bin/env python3
"""Checks that bench.py's report() writes exactly the expected BENCHMARKS.md for a fixed set of
measurements. Needs nothing but python3; runs nothing:

    python3 benches/test_report.py           exit status 1, with a diff, on any difference
    python3 benches/test_report.py --write   after an intended change of the report: rewrites
                                             the expected files (then read their diff)

benches/report-test/measurements.json holds what report() received in one BENCH_QUICK=1 run,
with the rows reduced to their rounds and CPU times (labels and targets come from
build_rows(), samples from the rounds); the snap7 kit's rows and its system-call count come
from a later quick run, when the kit had its rows. Two renderings are compared:
    full.md     the run as measured;
    reduced.md  the same numbers with what a run can lack taken away (no python-snap7 venvs,
                no strace, no callgrind_annotate, no SCHED_FIFO, failed programs, a wire
                difference, no openssl for the TLS rows, a snap7 kit that could not be built)
                and a full run's settings, so that the report's other branches are covered too.
"""
import copy
import difflib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

DATA = os.path.join(HERE, "report-test")
# Only the command lines that build_rows() makes use these; the report never shows them.
PORTS = {"seq": 1, "same": 2, "multi": 3, "s7": 4, "s7same": 5,
         "tls": {"cotp": 6, "tcp": {20: 7, 4096: 8, 65536: 9}, "pin": "00" * 32}}
LIBSNAP7 = "libsnap7.so"
SNAP7_KIT = "target/snap7-kit/libsnap7.so"
PY3 = "python3"


def settle(settings, failures):
    """Sets the module globals report() reads."""
    for name, value in settings.items():
        setattr(bench, name, value)
    bench.failures[:] = failures


def make_rows(measured, libsnap7, py3, ports=PORTS, kit=None):
    """build_rows()'s rows for these peers, with the measured rounds and CPU times."""
    by_key = {(m["group"], m["label"]): m for m in measured}
    rows = bench.build_rows(ports, libsnap7, py3, kit)
    for row in rows:
        m = by_key.get((row.group, row.label))
        if m is None:
            sys.exit(f"test_report: measurements.json has no row {row.group!r} / {row.label!r}")
        names = [name for name, _ in row.contenders]
        row.rounds = [{k: v for k, v in r.items() if k in names} for r in m["rounds"]]
        # run_rounds() appends to a contender's samples exactly what it puts in the round.
        row.samples = {name: [r[name] for r in row.rounds if name in r] for name in names}
        row.cpu = {name: list(m["cpu"].get(name, [])) for name in names}
    return rows


def full(d):
    settle(d["settings"], [])
    rows = make_rows(d["rows"], LIBSNAP7, PY3, kit=SNAP7_KIT)
    if len(rows) != len(d["rows"]):
        sys.exit(f"test_report: build_rows() makes {len(rows)} rows, measurements.json has {len(d['rows'])}")
    return bench.report(d["info"], rows, d["idle"], d["allocs"], d["syscalls"], d["instructions"], d["top"],
                        d["wire"], d["elapsed"], d["tls"])


def reduced(d):
    d = copy.deepcopy(d)
    settle(dict(d["settings"], QUICK=False, ROUNDS=9, RT=False, IDLE_CONNS=10000),
           ["stream 64 KiB messages, TPDU 8192 isotcp: exit 134: thread 'main' panicked",
            "idle isotcp: timed out after 300 s"])
    # A kit that benches/run could not build: its section says why.
    d["info"]["snap7_kit_missing"] = "snap7/build.sh failed: no C++ compiler (g++); .ci/setup-snap7 installs g++"
    # No openssl: no TLS peers, no TLS rows.
    rows = make_rows(d["rows"], None, None, {k: v for k, v in PORTS.items() if k != "tls"})
    stream8k = next(r for r in rows if r.group == "stream" and "8192" in r.label)
    for r in stream8k.rounds:
        r.pop("isotcp", None)
    stream8k.samples["isotcp"], stream8k.cpu["isotcp"] = [], []
    idle = dict(d["idle"], isotcp={"rss": None, "heap": None})
    sysc = [(label, name, None, pf) for label, name, _, pf in d["syscalls"]
            if name not in ("python-snap7", "snap7") and not label.startswith("S7")]
    instr = [(label, None if label.startswith("isotcp round trip 20 B") else per) for label, per in d["instructions"]]
    wire = [(label, nbytes, same and "4 KiB" not in label) for label, nbytes, same in d["wire"]]
    return bench.report(d["info"], rows, idle, [], sysc, instr, None, wire, d["elapsed"])


def main():
    write = sys.argv[1:] == ["--write"]
    with open(os.path.join(DATA, "measurements.json")) as f:
        d = json.load(f)
    failed = 0
    for name, render in (("full", full), ("reduced", reduced)):
        path = os.path.join(DATA, name + ".md")
        got = render(d)
        if write:
            with open(path, "w", newline="") as f:
                f.write(got)
            print(f"test_report: wrote {os.path.relpath(path)}")
            continue
        with open(path, newline="") as f:
            want = f.read()
        if got == want:
            print(f"test_report: {name}: same as {os.path.relpath(path)}")
        else:
            failed += 1
            print(f"test_report: {name}: differs from {os.path.relpath(path)}:")
            sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                       "expected", "report()"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
