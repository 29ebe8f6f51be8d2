"""`smpvm hunt`: is this kernel right?  A portfolio of runs until a time
budget runs out or the first finding.

The portfolio: free runs with noise, deterministic runs under random, PCT
(d = 1..3) and bounded (b = 1..3) schedules, and random and bounded ones
with injected token losses (a thread blocks at a token acquisition, losing
its tokens, and one that waited for them runs), each over a swarm profile
(smpvm.stress.swarm: a run is (arm, profile seed, run seed)).  The arms
that recently added coverage -- alias pairs nobody had seen -- get more of
the deterministic runs, and a profile that added coverage is run again
with other seeds and arms (kept per worker process); free runs keep a
fixed share.  Every run is checked and stops at its first finding.

The hunt is not a scheduler of its own: it runs pytest in this process
over a parametrised test (smpvm.stress.hunt_items, one item a run, drawn
when it starts), through smpvm's pytest plugin.  pytest -x ends it at the
first failure; pytest-xdist spreads the items over cores (-n) and hosts
(--tx); -n 0 runs them here.  A finding also touches a stop file, so runs
in progress on other workers of this host end at once, and the budget's
deadline ends the run in progress and skips the rest.  The items report
back through pytest (user properties): the controller prints progress as
they come and, at the end, the finding (detector, the replay command and,
for a deterministic run, its shrunk schedule) or "nothing in N runs" with
what the runs exercised.
"""
import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time

from smpvm.errors import ConfigError
from smpvm.machine import scratch_dir
from smpvm.stress.findings import (EXIT_FOUND, EXIT_INTERRUPTED, EXIT_OK,
                                   EXIT_PANIC, findings_text)
from smpvm.stress.swarm import ARMS, RunSpec
from smpvm.vm.bugs import BUGS
from smpvm.vm.vm_init import KERNELS

# the share of a worker's time that goes to free runs (rr/KCSAN-style
# noise needs real parallelism; the rest goes to deterministic runs)
FREE_SHARE = 0.3
# the rest: uniform exploration, else weighted by recent new coverage
EXPLORE = 0.25
SHRINK_RUNS, SHRINK_SECONDS = 60, 120.0


@dataclasses.dataclass
class HuntOptions:
    minutes: float = 2.0
    kernel: str = "fixed"
    bug: str = ""
    seed: int = 1               # the hunt's: draws every run's seeds
    workers: str = "auto"       # pytest-xdist -n: 0 (here), N, auto
    tx: tuple = ()              # pytest-xdist --tx specs
    noise: int = -1             # free runs' level; -1: each profile's draw
    arms: tuple = tuple(ARMS)
    shrink: bool = True
    json_path: str = ""
    save_schedule: str = ""     # failing schedules: a directory (with /)
    quiet: bool = False

    def validate(self):
        def need(ok, option, value, what):
            if not ok:
                raise ConfigError(f"{option} {value}: {what}", option, value,
                                  what)
        need(isinstance(self.minutes, (int, float)) and
             math.isfinite(self.minutes) and self.minutes > 0, "--minutes",
             self.minutes, "must be a finite number > 0")
        need(self.kernel in KERNELS, "--kernel", self.kernel,
             " or ".join(sorted(KERNELS)))
        need(not self.bug or self.bug in BUGS, "--bug", self.bug,
             "one of " + ", ".join(sorted(BUGS)))
        need(0 <= self.seed < 1 << 64, "--seed", self.seed,
             "must be 0..2^64-1")
        need(self.workers == "auto" or (str(self.workers).isdigit()),
             "-n", self.workers, "a number of workers or auto")
        need(-1 <= self.noise <= 3, "--noise", self.noise, "must be 0..3")
        bad = [a for a in self.arms if a not in ARMS]
        need(self.arms and not bad, "--arms", ",".join(bad) or "''",
             "choose among " + ",".join(ARMS))
        return self

    def nworkers(self):
        """How many workers run items (for sizing the slots)."""
        n = sum(int(t.split("*")[0]) if "*" in t and
                t.split("*")[0].isdigit() else 1 for t in self.tx)
        if self.workers == "auto":
            n += os.cpu_count() or 1
        else:
            n += int(self.workers)
        return max(1, n)


# ---- one worker: the portfolio and its runs ----------------------------------

def _function(site):
    """The kernel function of a site text: 'file.py:func' for Python, the
    C function's name for a C primitive."""
    head = site.split(" > ")[0]
    parts = head.split(":")
    return f"{parts[0]}:{parts[2]}" if len(parts) >= 3 else head


