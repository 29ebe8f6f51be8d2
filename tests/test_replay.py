"""Deterministic stress runs: the same seed gives the same interleaving and
the same result; a failing schedule is saved, replays exactly from its
file, and shrinks; the bugs on purpose are registered and caught.

The detections are pinned robustly: each registered bug must be found by
its registry detector within a short sweep (SWEEP_SEEDS seeds, each under
every strategy, in order, stopping at the first hit) -- never by one exact
seed, which any change that adds or moves a preemption point would shift.
The replay tests replay a schedule recorded in the same test.  So a test
here fails only when detection got worse, or replay broke.
"""
import dataclasses
import json
import shlex
import subprocess
import sys

import pytest

from smpvm.layout import lib
from smpvm.stress import replay
from smpvm.stress.options import StressOptions, hunt_profile
from smpvm.stress.session import run
from smpvm.stress.swarm import ARMS
from smpvm.vm.bugs import BUGS
from smpvm.vm.vm_init import KERNELS

# a small machine where the cache fills and cleans within a few 10k steps
SMALL = dict(cpus=2, files=3, file_pages=8, npages=64, nswap=64, nmeta=32,
             gap_scale=0.0, quiet=True, seconds=60,
             mix={"read": 10, "write": 10, "unlink": 10})
# the sweep that pins each detection: seeds 1..SWEEP_SEEDS, each under
# these strategies (a hunt arm's name: its scheduling fields), until the
# first hit.  The rarest, clean-markers' object list corruption seen by the
# invariant checker, hits 10 of 60 runs (1 in 6; 1 in 8 after a change that
# added a preemption point), so 48 runs miss it with odds of 1 in
# 1000-10000; the others hit on the first run or two.  H2 needs the
# injected token losses of loss-random: 6 of its seeds 1-8 hit
SWEEP_SEEDS = 16
STRATEGIES = ("bounded", "random", "pct", "loss-random")
STEPS = 300000
# how much the shrinker cuts defect (a)'s schedule: see its test
SHRUNK_CHOICES = 256
SHRINK_RATIO = 8
# ... a schedule of thousands of choices, the shrinker's case
LONG_SCHEDULE = 1000
# defect (a) under the bounded strategy alone (small, complete schedules for
# the crash replay and the shrinker): about 1 seed in 6 finds it (17, 23,
# 32, 35, 36 of 17-48 with two more preemption points), so the sweep takes
# the same 48 runs as SWEEP_SEEDS x STRATEGIES
BOUNDED_SEEDS = 48


def schedule_fields(strategy):
    """The StressOptions fields of a strategy: a scheduler's name, or a
    hunt arm's (smpvm.stress.swarm.ARMS: loss-random is random with
    injected token losses)."""
    return dict(ARMS.get(strategy, {"sched": strategy}))


def bug_options(bug, strategy, seed, **more):
    """A checked deterministic run of bug under its registry profile (more
    over it)."""
    return StressOptions(**dict(dict(hunt_profile(bug), cpus=2, quiet=True,
                                     seconds=60, seed=seed, steps=STEPS,
                                     bug=bug, check="all",
                                     **schedule_fields(strategy)), **more))


def first_detection(bug, want=None, strategies=STRATEGIES,
                    seeds=SWEEP_SEEDS, accept=None, **more):
    """Sweep seeds x strategies in order until a run's detectors include
    want (default: the registry's detector of bug) and accept(Findings), if
    given, holds; returns (options, Findings, runs made), or (None, None,
    runs) when none did."""
    want = want or BUGS[bug].detector
    runs = 0
    for seed in range(1, seeds + 1):
        for strategy in strategies:
            opts = bug_options(bug, strategy, seed, **more)
            r = run(opts)
            runs += 1
            if want in r.detectors()[0] and (accept is None or accept(r)):
                return opts, r, runs
    return None, None, runs


def test_the_same_seed_gives_the_same_interleaving_and_result():
    opts = dict(SMALL, sched="random", seed=3, steps=20000, trace=60000,
                check="all")
    r1 = run(StressOptions(**opts))
    r2 = run(StressOptions(**opts))
    assert r1.exit == r2.exit == 0
    assert r1.trace == r2.trace and len(r1.trace) > 20000
    assert r1.sched["trace_hash"] == r2.sched["trace_hash"]
    assert r1.workload == r2.workload and r1.workload["ops"] > 0
    assert r1.schedule["choices"] == r2.schedule["choices"]
    r3 = run(StressOptions(**dict(opts, seed=4)))
    assert r3.sched["trace_hash"] != r1.sched["trace_hash"]


