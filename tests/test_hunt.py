"""smpvm hunt: a portfolio of checked runs over swarm profiles, run as
pytest items (in process, or on pytest-xdist workers), until its budget or
its first finding; the swarm space; noise; --stop-on-detection.  The
budgets here are tiny: the registered bugs these hunts find are the ones a
first run finds."""
import json
import subprocess
import sys

from smpvm.stress.hunt import HuntOptions, format_hunt, hunt
from smpvm.stress.options import HUNT, StressOptions, hunt_profile
from smpvm.stress.session import run
from smpvm.stress.swarm import (ARMS, PROFILE_SPACE, TOKEN_LOSS_ALL,
                                RunSpec, profile)
from smpvm.vm.bugs import BUGS


def test_a_hunt_stops_at_its_finding_with_detector_replay_and_shrink(
        tmp_path):
    res = hunt(HuntOptions(minutes=1.0, bug="no-pip", quiet=True,
                           workers="0", save_schedule=str(tmp_path) + "/"))
    f = res.finding
    assert f and res.exit == f["exit"] == 3
    assert f["detectors"] and f["replay"].startswith("smpvm replay ")
    assert f["schedule_file"].startswith(str(tmp_path))
    assert "->" in f["shrunk"]["text"] and "still found" in \
        f["shrunk"]["text"]
    assert res.seconds < 60 and f in res.runs
    text = format_hunt(res)
    assert "FOUND after" in text and "detector:" in text
    assert "shrunk schedule:" in text


def test_a_hunt_of_the_fixed_kernel_says_what_it_exercised(tmp_path):
    out = tmp_path / "h.json"
    res = hunt(HuntOptions(minutes=0.1, quiet=True, json_path=str(out),
                           workers="0", save_schedule=str(tmp_path) + "/"))
    assert res.exit == 0 and res.finding is None and res.runs
    assert all(not r["found"] for r in res.runs)
    assert res.pairs and res.functions
    text = format_hunt(res)
    assert f"nothing in {len(res.runs)} runs" in text
    assert "alias pairs" in text and "workload ops" in text
    d = json.loads(out.read_text())
    assert d["found"] is False and d["coverage"]["alias_pairs"] == \
        len(res.pairs)
    assert {r["arm"] for r in d["runs"]} <= set(ARMS)


def test_the_hunt_command_on_xdist_workers(tmp_path):
    out = tmp_path / "h.json"
    r = subprocess.run([sys.executable, "-m", "smpvm.cli", "hunt",
                        "--minutes", "1", "--bug", "marker-unlocked",
                        "-n", "2", "--no-shrink", "--json", str(out),
                        "--save-schedule", str(tmp_path)],
                       capture_output=True, text=True, timeout=240, cwd="/")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "FOUND after" in r.stdout and "replay: " in r.stdout
    d = json.loads(out.read_text())
    assert d["found"] and d["finding"]["worker"].startswith("gw")
    # a gateway of its own (as for another host), not -n
    r = subprocess.run([sys.executable, "-m", "smpvm.cli", "hunt",
                        "--minutes", "1", "--bug", "no-pip", "-n", "0",
                        "--tx", "popen", "--no-shrink", "--quiet", "--json",
                        str(out), "--save-schedule", str(tmp_path)],
                       capture_output=True, text=True, timeout=240, cwd="/")
    assert r.returncode == 3, r.stdout + r.stderr
    assert json.loads(out.read_text())["finding"]["worker"] == "gw0"
    bad = subprocess.run([sys.executable, "-m", "smpvm.cli", "hunt",
                          "--minutes", "0"], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert bad.returncode == 2 and "--minutes" in bad.stderr


def test_each_run_is_drawn_from_its_seeds():
    a = RunSpec("pct2", 7, 11).options(kernel="seed", bug="no-pip")
    b = RunSpec("pct2", 7, 11).options(kernel="seed", bug="no-pip")
    assert a == b and a.sched == "pct" and a.pct_depth == 2
    assert a.check == "all" and a.stop_on_detection and a.seed == 11
    free = RunSpec("free", 7, 11).options()
    assert free.sched == "off" and free.noise >= 1
    assert free.npages == a.npages and free.mix == a.mix
    seen = set()
    for s in range(300):
        for arm in ARMS:
            o = RunSpec(arm, s, s).options()     # validates
            seen.add((o.npages, o.nswap, o.files))
    assert len(seen) > 50


def test_the_loss_arms_inject_token_losses_and_the_others_none():
    lossy = RunSpec("loss-bounded2", 7, 11).options(steps=20000)
    assert lossy.sched == "bounded" and lossy.token_loss == TOKEN_LOSS_ALL
    plain = RunSpec("bounded2", 7, 11).options(steps=20000)
    assert plain.token_loss == 0
    r, p = run(lossy), run(plain)
    assert r.exit == p.exit == 0
    assert r.sched["token_losses"] > 0 and p.sched["token_losses"] == 0


def test_the_old_hunting_profiles_are_points_of_the_space():
    """Each registry profile over HUNT is a draw the space can make."""
    sp = PROFILE_SPACE
    for bug in [""] + sorted(BUGS):
        p = hunt_profile(bug)
        ws = 2 * p["files"] * p["file_pages"]
        assert p["files"] in sp["files"] and \
            p["file_pages"] in sp["file_pages"], bug
        assert any(max(64, int(ws * f)) == p["npages"]
                   for f in sp["memory"]), bug
        assert any(max(64, int(ws * f)) == p["nswap"]
                   for f in sp["swap"]), bug
        assert p["nmeta"] in sp["nmeta"] and \
            p["gap_scale"] in sp["gap_scale"], bug
        assert all(w in sp["op_weights"] for w in p["mix"].values()), bug
        assert p.get("tick_steps", 20) in sp["tick_steps"], bug
        for name, value in p.get("sysctls", ()):
            assert int(value) in sp[name.split(".")[-1]], bug
    assert HUNT["npages"] == 64
    assert profile(3) == profile(3)


def test_noise_delays_free_runs_only_when_asked():
    base = dict(cpus=2, seconds=2.0, quiet=True, check_every=1.0,
                npages=128, files=3, file_pages=16)
    quiet = run(StressOptions(**base))
    noisy = run(StressOptions(**base, noise=3))
    assert quiet.exit == noisy.exit == 0
    assert quiet.metrics["noise_delays"] == 0
    assert noisy.metrics["noise_delays"] > 0
    assert "--noise 3" in noisy.options.replay_command()


def test_stop_on_detection_ends_a_free_race_run_early():
    r = subprocess.run([sys.executable, "-m", "smpvm.cli", "race", "--bug",
                        "no-object-hold", "--stop-on-detection", "--seconds",
                        "30", "--cpus", "2", "--json"], capture_output=True,
                       text=True, timeout=120, cwd="/")
    d = json.loads(r.stdout)
    assert r.returncode == d["exit"] == 1, r.stderr
    assert d["ended"] == "detection" and d["reports"]
    assert "--stop-on-detection" in d["replay"]