class Portfolio:
    """The choice of the next run, in one worker process: what this worker
    has seen (alias pairs), what each arm earned (new pairs per second),
    the profiles that added coverage."""

    def __init__(self, settings):
        self.seed = settings["seed"]
        self.arms = list(settings["arms"])
        self.det = [a for a in self.arms if a != "free"]
        self.free = "free" in self.arms
        self.pairs = set()
        self.earned = {a: [0, 0.0] for a in self.arms}  # new pairs, seconds
        self.productive = []
        self.runs = 0
        self.seconds = {"free": 0.0, "all": 0.0}

    def next(self, slot):
        """The RunSpec of this worker's next run (slot: the item's)."""
        rng = random.Random(self.seed * 1000003 + slot)
        first = self.runs < len(self.arms)
        if first:
            order = list(self.arms)
            random.Random(self.seed).shuffle(order)
            arm = order[(self.runs + slot) % len(order)]
        elif self.free and (not self.det or self.seconds["free"] <
                            FREE_SHARE * self.seconds["all"]):
            arm = "free"
        elif rng.random() < EXPLORE:
            arm = rng.choice(self.det)
        else:
            w = [(self.earned[a][0] + 1) / (self.earned[a][1] + 1)
                 for a in self.det]
            arm = rng.choices(self.det, weights=w)[0]
        self.runs += 1
        if self.productive and rng.random() < 0.5:
            profile_seed = rng.choice(self.productive[-8:])
        else:
            profile_seed = rng.getrandbits(31)
        return RunSpec(arm, profile_seed, rng.getrandbits(31))

    def learn(self, spec, pairs, seconds):
        """pairs: the run's alias pairs; returns those new to this worker."""
        new = [p for p in pairs if p not in self.pairs]
        self.pairs.update(new)
        e = self.earned[spec.arm]
        e[0] += len(new)
        e[1] += seconds
        self.seconds["all"] += seconds
        if spec.arm == "free":
            self.seconds["free"] += seconds
        if new and spec.arm != "free":
            self.productive.append(spec.profile_seed)
        return new


_portfolio = {}


def portfolio(settings):
    key = json.dumps(settings, sort_keys=True)
    if key not in _portfolio:
        _portfolio.clear()
        _portfolio[key] = Portfolio(settings)
    return _portfolio[key]


def stopped(settings):
    """Is the hunt over (budget spent, or a finding somewhere)?"""
    return time.time() >= settings["deadline"] or \
        os.path.exists(settings["stop_file"])


def run_slot(settings, slot):
    """One item of the hunt: draw a run, do it, learn from it.  Returns
    (result dict, failure text or None when nothing was found)."""
    from smpvm.stress.session import run
    pf = portfolio(settings)
    spec = pf.next(slot)
    noise = settings["noise"]
    opts = spec.options(kernel=settings["kernel"], bug=settings["bug"],
                        noise=None if noise < 0 else noise,
                        save_schedule=settings["save_schedule"])
    t0 = time.time()
    f = run(opts, stop=lambda: stopped(settings))
    seconds = time.time() - t0
    cov = f.coverage or {"alias_pairs": {}, "points": {}}
    new = pf.learn(spec, list(cov["alias_pairs"]), seconds)
    functions = {}
    for site, n in cov["points"].items():
        fn = _function(site)
        functions[fn] = functions.get(fn, 0) + n
    found = f.exit in (EXIT_FOUND, EXIT_PANIC)
    detectors, _ = f.detectors()
    sc = f.swapcache or {}
    res = {"slot": slot, "worker": os.environ.get("PYTEST_XDIST_WORKER",
                                                  "main"),
           "arm": spec.arm, "profile_seed": spec.profile_seed,
           "run_seed": spec.run_seed, "label": spec.label(),
           "started": round(t0 - settings["start"], 2),
           "at": round(time.time() - settings["start"], 2),
           "seconds": round(seconds, 2), "ended": f.ended, "exit": f.exit,
           "found": found, "detectors": detectors if found else [],
           "signature": sorted(f.signature()) if found else [],
           "replay": "" if f.unreplayable else f.replay,
           "unreplayable": f.unreplayable,
           "ops": f.workload.get("ops", 0),
           "writing_passes": sc.get("writing_passes", 0),
           "cleaning_passes": sc.get("cleaning_passes", 0),
           "invariant_checks": f.invariant_checks,
           "noise_delays": f.metrics.get("noise_delays", 0),
           "steps": (f.sched or {}).get("steps", 0),
           "token_losses": (f.sched or {}).get("token_losses", 0),
           "host_error": f.host_error or "; ".join(f.stalls),
           "new_pairs": [list(p) for p in new], "functions": functions}
    if not found:
        return res, None
    with contextlib.suppress(OSError):          # the others stop now
        open(settings["stop_file"], "a").close()
    res["text"] = findings_text(f)
    res["schedule_file"] = f.schedule_file
    if f.schedule_file and settings["shrink"]:
        res["shrunk"] = _shrink(f.schedule_file)
    return res, f"{spec.label()}: {', '.join(detectors)}\n{res['text']}"


