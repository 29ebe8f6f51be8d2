"""`smpvm stress`: hammer the VM on every CPU and prove no byte is wrong.

One seed drives the run: each CPU's op sequence, the swarm choices, the
SSD faults.  The supervisor shows a status line each second, stops the
world every few seconds to check the structural invariants (reference
7.1), watches for panics and hangs, and at the end reports every metric,
every failure with its stamps and op log, and the command that replays the
run.  Exit codes: 0 clean, 1 data or invariant failure, 2 usage, 3 panic
or hang.
"""
import dataclasses
import glob
import json
import os
import random
import signal
import sys
import time

from smpvm import layout
from smpvm.config import MachineConfig, SchedConfig
from smpvm.errors import SmpvmError
from smpvm.kern import ddb, sysctl
from smpvm.kern.kproc import Supervisor
from smpvm.kern.safepoint import restart_the_world, stop_the_world
from smpvm.layout import lib, threads
from smpvm.race import forensics, report, sched
from smpvm.stress.workloads import (OPS, STRESS_MIX, stress_worker,
                                    workload_counters)
from smpvm.vm.bugs import BUGS, bug_bits
from smpvm.vm.vm_init import boot_machine, start_kernel_threads, vm_shutdown
from smpvm.vm.vm_invariants import check_all
from smpvm.vm.vm_meter import swapcache_status

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_PANIC = 0, 1, 2, 3
HANG_SECONDS = 30


