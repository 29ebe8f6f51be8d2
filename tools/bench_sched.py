#!/usr/bin/env python3
"""Cost of the deterministic scheduler, measured in one run.

For the VM stress workload (2 CPU processes, pagedaemon, swapcached; fixed
kernel; 4 files of 32 pages per CPU) it runs each strategy to --steps steps
(the scheduler then asks for shutdown) and prints steps/s, turn hand-offs/s
and workload ops/s; then the same workload in free mode (wall clock, no
scheduler) for as long as the slowest deterministic run took, for the
ops/s ratio.  Each deterministic run is done twice to show that the trace
hash repeats.

Usage:  python tools/bench_sched.py [--steps N] [--tick-steps N] [--seed S]
"""
import argparse
import time

from smpvm.config import MachineConfig, SchedConfig
from smpvm.kern.kproc import Supervisor
from smpvm.race import sched
from smpvm.stress.workloads import stress_worker, workload_counters
from smpvm.vm.vm_init import boot_machine, start_kernel_threads, vm_shutdown


def one_run(sc, seconds=None):
    cfg = MachineConfig(ncpus=2, npages=256, nswap=2048, nmeta=64,
                        clock="virtual" if sc.on else "wall", sched=sc)
    m = boot_machine(cfg, "fixed")
    try:
        with Supervisor(m) as sup:
            start_kernel_threads(sup)
            sup.start_cpus(stress_worker, sc.seed, None, 4, 32)
            t0 = time.monotonic()
            outcome = sup.wait(seconds if seconds else 300)
            if not sc.on:
                sup.shutdown(hooks=[vm_shutdown])
            dt = time.monotonic() - t0
            if outcome == "panic":
                raise SystemExit(sup.report)
        out = {"seconds": dt, "ops": workload_counters(m)["ops"]}
        if sc.on:
            out.update(sched.summary(m))
        return out
    finally:
        m.destroy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200000)
    ap.add_argument("--tick-steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(f"{'strategy':<9} {'steps':>8} {'s':>6} {'steps/s':>9} "
          f"{'handoffs/s':>10} {'ops':>6} {'ops/s':>7}  trace hash (x2)")
    slowest = 0.0
    best_ops = 0.0
    for strategy in ("random", "pct", "bounded"):
        sc = SchedConfig(strategy=strategy, seed=a.seed, k=a.steps,
                         max_steps=a.steps, tick_steps=a.tick_steps)
        r = one_run(sc)
        r2 = one_run(sc)
        slowest = max(slowest, r["seconds"])
        best_ops = max(best_ops, r["ops"] / r["seconds"])
        print(f"{strategy:<9} {r['steps']:>8} {r['seconds']:>6.2f} "
              f"{r['steps'] / r['seconds']:>9.0f} "
              f"{r['switches'] / r['seconds']:>10.0f} {r['ops']:>6} "
              f"{r['ops'] / r['seconds']:>7.0f}  {r['trace_hash']} "
              f"{'same' if r2['trace_hash'] == r['trace_hash'] else 'DIFFERS'}")
    f = one_run(SchedConfig(seed=a.seed), seconds=max(1.0, slowest))
    print(f"{'free':<9} {'-':>8} {f['seconds']:>6.2f} {'-':>9} {'-':>10} "
          f"{f['ops']:>6} {f['ops'] / f['seconds']:>7.0f}")
    print(f"free ops/s over the best deterministic ops/s: "
          f"{f['ops'] / f['seconds'] / best_ops:.1f}x")


if __name__ == "__main__":
    main()
