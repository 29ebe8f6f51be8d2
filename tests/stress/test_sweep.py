"""Seed sweep: `pytest tests/stress -n auto --smpvm-seeds N` runs the fixed
kernel once per seed, in parallel; every run must be clean."""
from smpvm.stress.harness import StressOptions, format_summary, run


def test_seed(stress_seed, pytestconfig):
    seconds = pytestconfig.getoption("--smpvm-seconds")
    code, r = run(StressOptions(seed=stress_seed, seconds=seconds, cpus=2,
                                quiet=True, swarm=stress_seed % 2 == 0,
                                check_every=2.0))
    assert code == 0, format_summary(r)