@dataclasses.dataclass
class StressOptions:
    cpus: int = dataclasses.field(
        default_factory=lambda: MachineConfig().ncpus)
    seconds: float = 30.0
    seed: int = 1
    kernel: str = "fixed"
    mix: dict = dataclasses.field(default_factory=lambda: dict(STRESS_MIX))
    npages: int = 448           # memory < the working set: pages cycle
    nswap: int = 1024           # SSD < the working set: cleaning cycles
    nmeta: int = 256
    files: int = 8
    file_pages: int = 64
    check_every: float = 5.0
    eio_ppm: int = 0
    short_ppm: int = 0
    enospc_ppm: int = 0
    delay_ppm: int = 0
    delay_us: int = 200
    kill_cpu_at: float = 0.0
    swarm: bool = False
    bug: str = ""
    lockstat_dir: str = ""
    stop_on_detection: bool = False     # end the run at the first finding
    gap_scale: float = 1.0      # x MIN_OP_GAP (0: no rate limit)
    sysctls: tuple = ()         # (("vm.swapcache.maxlaunder", "8"), ...) at boot
    # deterministic schedule (race/sched.py): off, random, pct, bounded,
    # forced (a recorded choice list: `schedule`)
    sched: str = "off"
    steps: int = 20000          # the schedule asks for shutdown here
    tick_steps: int = 200       # one virtual tick every N steps
    pct_depth: int = 3
    bound: int = 2
    schedule: tuple = ()        # forced: ((step, tid, kind), ...)
    trace: int = 0              # full-trace events kept (for scenarios)
    check: str = ""             # race checkers (config.CHECKERS, or all)
    check_sample: int = 1
    quiet: bool = False
    json_path: str = ""

    def validate(self):
        if self.seconds <= 0:
            raise SmpvmError(f"--seconds {self.seconds}: must be > 0")
        if self.kernel not in ("seed", "fixed"):
            raise SmpvmError(f"--kernel {self.kernel}: seed or fixed")
        bad = [k for k in self.mix if k not in OPS]
        if bad:
            raise SmpvmError(f"--mix: unknown op {bad[0]!r} (ops: "
                             f"{', '.join(OPS)})")
        if any(w < 0 for w in self.mix.values()) or \
                not any(self.mix.values()):
            raise SmpvmError("--mix: weights must be >= 0, not all 0")
        if self.bug and self.bug not in BUGS:
            raise SmpvmError(f"--bug {self.bug!r}: one of "
                             f"{', '.join(sorted(BUGS))}")
        if self.files < 1 or self.file_pages < 1:
            raise SmpvmError("--files and --file-pages must be >= 1")
        for f in ("eio_ppm", "short_ppm", "enospc_ppm", "delay_ppm"):
            if not 0 <= getattr(self, f) <= 1000000:
                raise SmpvmError(f"--{f.replace('_', '-')}: 0..1000000")
        for name, value in self.sysctls:
            sysctl.parse_value(sysctl.lookup(name), str(value))
        if self.sched not in ("off", "random", "pct", "bounded", "forced"):
            raise SmpvmError(f"--sched {self.sched}: off, random, pct or "
                             "bounded")
        if self.sched != "off" and (self.steps < 1 or self.tick_steps < 0):
            raise SmpvmError("--steps must be >= 1 and --tick-steps >= 0")
        if self.sched != "off" and self.kill_cpu_at:
            raise SmpvmError("--kill-cpu-at needs free-running schedules")
        cfg = self.machine_config().validate()
        if self.nmeta // self.cpus < 1:
            raise SmpvmError("--nmeta must give every CPU a page")
        return cfg

    def sched_config(self):
        """The SchedConfig of a deterministic run (strategy off if free).
        The schedule's seed is the run's seed: one seed drives all."""
        return SchedConfig(strategy=self.sched, seed=self.seed,
                           depth=self.pct_depth, k=self.steps,
                           bound=self.bound,
                           schedule=tuple(tuple(c) for c in self.schedule),
                           max_steps=self.steps, tick_steps=self.tick_steps,
                           trace=self.trace)

    def machine_config(self):
        det = self.sched != "off"
        return MachineConfig(ncpus=self.cpus, npages=self.npages,
                             nswap=self.nswap, nmeta=self.nmeta,
                             check=self.check,
                             check_sample=self.check_sample,
                             clock="virtual" if det else "wall",
                             sched=self.sched_config())

    def replay_command(self):
        """The exact command that replays this run."""
        d = StressOptions()
        args = ["smpvm", "stress", "--seed", str(self.seed), "--seconds",
                f"{self.seconds:g}", "--cpus", str(self.cpus), "--kernel",
                self.kernel]
        if self.mix != d.mix and not self.swarm:
            args += ["--mix", ",".join(f"{k}={v}" for k, v in
                                       self.mix.items())]
        for f in ("npages", "nswap", "nmeta", "files", "file_pages",
                  "eio_ppm", "short_ppm", "enospc_ppm", "delay_ppm",
                  "delay_us", "kill_cpu_at", "gap_scale"):
            if getattr(self, f) != getattr(d, f):
                args += ["--" + f.replace("_", "-"), f"{getattr(self, f):g}"]
        if self.swarm:
            args.append("--swarm")
        if self.bug:
            args += ["--bug", self.bug]
        if self.lockstat_dir:
            args += ["--lockstat", self.lockstat_dir]
        for name, value in self.sysctls:
            args += ["--sysctl", f"{name}={value}"]
        if self.check:
            args += ["--check", self.check]
        if self.check_sample != 1:
            args += ["--check-sample", str(self.check_sample)]
        if self.sched not in ("off", "forced"):
            args += ["--sched", self.sched, "--steps", str(self.steps)]
            for f in ("tick_steps", "pct_depth", "bound"):
                if getattr(self, f) != getattr(d, f):
                    args += ["--" + f.replace("_", "-"),
                             str(getattr(self, f))]
        return " ".join(args)


def swarm(opts):
    """Swarm testing: the seed picks a random subset of the ops and their
    weights (reads always stay, so there is something to verify)."""
    rng = random.Random(opts.seed ^ 0x5eed)
    mix = {}
    for k in OPS:
        if k == "read" or rng.random() < 0.6:
            mix[k] = rng.choice((1, 2, 5, 10, 20, 40))
    opts.mix = mix
    return opts


