"""Fixtures: a fresh machine per test, this process bound as a thread, and a
leak check after every test (no segment, data directory or child process
of this process survives a test)."""
import os
import tempfile
import time

import pytest

from smpvm.config import MachineConfig
from smpvm.kern.thread import bound_thread
from smpvm.machine import Machine


def _children(pid):
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(e))
    return out


def _leftovers(pid):
    shm = [e for e in os.listdir("/dev/shm") if e.startswith(f"smpvm-{pid}-")]
    tmp = [e for e in os.listdir(tempfile.gettempdir())
           if e.startswith(f"smpvm-{pid}-")]
    return shm + tmp


@pytest.fixture(autouse=True, scope="session")
def state_home(tmp_path_factory):
    """Failing schedules of CLI runs go to pytest's temp directory, never to
    the state directory of whoever runs the tests."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture(autouse=True)
def no_leaks():
    before = set(_children(os.getpid()))
    yield
    pid = os.getpid()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = _leftovers(pid)
        kids = set(_children(pid)) - before
        if not left and not kids:
            return
        time.sleep(0.05)
    assert not left, f"left behind: {left}"
    assert not kids, f"child processes left running: {kids}"


@pytest.fixture
def machine():
    with Machine.create(MachineConfig(ncpus=4)) as m:
        yield m


@pytest.fixture
def host(machine):
    """This test process as thread 'host' of the machine; yields the tid."""
    with bound_thread(machine, "host") as tid:
        yield tid


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


@pytest.fixture
def vm(request):
    """A booted VM (fixed kernel, demo sysctls) with this process as thread
    'host'; no kernel threads unless the test starts them.  The kernel is
    the vmconfig mark's, or the parameter of an indirect parametrisation
    (`@pytest.mark.parametrize("vm", ["seed", "fixed"], indirect=True)`)."""
    from smpvm.vm.vm_init import booted_vm
    marker = request.node.get_closest_marker("vmconfig")
    kw = dict(ncpus=4, npages=256, nswap=2048, nmeta=64)
    kernel = getattr(request, "param", "fixed")
    if marker:
        # a copy: the mark is shared by every case of a parametrised test
        more = dict(marker.kwargs)
        kernel = more.pop("kernel", kernel)
        kw.update(more)
    with booted_vm(MachineConfig(**kw), kernel) as m:
        yield m
