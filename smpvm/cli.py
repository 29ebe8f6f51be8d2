"""smpvm command line: stress, race, boot, stat, check, lockstat, sysctl,
ps, clean.

Exit codes: 0 success, 1 a wrong byte was read (stress) or a race report
(race, or any run with --check), 2 bad input or a machine that cannot be
used, 3 panic.  Bad input is one line on stderr.
"""
import argparse
import dataclasses
import json
import os
import signal
import sys
import time

from smpvm.config import MachineConfig
from smpvm.errors import SmpvmError
from smpvm.kern import ddb, sysctl
from smpvm.kern.idle import cpu_idle_loop, lock_exercise_loop
from smpvm.kern.kproc import Supervisor
from smpvm.layout import MACHINE_STATES, lib
from smpvm.machine import Machine, list_machines, sweep
from smpvm.stress.workloads import files_workload, workload_counters
from smpvm.vm import vm_swapcache  # noqa: F401  (registers vm.swapcache.*)
from smpvm.vm.vm_init import (KERNELS, boot_machine, start_kernel_threads,
                              vm_shutdown)
from smpvm.vm.vm_meter import format_status, swapcache_status

WORKLOADS = {"files": files_workload, "locks": lock_exercise_loop,
             "idle": cpu_idle_loop}

EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_PANIC = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def _config_args(p):
    d = MachineConfig()
    p.add_argument("--cpus", type=int, default=d.ncpus,
                   help=f"CPU processes (default {d.ncpus}: fits this host)")
    for f in ("npages", "nobjects", "nvnodes", "nswap", "hz"):
        p.add_argument(f"--{f}", type=int, default=getattr(d, f),
                       help=f"(default {getattr(d, f)})")
    p.add_argument("--datadir", default="",
                   help="where the machine's data directory is made "
                        "(default: the temp directory)")
    p.add_argument("--speedup", type=int, default=1,
                   help="run the machine clock N times faster than real time")
    p.add_argument("--kernel", choices=sorted(KERNELS), default="fixed",
                   help="seed: the seed with its defects; fixed (default): "
                        "the upstream fixes (see README)")
    _check_args(p, "")
    p.add_argument("--sysctl-defaults", choices=("demo", "kernel"),
                   default="demo",
                   help="vm.swapcache.* at boot: the kernel's exact defaults "
                        "(swapcache off) or the demo set (default)")


def _check_args(p, default):
    p.add_argument("--check", nargs="?", const="all", default=default,
                   metavar="CHECKERS",
                   help="run checked: all (the default of a bare --check) or "
                        "a comma list of fields,witness,hb")
    p.add_argument("--check-sample", type=int, default=1, metavar="N",
                   help="happens-before checks 1 access in N (default 1)")


def _config(a):
    return MachineConfig(ncpus=a.cpus, npages=a.npages, nobjects=a.nobjects,
                         nvnodes=a.nvnodes, nswap=a.nswap, hz=a.hz,
                         datadir_base=a.datadir, speedup=a.speedup,
                         check=a.check, check_sample=a.check_sample)


def _resolve_machine(name):
    """The machine named, $SMPVM_MACHINE, or the only one running."""
    name = name or os.environ.get("SMPVM_MACHINE", "")
    if name:
        return Machine.attach(name)
    live = [n for n, pid in list_machines()]
    if not live:
        raise SmpvmError("no machine is running (start one with `smpvm boot`)")
    if len(live) > 1:
        raise SmpvmError(f"{len(live)} machines are running "
                         f"({', '.join(live)}): choose one with -m NAME")
    return Machine.attach(live[0])


