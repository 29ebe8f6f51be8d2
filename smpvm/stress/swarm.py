"""Swarm profiles and the portfolio's arms: what one run of a hunt is.

A run is (arm, profile seed, run seed): the arm says how it is scheduled
(free-running with noise, or deterministic under random, PCT of depth d or
bounded with b preemptions, the loss arms with injected token losses), the
profile seed draws the machine and the workload from PROFILE_SPACE (swarm
testing: every run leaves some ops out and sizes the machine its own way),
and the run seed drives the workload,
the faults, the noise and the schedule.  Each part is drawn from its seed
alone, so a run is reproducible from those three numbers (and the kernel
and bug), and a profile that added coverage can be run again with another
run seed and another arm.

The old hunting profiles are points of this space, not special cases:
HUNT (options.HUNT: 2 CPUs x 3 files x 16 pages, memory 0.67 and swap
1 x that working set) and the cleaning defects' (2 x 4 x 8, swap 1 x, a
tick every 20 steps, maxlaunder 2, read/write/unlink only) are draws it
can make.
"""
import dataclasses
import random

from smpvm.stress.options import StressOptions
from smpvm.stress.workloads import OPS

# injected token losses (SchedConfig.token_loss, per mille of the token
# acquisitions that could block): a thread blocks there and loses its
# tokens, then one that waited for them runs -- the interleaving that
# breaks a multi-step update of shared state which blocks between its
# steps (a range free that frees entry by entry, H2).  The random arm loses
# at some (300: about 400 losses in a 100 000-step run of 2 CPUs), the
# bounded one at every such acquisition: with H2 on swarm profiles, 1000
# hit 5 of 120 bounded runs, 600 2 of 60, 300 2 of 120, 100 0 of 60
TOKEN_LOSS = 300
TOKEN_LOSS_ALL = 1000

# how each run is scheduled: (name, StressOptions fields)
ARMS = {
    "free": {"sched": "off"},
    "random": {"sched": "random"},
    "pct1": {"sched": "pct", "pct_depth": 1},
    "pct2": {"sched": "pct", "pct_depth": 2},
    "pct3": {"sched": "pct", "pct_depth": 3},
    "bounded1": {"sched": "bounded", "bound": 1},
    "bounded2": {"sched": "bounded", "bound": 2},
    "bounded3": {"sched": "bounded", "bound": 3},
    "loss-random": {"sched": "random", "token_loss": TOKEN_LOSS},
    "loss-bounded2": {"sched": "bounded", "bound": 2,
                      "token_loss": TOKEN_LOSS_ALL},
}

# the profile space: each field's values, drawn uniformly (repeats weigh).
# Memory and the SSD are sized against the working set (CPUs x files x
# pages): memory smaller than it, so that pages cycle through the SSD, and
# an SSD from half to four times it, so that some profiles fill it past
# maxswappct and clean all the time, others only write.
PROFILE_SPACE = {
    "cpus": (2, 2, 2, 3, 3, 4),
    "files": (1, 2, 3, 4, 4, 6, 8),
    "file_pages": (4, 8, 8, 16, 16, 32),
    "memory": (0.25, 0.5, 0.67, 1.0),       # x the working set
    "swap": (0.5, 1.0, 1.0, 2.0, 3.0, 4.0),     # x the working set
    "nmeta": (32, 64, 128, 256),
    "gap_scale": (0.0, 0.0, 0.0, 0.0, 0.1, 1.0),
    "tick_steps": (10, 20, 20, 50, 100),
    "steps": (50000, 100000, 200000, 300000),
    "maxlaunder": (2, 4, 16, 64, 256),
    "maxswappct": (10, 20, 40, 40, 60, 75),
    "op_weights": (1, 2, 3, 5, 10, 20, 30, 40),
    "free_seconds": (3.0, 5.0, 8.0),
    "free_check": ("all", "all", ""),
    "noise": (1, 2, 2, 3),
}
# each op is in a profile's mix with this probability (read always: there
# is something to verify); writes, unlinks and truncations more often than
# the rest, since they are what invalidates swap copies and terminates
# objects under the cleaning pass
OP_PRESENT = {"read": 1.0, "write": 0.8, "unlink": 0.7, "truncate": 0.7}
OP_PRESENT_OTHER = 0.5


def profile(profile_seed):
    """The StressOptions fields of profile profile_seed (a dict; schedule
    fields too -- a free run ignores them)."""
    rng = random.Random(profile_seed * 2654435761 + 0x5a)
    sp = PROFILE_SPACE

    def pick(name):
        return rng.choice(sp[name])

    p = {k: pick(k) for k in ("cpus", "files", "file_pages", "nmeta",
                              "gap_scale", "tick_steps", "steps")}
    ws = p["cpus"] * p["files"] * p["file_pages"]
    p["npages"] = min(448, max(64, int(ws * pick("memory"))))
    p["nswap"] = min(1024, max(64, int(ws * pick("swap"))))
    p["nmeta"] = max(p["nmeta"], 16 * p["cpus"])
    mix = {}
    for op in OPS:
        if rng.random() < OP_PRESENT.get(op, OP_PRESENT_OTHER):
            mix[op] = pick("op_weights")
    p["mix"] = mix
    p["sysctls"] = (("vm.swapcache.maxlaunder", str(pick("maxlaunder"))),
                    ("vm.swapcache.maxswappct", str(pick("maxswappct"))))
    p["seconds"] = pick("free_seconds")
    p["free_check"] = pick("free_check")
    p["noise"] = pick("noise")
    return p


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a hunt."""
    arm: str
    profile_seed: int
    run_seed: int

    def options(self, kernel="fixed", bug="", noise=None, **more):
        """The StressOptions of this run (validated).  noise: the free
        runs' level (None: the profile's draw; 0: none)."""
        p = profile(self.profile_seed)
        arm = ARMS[self.arm]
        free = arm["sched"] == "off"
        o = dict(cpus=p["cpus"], npages=p["npages"], nswap=p["nswap"],
                 nmeta=p["nmeta"], files=p["files"],
                 file_pages=p["file_pages"], gap_scale=p["gap_scale"],
                 mix=p["mix"], sysctls=p["sysctls"], seed=self.run_seed,
                 kernel=kernel, bug=bug, quiet=True, command="race")
        if free:
            o.update(seconds=p["seconds"], check=p["free_check"],
                     noise=p["noise"] if noise is None else noise,
                     check_every=min(2.0, p["seconds"] / 2),
                     stop_on_detection=True)
            if not o["check"]:
                o["command"] = "stress"
        else:
            o.update(arm, steps=p["steps"], tick_steps=p["tick_steps"],
                     check="all", stop_on_detection=True, seconds=60.0)
        o.update(more)
        opts = StressOptions(**o)
        opts.validate()
        return opts

    def label(self):
        return f"{self.arm} profile {self.profile_seed} seed {self.run_seed}"