def _shrink(path):
    from smpvm.stress import replay
    try:
        text, _ = replay.shrink_file(path, max_runs=SHRINK_RUNS,
                                     max_seconds=SHRINK_SECONDS)
    except ConfigError as e:
        return {"error": str(e)}
    return {"text": text}


# ---- the controller: pytest over the items, progress, the verdict ------------

@dataclasses.dataclass
class HuntResult:
    options: HuntOptions
    runs: list = dataclasses.field(default_factory=list)
    finding: dict = None
    seconds: float = 0.0
    interrupted: bool = False
    pytest_exit: int = 0
    pairs: set = dataclasses.field(default_factory=set)
    functions: dict = dataclasses.field(default_factory=dict)
    curve: list = dataclasses.field(default_factory=list)  # (t, pairs)

    @property
    def exit(self):
        if self.finding:
            return self.finding["exit"]
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK

    def add(self, r):
        self.runs.append(r)
        self.pairs.update(tuple(p) for p in r["new_pairs"])
        for fn, n in r["functions"].items():
            self.functions[fn] = self.functions.get(fn, 0) + n
        self.curve.append((r["at"], len(self.pairs)))
        if r["found"] and (self.finding is None or
                           r["at"] < self.finding["at"]):
            self.finding = r

    def by_arm(self):
        arms = {}
        for r in self.runs:
            a = arms.setdefault(r["arm"], {"runs": 0, "seconds": 0.0,
                                           "new_pairs": 0})
            a["runs"] += 1
            a["seconds"] = round(a["seconds"] + r["seconds"], 2)
            a["new_pairs"] += len(r["new_pairs"])
        return arms

    def as_dict(self):
        runs = [{k: v for k, v in r.items() if k not in ("new_pairs",
                                                         "functions")}
                for r in self.runs]
        return {"exit": self.exit, "found": bool(self.finding),
                "finding": self.finding and {
                    k: v for k, v in self.finding.items()
                    if k not in ("new_pairs", "functions")},
                "seconds": self.seconds, "interrupted": self.interrupted,
                "options": dataclasses.asdict(self.options),
                "runs": runs, "by_arm": self.by_arm(),
                "coverage": {"alias_pairs": len(self.pairs),
                             "fields": len({p[0] for p in self.pairs}),
                             "pairs": sorted(list(p) for p in self.pairs),
                             "functions": self.functions,
                             "curve": self.curve}}


class _Collector:
    """The controller's pytest plugin: each item's result as it comes."""

    def __init__(self, result, status, budget):
        self.result, self.status, self.budget = result, status, budget
        self.t0 = time.monotonic()

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        if report.when != "call" or "smpvm_run" not in props:
            return
        r = json.loads(props["smpvm_run"])
        self.result.add(r)
        if self.status:
            self._show(r)

    def _show(self, r):
        res = self.result
        t = time.monotonic() - self.t0
        fields = [(f"hunt {t:4.0f}/{self.budget:.0f}s", 0),
                  (f"runs {len(res.runs)}", 1),
                  (f"alias pairs {len(res.pairs)}", 2),
                  (f"ops {sum(x['ops'] for x in res.runs)}", 4),
                  (f"last: {r['label']} {r['seconds']:.1f}s", 3)]
        if r["found"]:
            self.status.message(f"found by {r['label']} at {r['at']:.1f} s: "
                                + ", ".join(r["detectors"]))
        self.status.show(fields)


