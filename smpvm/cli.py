"""smpvm command line: stress, race, replay, boot, stat, check, lockstat,
sysctl, ps, clean.  It parses and dispatches: runs are smpvm.stress, the
lock profiler's watch smpvm.prof, a machine's text smpvm.kern.ddb.

Exit codes are one table, smpvm.stress.findings.EXIT_CODES (README "Exit
codes"): 0 nothing found, 1 a wrong byte / broken invariant / race report,
2 bad input, 3 panic or hang, 4 the host failed the run, 5 a replay not the
same as recorded, 130 interrupted.  Bad input is one line on stderr.
"""
import argparse
import json
import math
import os
import sys

from smpvm.config import CHECKERS, SCHED_STRATEGIES, MachineConfig
from smpvm.errors import (AttachError, ConfigError, HostError, SmpvmError,
                          SysctlError, host_error_of)
from smpvm.kern import ddb, sysctl
from smpvm.layout import lib
from smpvm.machine import Machine, check_name, list_machines, sweep
from smpvm.stress.findings import (EXIT_FOUND, EXIT_HOST, EXIT_INTERRUPTED,
                                   EXIT_OK, EXIT_PANIC, EXIT_USAGE)
from smpvm.stress.options import StressOptions, option_error
from smpvm.stress.workloads import OPS, workload_counters
from smpvm.vm.bugs import BUGS
from smpvm.vm.vm_init import kernel_name
from smpvm.vm.vm_meter import format_status, swapcache_status


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def _finite(option, value, low, what):
    """value, if it is a finite number >= low; else one line."""
    if value is not None and not (math.isfinite(value) and value >= low):
        raise ConfigError(f"{option} {value:g}: must be a finite number "
                          f"{what}")
    return value


def _resolve_machine(name):
    """The machine named, $SMPVM_MACHINE, or the only one running."""
    if name:
        return Machine.attach(name)
    name = os.environ.get("SMPVM_MACHINE", "")
    if name:
        return Machine.attach(check_name(name, "SMPVM_MACHINE="))
    live = [n for n, pid in list_machines()]
    if not live:
        raise SmpvmError("no machine is running (start one with `smpvm boot`)")
    if len(live) > 1:
        raise SmpvmError(f"{len(live)} machines are running "
                         f"({', '.join(live)}): choose one with -m NAME")
    return Machine.attach(live[0])


# ---- commands ---------------------------------------------------------------

def cmd_boot(a):
    from smpvm.stress.boot import boot
    from smpvm.stress.outputs import check_dir
    _finite("--seconds", a.seconds, 0, ">= 0 (default: until Ctrl-C)")
    if a.datadir:
        check_dir(a.datadir, "--datadir", create=False)
    try:
        cfg = MachineConfig(ncpus=a.cpus, npages=a.npages,
                            nobjects=a.nobjects, nvnodes=a.nvnodes,
                            nswap=a.nswap, hz=a.hz, datadir_base=a.datadir,
                            speedup=a.speedup, check=a.check,
                            check_sample=a.check_sample).validate()
    except ConfigError as e:
        raise option_error(e) from None
    return boot(cfg, a.kernel, a.sysctl_defaults, a.workload, a.seconds,
                a.quiet)


def _mix(text):
    mix = {}
    for part in text.split(","):
        k, sep, w = part.partition("=")
        if not sep:
            raise ConfigError(f"--mix {text!r}: expected op=weight,...")
        try:
            mix[k.strip()] = int(w)
        except ValueError:
            raise ConfigError(f"--mix: weight of {k!r} is not an integer") \
                from None
    return mix


def _sysctls(specs):
    pairs = []
    for spec in specs:
        name, eq, value = spec.partition("=")
        if not eq:
            raise ConfigError(f"--sysctl {spec}: expected name=value")
        pairs.append((name, value))
    return tuple(pairs)


