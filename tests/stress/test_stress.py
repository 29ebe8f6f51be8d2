"""The stress harness: a clean run, a kernel broken on purpose caught with
its stamps, SSD faults that must never leave a stale copy, a killed CPU."""
import json

import pytest

from smpvm.stress.findings import format_summary
from smpvm.stress.options import StressOptions
from smpvm.stress.session import run


def _run(**kw):
    kw.setdefault("quiet", True)
    kw.setdefault("cpus", 2)
    kw.setdefault("check_every", 2.0)
    f = run(StressOptions(**kw))
    return f.exit, f, format_summary(f)


def test_short_stress_run_is_clean():
    code, r, text = _run(seconds=6)
    assert code == 0, text
    assert r.workload["reads_verified"] > 1000
    assert r.invariant_checks >= 2 and not r.violations
    assert r.swapcache["swap_writes"]["pages"] > 0


def test_broken_kernel_is_caught_with_its_stamps():
    """Skip the swap invalidation of a buffer write: a later read served
    from the SSD returns the old stamp."""
    code, r, text = _run(seconds=15, bug="skip-unswap-on-write",
                         npages=256, mix={"read": 50, "write": 30,
                                          "seqread": 20})
    assert code == 1, text
    f = r.failures[0]
    assert f["served_from_ssd"] is True
    assert "written by cpu" in f["expected"] and "written by cpu" in f["found"]
    assert f["recent_ops"]
    assert "replay: smpvm stress --seed 1" in text
    assert "--bug skip-unswap-on-write" in text


def test_ssd_faults_never_leave_a_stale_copy():
    code, r, text = _run(seconds=8, eio_ppm=30000, short_ppm=20000,
                         enospc_ppm=10000, delay_ppm=10000, delay_us=100)
    assert code == 0, text
    assert r.metrics["faults_injected"] > 0
    assert r.swapcache["swap_writes"]["errors"] > 0


def test_killed_cpu_is_a_panic_with_exit_3():
    code, r, text = _run(seconds=20, kill_cpu_at=2.0)
    assert code == 3, text
    assert "killed by SIGKILL" in r.panic
    assert "replay: smpvm stress --seed 1" in text      # its own kill


@pytest.mark.parametrize("swarm", [True])
def test_swarm_run_is_clean_and_replayable(swarm):
    code, r, text = _run(seconds=4, swarm=swarm, seed=7)
    assert code == 0, text
    assert "--swarm" in r.replay and "--seed 7" in r.replay


def test_stress_lockstat_writes_every_form(tmp_path):
    code, r, text = _run(seconds=4, lockstat_dir=str(tmp_path / "ls"))
    assert code == 0, text
    names = sorted(p.name for p in (tmp_path / "ls").iterdir())
    assert names == ["lockstat.csv", "lockstat.folded", "lockstat.json",
                     "lockstat.png", "lockstat.txt"]
    d = json.loads((tmp_path / "ls" / "lockstat.json").read_text())
    assert d["profiling"] and d["classes"]["pq_inactive"]["acquisitions"] > 0
