"""The options of a stress or race run: one dataclass, checked in full
before anything starts, with every message naming the option a user types
(--cpus, --seed, --steps), never a field inside smpvm (ncpus, sched.seed).

The names it accepts come from below: kernels from vm_init (the versions of
vm/versions.py and "fixed"), bugs
from vm/bugs.py, strategies from config.SCHED_STRATEGIES, checkers from
config.CHECKERS, ops from the workloads.  The hunting profile of
deterministic runs (and each bug's own over it) is here too.
"""
import dataclasses
import math
import random

from smpvm.config import (SCHED_STRATEGIES, MachineConfig, SchedConfig,
                          parse_check)
from smpvm.errors import ConfigError
from smpvm.kern import sysctl
from smpvm.layout import lib
from smpvm.stress.workloads import OPS, STRESS_MIX
from smpvm.vm.bugs import BUGS
from smpvm.vm.vm_init import kernel_name

# the option that sets a MachineConfig/SchedConfig field (for messages)
OPTION_OF = {"ncpus": "--cpus", "npages": "--npages", "nobjects": "--nobjects",
             "nvnodes": "--nvnodes", "nswap": "--nswap", "nmeta": "--nmeta",
             "hz": "--hz", "speedup": "--speedup", "datadir_base": "--datadir",
             "check": "--check", "check_sample": "--check-sample",
             "sched.seed": "--seed", "sched.k": "--steps",
             "sched.max_steps": "--steps", "sched.depth": "--pct-depth",
             "sched.bound": "--bound", "sched.tick_steps": "--tick-steps",
             "sched.trace": "--trace", "sched.strategy": "--sched",
             "sched.schedule": "the schedule", "noise": "--noise",
             "sched.token_loss": "--token-loss"}
# StressOptions fields whose option is not --field-with-dashes
_SPELLED = {"json_path": "--json", "lockstat_dir": "--lockstat",
            "sysctls": "--sysctl", "sched": "--sched"}

# The hunting profile of deterministic runs (StressOptions fields): files
# larger than memory, so pages are evicted and read back through the SSD;
# an SSD small enough that cleaning runs all the time; destructive ops not
# rate-limited.  tools/bench_detect.py and the tests use it.
HUNT = dict(gap_scale=0.0, files=3, file_pages=16, npages=64, nswap=96,
            nmeta=32, mix={"read": 20, "write": 10, "unlink": 3,
                           "truncate": 2, "mmap": 2, "xread": 5})


def hunt_profile(bug):
    """StressOptions fields for hunting bug on a deterministic schedule: the
    general profile, with the bug's own (smpvm/vm/bugs.py) over it."""
    return dict(HUNT, **(BUGS[bug].options() if bug else {}))


def option_name(field):
    return _SPELLED.get(field, "--" + field.replace("_", "-"))


def _show(value):
    text = f"{value:g}" if isinstance(value, float) else repr(value) \
        if not isinstance(value, int) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def option_error(e):
    """ConfigError e of a MachineConfig/SchedConfig, reworded with the
    option the user typed ("--cpus 0: must be 1..32")."""
    opt = OPTION_OF.get(e.field)
    if not opt:
        return e
    return ConfigError(f"{opt} {_show(e.value)}: {e.what}", e.field, e.value,
                       e.what)


def _need(ok, option, value, what):
    if not ok:
        raise ConfigError(f"{option} {_show(value)}: {what}", option, value,
                          what)