def hunt(h, out=None):
    """Run the hunt of h (HuntOptions); returns its HuntResult."""
    from smpvm.stress.status import StatusLine
    import pytest
    h.validate()
    out = out or sys.stdout
    tmp = scratch_dir("hunt")
    try:
        ini = os.path.join(tmp, "pytest.ini")
        with open(ini, "w") as fp:
            fp.write("[pytest]\n")
        start = time.time()
        settings = {"seed": h.seed, "kernel": h.kernel, "bug": h.bug,
                    "arms": list(h.arms), "noise": h.noise,
                    "shrink": h.shrink, "start": start,
                    "deadline": start + h.minutes * 60,
                    "stop_file": os.path.join(tmp, "stop"),
                    "save_schedule": h.save_schedule,
                    "slots": max(64, int(h.minutes * 60 * h.nworkers()
                                         * 2))}
        args = ["--pyargs", "smpvm.stress.hunt_items", "-c", ini,
                "--rootdir", tmp, "-p", "no:cacheprovider", "-x",
                "-p", "no:terminal", "--smpvm-hunt", json.dumps(settings)]
        if h.workers != "0":
            args += ["-n", str(h.workers)]
        for t in h.tx:
            args += ["--tx", t]
        if h.tx:
            args += ["--dist", "load"]       # --tx alone distributes nothing
        result = HuntResult(options=h)
        status = None if h.quiet else StatusLine(out)
        if status:
            status.message(
                f"smpvm hunt: kernel {h.kernel}"
                + (f", bug {h.bug}" if h.bug else "")
                + f", {h.minutes:g} min, seed {h.seed}, arms "
                + ",".join(h.arms) + f", workers {h.workers}"
                + (f" + {len(h.tx)} --tx" if h.tx else ""))
        collector = _Collector(result, status, h.minutes * 60)
        try:
            with _quiet_stdout(), _sigterm_as_interrupt():
                result.pytest_exit = int(pytest.main(args,
                                                     plugins=[collector]))
        except KeyboardInterrupt:
            result.interrupted = True
        if result.pytest_exit == pytest.ExitCode.INTERRUPTED and \
                not result.finding:
            result.interrupted = True
        elif result.pytest_exit in (pytest.ExitCode.INTERNAL_ERROR,
                                    pytest.ExitCode.USAGE_ERROR,
                                    pytest.ExitCode.NO_TESTS_COLLECTED):
            raise ConfigError(f"smpvm hunt: pytest could not run the hunt "
                              f"(exit {result.pytest_exit})")
        result.seconds = round(time.time() - start, 1)
        if status:
            status.close()
        if h.json_path:
            with open(h.json_path, "w") as fp:
                json.dump(result.as_dict(), fp, indent=1, default=str)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends a hunt as Ctrl-C does: pytest stops its workers, the
    verdict says "interrupted" with what ran, and the temp directory goes.
    (By default SIGTERM killed the hunt where it stood: no verdict, the
    workers' teardown warnings on stderr and the temp directory left.)
    Main thread only: signals go nowhere else."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _quiet_stdout():
    """pytest's own lines (xdist's 'bringing up nodes', dots) are not the
    hunt's output: they go to /dev/null while it runs."""
    saved = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            yield
        finally:
            sys.stdout = saved


def format_hunt(res, top=12):
    """The verdict: the finding, or what nothing was found in."""
    h = res.options
    lines = []
    arms = res.by_arm()
    armtext = ", ".join(f"{a} {v['runs']}" for a, v in sorted(arms.items()))
    f = res.finding
    if f:
        lines.append(f"smpvm hunt: FOUND after {f['at']:.1f} s by run "
                     f"{f['label']} ({f['worker']}), {len(res.runs)} runs "
                     f"({armtext})")
        lines.append(f"detector: {', '.join(f['detectors'])}")
        lines.append(f.get("text", ""))
        lines.append(f"replay: {f['replay']}" if f["replay"] else
                     f"replay: none ({f['unreplayable']})")
        sh = f.get("shrunk")
        if sh and "text" in sh:
            lines.append("shrunk schedule:")
            lines.append(sh["text"])
        elif sh:
            lines.append(f"shrunk schedule: none ({sh['error']})")
    else:
        what = "interrupted after" if res.interrupted else "nothing in"
        lines.append(f"smpvm hunt: {what} {len(res.runs)} runs in "
                     f"{res.seconds:g} s (kernel {h.kernel}"
                     + (f", bug {h.bug}" if h.bug else "") + f"): {armtext}")
        host = [r for r in res.runs if r["host_error"]]
        if host:
            lines.append(f"  {len(host)} runs the host failed: "
                         f"{host[0]['host_error']}")
    lines.append(exercised(res, top))
    return "\n".join(lines)


def exercised(res, top=12):
    """What the runs did: work, passes, coverage."""
    runs = res.runs
    det = [r for r in runs if r["arm"] != "free"]
    lines = [f"exercised: {sum(r['ops'] for r in runs)} workload ops, "
             f"{sum(r['writing_passes'] for r in runs)} writing and "
             f"{sum(r['cleaning_passes'] for r in runs)} cleaning passes, "
             f"{sum(r['invariant_checks'] for r in runs)} invariant checks, "
             f"{sum(r['steps'] for r in det)} scheduled steps, "
             f"{sum(r.get('token_losses', 0) for r in det)} injected token "
             f"losses, {sum(r['noise_delays'] for r in runs)} noise delays"]
    fields = {p[0] for p in res.pairs}
    lines.append(f"coverage: {len(res.pairs)} alias pairs (two threads' "
                 f"conflicting accesses to one field instance) on "
                 f"{len(fields)} fields; checked accesses in "
                 f"{len(res.functions)} kernel functions")
    for arm, v in sorted(res.by_arm().items()):
        lines.append(f"  {arm:<9} {v['runs']:4} runs {v['seconds']:7.1f} s "
                     f"{v['new_pairs']:5} new pairs")
    if res.functions and top:
        lines.append("  checked accesses by function: " + ", ".join(
            f"{fn} {n}" for fn, n in sorted(res.functions.items(),
                                           key=lambda x: -x[1])[:top]))
    return "\n".join(lines)
