"""Deterministic stress runs: the same seed gives the same interleaving and
the same result; a failing schedule is saved, replays exactly from its
file, and shrinks; the bugs on purpose are registered and caught."""
import json
import subprocess
import sys

import pytest

from smpvm.layout import lib
from smpvm.stress import replay
from smpvm.stress.options import StressOptions, hunt_profile
from smpvm.stress.session import run
from smpvm.vm.bugs import BUGS
from smpvm.vm.vm_init import KERNELS

# a small machine where the cache fills and cleans within a few 10k steps
SMALL = dict(cpus=2, files=3, file_pages=8, npages=64, nswap=64, nmeta=32,
             gap_scale=0.0, quiet=True, seconds=60,
             mix={"read": 10, "write": 10, "unlink": 10})
# found by `smpvm stress --sched pct --seed 8 --bug yield-before-hold` with
# SMALL (tools/bench_detect.py finds others): the seed's defect (a), a use
# after free of an object terminated during cleaning's lwkt_yield
YIELD_BUG = dict(SMALL, sched="pct", seed=8, steps=300000,
                 bug="yield-before-hold")


def test_the_same_seed_gives_the_same_interleaving_and_result():
    opts = dict(SMALL, sched="random", seed=3, steps=20000, trace=30000,
                check="all")
    r1 = run(StressOptions(**opts))
    r2 = run(StressOptions(**opts))
    assert r1.exit == r2.exit == 0
    assert r1.trace == r2.trace and len(r1.trace) > 20000
    assert r1.sched["trace_hash"] == r2.sched["trace_hash"]
    assert r1.workload == r2.workload
    assert r1.schedule["choices"] == r2.schedule["choices"]
    r3 = run(StressOptions(**dict(opts, seed=4)))
    assert r3.sched["trace_hash"] != r1.sched["trace_hash"]


def test_a_recorded_schedule_replays_the_same_run():
    r1 = run(StressOptions(**dict(SMALL, sched="pct", seed=5,
                                  steps=20000)))
    opts = StressOptions(**dict(SMALL, sched="forced", seed=5, steps=20000,
                                schedule=tuple(map(tuple, r1.schedule
                                                   ["choices"]))))
    r2 = run(opts)
    assert r2.sched["trace_hash"] == r1.sched["trace_hash"]
    assert r2.sched["diverged"] == 0 and r1.exit == r2.exit


def test_a_failing_schedule_is_saved_and_replays_from_its_file(tmp_path):
    path = tmp_path / "yield.json"
    args = ["--sched", "pct", "--seed", "8", "--bug", "yield-before-hold",
            "--steps", "300000", "--gap-scale", "0", "--mix",
            "read=10,write=10,unlink=10", "--files", "3", "--file-pages",
            "8", "--npages", "64", "--nswap", "64", "--nmeta", "32",
            "--quiet", "--save-schedule", str(path)]
    r = subprocess.run([sys.executable, "-m", "smpvm.cli", "stress"] + args,
                       capture_output=True, text=True, timeout=120,
                       cwd="/")
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"replay: smpvm replay {path}" in r.stdout
    doc = json.loads(path.read_text())
    assert doc["found"] == ["panic:panic: vm_object_hold: object N is free "
                            "(use after free)"]
    rr = subprocess.run([sys.executable, "-m", "smpvm.cli", "replay",
                         str(path)], capture_output=True, text=True,
                        timeout=120, cwd="/")
    assert rr.returncode == 3 and "the same as recorded" in rr.stdout
    bad = subprocess.run([sys.executable, "-m", "smpvm.cli", "replay",
                          str(tmp_path / "missing.json")],
                         capture_output=True, text=True, timeout=60,
                         cwd="/")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# the same defect found by the bounded strategy early in a run (seed 9 of
# tools/bench_detect.py's sweep): 48 choices, which the shrinker cuts to 5
YIELD_BOUNDED = dict(hunt_profile("yield-before-hold"), tick_steps=200,
                     cpus=2, quiet=True, seconds=60, sched="bounded", seed=9,
                     steps=300000, check="all", bug="yield-before-hold")


def test_the_pct_crash_replays_with_the_same_trace():
    r = run(StressOptions(**YIELD_BUG))
    assert r.exit == 3 and "use after free" in r.panic
    opts = StressOptions(**dict(YIELD_BUG, sched="forced", schedule=tuple(
        map(tuple, r.schedule["choices"]))))
    r2 = run(opts)
    assert r2.exit == 3 and r2.sched["trace_hash"] == r.sched["trace_hash"]