def test_the_budget_counts_the_workload_not_the_set_up():
    """--steps counts the steps after a CPU created its files: the
    default machine's deterministic run does work, writes and cleans."""
    r = run(StressOptions(cpus=2, quiet=True, sched="random", seed=1))
    sc = r.sched
    assert r.exit == 0 and r.ended == "steps"
    assert sc["setup_steps"] > 0
    assert sc["workload_steps"] >= StressOptions().steps
    assert sc["steps"] >= sc["setup_steps"] + sc["workload_steps"]
    assert r.workload["ops"] > 100
    assert r.swapcache["writing_passes"] and r.swapcache["cleaning_passes"]


def test_a_recorded_schedule_replays_the_same_run():
    r1 = run(StressOptions(**dict(SMALL, sched="pct", seed=5,
                                  steps=20000)))
    opts = StressOptions(**dict(SMALL, sched="forced", seed=5, steps=20000,
                                schedule=tuple(map(tuple, r1.schedule
                                                   ["choices"]))))
    r2 = run(opts)
    assert r2.sched["trace_hash"] == r1.sched["trace_hash"]
    assert r2.sched["diverged"] == 0 and r1.exit == r2.exit


def _cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "smpvm.cli"] + args,
                          capture_output=True, text=True, timeout=120,
                          cwd="/", **kw)


def test_a_failing_schedule_is_saved_and_replays_from_its_file(tmp_path):
    """The seed's defect (a), found by a sweep, run again from the command
    its findings print, saved, and replayed from the file."""
    opts, r, _ = first_detection("yield-before-hold", "assertion panic")
    assert opts is not None, "no seed of the sweep found defect (a)"
    path = tmp_path / "yield.json"
    args = shlex.split(opts.replay_command())[1:] + [
        "--quiet", "--save-schedule", str(path)]
    c = _cli(args)
    assert c.returncode == r.exit == 3, c.stdout + c.stderr
    assert f"replay: smpvm replay {path}" in c.stdout
    doc = json.loads(path.read_text())
    assert set(doc["found"]) == r.signature()
    assert doc["trace_hash"] == f"{r.sched['trace_hash']}"
    rr = _cli(["replay", str(path)])
    assert rr.returncode == 3 and "the same as recorded" in rr.stdout
    bad = _cli(["replay", str(tmp_path / "missing.json")])
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_a_format_1_schedule_file_still_replays(tmp_path):
    """Format 1 anchored each choice at its global step; such a file (here
    a format 2 recording rewritten the old way) still replays exactly,
    and a file of the new format with old-shaped choices is one line."""
    opts = StressOptions(**dict(SMALL, sched="pct", seed=5, steps=20000))
    r = run(opts)
    path = tmp_path / "new.json"
    replay.save(opts, r, str(path))
    doc = json.loads(path.read_text())
    assert doc["format"] == replay.FORMAT == "smpvm-schedule/2"
    assert all(len(c) == 5 for c in doc["options"]["schedule"])
    old = dict(doc, format="smpvm-schedule/1")
    old["options"] = dict(doc["options"], schedule=[
        c[:3] for c in doc["options"]["schedule"]])
    (tmp_path / "old.json").write_text(json.dumps(old))
    f, same = replay.replay(str(tmp_path / "old.json"))
    assert same and f.sched["trace_hash"] == f"{r.sched['trace_hash']}"
    assert f.sched["diverged"] == 0
    bad = dict(doc, options=old["options"])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    c = _cli(["replay", str(tmp_path / "bad.json")])
    assert c.returncode == 2 and "choices of 5 numbers" in c.stderr
    assert len(c.stderr.strip().splitlines()) == 1


def test_a_crash_replays_with_the_same_trace():
    opts, r, _ = first_detection("yield-before-hold", "assertion panic",
                                 strategies=("bounded",), seeds=BOUNDED_SEEDS)
    assert opts is not None and r.schedule["complete"]
    r2 = run(dataclasses.replace(opts, sched="forced", schedule=tuple(
        map(tuple, r.schedule["choices"]))))
    assert r2.exit == r.exit == 3
    assert r2.sched["trace_hash"] == r.sched["trace_hash"]
    assert r2.signature() == r.signature()