def _status_line(t, m, last_ops, dt):
    w = workload_counters(m)
    s = swapcache_status(m)
    ops_s = (w["ops"] - last_ops) / dt if dt > 0 else 0.0
    return (f"{t:6.1f}s  {ops_s:8.0f} ops/s  verified {w['reads_verified']:>8}"
            f"  ssd {w['ssd_pages']:>7} pg  ssd written "
            f"{s['swap_writes']['pages'] * 4096 / 1e6:7.1f} MB  "
            f"{s['state']:<8} curburst {s['curburst'] / 1e6:6.2f} MB  "
            f"failures {w['failures']}"), w["ops"]


def _failures(m):
    out = []
    for path in sorted(glob.glob(os.path.join(m.datadir, "failures",
                                              "*.jsonl"))):
        with open(path) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def run(opts, out=sys.stdout):
    """Run one stress test; returns (exit code, result dict)."""
    opts.validate()
    if opts.swarm:
        swarm(opts)
    cfg = opts.machine_config()
    m = boot_machine(cfg, opts.kernel, "demo")
    v_bugs = bug_bits(opts.bug)
    result = {"seed": opts.seed, "options": dataclasses.asdict(opts),
              "replay": opts.replay_command(), "timeline": [],
              "invariant_checks": 0, "violations": [], "panic": None,
              "hang": None}
    t0 = time.monotonic()
    code = EXIT_OK
    try:
        from smpvm.vm.vmview import vmview
        v = vmview(m).raw
        v.vmg.bugs |= v_bugs
        # the stress workload rewrites pages fast: let swapcached write half
        # the SSD per second (demo: 1/8) so the cache fills and cleans
        sc = v.vmg.swapcache
        sc.accrate = cfg.nswap * 4096 // 2
        sc.minburst = sc.accrate
        sc.maxburst = sc.curburst = 4 * sc.accrate
        for name, value in opts.sysctls:
            sysctl.sysctl_set(m, name, str(value))
        f = v.vmg.faults
        f.seed = opts.seed
        f.eio_ppm, f.short_ppm = opts.eio_ppm, opts.short_ppm
        f.enospc_ppm, f.delay_ppm = opts.enospc_ppm, opts.delay_ppm
        f.delay_us = opts.delay_us
        samples = []
        if opts.lockstat_dir:
            from smpvm.prof import lockstat
            m.hdr.prof_enabled = 1
        with Supervisor(m) as sup:
            kt = start_kernel_threads(sup)
            cpus = sup.start_cpus(stress_worker, opts.seed, opts.mix,
                                  opts.files, opts.file_pages, None,
                                  opts.gap_scale)
            if not opts.quiet:
                print(f"smpvm stress: {m.name}, {opts.cpus} cpus, kernel "
                      f"{opts.kernel}, seed {opts.seed}, mix "
                      f"{','.join(f'{k}={w}' for k, w in opts.mix.items())}",
                      file=out, flush=True)
            if opts.sched != "off":
                outcome = _run_scheduled(m, sup, opts, result, t0)
            last_ops, last_t = 0, time.monotonic()
            last_progress = time.monotonic()
            next_check = time.monotonic() + opts.check_every
            killed = False
            watched = {}
            if opts.sched == "off":
                outcome = "running"
            while opts.sched == "off":
                now = time.monotonic()
                remaining = t0 + opts.seconds - now
                if remaining <= 0:
                    break
                outcome = sup.wait(min(0.25 if opts.stop_on_detection
                                       else 1.0, remaining))
                if outcome == "panic":
                    break
                now = time.monotonic()
                if _detected(m, result, now - t0) and opts.stop_on_detection:
                    break
                line, ops = _status_line(now - t0, m, last_ops,
                                         now - last_t)
                if ops != last_ops:
                    last_progress = now
                last_ops, last_t = ops, now
                if not opts.quiet:
                    print(line, file=out, flush=True)
                if opts.lockstat_dir:
                    samples.append((now, lockstat.class_waits(
                        lockstat.snapshot(m))))
                st = swapcache_status(m)
                result["timeline"].append({
                    "t": round(now - t0, 2), "ops": ops,
                    "curburst": st["curburst"], "state": st["state"],
                    "cache_use": st["swap"]["cache_use"],
                    "write_count": st["write_count"]})
                if now - last_progress > HANG_SECONDS:
                    result["hang"] = ("no operation completed for "
                                      f"{HANG_SECONDS} s\n" +
                                      forensics.hang_report(m))
                    dump_stacks(m)
                    break
                if _watchdog(m, result, watched, out, opts.quiet):
                    break
                if opts.kill_cpu_at and not killed and \
                        now - t0 >= opts.kill_cpu_at:
                    killed = True
                    victim = cpus[random.Random(opts.seed).randrange(
                        len(cpus))]
                    os.kill(sup.procs[victim].pid, signal.SIGKILL)
                if now >= next_check:
                    _check(m, kt, result)
                    next_check = time.monotonic() + opts.check_every
            if opts.sched != "off":
                pass                    # _run_scheduled ended the run
            elif outcome != "panic" and not result["hang"]:
                _check(m, kt, result)
                sup.shutdown(hooks=[vm_shutdown])
                if m.panicked:
                    outcome = sup.collect_panic()
            if outcome == "panic":
                result["panic"] = sup.report
                result["forensics"] = forensics.hang_report(m)
        result["seconds"] = round(time.monotonic() - t0, 2)
        result["workload"] = workload_counters(m)
        result["swapcache"] = swapcache_status(m)
        result["failures"] = _failures(m)
        w = result["workload"]
        pages = max(1, w["pages_read"])
        result["metrics"] = {
            "ops_per_second": round(w["ops"] / result["seconds"], 1),
            "hit_ratio": round(w["ssd_pages"] / pages, 4),
            "ssd_mb_written": round(
                result["swapcache"]["swap_writes"]["pages"] * 4096 / 1e6, 2),
            "cleaning_passes": result["swapcache"]["cleaning_passes"],
            "faults_injected": int(v.vmg.faults.injected),
        }
        result["locks"] = ddb.lock_summary(m)
        result["races"] = report.reports(m)
        result["race_summary"] = report.summary(m)
        if opts.sched != "off":
            result["schedule"] = dataclasses.asdict(
                sched.recorded_schedule(m))
            result["sched"] = sched.summary(m)
            if opts.sched == "pct":
                # PCT's guarantee for a bug of depth d, with n threads
                # scheduled and k steps: 1 / (n k^(d-1)) per run
                n = opts.cpus + len(kt)
                result["sched"]["pct_bound"] = sched.pct_bound(
                    n, opts.steps, opts.pct_depth)
                result["sched"]["pct_n_k_d"] = (n, opts.steps,
                                                opts.pct_depth)
            result["panic_tid"] = int(m.hdr.panic_tid) if m.panicked else -1
            if result["panic"] or result["hang"]:
                names = _thread_names(m)
                result["sched_ring"] = [
                    f"{e.step:>8} {names.get(e.tid, e.tid):>10} "
                    + forensics.event_text(
                        m, sched.OP_NAMES.get(e.op, str(e.op)), e.id)
                    for e in sched.trace_ring(m)[-40:]]
            if opts.trace:
                result["trace"] = [
                    (e.step, e.tid, forensics.event_text(
                        m, sched.OP_NAMES.get(e.op, str(e.op)), e.id))
                    for e in sched.trace(m)]
                result["thread_names"] = _thread_names(m)
        if opts.lockstat_dir:
            lockstat.write_all(lockstat.snapshot(m), samples,
                               opts.lockstat_dir)
        if result["races"]:
            code = EXIT_FAIL    # the diagnosis, even if a panic followed
        elif result["panic"] or result["hang"]:
            code = EXIT_PANIC
        elif result["failures"] or result["violations"] or w["failures"] \
                or w["zero_fills"]:
            code = EXIT_FAIL
    finally:
        m.destroy()
    result["exit"] = code
    return code, result


