"""pytest plugin (entry point pytest11 "smpvm"): race tests and seed sweeps
in the user's own test suite.

Fixtures
  checked_vm    a booted VM on a checked machine with this process bound as
                thread 'host'.  Mark a test with
                @pytest.mark.smpvm(check="all", kernel="fixed", npages=...)
                to choose the checkers, the kernel variant and sizes.  At the
                end of the test every race report fails it, printed in full
                with the command that replays it.
  smpvm_seed    parametrised over 1..--smpvm-seeds: one test per seed, run
                in parallel by `pytest -n auto` (and across hosts with
                `--tx ssh=host//python=...`).

  smpvm_hunt_slot, smpvm_hunt
                `smpvm hunt` runs its portfolio as a parametrised test
                (smpvm.stress.hunt_items), one item a run, so that pytest
                -x stops it at the first finding and pytest-xdist spreads it
                over cores (-n) and hosts (--tx): --smpvm-hunt JSON gives
                the hunt's settings (smpvm_hunt, a dict) and how many slots
                to make (smpvm_hunt_slot is parametrised over them).

Options: --smpvm-seeds N, --smpvm-seconds S (per run of a sweep),
--smpvm-hunt JSON (set by `smpvm hunt`).
"""
import json

import pytest

from smpvm.config import MachineConfig
from smpvm.race import report


def pytest_addoption(parser):
    g = parser.getgroup("smpvm")
    g.addoption("--smpvm-seeds", type=int, default=2,
                help="seeds for smpvm_seed sweeps (default 2)")
    g.addoption("--smpvm-seconds", type=float, default=4.0,
                help="seconds per stress run of a sweep (default 4)")
    g.addoption("--smpvm-hunt", default="", metavar="JSON",
                help="a hunt's settings (written by `smpvm hunt`)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "smpvm(check=..., kernel=..., **sizes): the checked "
                   "machine of the checked_vm fixture")


def hunt_settings(config):
    """The --smpvm-hunt settings as a dict ({} when not hunting)."""
    text = config.getoption("--smpvm-hunt")
    return json.loads(text) if text else {}


def pytest_generate_tests(metafunc):
    if "smpvm_seed" in metafunc.fixturenames:
        n = metafunc.config.getoption("--smpvm-seeds")
        metafunc.parametrize("smpvm_seed", range(1, n + 1))
    if "smpvm_hunt_slot" in metafunc.fixturenames:
        n = hunt_settings(metafunc.config).get("slots", 0)
        metafunc.parametrize("smpvm_hunt_slot", range(n))


@pytest.fixture(scope="session")
def smpvm_hunt(pytestconfig):
    """The settings of the hunt this session runs (a dict)."""
    h = hunt_settings(pytestconfig)
    if not h:
        pytest.skip("not a hunt: smpvm hunt sets --smpvm-hunt")
    return h


class RaceFailure(AssertionError):
    pass


@pytest.fixture
def checked_vm(request):
    """A booted, checked VM; fails the test on any race report."""
    from smpvm.vm.vm_init import booted_vm
    marker = request.node.get_closest_marker("smpvm")
    kw = dict(ncpus=2, npages=256, nswap=2048, nmeta=64, check="all")
    kernel = "fixed"
    if marker:
        kw.update(marker.kwargs)
        kernel = kw.pop("kernel", "fixed")
    with booted_vm(MachineConfig(**kw), kernel) as m:
        yield m
        found = report.reports(m)
    if found:
        replay = f"pytest '{request.node.nodeid}'"
        raise RaceFailure(f"{len(found)} race report(s):\n"
                          + "\n".join(report.format_report(r, replay)
                                      for r in found))
