#!/usr/bin/env python3
"""Detection benchmark: every registered bug on purpose (smpvm/vm/vm_init.py
BUGS), run checked over K seeds until the first finding, and the fixed
kernel the same way (it must give none).  Prints, per bug: which detector
caught it (race report type, assertion panic, hang forensics, invariant
checker, stress verifier), the fraction of seeds that found it and the
median seconds to detection.

Free-running schedules (real parallel CPUs); goals (issue 7): every bug
detected, each seed bug in < 60 s, median <= 10 s.  Not an assertion.

Usage: python tools/bench_detect.py [--seeds K] [--seconds S] [--bugs a,b]
"""
import argparse
import statistics
import sys
import time

from smpvm.stress.harness import StressOptions, run
from smpvm.vm.vm_init import BUGS


def detectors(code, r):
    """What found the run's problem, and when (seconds)."""
    found, t = [], None
    for rep in r.get("races", []):
        found.append(f"race:{rep['type']}")
    if r.get("races"):
        t = r.get("first_report_s")
    if r.get("failures") or r["workload"]["failures"] or \
            r["workload"]["zero_fills"]:
        found.append("stress verifier")
        t = t if t is not None else r.get("first_failure_s")
    if r.get("panic"):
        found.append("assertion panic")
    if r.get("hang") or r.get("waits"):
        found.append("hang forensics")
    if r.get("violations"):
        found.append("invariant checker")
    if found and t is None:
        t = r["seconds"]
    return sorted(set(found)), t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--bugs", default="", help="comma list (default: all)")
    a = p.parse_args(argv)
    names = [b for b in a.bugs.split(",") if b] or sorted(BUGS)
    rows = []
    for name in names + ["(fixed kernel)"]:
        bug = "" if name.startswith("(") else name
        hits, times, found = 0, [], set()
        t0 = time.monotonic()
        for seed in range(1, a.seeds + 1):
            code, r = run(StressOptions(
                seconds=a.seconds, cpus=a.cpus, seed=seed, bug=bug,
                check="all", quiet=True, check_every=2.0,
                stop_on_detection=True))
            d, t = detectors(code, r)
            if d:
                hits += 1
                found.update(d)
                times.append(t)
        med = statistics.median(times) if times else None
        rows.append((name, ", ".join(sorted(found)) or "-", hits, med,
                     time.monotonic() - t0))
        print(f"  {name:<26} {hits}/{a.seeds} found  median "
              f"{'-' if med is None else f'{med:.1f} s':>7}  by "
              f"{', '.join(sorted(found)) or '-'}", flush=True)
    print(f"\ndetection over {a.seeds} seeds x <= {a.seconds:g} s, "
          f"{a.cpus} cpus, checked (all), free-running schedules")
    print(f"{'bug':<26} {'found':>6} {'median s':>9}  detector")
    for name, by, hits, med, _ in rows:
        print(f"{name:<26} {hits:>3}/{a.seeds:<2} "
              f"{'-' if med is None else f'{med:.1f}':>9}  {by}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
