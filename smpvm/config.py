"""Sizes of one machine, with defaults that boot in well under a second.

Limits come from csrc/smpvm.h (through lib); this module only checks a
config against them so that a bad size is one clear line, not a C error.
"""
import dataclasses
import os

from smpvm.errors import ConfigError
from smpvm.layout import lib


def default_ncpus():
    """One CPU process per host core, at least 2 so that races can happen."""
    return max(2, min(os.cpu_count() or 2, lib.SMPVM_MAXCPUS))


CHECKERS = {"fields": lib.RACE_FIELDS, "witness": lib.RACE_WITNESS,
            "hb": lib.RACE_HB, "protocol": lib.RACE_PROTOCOL}


def parse_check(spec):
    """"" -> 0, "all" -> every checker, else a comma list of CHECKERS."""
    if spec in ("", None):
        return 0
    if spec is True or spec == "all":
        return lib.RACE_ALL
    flags = 0
    for name in str(spec).split(","):
        name = name.strip()
        if name not in CHECKERS:
            raise ValueError(f"unknown checker {name!r} (all, "
                             + ", ".join(CHECKERS) + ")")
        flags |= CHECKERS[name]
    return flags
SCHED_STRATEGIES = {"off": lib.SCHED_OFF, "random": lib.SCHED_RANDOM,
                    "pct": lib.SCHED_PCT, "bounded": lib.SCHED_BOUNDED,
                    "forced": lib.SCHED_FORCED}


@dataclasses.dataclass
class SchedConfig:
    """The deterministic scheduler (csrc/sched.c); off by default.

    strategy   off | random | pct | bounded | forced
    seed       drives every choice (and the PCT/bounded plans)
    depth      pct: bug depth d (d-1 priority change points)
    k          pct, bounded: estimated steps of the run (plans fall in [1, k])
    bound      bounded: at most this many preemptions of a runnable thread
    schedule   forced: choices as recorded, ((step, tid, kind, at, tstep),
               ...), each applied at thread at's tstep-th decision (so one
               dropped choice moves no other), or ((step, tid[, kind]), ...)
               at global steps, ascending; every other decision follows the
               default policy
    max_steps  at this step the scheduler asks for shutdown (0: never); a
               thread still running max_steps steps later (phased: at least
               SCHED_EXIT_STEPS) is a hang (panic)
    tick_steps one virtual tick every this many steps (0: the clock moves
               only when every thread sleeps); daemons polling with tsleep
               timeouts need it while CPUs are busy
    trace      events of the full trace kept in the segment (0: ring only)
    phased     max_steps and the pct/bounded plans count the steps after
               the first CPU finished its set-up (sched_setup_done), not from
               the start: the budget is the workload's
    stop       ask for shutdown at the first race report or wrong byte
               (the step it happens at replays like any other)
    token_loss per mille of the token acquisitions that could block (not
               recursive, by a thread holding other tokens and no spinlock)
               that are made to block, losing the thread's tokens as if
               another CPU held the token (sched_token_loss; recorded as
               SCHED_CH_TOKLOSS choices, which a forced schedule replays)
    steer      after such a loss, give the turn to a thread that waited for
               one of the tokens let go (one that works on the same object)
    """
    strategy: str = "off"
    seed: int = 0
    depth: int = 3
    k: int = 10000
    bound: int = 2
    schedule: tuple = ()
    max_steps: int = 0
    tick_steps: int = 0
    trace: int = 0
    phased: bool = False
    stop: bool = False
    token_loss: int = 0
    steer: bool = False

    @property
    def flags(self):
        """sched_configure's SCHED_F_* flags."""
        return ((lib.SCHED_F_PHASED if self.phased else 0)
                | (lib.SCHED_F_STOP if self.stop else 0))

    @property
    def on(self):
        return self.strategy != "off"

    def validate(self):
        def need(ok, field, what):
            if not ok:
                value = getattr(self, field)
                raise ConfigError(f"sched.{field}={value!r}: {what}",
                                  f"sched.{field}", value, what)

        need(self.strategy in SCHED_STRATEGIES, "strategy",
             "must be one of " + ", ".join(SCHED_STRATEGIES))
        need(0 <= self.seed < 1 << 64, "seed", "must be 0..2^64-1")
        need(1 <= self.depth <= lib.SCHED_MAXPLAN + 1, "depth",
             f"must be 1..{lib.SCHED_MAXPLAN + 1}")
        need(1 <= self.k < 1 << 62, "k", "must be at least 1")
        need(0 <= self.bound <= lib.SCHED_MAXPLAN, "bound",
             f"must be 0..{lib.SCHED_MAXPLAN}")
        need(len(self.schedule) <= lib.SCHED_MAXCHOICES, "schedule",
             f"at most {lib.SCHED_MAXCHOICES} choices")
        shapes = {len(c) for c in self.schedule}
        need(shapes <= {2, 3} or shapes == {5}, "schedule",
             "choices are all (step, tid[, kind]) or all (step, tid, kind, "
             "at, tstep)")
        if shapes == {5}:
            # a token loss may share its anchor with the pick before it
            anchors = [(c[3], c[4], c[2] == lib.SCHED_CH_TOKLOSS)
                       for c in self.schedule]
            need(len(set(anchors)) == len(anchors) and
                 all(-1 <= a < lib.SMPVM_MAXTHREADS and t >= 1
                     for a, t, _ in anchors), "schedule",
                 "each (at, tstep) anchor once, at -1..threads, tstep >= 1")
        else:
            steps = [c[0] for c in self.schedule]
            need(steps == sorted(set(steps)), "schedule",
                 "steps must be strictly ascending")
        need(0 <= self.max_steps < 1 << 62, "max_steps", "must be >= 0")
        need(0 <= self.tick_steps < 1 << 62, "tick_steps", "must be >= 0")
        need(0 <= self.trace <= 1 << 24, "trace", "must be 0..2^24 events")
        need(0 <= self.token_loss <= lib.SCHED_TOKLOSS_SCALE, "token_loss",
             f"must be 0..{lib.SCHED_TOKLOSS_SCALE} (per mille)")
        return self


