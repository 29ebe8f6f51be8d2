#!/usr/bin/env python3
"""Cost of checked mode, from one run: stress ops/s unchecked vs checked
(every checker, and each alone; same seeds, alternating runs), and how many
field accesses the checkers saw.  Goal: checked <= 3x slower (TSan is
5-15x).  Not an assertion: the figures go in the notes.

Usage: python tools/bench_check.py [--seconds S] [--reps N] [--cpus N]
                                   [--modes all,fields,witness,hb]
                                   [--sample N]
"""
import argparse
import statistics
import sys

from smpvm.stress.options import StressOptions
from smpvm.stress.session import run


def one(seconds, cpus, seed, check, sample):
    f = run(StressOptions(seconds=seconds, cpus=cpus, seed=seed,
                          quiet=True, check=check, check_sample=sample,
                          check_every=1e9))
    if f.exit != 0:
        sys.exit(f"bench_check: stress run ({check or 'unchecked'}) failed "
                 f"(exit {f.exit})")
    return (f.metrics["ops_per_second"],
            f.race_summary.get("accesses_checked", 0) / f.seconds)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--modes", default="all,fields,witness,hb")
    p.add_argument("--sample", type=int, default=1,
                   help="happens-before: check 1 access in N")
    a = p.parse_args(argv)
    modes = [""] + [m for m in a.modes.split(",") if m]
    ops = {m: [] for m in modes}
    rate = {m: [] for m in modes}
    for rep in range(a.reps):
        for m in modes:
            o, c = one(a.seconds, a.cpus, rep + 1, m, a.sample)
            ops[m].append(o)
            rate[m].append(c)
    base = statistics.median(ops[""])
    print(f"stress ops/s, {a.cpus} cpus, {a.seconds:g} s x {a.reps} reps "
          f"(same seeds, alternating), hb sample 1/{a.sample}")
    for m in modes:
        med = statistics.median(ops[m])
        slow = base / med if med else float("inf")
        print(f"  {m or 'unchecked':<10} median {med:9.1f} ops/s  "
              f"{slow:5.2f}x slower  accesses checked/s "
              f"{statistics.median(rate[m]):11.0f}  runs {ops[m]}")
    if "all" in ops:
        slow = base / statistics.median(ops["all"])
        print(f"  checked (all) / unchecked: {slow:.2f}x "
              f"(goal <= 3x: {'met' if slow <= 3 else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