def _stress_options(a, **extra):
    """The StressOptions of the stress/race arguments, validated."""
    from smpvm.stress.outputs import schedule_dir
    opts = StressOptions(
        cpus=a.cpus, seconds=a.seconds, seed=a.seed, kernel=a.kernel,
        npages=a.npages, nswap=a.nswap, nmeta=a.nmeta, files=a.files,
        file_pages=a.file_pages, check_every=a.check_every,
        eio_ppm=a.eio_ppm, short_ppm=a.short_ppm, enospc_ppm=a.enospc_ppm,
        delay_ppm=a.delay_ppm, delay_us=a.delay_us,
        kill_cpu_at=a.kill_cpu_at, swarm=a.swarm, bug=a.bug, check=a.check,
        check_sample=a.check_sample, sched=a.sched, steps=a.steps,
        tick_steps=a.tick_steps, pct_depth=a.pct_depth, bound=a.bound,
        token_loss=a.token_loss, steer=not a.no_steer,
        gap_scale=a.gap_scale, sysctls=_sysctls(a.sysctls),
        stop_on_detection=a.stop_on_detection, noise=a.noise,
        datadir=a.datadir,
        save_schedule=a.save_schedule or schedule_dir(), **extra)
    if a.mix:
        opts.mix = _mix(a.mix)
    opts.validate()
    return opts