@dataclasses.dataclass
class StressOptions:
    command: str = "stress"     # stress or race: what replays it
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
    # end the run at the first finding: a free run when the host sees it, a
    # deterministic one at the step it happens (so that it replays)
    stop_on_detection: bool = False
    noise: int = 0              # free runs: delays at preemption points
    #                             (0 off .. NOISE_MAX), drawn from the seed
    gap_scale: float = 1.0      # x MIN_OP_GAP (0: no rate limit)
    sysctls: tuple = ()         # at boot: (("vm.swapcache.maxlaunder", "8"),)
    # deterministic schedule (race/sched.py): off, random, pct, bounded,
    # forced (a recorded choice list: `schedule`).  The budget is the
    # workload's: `steps` preemption points after a CPU created its
    # files (the set-up is not counted), then the schedule asks for shutdown
    sched: str = "off"
    steps: int = 200000
    tick_steps: int = 200       # one virtual tick every N steps
    pct_depth: int = 3
    bound: int = 2
    schedule: tuple = ()        # forced: ((step, tid, kind, at, tstep), ...)
    # per mille of the token acquisitions that could block made to block
    # (the thread loses its tokens), then, with steer, a waiter for one of
    # them runs (SchedConfig.token_loss, steer)
    token_loss: int = 0
    steer: bool = True
    trace: int = 0              # full-trace events kept (for scenarios)
    check: str = ""             # race checkers (config.CHECKERS, or all)
    check_sample: int = 1
    # where the run's files go (checked before it starts; "" none)
    quiet: bool = False
    json_path: str = ""
    lockstat_dir: str = ""
    save_schedule: str = ""     # a failing schedule: FILE, or DIR/ (a new
    #                             name in DIR); "" keeps it unsaved
    datadir: str = ""           # the machine's data directory goes here

    def validate(self):
        """Check every option (types too: replay files are read back);
        ConfigError naming the option.  Returns the MachineConfig."""
        self._check_types()
        _need(math.isfinite(self.seconds) and self.seconds > 0, "--seconds",
              self.seconds, "must be a finite number > 0")
        _need(math.isfinite(self.check_every) and self.check_every > 0,
              "--check-every", self.check_every,
              "must be a finite number of seconds > 0")
        _need(math.isfinite(self.gap_scale) and self.gap_scale >= 0,
              "--gap-scale", self.gap_scale, "must be a finite number >= 0")
        _need(math.isfinite(self.kill_cpu_at) and self.kill_cpu_at >= 0,
              "--kill-cpu-at", self.kill_cpu_at,
              "must be a finite number of seconds >= 0 (0: never)")
        _need(self.command in ("stress", "race"), "command", self.command,
              "stress or race")
        try:
            kernel_name(self.kernel)
        except ValueError:
            _need(False, "--kernel", self.kernel,
                  "seed, fixed or a commit after the seed (smpvm kernels "
                  "lists them)")
        bad = [k for k in self.mix if k not in OPS]
        _need(not bad, "--mix", ",".join(map(str, bad)),
              f"unknown op (ops: {', '.join(OPS)})")
        _need(all(isinstance(w, int) and not isinstance(w, bool) and w >= 0
                  for w in self.mix.values()) and any(self.mix.values()),
              "--mix", ",".join(f"{k}={w}" for k, w in self.mix.items()),
              "weights must be integers >= 0, not all 0")
        _need(not self.bug or self.bug in BUGS, "--bug", self.bug,
              "one of " + ", ".join(sorted(BUGS)))
        for f in ("files", "file_pages"):
            _need(getattr(self, f) >= 1, option_name(f), getattr(self, f),
                  "must be >= 1")
        _need(self.files <= (1 << 20) // max(1, self.cpus), "--files",
              self.files, f"at most {(1 << 20) // max(1, self.cpus)} per CPU "
              f"with {self.cpus} CPUs (the machine's vnodes)")
        for f in ("eio_ppm", "short_ppm", "enospc_ppm", "delay_ppm"):
            _need(0 <= getattr(self, f) <= 1000000, option_name(f),
                  getattr(self, f), "must be 0..1000000")
        _need(0 <= self.delay_us <= 10000000, "--delay-us", self.delay_us,
              "must be 0..10000000 (10 s)")
        for pair in self.sysctls:
            _need(isinstance(pair, (tuple, list)) and len(pair) == 2,
                  "--sysctl", pair, "expected name=value")
            sysctl.parse_value(sysctl.lookup(str(pair[0])), str(pair[1]))
        _need(self.sched in SCHED_STRATEGIES, "--sched", self.sched,
              "one of " + ", ".join(s for s in SCHED_STRATEGIES
                                    if s != "forced"))
        _need(0 <= self.seed < 1 << 64, "--seed", self.seed,
              "must be 0..2^64-1")
        _need(self.steps >= 1, "--steps", self.steps, "must be >= 1")
        _need(self.tick_steps >= 0, "--tick-steps", self.tick_steps,
              "must be >= 0")
        _need(self.sched == "off" or not self.kill_cpu_at, "--kill-cpu-at",
              self.kill_cpu_at, "needs a free-running run (no --sched)")
        _need(isinstance(self.noise, int) and
              0 <= self.noise <= lib.NOISE_MAX, "--noise", self.noise,
              f"must be 0..{lib.NOISE_MAX}")
        _need(self.sched != "off" or not self.token_loss, "--token-loss",
              self.token_loss, "needs a deterministic run (--sched): a "
              "free run's token waits are the host's")
        _need(self.sched == "off" or not self.noise, "--noise", self.noise,
              "needs a free-running run (a schedule decides every "
              "interleaving itself)")
        for c in self.schedule:
            _need(isinstance(c, (tuple, list)) and len(c) in (3, 5) and
                  all(isinstance(x, int) for x in c), "the schedule", c,
                  "each choice must be [step, tid, kind, at, tstep] (or "
                  "[step, tid, kind])")
        try:
            parse_check(self.check)
            cfg = self.machine_config().validate()
        except ConfigError as e:
            raise option_error(e) from None
        except ValueError as e:
            raise ConfigError(f"--check {self.check!r}: {e}") from None
        _need(self.nmeta // self.cpus >= 1, "--nmeta", self.nmeta,
              f"must give each of the {self.cpus} cpus a page")
        return cfg

    def _check_types(self):
        """Each field has its default's type (a replay file may hold
        anything): one line naming the option if not."""
        d = StressOptions(cpus=2)
        for f in dataclasses.fields(self):
            v, want = getattr(self, f.name), type(getattr(d, f.name))
            if want is float:
                ok, what = isinstance(v, (int, float)) and \
                    not isinstance(v, bool), "must be a number"
            elif want is int:
                ok, what = isinstance(v, int) and not isinstance(v, bool), \
                    "must be an integer"
            elif want is tuple:
                ok, what = isinstance(v, (tuple, list)), "must be a list"
            else:
                ok, what = isinstance(v, want), \
                    f"must be a {want.__name__}"
            _need(ok, option_name(f.name), v, what)

    def sched_config(self):
        """The SchedConfig of a deterministic run (strategy off if free).
        The schedule's seed is the run's seed: one seed drives all."""
        return SchedConfig(strategy=self.sched, seed=self.seed,
                           depth=self.pct_depth, k=self.steps,
                           bound=self.bound,
                           schedule=tuple(tuple(c) for c in self.schedule),
                           max_steps=self.steps, tick_steps=self.tick_steps,
                           trace=self.trace, phased=True,
                           stop=self.stop_on_detection,
                           token_loss=self.token_loss, steer=self.steer)

    def machine_config(self):
        det = self.sched != "off"
        # room for every CPU's files twice over (an unlinked file's vnode
        # lives on while it is open), the meta device and a few more; an
        # object per vnode, twice over -- the defaults when they fit, so a
        # small run's machine (and its schedules) stays the same
        nvnodes = max(MachineConfig.nvnodes, 2 * self.cpus * self.files + 16)
        nobjects = max(MachineConfig.nobjects, 2 * nvnodes)
        return MachineConfig(ncpus=self.cpus, npages=self.npages,
                             nvnodes=nvnodes, nobjects=nobjects,
                             nswap=self.nswap, nmeta=self.nmeta,
                             check=self.check,
                             check_sample=self.check_sample,
                             clock="virtual" if det else "wall",
                             datadir_base=self.datadir,
                             sched=self.sched_config(),
                             noise=0 if det else self.noise,
                             noise_seed=self.seed)

    def faults(self):
        """The SSD fault parameters (vm_boot's faults): one seed drives the
        workload, the faults and the scheduler."""
        return {"seed": self.seed, "eio_ppm": self.eio_ppm,
                "short_ppm": self.short_ppm, "enospc_ppm": self.enospc_ppm,
                "delay_ppm": self.delay_ppm, "delay_us": self.delay_us}

    def bug_bits(self):
        return BUGS[self.bug].bits if self.bug else 0

    def replay_command(self):
        """The exact command that replays this run."""
        d = StressOptions()
        args = ["smpvm", self.command, "--seed", str(self.seed),
                "--seconds", f"{self.seconds:g}", "--cpus", str(self.cpus),
                "--kernel", self.kernel]
        if self.mix != d.mix and not self.swarm:
            args += ["--mix", ",".join(f"{k}={v}" for k, v in
                                       self.mix.items())]
        for f in ("npages", "nswap", "nmeta", "files", "file_pages",
                  "eio_ppm", "short_ppm", "enospc_ppm", "delay_ppm",
                  "delay_us", "kill_cpu_at", "gap_scale"):
            if getattr(self, f) != getattr(d, f):
                args += [option_name(f), f"{getattr(self, f):g}"]
        if self.swarm:
            args.append("--swarm")
        if self.bug:
            args += ["--bug", self.bug]
        if self.noise:
            args += ["--noise", str(self.noise)]
        if self.stop_on_detection:
            args.append("--stop-on-detection")
        for name, value in self.sysctls:
            args += ["--sysctl", f"{name}={value}"]
        if self.check and not (self.command == "race" and
                               self.check == "all"):
            args += ["--check", self.check]
        if self.check_sample != 1:
            args += ["--check-sample", str(self.check_sample)]
        if self.sched not in ("off", "forced"):
            args += ["--sched", self.sched, "--steps", str(self.steps)]
            for f in ("tick_steps", "pct_depth", "bound", "token_loss"):
                if getattr(self, f) != getattr(d, f):
                    args += [option_name(f), str(getattr(self, f))]
            if self.token_loss and not self.steer:
                args.append("--no-steer")
        return " ".join(args)


def swarm(opts):
    """Swarm testing: the seed picks a random subset of the ops and their
    weights (reads always stay, so there is something to verify).  Returns
    a copy of opts with that mix."""
    rng = random.Random(opts.seed ^ 0x5eed)
    mix = {}
    for k in OPS:
        if k == "read" or rng.random() < 0.6:
            mix[k] = rng.choice((1, 2, 5, 10, 20, 40))
    return dataclasses.replace(opts, mix=mix)