def test_the_shrinker_keeps_the_failure_with_fewer_steps_and_choices(
        tmp_path):
    r = run(StressOptions(**YIELD_BOUNDED))
    assert "use after free" in r.panic
    path = str(tmp_path / "y.json")
    replay.save(StressOptions(**YIELD_BOUNDED), r, path)
    small, res, runs = replay.shrink(path, max_runs=40)
    assert runs <= 40
    assert small.steps <= r.sched["steps"] + 1 < YIELD_BOUNDED["steps"]
    assert len(small.schedule) <= 8 < len(r.schedule["choices"])
    assert "use after free" in res.panic
    traced = StressOptions(**dict(vars(small), trace=2 * small.steps + 64))
    res = run(traced)
    assert "use after free" in res.panic
    text = replay.scenario(res)
    assert "cpu0" in text and "swapcached" in text and "stretches" in text
    text = replay.decisions(res)
    n = len(res.schedule["choices"])        # forced picks that mattered
    assert n <= len(small.schedule) and f"{n} scheduling decisions" in text
    assert text.count("  step ") == n and "at ?" not in text
    assert "use after free" in text


def test_the_bug_registry():
    assert KERNELS["fixed"] == 0
    seed_bits = 0
    for name, b in BUGS.items():
        assert b.bits and not b.bits & ~(lib.BUGS_SEED | 0xff00), name
        assert b.what and b.origin and b.detector
        assert bool(b.fixed_by) == b.in_seed, name
        if b.in_seed:
            seed_bits |= b.bits
    assert seed_bits == KERNELS["seed"] == lib.BUGS_SEED


# pinned by tools/bench_detect.py: deterministic, so they cannot flake; the
# detector each must be found by is the registry's (smpvm/vm/bugs.py)
@pytest.mark.parametrize("bug,strategy,seed", [
    ("yield-before-hold", "random", 8),
    ("clean-markers", "pct", 1),        # a freed object's links touched
    ("no-object-hold", "bounded", 1),
    ("no-object-recheck", "bounded", 1),
    ("inverted-locks", "bounded", 1),
    ("write-ignores-swapinprog", "bounded", 2),
    ("flush-unbusied", "bounded", 1),
    ("no-pip", "bounded", 1),
    ("marker-unlocked", "bounded", 1),
    ("condfree-uncharged", "bounded", 7),   # a pass past its budget
    ("swblock-leak", "bounded", 1),
    ("range-free-interleaved", "random", 9),    # H2: old data in a hole
    ("lost-io-wakeup", "bounded", 1),
    ("skip-unswap-on-write", "bounded", 1),
])
def test_bugs_on_purpose_are_caught_by_their_checker(bug, strategy, seed):
    r = run(StressOptions(**dict(hunt_profile(bug), cpus=2, quiet=True,
                                 seconds=60, sched=strategy, seed=seed,
                                 steps=300000, bug=bug, check="all")))
    found, _ = r.detectors()
    assert BUGS[bug].detector in found, (found, r.panic)


def test_every_registered_bug_has_a_pinned_detection():
    pinned = {p[0] for p in
              test_bugs_on_purpose_are_caught_by_their_checker
              .pytestmark[0].args[1]}
    assert pinned == set(BUGS)


def test_the_fixed_kernel_is_clean_under_each_strategy():
    for strategy in ("random", "pct", "bounded"):
        r = run(StressOptions(**dict(SMALL, sched=strategy, seed=2,
                                     steps=100000, check="all")))
        assert r.exit == 0 and r.detectors()[0] == [], strategy


# The seed's cleaning defects as a run (and `smpvm stat`) names them: the
# findings of the cleaning meter, on the runs pinned above: (e)'s cleaning
# cost, and the liveness failure left by (b)'s orphan marker.
@pytest.mark.parametrize("bug,strategy,seed,finding", [
    ("condfree-uncharged", "bounded", 7, "cleaning pass visited"),
    ("clean-markers", "pct", 57, "liveness: "),
])
def test_the_cleaning_findings_name_the_seed_defect(bug, strategy, seed,
                                                     finding):
    r = run(StressOptions(**dict(hunt_profile(bug), cpus=2, quiet=True,
                                 seconds=60, sched=strategy, seed=seed,
                                 steps=300000, bug=bug, check="all")))
    found = [f for f in r.cleaning if f.startswith(finding)]
    assert found and BUGS[bug].fixed_by.split(",")[0] in found[0], \
        r.cleaning
    assert r.exit == 1 or r.panic, r.exit
    assert ("liveness" if finding.startswith("liveness") else
            "cleaning cost") in r.detectors()[0]


def test_the_fixed_kernel_has_no_cleaning_findings():
    for bug, strategy in (("condfree-uncharged", "bounded"),
                          ("clean-markers", "pct")):
        r = run(StressOptions(**dict(hunt_profile(bug), cpus=2,
                                     quiet=True, seconds=60,
                                     sched=strategy, seed=4,
                                     steps=300000, check="all")))
        assert r.cleaning == [] and r.exit == 0, bug
        assert r.swapcache["cleaning_passes"] > 100