def _run_scheduled(m, sup, opts, result, t0):
    """A deterministic run: the scheduler alone drives the threads (the host
    must not run kernel code meanwhile) and asks for shutdown at
    opts.steps; wait for every thread to exit (opts.seconds is only a
    wall-clock safety limit), then check the invariants of the quiet
    machine.  Returns the supervisor's outcome."""
    outcome = sup.wait(max(opts.seconds, 1.0) * 10)
    if outcome == "timeout":
        result["hang"] = (f"the schedule did not finish within "
                          f"{max(opts.seconds, 1.0) * 10:g} s of wall time "
                          f"(step {sched.steps(m)})\n"
                          + forensics.hang_report(m))
        dump_stacks(m)
        sup.shutdown()
        return outcome
    if outcome == "panic":
        return outcome
    _detected(m, result, time.monotonic() - t0)
    bad = check_all(m, None)            # every thread has exited
    result["invariant_checks"] += 1
    result["violations"] += [f"final check: {b}" for b in bad[:50]]
    return outcome


def _thread_names(m):
    td = threads(m.base)
    return {i: layout.cstr(td[i].name) for i in range(m.config.maxthreads)
            if td[i].name[0] != b"\0"}


def _detected(m, result, t):
    """Note when the first race report, wrong byte and invariant violation
    (or indefinite wait) appear; True once anything was found."""
    rs = report.race_globals(m)
    if rs is not None and rs.nreports and "first_report_s" not in result:
        result["first_report_s"] = round(t, 2)
    w = workload_counters(m)
    if (w["failures"] or w["zero_fills"]) and "first_failure_s" not in result:
        result["first_failure_s"] = round(t, 2)
    if (result["violations"] or result.get("waits")) and \
            "first_violation_s" not in result:
        result["first_violation_s"] = round(t, 2)
    return any(k in result for k in ("first_report_s", "first_failure_s",
                                     "first_violation_s"))


