#!/usr/bin/env python3
"""Observer effect of the lock profiler, from one run: stress ops/s with
profiling off vs on (same seed, same options, alternating runs), and the
site lookups the profiler made.  Goal: <= 10 % overhead (not an assertion).

Usage: python tools/bench_lockstat.py [--seconds S] [--reps N] [--cpus N]
"""
import argparse
import statistics
import sys
import tempfile

from smpvm.stress.options import StressOptions
from smpvm.stress.session import run


def one(seconds, cpus, seed, profile):
    with tempfile.TemporaryDirectory(prefix="lockstat-bench-") as d:
        f = run(StressOptions(seconds=seconds, cpus=cpus, seed=seed,
                              quiet=True,
                              lockstat_dir=d if profile else "",
                              check_every=1e9))
    if f.exit != 0:
        sys.exit(f"bench_lockstat: stress run failed (exit {f.exit})")
    return f.metrics["ops_per_second"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cpus", type=int, default=2)
    a = p.parse_args(argv)
    off, on = [], []
    for rep in range(a.reps):
        off.append(one(a.seconds, a.cpus, rep + 1, False))
        on.append(one(a.seconds, a.cpus, rep + 1, True))
    mo, mn = statistics.median(off), statistics.median(on)
    print(f"stress ops/s, {a.cpus} cpus, {a.seconds:g} s x {a.reps} reps "
          f"(same seeds, alternating)")
    print(f"  profiling off   median {mo:10.1f}   {off}")
    print(f"  profiling on    median {mn:10.1f}   {on}")
    ratio = mn / mo if mo else 0.0
    overhead = 1 - ratio
    print(f"  on/off ratio {ratio:.3f}  overhead {100 * overhead:.1f} %  "
          f"(goal <= 10 %: {'met' if overhead <= 0.10 else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
