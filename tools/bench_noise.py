#!/usr/bin/env python3
"""Noise benchmark: what free runs' noise (`--noise LEVEL`) costs.

Off (level 0) the preemption hook stays NULL, as it always was, and each
atomic has one more predictable branch on a process-local flag; on, the
hook runs at every preemption point and, at the points the seed armed,
delays the thread (a host yield, a spin of 1-51 us, a sleep of 50 us-2 ms).

Measured in one run, on one machine:
  * ns per spinlock lock+unlock pair in a C loop (two preemption points)
    and per Python-facing atomic (one point and one publish point), with
    this process playing a CPU thread of a machine of each noise level;
  * free stress ops/s at each level, levels alternating, same seeds.
Prints each figure and its ratio to level 0.

Usage: python tools/bench_noise.py [--rounds 3] [--seconds 4]
"""
import argparse
import statistics
import sys
import time

from smpvm.config import MachineConfig
from smpvm.kern.thread import bound_thread
from smpvm.layout import ffi, lib, threads
from smpvm.machine import Machine
from smpvm.stress.options import StressOptions
from smpvm.stress.session import run

LEVELS = tuple(range(lib.NOISE_MAX + 1))


def primitives(level, n=200000):
    """(ns per C spin lock+unlock, ns per Python atomic_fetchadd_long)
    for this process as a CPU thread of a machine with noise level."""
    cfg = MachineConfig(ncpus=2, noise=level, noise_seed=1)
    with Machine.create(cfg) as m:
        with bound_thread(m, "bench", kind=lib.TDK_CPU, cpu=0):
            lib.smpvm_noise_attach()
            spin_ns = lib.smpvm_bench_spin_loop(7, n) / n
            word = ffi.new("uint64_t *")
            add = lib.atomic_fetchadd_long
            k = n // 4
            t0 = time.perf_counter_ns()
            for _ in range(k):
                add(word, 1)
            atomic_ns = (time.perf_counter_ns() - t0) / k
            td = threads(m.base)
            delays = sum(int(td[i].n_noise)
                         for i in range(m.config.maxthreads))
    return spin_ns, atomic_ns, delays


def stress_ops(level, seed, seconds):
    f = run(StressOptions(cpus=2, seconds=seconds, seed=seed, noise=level,
                          quiet=True, check_every=seconds))
    return f.metrics["ops_per_second"], f.metrics["noise_delays"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    a = p.parse_args(argv)
    prim = {lv: [] for lv in LEVELS}
    ops = {lv: [] for lv in LEVELS}
    for r in range(a.rounds):
        for lv in LEVELS:
            prim[lv].append(primitives(lv))
        for lv in LEVELS:
            ops[lv].append(stress_ops(lv, r + 1, a.seconds))
    s0 = statistics.median(x[0] for x in prim[0])
    a0 = statistics.median(x[1] for x in prim[0])
    o0 = statistics.median(x[0] for x in ops[0])
    print(f"noise: median of {a.rounds} rounds; stress runs of "
          f"{a.seconds:g} s, 2 CPUs")
    print("| level | C spin lock+unlock ns | ratio | Python atomic ns | "
          "ratio | delays (prim.) | stress ops/s | ratio | delays/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for lv in LEVELS:
        sp = statistics.median(x[0] for x in prim[lv])
        at = statistics.median(x[1] for x in prim[lv])
        dl = statistics.median(x[2] for x in prim[lv])
        op = statistics.median(x[0] for x in ops[lv])
        nd = statistics.median(x[1] for x in ops[lv]) / a.seconds
        print(f"| {lv} | {sp:.1f} | {sp / s0:.2f} | {at:.0f} | "
              f"{at / a0:.2f} | {dl} | {op:.0f} | {op / o0:.2f} | "
              f"{nd:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
