"""Seed sweep (smpvm_seed comes from the smpvm pytest plugin):
`pytest tests/stress -n auto --smpvm-seeds N` runs the fixed
kernel once per seed, in parallel; every run must be clean."""
from smpvm.stress.harness import StressOptions, format_summary, run


def test_seed(smpvm_seed, pytestconfig):
    seconds = pytestconfig.getoption("--smpvm-seconds")
    code, r = run(StressOptions(seed=smpvm_seed, seconds=seconds, cpus=2,
                                quiet=True, swarm=smpvm_seed % 2 == 0,
                                check_every=2.0))
    assert code == 0, format_summary(r)
