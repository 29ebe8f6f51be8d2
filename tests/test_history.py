"""smpvm history and smpvm bisect: the verdicts of the claims whose
experiments are deterministic (a crash, a liveness failure, a leak, a
panic on a token), each reproduced on the version and its parent; and a
bisect that names the commit that fixed a seed defect."""
import json
import re
import subprocess
import sys

from smpvm.stress import history
from smpvm.stress.bisect import PRESENT, SKIP, bisect
from smpvm.stress.options import StressOptions

SMPVM = [sys.executable, "-m", "smpvm.cli"]


def test_the_deterministic_claims_are_reproduced():
    lines = []
    rows = history.run_history(
        only=["27b6ee0313", "739be60bf6", "7a175765de", "0301c40799"],
        quick=True, progress=lines.append)
    got = {r.version: r for r in rows}
    assert [r.version for r in rows] == ["27b6ee0313", "739be60bf6",
                                         "7a175765de", "0301c40799"]
    for r in rows:
        assert r.verdict == history.REPRODUCED, (r.version, r.why, r.data)
    # the verdicts come from what was measured: the parent's failure is in
    # its numbers, and the version's numbers are clean
    assert "out of order" in got["27b6ee0313"].data["parent"]["panic"]
    assert not got["27b6ee0313"].data["version"]["panic"]
    assert "is free" in got["739be60bf6"].data["parent"]["forced"]
    assert got["7a175765de"].data["parent"]["liveness"].startswith(
        "liveness")
    assert got["0301c40799"].data["parent"]["leaked"] > 0 == \
        got["0301c40799"].data["version"]["leaked"]
    assert any(line.startswith("[4/4] 0301c40799") for line in lines)
    text = history.format_table(rows)
    assert "reproduced" in text and "2011-11-19" in text
    md = history.to_markdown(rows)
    assert md.count("\n") == 2 + len(rows)
    assert json.loads(history.to_json(rows))[0]["version"] == "27b6ee0313"


def test_the_bad_object_reached_through_the_list_is_the_parents_only():
    """f5f6d24720's second claim: with the object unlinked while the pass
    yields, the parent's walk steps from the freed object (a use after
    free on a checked machine); the version's reads its marker."""
    p = history._directed_unlink("739be60bf6", check="all")
    v = history._directed_unlink("f5f6d24720", check="all")
    assert any("TAILQ_NEXT of freed object" in r for r in p["reports"])
    assert v["reports"] == [] and v["objlist"] == [] and not v["panic"]


def test_history_cli_writes_json_and_a_plot(tmp_path):
    out, png = tmp_path / "h.json", tmp_path / "h.png"
    r = subprocess.run(SMPVM + ["history", "--only", "0301c4", "--quick",
                                "--json", str(out), "--plot", str(png)],
                       capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[1/1] 0301c40799" in r.stderr
    assert "1 claims: 1 reproduced" in r.stdout
    assert json.loads(out.read_text())[0]["verdict"] == "reproduced"
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run(SMPVM + ["history", "--only", "seed"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert bad.returncode == 2 and "no claim" in bad.stderr


# the seed's swap leak (g): truncations of swapcached files on a small
# machine, deterministic; the leak shows at the final invariant check
LEAK = dict(sched="random", steps=60000, tick_steps=20, npages=64,
            nswap=96, nmeta=32, files=3, file_pages=16, gap_scale=0.0,
            mix={"read": 20, "write": 10, "truncate": 5, "unlink": 2},
            cpus=2, seconds=60, seed=1)


def test_bisect_names_the_commit_that_fixed_the_swap_leak():
    lines = []
    res = bisect(StressOptions(**LEAK), "739be60bf6", "fixed", k=2,
                 finding="swap accounting", say=lines.append)
    assert res.mode == "disappears" and res.first == "0301c40799", \
        (res.verdict, lines)
    assert res.candidates == ("0301c40799",)
    assert "disappears at 0301c40799" in res.verdict
    from smpvm.vm.versions import BY_NAME
    fix = BY_NAME["0301c40799"].ordinal
    for s in res.steps:          # every step agrees with the fix
        assert s.status != SKIP
        assert (s.status == PRESENT) == (BY_NAME[s.version].ordinal < fix)
    # the opening line says on how many of which seeds OLD showed it
    assert re.match(r"739be60bf6: finds 'swap accounting' on [12]/2 "
                    r"seeds 1\.\.2$", lines[0]), lines[0]