def cmd_boot(a):
    cfg = _config(a).validate()
    if a.seconds is not None and a.seconds < 0:
        raise SmpvmError(f"--seconds {a.seconds}: must be >= 0")
    # SIGTERM takes the same orderly path as Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    m = boot_machine(cfg, a.kernel, a.sysctl_defaults)
    rc = 0
    try:
        with Supervisor(m) as sup:
            start_kernel_threads(sup)
            if a.workload == "files":
                # per CPU: enough files that the working set exceeds memory
                per_cpu = max(4, 2 * cfg.npages // (cfg.ncpus * 256))
                sup.start_cpus(files_workload, per_cpu, 256)
            else:
                sup.start_cpus(WORKLOADS[a.workload])
            print(m.name, flush=True)
            try:
                outcome = sup.wait(a.seconds)
            except KeyboardInterrupt:
                outcome = "interrupted"
            if outcome != "panic":
                sup.shutdown(hooks=[vm_shutdown])
                if m.panicked:
                    outcome = sup.collect_panic()
            if outcome == "panic":
                sys.stderr.write(sup.report + "\n")
                rc = EXIT_PANIC
            else:
                w = workload_counters(m)
                if w["failures"] or w["zero_fills"]:
                    rc = EXIT_DATA
                if not a.quiet:
                    print(f"{m.name}: {outcome}, shut down cleanly")
                    print(format_status(swapcache_status(m)))
                    if a.workload == "files":
                        print("workload   " + ", ".join(
                            f"{k} {v}" for k, v in w.items()))
                    print(ddb.lock_summary(m), flush=True)
    finally:
        m.destroy()
    return rc


def _mix(text):
    mix = {}
    for part in text.split(","):
        k, sep, w = part.partition("=")
        if not sep:
            raise SmpvmError(f"--mix {text!r}: expected op=weight,...")
        try:
            mix[k.strip()] = int(w)
        except ValueError:
            raise SmpvmError(f"--mix: weight of {k!r} is not an integer") \
                from None
    return mix


def _stress_options(a, **extra):
    """The StressOptions of the stress/race arguments (validated).  SIGTERM
    takes the same orderly path as Ctrl-C from here on."""
    from smpvm.stress.harness import StressOptions
    opts = StressOptions(
        cpus=a.cpus, seconds=a.seconds, seed=a.seed, kernel=a.kernel,
        npages=a.npages, nswap=a.nswap, nmeta=a.nmeta, files=a.files,
        file_pages=a.file_pages, check_every=a.check_every,
        eio_ppm=a.eio_ppm, short_ppm=a.short_ppm, enospc_ppm=a.enospc_ppm,
        delay_ppm=a.delay_ppm, delay_us=a.delay_us,
        kill_cpu_at=a.kill_cpu_at, swarm=a.swarm, bug=a.bug, check=a.check,
        check_sample=a.check_sample, **_sched_opts(a), **extra)
    if a.mix:
        opts.mix = _mix(a.mix)
    opts.validate()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    return opts


def cmd_stress(a):
    from smpvm.stress.harness import format_summary, run
    opts = _stress_options(a, quiet=a.quiet, json_path=a.json,
                           lockstat_dir=a.lockstat)
    code, result = run(opts)
    again = _save_schedule(a, opts, result, code)
    if again:
        result["replay"] = again
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    text = format_summary(result)
    if not a.quiet or code != 0:
        print(text, flush=True)
    return code


def _sched_opts(a):
    pairs = []
    for spec in a.sysctls:
        name, eq, value = spec.partition("=")
        if not eq:
            raise SmpvmError(f"--sysctl {spec}: expected name=value")
        pairs.append((name, value))
    return {"sched": a.sched, "steps": a.steps, "tick_steps": a.tick_steps,
            "pct_depth": a.pct_depth, "bound": a.bound,
            "gap_scale": a.gap_scale, "sysctls": tuple(pairs)}


def _save_schedule(a, opts, result, code):
    """A failing deterministic run: write its schedule file and return the
    replay command (None when there is nothing to save)."""
    if code == 0 or opts.sched == "off" or "schedule" not in result:
        return None
    from smpvm.race.replay import save
    path = a.save_schedule or f"smpvm-schedule-{opts.seed}.json"
    save(opts, result, path)
    return f"smpvm replay {path}"


def cmd_race(a):
    """The stress mix (or the given one) on a checked machine; the reports
    with the replay command.  0 clean, 1 reports, 2 usage, 3 panic."""
    from smpvm.race.report import format_report
    from smpvm.stress.harness import run
    if not a.check:
        raise SmpvmError("smpvm race: --check must name a checker")
    opts = _stress_options(a, quiet=True)
    code, result = run(opts)
    replay = (_save_schedule(a, opts, result, code)
              or result["replay"].replace("smpvm stress", "smpvm race", 1))
    out = {"exit": code, "replay": replay, "seed": opts.seed,
           "summary": result["race_summary"], "reports": result["races"],
           "sched": result.get("sched"),
           "panic": result["panic"], "hang": result["hang"],
           "forensics": result.get("forensics"),
           "waits": result.get("waits", []),
           "violations": result["violations"],
           "ops_per_second": result["metrics"]["ops_per_second"]}
    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return code
    for r in result["races"]:
        print(format_report(r, replay))
    for v in result["violations"]:
        print(f"invariant violation: {v}")
    for w in result.get("waits", []):
        print(w)
    if result.get("forensics") and not result["hang"]:
        print(result["forensics"])
    if result["panic"]:
        print(result["panic"])
    if result["hang"]:
        print("HANG: " + result["hang"])
    s = result["race_summary"]
    print(f"smpvm race: {len(result['races'])} reports; "
          f"{s.get('accesses_checked', 0)} accesses checked "
          f"({s.get('hb_checked', 0)} happens-before), "
          f"{s.get('order_edges', 0)} lock-order edges learned, "
          f"{result['metrics']['ops_per_second']} ops/s, exit {code}")
    if "sched" in result:
        sc = result["sched"]
        print(f"schedule: {sc['strategy']} seed {sc['seed']}, {sc['steps']} "
              f"steps, trace {sc['trace_hash']}"
              + (f", PCT bound {sc['pct_bound']:.3g}" if "pct_bound" in sc
                 else ""))
    print(f"replay: {replay}")
    return code


def cmd_replay(a):
    """Replay a schedule file; with --shrink, reduce it and print the
    scenario that remains."""
    from smpvm.race import replay as rp
    from smpvm.race.report import format_report
    from smpvm.stress.harness import run
    try:
        opts, doc = rp.load(a.file)
    except ValueError as e:
        raise SmpvmError(str(e)) from None
    if not a.shrink:
        code, result, same = rp.replay(a.file, trace=a.trace)
        for r in result["races"]:
            print(format_report(r, f"smpvm replay {a.file}"))
        if result["panic"]:
            print(result["panic"])
        if result["hang"]:
            print("HANG: " + result["hang"])
        for v in result["violations"][:10]:
            print(f"invariant violation: {v}")
        if a.trace:
            print(rp.scenario(result))
        print(f"smpvm replay: {result['sched']['steps']} steps, trace "
              f"{result['sched']['trace_hash']}; found "
              f"{sorted(rp.signature(result)) or 'nothing'}; "
              f"{'the same as recorded' if same else 'NOT the same as recorded'}"
              f" (exit {code})")
        return code if same else EXIT_DATA if code == 0 else code
    try:
        small, result, runs = rp.shrink(a.file, max_runs=a.max_runs,
                                        log=print)
    except ValueError as e:
        raise SmpvmError(str(e)) from None
    out = a.file[:-5] + ".min.json" if a.file.endswith(".json") \
        else a.file + ".min.json"
    # the run goes on past `steps` while its threads shut down (at most as
    # long again): trace all of it
    traced = dataclasses.replace(small, trace=2 * small.steps + 64)
    code, result = run(traced)
    rp.save(small, result, out)
    print(rp.scenario(result))
    print(rp.decisions(result))
    print(f"smpvm replay --shrink: {len(doc['options']['schedule'])} -> "
          f"{len(small.schedule)} choices, {doc['options']['steps']} -> "
          f"{small.steps} steps in {runs} runs; still found "
          f"{sorted(rp.signature(result))}")
    print(f"replay: smpvm replay {out}")
    return code


def cmd_check(a):
    """Stop a running machine's world at safe points, check the
    structural invariants (reference 7.1), let it go."""
    from smpvm.kern.safepoint import restart_the_world, stop_the_world
    from smpvm.layout import cstr, threads
    from smpvm.vm.vm_invariants import check_all
    m = _resolve_machine(a.machine)
    lib.smpvm_bind(m.base, -1)
    try:
        td = threads(m.base)
        swapcached = next((i for i in range(m.config.maxthreads)
                           if td[i].state != lib.TDS_FREE and
                           cstr(td[i].name) == "swapcached"), None)
        if not stop_the_world(m, wake=(lib.IDENT_SWAPCACHE,
                                       lib.IDENT_PAGEDAEMON)):
            print("could not stop the world within 10 s:")
            print(ddb.format_threads(m))
            return EXIT_PANIC
        try:
            bad = check_all(m, swapcached)
        finally:
            restart_the_world(m)
    finally:
        m.close()
    for b in bad:
        print(b)
    print(f"{m.name}: {len(bad)} invariant violations")
    return EXIT_DATA if bad else 0


def cmd_lockstat(a):
    from smpvm.prof import lockstat as L
    m = _resolve_machine(a.machine)
    lib.smpvm_bind(m.base, -1)
    was = m.hdr.prof_enabled
    m.hdr.prof_enabled = 1
    try:
        if a.reset:
            lib.smpvm_stats_reset(m.base)
        samples = []

        def snap():
            s = L.filtered(L.snapshot(m), a.klass, a.site, a.contended_only)
            samples.append((time.time(), L.class_waits(s)))
            return s
        if a.once and not a.plot:
            s = snap()
        else:
            deadline = None if a.seconds is None else \
                time.monotonic() + a.seconds
            s = snap()
            try:
                if a.once or a.json or a.csv or a.folded:
                    while deadline is None or time.monotonic() < deadline:
                        time.sleep(min(a.interval, max(0.0, deadline -
                                                       time.monotonic()))
                                   if deadline else a.interval)
                        s = snap()
                        if deadline is None:
                            break
                else:
                    from rich.live import Live
                    from rich.text import Text
                    with Live(Text(L.format_table(s)), refresh_per_second=4,
                              screen=False) as live:
                        while deadline is None or \
                                time.monotonic() < deadline:
                            time.sleep(a.interval)
                            s = snap()
                            live.update(Text(L.format_table(s)))
            except KeyboardInterrupt:
                pass
        if a.plot:
            L.plot(samples, a.plot)
        if a.json:
            print(L.to_json(s))
        elif a.csv:
            print(L.to_csv(s), end="")
        elif a.folded:
            print(L.to_folded(s), end="")
        elif a.once or a.plot:
            print(L.format_table(s))
    finally:
        m.hdr.prof_enabled = was
        m.close()
    return 0


def cmd_stat(a):
    m = _resolve_machine(a.machine)
    lib.smpvm_bind(m.base, -1)          # reads the machine's clock
    try:
        d = swapcache_status(m)
        d["workload"] = workload_counters(m)
        if a.json:
            print(json.dumps(d, indent=2))
        else:
            print(format_status(d))
    finally:
        m.close()
    return 0


def cmd_sysctl(a):
    if not a.names and not a.all:
        raise SmpvmError("sysctl: name a variable (name or name=value) or -a")
    m = _resolve_machine(a.machine)
    try:
        if a.all:
            for n in sysctl.nodes():
                v = int(n.get(m))
                mark = "" if n.default is None or v == n.default else \
                    f"  # kernel default {n.default}"
                print(f"{n.name}: {v}{mark}")
        # check every request before writing any
        reqs = []
        for spec in a.names:
            if "=" in spec:
                name, text = spec.split("=", 1)
                node = sysctl.lookup(name)
                if not node.writable:
                    raise SmpvmError(f"sysctl: oid '{name}' is read only")
                reqs.append((name, sysctl.parse_value(node, text)))
            else:
                sysctl.lookup(spec)
                reqs.append((spec, None))
        for name, v in reqs:
            if v is None:
                print(f"{name}: {sysctl.sysctl_get(m, name)}")
            else:
                old, new = sysctl.sysctl_set(m, name, str(v))
                print(f"{name}: {old} -> {new}")
    finally:
        m.close()
    return 0


def cmd_ps(a):
    names = [a.machine] if a.machine else [n for n, _ in list_machines()]
    if not names:
        print("no machines")
        return 0
    for n in names:
        m = Machine.attach(n)
        try:
            h = m.hdr
            print(f"{n}: {MACHINE_STATES.get(h.state, '?')}, "
                  f"{h.cfg.ncpus} cpus, creator pid {h.creator_pid}, "
                  f"data {m.datadir}")
            if m.panicked:
                print(f"  panic: {m.panicstr}")
            print(ddb.format_threads(m))
        finally:
            m.close()
    return 0


def cmd_clean(a):
    removed = sweep(verbose=not a.quiet)
    if not a.quiet and not removed:
        print("nothing to clean")
    return 0


def _stress_args(sx, d, check_default):
    from smpvm.vm.bugs import BUGS
    from smpvm.stress.workloads import OPS
    sx.add_argument("--cpus", type=int, default=d.cpus,
                    help=f"CPU processes (default {d.cpus})")
    sx.add_argument("--seconds", type=float, default=d.seconds)
    sx.add_argument("--seed", type=int, default=d.seed)
    sx.add_argument("--kernel", choices=sorted(KERNELS), default=d.kernel)
    sx.add_argument("--mix", default="",
                    help="op weights, e.g. read=50,write=10 (ops: "
                         + ", ".join(OPS) + ")")
    sx.add_argument("--swarm", action="store_true",
                    help="let the seed pick a random subset of the ops")
    for f, h in (("npages", "physical pages"), ("nswap", "SSD pages"),
                 ("nmeta", "meta-data device pages"),
                 ("files", "files per CPU"), ("file-pages", "pages per file")):
        sx.add_argument("--" + f, type=int,
                        default=getattr(d, f.replace("-", "_")),
                        help=f"{h} (default "
                             f"{getattr(d, f.replace('-', '_'))})")
    sx.add_argument("--sysctl", action="append", default=[],
                    metavar="NAME=VALUE", dest="sysctls",
                    help="set a sysctl at boot (repeatable)")
    sx.add_argument("--gap-scale", type=float, default=d.gap_scale,
                    help="scale the minimum op gaps of destructive ops "
                         "(0: as often as their weight says)")
    sx.add_argument("--check-every", type=float, default=d.check_every,
                    help="seconds between stop-the-world invariant checks")
    for f in ("eio-ppm", "short-ppm", "enospc-ppm", "delay-ppm"):
        sx.add_argument("--" + f, type=int, default=0,
                        help="SSD fault rate, per million I/Os")
    sx.add_argument("--delay-us", type=int, default=d.delay_us)
    sx.add_argument("--kill-cpu-at", type=float, default=0.0,
                    help="SIGKILL a CPU process at this second (a panic)")
    sx.add_argument("--bug", default="", choices=[""] + sorted(BUGS),
                    help="run a kernel broken on purpose")
    _check_args(sx, check_default)
    g = sx.add_argument_group("deterministic schedules")
    g.add_argument("--sched", choices=("off", "random", "pct", "bounded"),
                   default="off",
                   help="one CPU at a time between preemption points, "
                        "chosen from --seed by this strategy (default off: "
                        "free-running)")
    g.add_argument("--steps", type=int, default=d.steps,
                   help="preemption points before the schedule shuts the "
                        f"machine down (default {d.steps})")
    g.add_argument("--tick-steps", type=int, default=d.tick_steps,
                   help="a virtual clock tick every N steps")
    g.add_argument("--pct-depth", type=int, default=d.pct_depth,
                   help="pct: bug depth d")
    g.add_argument("--bound", type=int, default=d.bound,
                   help="bounded: at most this many preemptions")
    g.add_argument("--save-schedule", default="", metavar="FILE",
                   help="where a failing schedule is written (default "
                        "./smpvm-schedule-SEED.json)")


def build_parser():
    p = _Parser(prog="smpvm", description="SMP-faithful emulator of "
                "DragonFly BSD's VM swapcache")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    b = sub.add_parser("boot", help="create a machine and run it")
    _config_args(b)
    b.add_argument("--seconds", type=float, default=None,
                   help="run this long (default: until Ctrl-C)")
    b.add_argument("--workload", choices=sorted(WORKLOADS), default="files",
                   help="what the CPU processes run: verified read-heavy "
                        "file traffic over a working set larger than memory "
                        "(files, the default), random lock traffic (locks) "
                        "or nothing (idle)")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(fn=cmd_boot)

    s = sub.add_parser("sysctl", help="read or write sysctls of a running "
                       "machine")
    s.add_argument("-m", "--machine", default="")
    s.add_argument("-a", "--all", action="store_true",
                   help="list every sysctl, marking values that differ from "
                        "the kernel's defaults")
    s.add_argument("names", nargs="*", metavar="name[=value]")
    s.set_defaults(fn=cmd_sysctl)

    from smpvm.stress.harness import StressOptions
    d = StressOptions()
    sx = sub.add_parser("stress", help="hammer the VM on every CPU and "
                        "verify every byte (the main job)")
    _stress_args(sx, d, "")
    sx.add_argument("--json", default="", help="write every metric here")
    sx.add_argument("--lockstat", default="", metavar="DIR",
                    help="profile the locks; write lockstat.{json,csv,"
                         "folded,txt,png} to DIR at the end")
    sx.add_argument("--quiet", action="store_true")
    sx.set_defaults(fn=cmd_stress)

    rc = sub.add_parser("race", help="run the stress mix checked and print "
                        "the race reports (the second job)")
    d_race = StressOptions(seconds=20.0)
    _stress_args(rc, d_race, "all")
    rc.add_argument("--json", action="store_true",
                    help="print the reports as JSON")
    rc.set_defaults(fn=cmd_race)

    rp = sub.add_parser("replay", help="replay a failing schedule file "
                        "exactly; --shrink reduces it to a short scenario")
    rp.add_argument("file")
    rp.add_argument("--shrink", action="store_true",
                    help="remove preemptions and steps while it still fails "
                         "the same way; write FILE.min.json")
    rp.add_argument("--max-runs", type=int, default=60,
                    help="runs the shrinker may make (default 60)")
    rp.add_argument("--trace", type=int, default=0, metavar="N",
                    help="keep N events of the full trace and print the "
                         "interleaving")
    rp.set_defaults(fn=cmd_replay)

    ck = sub.add_parser("check", help="stop the world and check the VM's "
                        "invariants on a running machine")
    ck.add_argument("-m", "--machine", default="")
    ck.set_defaults(fn=cmd_check)

    ls = sub.add_parser("lockstat", help="lock contention of a running "
                        "machine: a live table, or once; json/csv/folded/png")
    ls.add_argument("-m", "--machine", default="")
    ls.add_argument("--once", action="store_true",
                    help="print one report and exit")
    ls.add_argument("--interval", type=float, default=1.0)
    ls.add_argument("--seconds", type=float, default=None,
                    help="watch this long (live table, or samples for --plot)")
    ls.add_argument("--class", dest="klass", default="",
                    help="only this lock class (e.g. pq_inactive)")
    ls.add_argument("--site", default="",
                    help="only contentions whose call site contains this")
    ls.add_argument("--contended-only", action="store_true")
    ls.add_argument("--reset", action="store_true",
                    help="zero the statistics first")
    g = ls.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true")
    g.add_argument("--csv", action="store_true")
    g.add_argument("--folded", action="store_true")
    ls.add_argument("--plot", default="", metavar="FILE.png",
                    help="wait per class over --seconds, as a PNG")
    ls.set_defaults(fn=cmd_lockstat)

    st = sub.add_parser("stat", help="swapcache status of a running machine")
    st.add_argument("-m", "--machine", default="")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_stat)

    ps = sub.add_parser("ps", help="running machines, their threads and "
                        "the locks they hold or wait for")
    ps.add_argument("-m", "--machine", default="")
    ps.set_defaults(fn=cmd_ps)

    c = sub.add_parser("clean", help="remove this user's leftovers of dead "
                       "machines")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(fn=cmd_clean)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except SmpvmError as e:
        msg = str(e)
        sys.stderr.write(msg if msg.startswith("smpvm") else f"smpvm: {msg}")
        sys.stderr.write("\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:             # `smpvm stat | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
