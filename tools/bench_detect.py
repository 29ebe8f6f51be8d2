#!/usr/bin/env python3
"""Detection benchmark: every registered bug on purpose (smpvm/vm/bugs.py
BUGS), run checked over K seeds with each strategy until the first
finding, and the fixed kernel the same way (it must give none).  Prints,
per bug and strategy: which detector caught it (race report type, assertion
panic, hang forensics, invariant checker, stress verifier), the fraction of
seeds that found it, the first seed that did (a deterministic schedule
replays from it), and the median steps and seconds to detection.

Strategies: free (real parallel CPUs, the stress defaults, --seconds per
run) and the deterministic random, pct and bounded (the registry's profile
over the hunting profile: a small machine where the cache fills and cleans
within a few hundred thousand steps, destructive ops not rate-limited;
--steps counts the workload's steps, after the set-up).  `smpvm hunt` is
the tool for bugs nobody registered; this table measures the checkers.  Goals (issue 7):
every bug detected; each of the seed's bugs in < 60 s; median <= 10 s.
Not an assertion: the figures go in the notes.

Usage: python tools/bench_detect.py [--seeds K] [--strategies free,random,
       pct,bounded] [--bugs a,b] [--seconds S] [--steps N]
"""
import argparse
import statistics
import sys
import time

from smpvm.stress.options import StressOptions, hunt_profile
from smpvm.stress.session import run
from smpvm.vm.bugs import BUGS


def options(bug, strategy, seed, a):
    if strategy == "free":
        return StressOptions(seconds=a.seconds, cpus=2, seed=seed, bug=bug,
                             check="all", quiet=True, check_every=2.0,
                             stop_on_detection=True)
    return StressOptions(seconds=a.seconds, cpus=2, seed=seed, bug=bug,
                         check="all", quiet=True, sched=strategy,
                         steps=a.steps, **hunt_profile(bug))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=20.0,
                   help="free runs: seconds each (deterministic: limit)")
    p.add_argument("--steps", type=int, default=300000)
    p.add_argument("--strategies", default="free,random,pct,bounded")
    p.add_argument("--bugs", default="", help="comma list (default: all)")
    a = p.parse_args(argv)
    names = [b for b in a.bugs.split(",") if b] or sorted(BUGS)
    strategies = [s for s in a.strategies.split(",") if s]
    rows = []
    for name in names + ["(fixed kernel)"]:
        bug = "" if name.startswith("(") else name
        for st in strategies:
            hits, times, steps, found, first = 0, [], [], set(), None
            sweep0, to_first = time.monotonic(), None
            for seed in range(1, a.seeds + 1):
                t0 = time.monotonic()
                r = run(options(bug, st, seed, a))
                d, t = r.detectors()
                if d:
                    hits += 1
                    found.update(d)
                    times.append(t if st == "free"
                                 else time.monotonic() - t0)
                    if r.sched:
                        steps.append(r.sched["steps"])
                    if first is None:
                        first = seed
                        # seeds 1.. swept in order until the first finding
                        to_first = (time.monotonic() - sweep0
                                    if st != "free" else
                                    (seed - 1) * a.seconds + t)
            med = statistics.median(times) if times else None
            mst = int(statistics.median(steps)) if steps else None
            rows.append((name, st, hits, first, to_first, mst, med,
                         ", ".join(sorted(found)) or "-"))
            print(f"  {name:<25} {st:<8} {hits}/{a.seeds} first seed "
                  f"{first} after {to_first and round(to_first, 1)} s  "
                  f"median {mst} steps "
                  f"{'-' if med is None else f'{med:.1f} s'}  by "
                  f"{', '.join(sorted(found)) or '-'}", flush=True)
    print(f"\ndetection: {a.seeds} seeds per cell, checked (all); free: "
          f"{a.seconds:g} s runs of the stress defaults; random/pct/bounded: "
          f"<= {a.steps} steps of the hunting profile")
    print("| bug | strategy | found | first seed | s to first | median "
          "steps | median s | detector |")
    print("|---|---|---|---|---|---|---|---|")
    for name, st, hits, first, tf, mst, med, by in rows:
        print(f"| {name} | {st} | {hits}/{a.seeds} | {first or '-'} | "
              f"{'-' if tf is None else f'{tf:.1f}'} | {mst or '-'} | "
              f"{'-' if med is None else f'{med:.1f}'} | {by} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