def test_stop_on_detection_ends_a_schedule_at_its_finding_and_replays():
    """A deterministic run stops at the step of its first report; its
    replay stops there too."""
    opts, r, _ = first_detection("no-object-hold",
                                 stop_on_detection=True)
    assert opts is not None and r.ended == "detection"
    assert r.sched["stopped_at_finding"]
    assert r.sched["workload_steps"] < STEPS
    r2 = run(dataclasses.replace(opts, sched="forced", schedule=tuple(
        map(tuple, r.schedule["choices"]))))
    assert r2.ended == "detection"
    assert r2.sched["trace_hash"] == r.sched["trace_hash"]


def test_the_shrinker_keeps_the_failure_with_few_choices_and_steps(
        tmp_path):
    """The seed's defect (a) on the first bounded schedule of a sweep that
    panics after recording at least LONG_SCHEDULE choices: its thousands
    of recorded choices (every switch at a block or yield that differs
    from the default policy is one) shrink within 60 runs to at most
    SHRUNK_CHOICES and 1/SHRINK_RATIO of them, with no more steps, and
    the run still panics in vm_object_hold (use after free).

    Why the length: a schedule that panics early is dense -- after the
    pagedaemon's wakeup protocol moved the preemption points, bounded seed
    1 panics after 11,155 steps with 421 choices, and no chunk the
    shrinker tries can go (nor all the choices of any one thread; 250 runs
    cut it to 242): nothing to cut, where this test is about cutting.

    Measured with 60 runs, bounded seeds 12, 17, 21, 35: 6204 -> 20,
    7024 -> 14, 3985 -> 62, 3196 -> 124 choices; after name[32] added
    preemption points, seed 13: 8615 -> 180; with two more (a token
    acquisition in vm_swapcache_test, not committed), seed 17: 2334 -> 167
    (the worst ratio, 1/14).  With global-step anchors seeds 12 and 17 went
    to 277 and 62.  No small fixed bound holds across seeds (issue 13's
    <= 8 predates its blocking points): a schedule that panics after
    60 000-280 000 steps needs most of the choices that build the state
    its race needs, and which seed fails first moves with every
    preemption point."""
    opts, r, _ = first_detection(
        "yield-before-hold", "assertion panic", strategies=("bounded",),
        seeds=BOUNDED_SEEDS,
        accept=lambda f: len(f.schedule["choices"]) >= LONG_SCHEDULE)
    assert opts is not None, "no bounded seed found defect (a)"
    panic = {s for s in r.signature() if "use after free" in s}
    assert panic, r.signature()
    path = str(tmp_path / "y.json")
    replay.save(opts, r, path)
    small, res, runs = replay.shrink(path, max_runs=60)
    assert runs <= 60
    assert small.steps <= r.sched["workload_steps"] + 1 < STEPS
    assert len(small.schedule) <= SHRUNK_CHOICES
    assert len(small.schedule) * SHRINK_RATIO <= len(r.schedule["choices"])
    assert panic <= res.signature()
    traced = dataclasses.replace(small, trace=2 * r.sched["steps"] + 64)
    res = run(traced)
    assert panic <= res.signature()
    text = replay.scenario(res)
    assert "cpu0" in text and "swapcached" in text and "stretches" in text
    text = replay.decisions(res)
    n = len(res.schedule["choices"])        # forced picks that mattered
    assert n <= len(small.schedule) and f"{n} scheduling decisions" in text
    assert text.count("  step ") == n and "at ?" not in text
    assert "then: panic" in text and "use after free" in text


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


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_registered_bug_is_found_by_its_detector_within_a_sweep(bug):
    """Keyed by the registry: its detector, its profile; found within
    SWEEP_SEEDS seeds x STRATEGIES (deterministic, so it cannot flake)."""
    opts, r, runs = first_detection(bug)
    assert opts is not None, (
        f"{bug}: {BUGS[bug].detector} found in none of {runs} runs")


