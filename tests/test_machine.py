"""Machine lifecycle: create/attach/destroy, attach errors, config errors,
panics (a dead holder, an indefinite spin), the host asked first (a machine
too large, a segment name taken), the sweep of leftovers (never through a
symlink).  The command line's own tests are in test_cli.py."""
import os
import signal
import tempfile
import time

import posix_ipc
import pytest

from conftest import wait_for
from smpvm.config import MachineConfig
from smpvm import machine as machine_mod
from smpvm.errors import (AttachError, ConfigError, HostError, Panic,
                          SysctlError)
from smpvm.kern import sysctl
from smpvm.kern.kproc import Supervisor
from smpvm.kern.lwkt_token import lwkt_gettoken
from smpvm.kern.spinlock import spin_lock
from smpvm.layout import lib
from smpvm.machine import Machine, sweep


def test_create_attach_destroy(machine):
    assert os.path.exists(f"/dev/shm/{machine.name}")
    assert os.stat(f"/dev/shm/{machine.name}").st_mode & 0o777 == 0o600
    assert os.path.isdir(machine.datadir)
    other = Machine.attach(machine.name)
    try:
        assert other.hdr.cfg.ncpus == 4
        assert other.hdr.creator_pid == os.getpid()
        other.hdr.scratch[0] = 42          # the same memory
        assert machine.hdr.scratch[0] == 42
    finally:
        other.close()
    name, datadir = machine.name, machine.datadir
    machine.destroy()
    assert not os.path.exists(f"/dev/shm/{name}")
    assert not os.path.exists(datadir)
    with pytest.raises(AttachError, match="no machine named"):
        Machine.attach(name)


def test_exclusive_create():
    with Machine.create(MachineConfig(ncpus=2)) as m:
        with pytest.raises(posix_ipc.ExistentialError):
            posix_ipc.SharedMemory("/" + m.name, posix_ipc.O_CREX, size=4096)


def test_attach_missing():
    with pytest.raises(AttachError, match="no machine named 'smpvm-1-1'"):
        Machine.attach("smpvm-1-1")


def test_attach_wrong_layout_version(machine):
    machine.hdr.layout_version = 999
    with pytest.raises(AttachError, match="layout version 999"):
        Machine.attach(machine.name)


def test_attach_wrong_owner(machine):
    machine.hdr.owner_uid = os.getuid() + 1
    with pytest.raises(AttachError, match=f"belongs to uid {os.getuid() + 1}"):
        Machine.attach(machine.name)


def test_attach_not_a_machine():
    name = f"/smpvm-{os.getpid()}-9999"
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=8192)
    shm.close_fd()
    try:
        with pytest.raises(AttachError, match="not an smpvm machine"):
            Machine.attach(name)
    finally:
        shm.unlink()


@pytest.mark.parametrize("field,value,msg", [
    ("ncpus", 0, "ncpus=0"), ("ncpus", 999, "ncpus=999"),
    ("spin_pool", 1000, "power of two"), ("hz", 0, "hz=0"),
    ("nswap", 10, "nswap=10"), ("ncpus", "4", "integer")])
def test_config_errors(field, value, msg):
    with pytest.raises(ConfigError, match=msg):
        Machine.create(MachineConfig(**{field: value}))


def test_sysctl_api(machine):
    assert sysctl.sysctl_get(machine, "hw.ncpu") == 4
    assert sysctl.sysctl_get(machine, "lwkt.token_spin") == lib.LWKT_TOKEN_SPIN
    assert sysctl.sysctl_set(machine, "lwkt.token_spin", "9") == (5, 9)
    assert machine.hdr.kern.lwkt_token_spin == 9
    with pytest.raises(SysctlError, match="read only"):
        sysctl.sysctl_set(machine, "kern.hz", "1000")
    with pytest.raises(SysctlError, match="out of range"):
        sysctl.sysctl_set(machine, "debug.lwkt_yield_switch", "2")
    with pytest.raises(SysctlError, match="unknown oid"):
        sysctl.sysctl_get(machine, "vm.nonexistent")


def _hold_then_hang(m, spin, tok):
    spin_lock(spin)
    lwkt_gettoken(tok)
    m.hdr.scratch[0] = 1
    while True:
        time.sleep(1)


def test_holder_killed_is_a_panic_naming_its_locks(machine):
    with Supervisor(machine) as sup:
        tid = sup.kproc_start("victim", _hold_then_hang, 17, lib.TOK_VM)
        sup.kproc_start("bystander", lambda m: time.sleep(30))
        wait_for(lambda: machine.hdr.scratch[0] == 1)
        os.kill(sup.procs[tid].pid, signal.SIGKILL)
        assert sup.wait(10) == "panic"
    assert "victim" in sup.report and "killed by SIGKILL" in sup.report
    assert "spin_pool[17]" in sup.report and "vm_token" in sup.report
    assert machine.panicked