def cmd_history(a):
    from smpvm.stress import history
    from smpvm.stress.outputs import check_file
    from smpvm.vm.versions import VERSIONS
    only = []
    for name in (a.only.split(",") if a.only else []):
        try:
            only.append(kernel_name(name.strip()))
        except ValueError as e:
            raise ConfigError(f"--only {name}: {e}") from None
        if only[-1] in ("seed", "fixed"):
            raise ConfigError(f"--only {name}: the seed and fixed make no "
                              "claim; name a commit (smpvm kernels)")
    if a.seeds < 1 or a.seeds > 64:
        raise ConfigError(f"--seeds {a.seeds}: must be 1..64")
    for path, opt in ((a.json, "--json"), (a.plot, "--plot")):
        if path:
            check_file(path, opt)
    if a.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot: needs matplotlib (pip install "
                              "'smpvm[plot]')") from None

    def progress(text):
        if not a.quiet:
            print(text, file=sys.stderr, flush=True)
    rows = history.run_history(only=only, quick=a.quick,
                               seeds=range(1, a.seeds + 1),
                               progress=progress)
    print(history.to_markdown(rows) if a.markdown else
          history.format_table(rows), end="", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(history.to_json(rows))
    if a.plot:
        history.plot(rows, a.plot)
    bad = [r.version for r in rows if r.verdict == history.NOT_REPRODUCED]
    print(f"{len(rows)} claims: " + ", ".join(
        f"{sum(r.verdict == v for r in rows)} {v}"
        for v in (history.REPRODUCED, history.INCONCLUSIVE,
                  history.NOT_REPRODUCED))
          + (f" ({', '.join(bad)})" if bad else "")
          + f"; {len(VERSIONS) - 1} versions")
    return EXIT_FOUND if bad else EXIT_OK


def cmd_bisect(a):
    """Bisect the kernel versions between a.old and a.new for the change of
    the finding of a stress or race command line (after --)."""
    import dataclasses
    from smpvm.stress import bisect
    from smpvm.vm.versions import FIXED, NEWEST
    inner = list(a.command)
    if not inner or inner[0] not in ("stress", "race"):
        raise ConfigError("bisect: give a stress or race command line after "
                          "--, e.g. smpvm bisect seed fixed -- stress --sched"
                          " random --seed 1")
    if any(x == "--kernel" or x.startswith("--kernel=") for x in inner):
        raise ConfigError("bisect: the command line names no --kernel "
                          "(bisect sets it)")
    if not 1 <= a.seeds <= 64:
        raise ConfigError(f"--seeds {a.seeds}: must be 1..64")
    old, new = (NEWEST.name if k == FIXED else kernel_name(k)
                for k in (a.old, a.new))
    sub = build_parser().parse_args(inner)
    if inner[0] == "race" and not sub.check:
        raise ConfigError("smpvm race: --check must name a checker")
    opts = _stress_options(sub, **({"command": "race"} if inner[0] == "race"
                                   else {}))
    opts = dataclasses.replace(opts, quiet=True, save_schedule="")
    try:
        res = bisect.bisect(opts, old, new, k=a.seeds, finding=a.finding,
                            say=lambda t: print(t, flush=True))
    except ValueError as e:
        raise ConfigError(f"bisect: {e}") from None
    print("verdict: " + res.verdict, flush=True)
    return EXIT_OK if res.first else EXIT_FOUND


def cmd_kernels(a):
    from smpvm.vm.versions import table
    sys.stdout.write(table())
    return EXIT_OK


def cmd_stress(a):
    from smpvm.stress.findings import format_summary
    from smpvm.stress.session import run
    f = run(_stress_options(a, quiet=a.quiet, json_path=a.json,
                            lockstat_dir=a.lockstat))
    if not a.quiet or f.exit != EXIT_OK:
        print(format_summary(f), end="", flush=True)
    return f.exit


def cmd_race(a):
    """The stress mix (or the given one) on a checked machine; the reports
    with the replay command."""
    from smpvm.stress.findings import format_race, race_json
    from smpvm.stress.session import run
    if not a.check:
        raise ConfigError("smpvm race: --check must name a checker")
    f = run(_stress_options(a, command="race", quiet=True))
    if a.json:
        print(json.dumps(race_json(f), indent=2, default=str))
    else:
        print(format_race(f), flush=True)
    return f.exit


def cmd_hunt(a):
    """A portfolio of checked runs until --minutes or the first finding;
    the finding, or what nothing was found in."""
    from smpvm.stress.hunt import HuntOptions, format_hunt, hunt
    from smpvm.stress.outputs import check_dir, check_file, schedule_dir
    if a.json:
        check_file(a.json, "--json")
    save = a.save_schedule or schedule_dir()
    check_dir(save, "--save-schedule")
    h = HuntOptions(minutes=a.minutes, kernel=a.kernel, bug=a.bug,
                    seed=a.seed, workers=a.n, tx=tuple(a.tx),
                    noise=a.noise, arms=tuple(x for x in a.arms.split(",")
                                              if x),
                    shrink=not a.no_shrink, json_path=a.json,
                    save_schedule=save.rstrip(os.sep) + os.sep,
                    quiet=a.quiet).validate()
    res = hunt(h)
    print(format_hunt(res), flush=True)
    if a.json:
        print(f"wrote {a.json}")
    return res.exit


def cmd_replay(a):
    """Replay a schedule file; with --shrink, reduce it and print the
    scenario that remains."""
    from smpvm.stress import replay
    from smpvm.stress.findings import format_replay
    if a.shrink:
        text, code = replay.shrink_file(a.file, max_runs=a.max_runs,
                                        log=print)
        print(text)
        return code
    f, same = replay.replay(a.file, trace=a.trace)
    text, code = format_replay(f, same, a.file,
                               replay.scenario(f) if a.trace else "")
    print(text)
    return code


def cmd_check(a):
    """Stop a running machine's world at safe points, check the structural
    invariants, let it go."""
    from smpvm.race.forensics import stall_text
    from smpvm.stress.session import check_running
    machine = _resolve_machine(a.machine)
    try:
        if not machine.creator_alive():
            # no thread of a leftover will ever reach a safe point
            raise SmpvmError(f"{machine.name} is a leftover: its creator "
                             f"(pid {machine.hdr.creator_pid}) died; "
                             "`smpvm clean` removes it")
        bad, stall = check_running(machine)
        stopped = stall and stall_text(machine)
    finally:
        machine.close()
    if stall:
        print(f"{machine.name}: {stall}")
        return EXIT_HOST if stopped else EXIT_PANIC
    for b in bad:
        print(b)
    print(f"{machine.name}: {len(bad)} invariant violations")
    return EXIT_FOUND if bad else EXIT_OK


def cmd_lockstat(a):
    from smpvm.prof import lockstat
    from smpvm.stress.outputs import check_file
    if not (math.isfinite(a.interval) and a.interval > 0):
        raise ConfigError(f"--interval {a.interval:g}: must be a finite "
                          "number of seconds > 0")
    _finite("--seconds", a.seconds, 0, ">= 0")
    if a.plot:
        check_file(a.plot, "--plot")
    machine = _resolve_machine(a.machine)
    lib.smpvm_bind(machine.base, -1)
    was = machine.hdr.prof_enabled
    try:
        if a.klass and a.klass not in lockstat.known_classes(machine):
            raise ConfigError(
                f"--class {a.klass}: no such lock class ("
                + ", ".join(lockstat.known_classes(machine)) + ")")
        machine.hdr.prof_enabled = 1
        if a.reset:
            lib.smpvm_stats_reset(machine.base)
        plain = a.once or a.json or a.csv or a.folded
        s, samples = lockstat.watch(
            machine, a.interval, a.seconds,
            live=not plain and sys.stdout.isatty(),
            once=a.once and not a.plot, klass=a.klass, site=a.site,
            contended_only=a.contended_only)
        if a.plot:
            lockstat.plot(samples, a.plot)
        if a.json:
            print(lockstat.to_json(s))
        elif a.csv:
            print(lockstat.to_csv(s), end="")
        elif a.folded:
            print(lockstat.to_folded(s), end="")
        else:
            print(lockstat.format_table(s))
    finally:
        machine.hdr.prof_enabled = was
        machine.close()
    return EXIT_OK


def cmd_stat(a):
    machine = _resolve_machine(a.machine)
    lib.smpvm_bind(machine.base, -1)          # reads the machine's clock
    try:
        d = swapcache_status(machine)
        d["workload"] = workload_counters(machine)
        print(json.dumps(d, indent=2) if a.json else format_status(d))
    finally:
        machine.close()
    return EXIT_OK


def cmd_sysctl(a):
    if not a.names and not a.all:
        raise SmpvmError("sysctl: name a variable (name or name=value) or -a")
    # check every request before attaching or writing any
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
    machine = _resolve_machine(a.machine)
    try:
        if a.all:
            for n in sysctl.nodes():
                try:
                    v = int(n.get(machine))
                except SysctlError:
                    continue            # not a node of this kernel version
                default = n.default(machine) if callable(n.default) \
                    else n.default
                mark = "" if default is None or v == default else \
                    f"  # kernel default {default}"
                print(f"{n.name}: {v}{mark}")
        for name, v in reqs:
            if v is None:
                print(f"{name}: {sysctl.sysctl_get(machine, name)}")
            else:
                old, new = sysctl.sysctl_set(machine, name, str(v))
                print(f"{name}: {old} -> {new}")
    finally:
        machine.close()
    return EXIT_OK


def cmd_ps(a):
    names = [a.machine] if a.machine else [n for n, _ in list_machines()]
    if not names:
        print("no machines")
    for n in names:
        if a.machine:
            machine = Machine.attach(n)
        else:
            # one machine that cannot be shown (another smpvm's layout,
            # one being destroyed or gone since the listing) hides no other
            try:
                machine = Machine.attach(n)
            except AttachError as e:
                print(f"{n}: not shown: {e}")
                continue
        try:
            print(ddb.format_machine(machine))
        finally:
            machine.close()
    return EXIT_OK


def cmd_clean(a):
    removed = sweep(verbose=not a.quiet)
    if not a.quiet and not removed:
        print("nothing to clean")
    return EXIT_OK


# ---- the parser -------------------------------------------------------------

_KERNEL_HELP = ("the kernel version: seed, a commit after it by short hash, "
                "or fixed (the newest plus smpvm's fixes of H1 and H2; the "
                "default); `--kernel list` lists them")


def _kernel(text):
    """--kernel: a version's canonical name; "list" prints the versions
    and exits 0."""
    if text == "list":
        from smpvm.vm.versions import table
        sys.stdout.write(table())
        sys.exit(EXIT_OK)
    try:
        return kernel_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_args(p, default):
    p.add_argument("--check", nargs="?", const="all", default=default,
                   metavar="CHECKERS",
                   help="run checked: all (the default of a bare --check) or "
                        "a comma list of " + ",".join(CHECKERS))
    p.add_argument("--check-sample", type=int, default=1, metavar="N",
                   help="happens-before checks 1 access in N (default 1)")


def _datadir_arg(p):
    p.add_argument("--datadir", default="",
                   help="where the machine's data directory is made "
                        "(default: the temp directory)")


def _boot_args(b):
    d = MachineConfig()
    b.add_argument("--cpus", type=int, default=d.ncpus,
                   help=f"CPU processes (default {d.ncpus}: fits this host)")
    for f in ("npages", "nobjects", "nvnodes", "nswap", "hz"):
        b.add_argument(f"--{f}", type=int, default=getattr(d, f),
                       help=f"(default {getattr(d, f)})")
    _datadir_arg(b)
    b.add_argument("--speedup", type=int, default=1,
                   help="run the machine clock N times faster than real time")
    b.add_argument("--kernel", type=_kernel, default="fixed",
                   help=_KERNEL_HELP)
    _check_args(b, "")
    b.add_argument("--sysctl-defaults", choices=("demo", "kernel"),
                   default="demo",
                   help="vm.swapcache.* at boot: the kernel's exact defaults "
                        "(swapcache off) or the demo set (default)")
    b.add_argument("--seconds", type=float, default=None,
                   help="run this long (default: until Ctrl-C)")
    b.add_argument("--workload", choices=("files", "locks", "idle"),
                   default="files",
                   help="what the CPU processes run: verified read-heavy "
                        "file traffic over a working set larger than memory "
                        "(files, the default), random lock traffic (locks) "
                        "or nothing (idle)")
    b.add_argument("--quiet", action="store_true")


def _stress_args(sx, d, check_default):
    sx.add_argument("--cpus", type=int, default=d.cpus,
                    help=f"CPU processes (default {d.cpus})")
    sx.add_argument("--seconds", type=float, default=d.seconds,
                    help=f"run this long (default {d.seconds:g}); Ctrl-C "
                         "or SIGTERM end it sooner, the same way")
    sx.add_argument("--seed", type=int, default=d.seed)
    sx.add_argument("--kernel", type=_kernel, default=d.kernel,
                    help=_KERNEL_HELP)
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
    _datadir_arg(sx)
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
    sx.add_argument("--bug", default="", choices=sorted(BUGS),
                    help="run a kernel broken on purpose")
    sx.add_argument("--stop-on-detection", action="store_true",
                    help="end the run at its first finding: a free run when "
                         "the host sees it, a deterministic one at the step "
                         "of its first race report or wrong byte (its "
                         "replay stops there too)")
    sx.add_argument("--noise", type=int, default=d.noise, metavar="LEVEL",
                    help="free runs: delay threads at preemption points "
                         "chosen from the seed (host yields, short spins, "
                         f"rare sleeps), 0 off (default) .. {lib.NOISE_MAX}")
    _check_args(sx, check_default)
    g = sx.add_argument_group("deterministic schedules")
    g.add_argument("--sched", default="off",
                   choices=[s for s in SCHED_STRATEGIES if s != "forced"],
                   help="one CPU at a time between preemption points, "
                        "chosen from --seed by this strategy (default off: "
                        "free-running)")
    g.add_argument("--steps", type=int, default=d.steps,
                   help="the workload's budget: preemption points after "
                        "a CPU created its files (the set-up is not "
                        "counted), then the schedule shuts the machine "
                        f"down (default {d.steps})")
    g.add_argument("--tick-steps", type=int, default=d.tick_steps,
                   help="a virtual clock tick every N steps")
    g.add_argument("--pct-depth", type=int, default=d.pct_depth,
                   help="pct: bug depth d")
    g.add_argument("--bound", type=int, default=d.bound,
                   help="bounded: at most this many preemptions")
    g.add_argument("--token-loss", type=int, default=d.token_loss,
                   metavar="PERMILLE",
                   help="make this many per mille of the token acquisitions "
                        "that could block (the thread holds other tokens) "
                        "block, losing its tokens as if another CPU held "
                        "the token; then a thread that waited for one of "
                        "them runs (default 0: off)")
    g.add_argument("--no-steer", action="store_true",
                   help="--token-loss: let the strategy pick the next "
                        "thread after a loss instead")
    g.add_argument("--save-schedule", default="", metavar="FILE",
                   help="where a failing schedule is written (default: a new "
                        "file in $XDG_STATE_HOME/smpvm/schedules/; FILE "
                        "ending in / is a directory)")


def build_parser():
    p = _Parser(prog="smpvm", description="SMP-faithful emulator of "
                "DragonFly BSD's VM swapcache")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    b = sub.add_parser("boot", help="create a machine and run it")
    _boot_args(b)
    b.set_defaults(fn=cmd_boot)

    s = sub.add_parser("sysctl", help="read or write sysctls of a running "
                       "machine")
    s.add_argument("-m", "--machine", default="")
    s.add_argument("-a", "--all", action="store_true",
                   help="list every sysctl, marking values that differ from "
                        "the kernel's defaults")
    s.add_argument("names", nargs="*", metavar="name[=value]")
    s.set_defaults(fn=cmd_sysctl)

    sx = sub.add_parser("stress", help="hammer the VM on every CPU and "
                        "verify every byte (the main job)")
    _stress_args(sx, StressOptions(), "")
    sx.add_argument("--json", default="", help="write every metric here")
    sx.add_argument("--lockstat", default="", metavar="DIR",
                    help="profile the locks; write lockstat.{json,csv,"
                         "folded,txt,png} to DIR at the end")
    sx.add_argument("--quiet", action="store_true")
    sx.set_defaults(fn=cmd_stress)

    rc = sub.add_parser("race", help="run the stress mix checked and print "
                        "the race reports (the second job)")
    _stress_args(rc, StressOptions(seconds=20.0), "all")
    rc.add_argument("--json", action="store_true",
                    help="print the reports as JSON")
    rc.set_defaults(fn=cmd_race)

    from smpvm.stress.swarm import ARMS
    hu = sub.add_parser("hunt", help="is this kernel right? a portfolio of "
                        "checked runs (free with noise, deterministic under "
                        "each strategy, over swarm profiles) until --minutes "
                        "or the first finding")
    hu.add_argument("--minutes", type=float, default=2.0,
                    help="the budget (default 2)")
    hu.add_argument("--kernel", type=_kernel, default="fixed",
                    metavar="seed|HASH|fixed")
    hu.add_argument("--bug", default="", choices=sorted(BUGS),
                    help="hunt a kernel broken on purpose")
    hu.add_argument("--seed", type=int, default=1,
                    help="draws every run's profile and seeds (default 1)")
    hu.add_argument("-n", default="auto", metavar="N",
                    help="pytest-xdist workers on this host: a number, auto "
                         "(the default: one per core) or 0 (the runs go in "
                         "this process)")
    hu.add_argument("--tx", action="append", default=[], metavar="SPEC",
                    help="pytest-xdist gateways, e.g. 4*ssh=host//python="
                         "/path/venv/bin/python (repeatable; each host needs "
                         "the same smpvm installed)")
    hu.add_argument("--noise", type=int, default=-1, metavar="LEVEL",
                    help="free runs' noise, 0..3 (default: each profile "
                         "draws 1..3)")
    hu.add_argument("--arms", default=",".join(ARMS),
                    help="the portfolio's arms (default all: "
                         + ",".join(ARMS) + ")")
    hu.add_argument("--no-shrink", action="store_true",
                    help="do not shrink a deterministic finding's schedule")
    hu.add_argument("--save-schedule", default="", metavar="DIR",
                    help="where a failing schedule goes (default "
                         "$XDG_STATE_HOME/smpvm/schedules/)")
    hu.add_argument("--json", default="",
                    help="write the runs, the finding and the coverage here")
    hu.add_argument("--quiet", action="store_true",
                    help="no progress line")
    hu.set_defaults(fn=cmd_hunt)

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

    k = sub.add_parser("kernels", help="the kernel versions --kernel takes: "
                       "the seed and the upstream commits after it")
    k.set_defaults(fn=cmd_kernels)

    bs = sub.add_parser("bisect", help="the first kernel version where a "
                        "stress or race run's finding disappears (or "
                        "appears), K seeds per version",
                        usage="smpvm bisect OLD NEW [--seeds K] [--finding "
                        "TEXT] -- stress|race [options]")
    bs.add_argument("old", help="the older version (seed, a commit)")
    bs.add_argument("new", help="the newer version (a commit, fixed)")
    bs.add_argument("--seeds", type=int, default=3, metavar="K",
                    help="seeds per version, from the command's --seed on "
                         "(default 3)")
    bs.add_argument("--finding", default="", metavar="TEXT",
                    help="track the finding whose signature contains TEXT "
                         "(default: the one the old version finds most)")
    # the run's command line follows a "--": main() takes it off first
    bs.set_defaults(fn=cmd_bisect, command=[])

    h = sub.add_parser("history", help="test what each upstream commit "
                       "after the seed claims, on it and on its parent")
    h.add_argument("--only", default="", metavar="HASH[,HASH]",
                   help="only these versions' claims")
    h.add_argument("--quick", action="store_true",
                   help="short runs, one seed, no deterministic schedule "
                        "sweeps (for tests)")
    h.add_argument("--seeds", type=int, default=2,
                   help="seeds of the stress runs per version (default 2)")
    h.add_argument("--json", default="", metavar="FILE",
                   help="write every figure measured here")
    h.add_argument("--plot", default="", metavar="FILE.png",
                   help="the metric of each claim, parent vs version")
    h.add_argument("--markdown", action="store_true",
                   help="print the table as markdown")
    h.add_argument("--quiet", action="store_true", help="no progress")
    h.set_defaults(fn=cmd_history)

    c = sub.add_parser("clean", help="remove this user's leftovers of dead "
                       "machines")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(fn=cmd_clean)
    return p


def _one_line(msg):
    msg = " ".join(str(msg).split("\n")[0].split())
    sys.stderr.write((msg if msg.startswith("smpvm") else f"smpvm: {msg}")
                     + "\n")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if argv[:1] == ["bisect"] and "--" in argv:
        # smpvm bisect OLD NEW [options] -- stress|race [its options]
        k = argv.index("--")
        argv, command = argv[:k], argv[k + 1:]
    a = build_parser().parse_args(argv)
    if a.cmd == "bisect":
        a.command = command
    try:
        return a.fn(a)
    except HostError as e:
        _one_line(e)
        return EXIT_HOST
    except SmpvmError as e:
        _one_line(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:             # `smpvm stat | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:                # a path the checks could not foresee
        he = host_error_of(e)
        _one_line(he or f"{e.strerror}: {e.filename or ''}")
        return EXIT_HOST if he else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