def test_injected_token_losses_replay_exactly_from_the_schedule_file(
        tmp_path):
    """H2 under the loss-random arm: its range free loses its tokens at
    vm_token (injected), a reader that waited for the object runs (steered)
    and inserts a page of the range; the losses are recorded as choices
    anchored at the thread's token acquisition, and the saved schedule
    replays the same interleaving and finding; the replay command says
    --token-loss."""
    opts, r, _ = first_detection("range-free-interleaved",
                                 strategies=("loss-random",),
                                 stop_on_detection=True)
    assert opts is not None and opts.token_loss > 0
    assert r.sched["token_losses"] > 0 and r.sched["steered"] > 0
    losses = [c for c in r.schedule["choices"]
              if c[2] == lib.SCHED_CH_TOKLOSS]
    assert len(losses) == r.sched["token_losses"]
    assert all(c[1] == c[3] for c in losses)        # the thread itself
    assert f"--token-loss {opts.token_loss}" in opts.replay_command()
    path = str(tmp_path / "h2.json")
    replay.save(opts, r, path)
    f, same = replay.replay(path)
    assert same and f.sched["diverged"] == 0
    assert f.sched["trace_hash"] == r.sched["trace_hash"]
    assert BUGS["range-free-interleaved"].detector in f.detectors()[0]
    # a replay records the losses it applied, so a shrinker keeps them
    assert [c for c in f.schedule["choices"]
            if c[2] == lib.SCHED_CH_TOKLOSS] == losses
    small, res, _ = replay.shrink(path, max_runs=4)
    assert BUGS["range-free-interleaved"].detector in res.detectors()[0]
    assert any(c[2] == lib.SCHED_CH_TOKLOSS for c in small.schedule)
    # no losses without the injection: the same seed, another interleaving
    plain = run(dataclasses.replace(opts, token_loss=0))
    assert plain.sched["token_losses"] == 0
    assert plain.sched["trace_hash"] != r.sched["trace_hash"]


def test_the_fixed_kernel_is_clean_under_each_strategy():
    for strategy in STRATEGIES:
        r = run(StressOptions(**dict(SMALL, seed=2, steps=100000,
                                     check="all",
                                     **schedule_fields(strategy))))
        assert r.exit == 0 and r.detectors()[0] == [], strategy


# The seed's cleaning defects as a run (and `smpvm stat`) names them: the
# findings of the cleaning meter, (e)'s cleaning cost and the liveness
# failure left by (b)'s orphan marker, each the first of a sweep
@pytest.mark.parametrize("bug,detector,finding", [
    ("condfree-uncharged", "cleaning cost", "cleaning pass visited"),
    ("clean-markers", "liveness", "liveness: "),
])
def test_the_cleaning_findings_name_the_seed_defect(bug, detector, finding):
    opts, r, runs = first_detection(bug, detector)
    assert opts is not None, f"{bug}: no {detector} in {runs} runs"
    found = [f for f in r.cleaning if f.startswith(finding)]
    assert found and BUGS[bug].fixed_by.split(",")[0] in found[0], \
        r.cleaning
    assert r.exit == 1 or r.panic, r.exit
    assert ("liveness" if finding.startswith("liveness") else
            "cleaning cost") in r.detectors()[0]


# two files of 32 pages each per CPU, truncations and cross reads: where a
# lone object with swap was passed over below its iterator for 182 passes,
# once a liveness finding on the fixed kernel (pct 9; test_swapcache.py:
# ..._lone_object_passed_over_...)
LONE_OBJECT = dict(files=2, file_pages=32, npages=64, nswap=96,
                   tick_steps=20, gap_scale=0.0, nmeta=32,
                   mix={"read": 10, "xread": 30, "write": 10, "truncate": 20})


def test_the_fixed_kernel_has_no_cleaning_findings():
    for profile, strategy, seed in ((hunt_profile("condfree-uncharged"),
                                     "bounded", 4),
                                    (hunt_profile("clean-markers"), "pct", 4),
                                    (LONE_OBJECT, "pct", 9)):
        r = run(StressOptions(**dict(profile, cpus=2, quiet=True,
                                     seconds=60, sched=strategy, seed=seed,
                                     steps=300000, check="all")))
        assert r.cleaning == [] and r.exit == 0, (strategy, seed)
        assert r.swapcache["cleaning_passes"] > 100