@dataclasses.dataclass
class MachineConfig:
    ncpus: int = dataclasses.field(default_factory=default_ncpus)
    maxthreads: int = lib.SMPVM_MAXTHREADS
    npages: int = 4096          # 16 MiB of emulated physical memory
    nobjects: int = 1024
    nvnodes: int = 256
    nswap: int = 8192           # 32 MiB swap (SSD) device
    nmeta: int = 1024           # 4 MiB VCHR meta-data device
    spin_pool: int = lib.SPINLOCK_NUM_POOL
    token_pool: int = lib.LWKT_NUM_POOL_TOKENS
    nsleepq: int = 1024
    hz: int = lib.HZ_DEFAULT
    datadir_base: str = ""      # where the machine's data directory goes
    clock: str = "wall"         # wall (hz of real time) or virtual
    speedup: int = 1            # wall clock: ticks run this many times faster
    check: str = ""             # race checkers: "", "all" or fields,witness,hb
    check_sample: int = 1       # happens-before: check 1 access in N
    sched: SchedConfig = dataclasses.field(default_factory=SchedConfig)
    noise: int = 0              # free runs: delays at preemption points,
    #                             0 off .. NOISE_MAX (csrc/smpvm.c)
    noise_seed: int = 0         # which points, which delays

    def check_flags(self):
        """The RACE_* mask of self.check."""
        return parse_check(self.check)

    def validate(self):
        """Raise ConfigError naming the first field that is out of range."""
        def need(ok, field, what):
            if not ok:
                value = getattr(self, field)
                raise ConfigError(f"{field}={value!r}: {what}", field, value,
                                  what)

        def pow2(v):
            return v >= 1 and v & (v - 1) == 0

        for f in ("ncpus", "maxthreads", "npages", "nobjects", "nvnodes",
                  "nswap", "nmeta", "spin_pool", "token_pool", "nsleepq",
                  "hz"):
            need(isinstance(getattr(self, f), int)
                 and not isinstance(getattr(self, f), bool), f,
                 "must be an integer")
        need(1 <= self.ncpus <= lib.SMPVM_MAXCPUS, "ncpus",
             f"must be 1..{lib.SMPVM_MAXCPUS}")
        need(self.ncpus < self.maxthreads <= lib.SMPVM_MAXTHREADS,
             "maxthreads",
             f"must exceed ncpus and be at most {lib.SMPVM_MAXTHREADS}")
        need(64 <= self.npages <= 1 << 24, "npages", "must be 64..16777216")
        for f in ("nobjects", "nvnodes", "nmeta"):
            need(1 <= getattr(self, f) <= 1 << 24, f, "must be 1..16777216")
        # blocks 0..31 are never allocated (swaponvp keeps the first dmmax)
        need(64 <= self.nswap <= 1 << 30, "nswap", "must be 64..2^30 pages")
        need(pow2(self.spin_pool) and self.spin_pool <= 1 << 20, "spin_pool",
             "must be a power of two up to 2^20 (the pool hash masks)")
        need(1 <= self.token_pool <= 1 << 20, "token_pool",
             "must be 1..2^20")
        need(pow2(self.nsleepq) and self.nsleepq <= 1 << 16, "nsleepq",
             "must be a power of two up to 65536")
        need(1 <= self.hz <= 10000, "hz", "must be 1..10000")
        need(self.clock in ("wall", "virtual"), "clock",
             "must be wall or virtual")
        need(isinstance(self.speedup, int) and 1 <= self.speedup <= 1000,
             "speedup", "must be 1..1000")
        try:
            self.check_flags()
        except ValueError as e:
            raise ConfigError(f"check={self.check!r}: {e}", "check",
                              self.check, str(e)) from None
        need(isinstance(self.check_sample, int)
             and 1 <= self.check_sample <= 1 << 20, "check_sample",
             "must be 1..1048576")
        need(isinstance(self.noise, int) and
             0 <= self.noise <= lib.NOISE_MAX, "noise",
             f"must be 0..{lib.NOISE_MAX}")
        need(isinstance(self.noise_seed, int) and
             0 <= self.noise_seed < 1 << 64, "noise_seed",
             "must be 0..2^64-1")
        need(isinstance(self.sched, SchedConfig), "sched",
             "must be a SchedConfig")
        self.sched.validate()
        need(not self.sched.on or self.clock == "virtual", "clock",
             "must be virtual in deterministic mode (sched.strategy "
             f"{self.sched.strategy!r}): the scheduler advances it")
        if self.datadir_base:
            need(os.path.isdir(self.datadir_base), "datadir_base",
                 "must be an existing directory")
            need(os.access(self.datadir_base, os.W_OK | os.X_OK),
                 "datadir_base", "must be a directory you can write")
        return self