def _raise(m):
    raise RuntimeError("boom")


def test_unhandled_exception_in_kthread_panics(machine):
    with Supervisor(machine) as sup:
        sup.kproc_start("crasher", _raise)
        assert sup.wait(10) == "panic"
    assert "crasher: unhandled RuntimeError: boom" in machine.panicstr


def _hold_spin(m, spin):
    spin_lock(spin)
    m.hdr.scratch[0] = 1
    while True:
        time.sleep(1)


def test_indefinite_spin_warns_dumps_and_panics(machine, host, capfd):
    sysctl.sysctl_set(machine, "debug.spin_warn_ms", "100")
    sysctl.sysctl_set(machine, "debug.spin_backtrace_ms", "250")
    sysctl.sysctl_set(machine, "debug.spin_panic_ms", "500")
    with Supervisor(machine) as sup:
        sup.kproc_start("holder", _hold_spin, 33)
        wait_for(lambda: machine.hdr.scratch[0] == 1)
        t0 = time.monotonic()
        with pytest.raises(Panic, match="indefinite wait"):
            spin_lock(33)
        assert 0.45 < time.monotonic() - t0 < 5
        err = capfd.readouterr().err
    assert err.count("indefinite wait (") >= 3
    assert "indefinite wait (0.1" in err
    assert "backtrace of waiter" in err
    assert "_hold_spin" in err             # the holder's Python stack
    assert "test_indefinite_spin_warns_dumps_and_panics" in err  # waiter


def test_thread_exit_with_lock_held_panics(machine):
    def body(m):
        spin_lock(5)
    with Supervisor(machine) as sup:
        sup.kproc_start("leaky", body)
        assert sup.wait(10) == "panic"
    assert "exiting with 1 spinlocks" in machine.panicstr


def test_a_machine_the_host_cannot_hold_is_refused_with_the_sizes(
        monkeypatch):
    monkeypatch.setattr(machine_mod, "_mem_available", lambda: 1 << 20)
    with pytest.raises(ConfigError, match=r"a machine of [\d.]+ MiB does "
                       r"not fit: /dev/shm has .* free and the host 1.0 MiB "
                       "of memory available"):
        Machine.create(MachineConfig(ncpus=2))
    # nothing was made: the leak check of conftest looks at /dev/shm and
    # the temp directory after this test


def test_a_taken_segment_name_is_skipped(monkeypatch):
    """Another process holding the name smpvm picks first costs a retry,
    not the machine; when every pick is taken, a host error."""
    taken = f"smpvm-{os.getpid()}-deadbeef"
    squat = posix_ipc.SharedMemory("/" + taken, posix_ipc.O_CREX, size=4096)
    squat.close_fd()
    try:
        names = iter([taken, f"smpvm-{os.getpid()}-0badcafe"])
        monkeypatch.setattr(machine_mod, "new_name", lambda: next(names))
        with Machine.create(MachineConfig(ncpus=2)) as m:
            assert m.name == f"smpvm-{os.getpid()}-0badcafe"
        assert os.path.exists(f"/dev/shm/{taken}")     # not ours: intact
        monkeypatch.setattr(machine_mod, "new_name", lambda: taken)
        with pytest.raises(HostError, match="names were already taken"):
            Machine.create(MachineConfig(ncpus=2))
    finally:
        squat.unlink()


@pytest.mark.parametrize("name", ["a/b", "../../etc/passwd", "x" * 300,
                                  "smpvm-1"])
def test_attach_refuses_what_is_not_a_machine_name(name):
    with pytest.raises(AttachError, match="not a machine name"):
        Machine.attach(name)


def test_clean_never_follows_a_symlink_and_says_only_what_it_removed(
        tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    base = tempfile.gettempdir()
    link = os.path.join(base, "smpvm-999999999-0-evil")
    left = os.path.join(base, "smpvm-999999999-0-left")
    os.symlink(victim, link)
    os.mkdir(left)
    try:
        removed = sweep()
        assert link not in removed and os.path.islink(link)
        assert (victim / "keep").read_text() == "mine"
        # (a parallel test's create may have swept the leftover first)
        assert not os.path.exists(left)
        assert not [r for r in removed if os.path.lexists(r)]
    finally:
        os.unlink(link)
        if os.path.exists(left):
            os.rmdir(left)
