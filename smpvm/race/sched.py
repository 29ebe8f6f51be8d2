"""The deterministic scheduler's Python face (csrc/sched.c does the work).

Create a machine with MachineConfig(clock="virtual", sched=SchedConfig(...)):
every CPU process and kernel thread then runs alone between preemption
points, in the order the strategy draws from the seed.  Start the threads
with a Supervisor as usual; the schedule begins when all of them have
attached (Supervisor.wait calls sched_go).  The host must not run kernel
code while the schedule runs.

Afterwards read what happened: steps(m), trace_hash(m), trace_ring(m),
trace(m) (with SchedConfig.trace > 0), recorded_schedule(m) -- the choices
that differ from the default policy, which replay the run exactly with
strategy "forced" (Schedule.replay_config()).
"""
import collections
import dataclasses
import json

from smpvm.config import SCHED_STRATEGIES, SchedConfig
from smpvm.layout import ffi, lib, region

Event = collections.namedtuple("Event", "step tid op id next")

OP_NAMES = {getattr(lib, n): n[5:].lower()
            for n in dir(lib) if n.startswith("HOOK_")}
OP_NAMES.update({getattr(lib, n): n[9:].lower()
                 for n in dir(lib) if n.startswith("SCHED_EV_")})


def pct_bound(n, k, d):
    """PCT's lower bound on finding a bug of depth d in one run with n
    threads and k steps: 1 / (n * k^(d-1))."""
    return 1.0 / (n * float(k) ** (d - 1))


def sched_state(machine):
    """The machine's struct sched_state (cdata), None if it has none."""
    if not machine.hdr.region_len[lib.REG_SCHED]:
        return None
    return region(machine.base, lib.REG_SCHED, "struct sched_state")


def _state(machine):
    s = sched_state(machine)
    if s is None:
        raise ValueError(f"machine {machine.name} is not in deterministic "
                         "mode")
    return s


def steps(machine):
    return _state(machine).step


def trace_hash(machine):
    """FNV-1a-64 over every event (step, tid, op, id, next) of the run."""
    return _state(machine).trace_hash


def _event(e):
    return Event(e.step, e.tid, e.op, e.id, e.next)


def trace_ring(machine):
    """The last SCHED_RING events, oldest first."""
    s = _state(machine)
    n = s.nevents
    first = max(0, n - lib.SCHED_RING)
    return [_event(s.ring[i % lib.SCHED_RING]) for i in range(first, n)]


def trace_bytes(machine):
    """The full trace as raw bytes (the first SchedConfig.trace events)."""
    s = _state(machine)
    n = min(s.nevents, s.trace_cap)
    return bytes(ffi.buffer(ffi.cast("struct sched_event *", s + 1),
                            n * ffi.sizeof("struct sched_event")))


def trace(machine):
    """The full trace (the first SchedConfig.trace events) as Events."""
    s = _state(machine)
    ev = ffi.cast("struct sched_event *", s + 1)
    return [_event(ev[i]) for i in range(min(s.nevents, s.trace_cap))]


def trace_complete(machine):
    """True when the full trace holds every event of the run."""
    s = _state(machine)
    return s.nevents <= s.trace_cap


def deadlock(machine):
    """The deadlock report ('sched: deadlock at step N: ...') or None."""
    s = _state(machine)
    return ffi.string(s.report).decode() if s.deadlock else None


def hang(machine):
    """The report of threads still running max_steps steps after the
    shutdown asked at max_steps, or None."""
    s = _state(machine)
    return ffi.string(s.report).decode() if s.hang else None


def format_event(e, names=None):
    names = names or {}
    who = names.get(e.tid, f"tid {e.tid}") if e.tid >= 0 else "-"
    nxt = names.get(e.next, f"tid {e.next}") if e.next >= 0 else "-"
    return (f"{e.step:8d} {who:>12} {OP_NAMES.get(e.op, e.op):<10} "
            f"{e.id:>8} -> {nxt}")


@dataclasses.dataclass
class Schedule:
    """What a run needs to be replayed: its options and its choices
    [(step, tid, kind)], plus what it produced (steps, trace_hash)."""
    strategy: str
    seed: int
    depth: int
    k: int
    bound: int
    max_steps: int
    tick_steps: int
    choices: list
    steps: int = 0
    trace_hash: int = 0
    preemptions: int = 0
    complete: bool = True       # False: more choices than SCHED_MAXCHOICES
    phased: bool = False        # max_steps counted after the set-up
    stop: bool = False          # shut down at the first finding

    def replay_config(self, trace=0):
        """A SchedConfig that replays these choices exactly (forced)."""
        return SchedConfig(strategy="forced", seed=self.seed,
                           depth=self.depth, k=self.k, bound=self.bound,
                           schedule=tuple(tuple(c) for c in self.choices),
                           max_steps=self.max_steps,
                           tick_steps=self.tick_steps, trace=trace,
                           phased=self.phased, stop=self.stop)

    def preemption_list(self):
        return [c for c in self.choices if c[2] == lib.SCHED_CH_PREEMPT]

    def to_json(self):
        d = dataclasses.asdict(self)
        d["choices"] = [list(c) for c in self.choices]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        d["choices"] = [tuple(c) for c in d["choices"]]
        return cls(**d)


def recorded_schedule(machine):
    """The run's Schedule (read after the threads exited, or at a panic)."""
    s = _state(machine)
    strategy = {v: k for k, v in SCHED_STRATEGIES.items()}[s.strategy]
    return Schedule(strategy=strategy, seed=s.seed, depth=s.depth, k=s.k,
                    bound=s.bound, max_steps=s.max_steps,
                    tick_steps=s.tick_steps,
                    choices=[(c.step, c.tid, c.kind, c.at, c.tstep)
                             for c in s.choices[0:s.nchoices]],
                    steps=s.step, trace_hash=s.trace_hash,
                    preemptions=s.preemptions,
                    complete=s.choices_lost == 0,
                    phased=bool(s.flags & lib.SCHED_F_PHASED),
                    stop=bool(s.flags & lib.SCHED_F_STOP))


def summary(machine):
    """A dict of the run's scheduler figures (for reports and JSON)."""
    s = _state(machine)
    # the budget's steps: those after the set-up when phased
    work = (s.step - s.base if s.setup_done else 0) \
        if s.flags & lib.SCHED_F_PHASED else s.step
    return {"strategy": recorded_schedule(machine).strategy, "seed": s.seed,
            "steps": s.step, "workload_steps": work,
            "setup_steps": s.base if s.setup_done else s.step,
            "stopped_at_finding": bool(s.found),
            "trace_hash": f"{s.trace_hash:016x}",
            "switches": s.switches, "preemptions": s.preemptions,
            "choices": s.nchoices, "diverged": s.diverged,
            "deadlock": bool(s.deadlock), "hang": bool(s.hang),
            "token_losses": s.toklosses, "steered": s.steered,
            "ticks": machine.hdr.ticks}


__all__ = ["SchedConfig", "Schedule", "Event", "pct_bound", "sched_state",
           "steps", "trace_hash", "trace_ring", "trace", "trace_bytes",
           "trace_complete", "deadlock", "hang", "recorded_schedule", "summary",
           "format_event"]