def _watchdog(m, result, watched, out, quiet):
    """The kernel's marks for indefinite waits (spinlock, token, busy,
    tsleep without timeout), from the debug.spin_*_ms sysctls: a warning at
    the first, backtraces and forensics at the second, a hang at the third.
    Returns True when the run must stop."""
    k = m.hdr.kern
    warn_s, bt_s, panic_s = (k.spin_warn_ms / 1e3, k.spin_backtrace_ms / 1e3,
                             k.spin_panic_ms / 1e3)
    for w in forensics.indefinite(m, warn_s):
        key = (w["tid"], w["kind"], w["on"])
        marks = watched.setdefault(key, set())
        if "warn" not in marks:
            marks.add("warn")
            msg = (f"indefinite wait: {w['name']} (tid {w['tid']}) "
                   f"{w['kind']} wait on {w['on']} for {w['seconds']:.1f} s")
            result.setdefault("waits", []).append(msg)
            if not quiet:
                print(msg, file=out, flush=True)
        if w["seconds"] >= bt_s and "backtrace" not in marks:
            marks.add("backtrace")
            result["forensics"] = forensics.hang_report(m, warn_s)
            dump_stacks(m)
        if w["seconds"] >= panic_s:
            result["hang"] = (f"indefinite wait for {w['seconds']:.1f} s\n"
                              + forensics.hang_report(m, warn_s))
            return True
    return False


