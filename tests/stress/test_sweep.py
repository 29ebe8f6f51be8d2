"""Seed sweep (smpvm_seed comes from the smpvm pytest plugin):
`pytest tests/stress -n auto --smpvm-seeds N` runs the fixed
kernel once per seed, in parallel, free-running and under deterministic
schedules; every run must be clean."""
from smpvm.stress.findings import format_summary
from smpvm.stress.options import StressOptions
from smpvm.stress.session import run


def test_seed(smpvm_seed, pytestconfig):
    seconds = pytestconfig.getoption("--smpvm-seconds")
    r = run(StressOptions(seed=smpvm_seed, seconds=seconds, cpus=2,
                          quiet=True, swarm=smpvm_seed % 2 == 0,
                          check_every=2.0))
    assert r.exit == 0, format_summary(r)


def test_schedule(smpvm_seed):
    """The same sweep over deterministic schedules (PCT on a small machine):
    each seed is one reproducible interleaving; none may find anything."""
    r = run(StressOptions(seed=smpvm_seed, cpus=2, quiet=True,
                          sched="pct", steps=100000, check="all",
                          gap_scale=0.0, files=3, file_pages=8,
                          npages=64, nswap=64, nmeta=32))
    assert r.exit == 0 and r.detectors()[0] == [], format_summary(r)