def dump_stacks(m):
    """Hang forensics: every thread process prints its Python stacks
    (faulthandler on SIGUSR1) to stderr."""
    td = threads(m.base)
    for i in range(m.config.maxthreads):
        if td[i].state != lib.TDS_FREE and td[i].pid > 0:
            try:
                os.kill(td[i].pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass


def _check(m, kt, result):
    """Stop the world, check every invariant, restart."""
    if not stop_the_world(m, wake=(lib.IDENT_SWAPCACHE,
                                   lib.IDENT_PAGEDAEMON)):
        if not m.panicked:
            result["violations"].append(
                "could not stop the world within 10 s:\n" +
                ddb.format_threads(m))
            dump_stacks(m)
        return
    try:
        bad = check_all(m, kt.get("swapcached"))
        result["invariant_checks"] += 1
        if bad:
            result["violations"] += [f"check {result['invariant_checks']}: "
                                     f"{b}" for b in bad[:50]]
    finally:
        restart_the_world(m)


def format_summary(result):
    """The final report: a summary table, then failures and the replay."""
    from rich.console import Console
    from rich.table import Table

    w, s, mt = result["workload"], result["swapcache"], result["metrics"]
    t = Table(title=f"smpvm stress: seed {result['seed']}, kernel "
                    f"{s['kernel']}, {result['seconds']} s")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("operations", w["ops"]), ("ops/s", mt["ops_per_second"]),
        ("reads verified", w["reads_verified"]),
        ("pages read", w["pages_read"]),
        ("pages served by the SSD", w["ssd_pages"]),
        ("hit ratio", mt["hit_ratio"]),
        ("SSD MB written", mt["ssd_mb_written"]),
        ("swapcache state", f"{s['state']} / {s['burst']}"),
        ("writing / cleaning passes",
         f"{s['writing_passes']} / {s['cleaning_passes']}"),
        ("invalidations (unswapped / range)",
         f"{s['invalidations']['unswapped']} / "
         f"{s['invalidations']['range_freed']}"),
        ("writes / mmap / truncates / unlinks",
         f"{w['writes']} / {w['mmap_ops']} / {w['truncates']} / "
         f"{w['unlinks']}"),
        ("chflags / sysctl flips / meta ops / cross reads",
         f"{w['chflags']} / {w['sysctl_flips']} / {w['meta_ops']} / "
         f"{w['cross_reads']}"),
        ("SSD faults injected", mt["faults_injected"]),
        ("invariant checks", result["invariant_checks"]),
        ("violations", len(result["violations"])),
        ("data failures", len(result["failures"]) or w["failures"]),
        ("zero fills", w["zero_fills"]),
    ]
    sc = result.get("sched")
    if sc:
        rows.append(("schedule", f"{sc['strategy']} seed {sc['seed']}: "
                     f"{sc['steps']} steps, {sc['switches']} switches, "
                     f"trace {sc['trace_hash']}"))
        if "pct_bound" in sc:
            n, k, d = sc["pct_n_k_d"]
            rows.append(("PCT bound 1/(n k^(d-1))",
                         f"{sc['pct_bound']:.3g} (n={n}, k={k}, d={d})"))
    rs = result.get("race_summary", {})
    if rs.get("checked"):
        rows.append(("race reports / accesses checked",
                     f"{len(result['races'])} / {rs['accesses_checked']}"))
    for k, val in rows:
        t.add_row(k, str(val))
    con = Console(record=True, width=100)
    with con.capture() as cap:
        con.print(t)
    text = cap.get()
    for f in result["failures"][:10]:
        text += (f"\nFAILURE cpu{f['cpu']} op {f['op']} {f['what']} "
                 f"{f['file']} offset {f['offset']}:\n"
                 f"  expected {f['expected']}\n  found    {f['found']}\n"
                 f"  served from the SSD: {f['served_from_ssd']}; zero-filled"
                 f" pages: {f['zero_filled']}\n  last ops: "
                 f"{f['recent_ops'][-8:]}\n")
    for vline in result["violations"][:20]:
        text += f"\nINVARIANT {vline}"
    if result["panic"]:
        text += "\n" + result["panic"]
    if result["hang"]:
        text += "\nHANG: " + result["hang"]
    for r in result.get("races", []):
        text += "\n" + report.format_report(r, result.get("replay"))
    if result["exit"] != EXIT_OK:
        text += f"\nreplay: {result['replay']}\n"
    return text
