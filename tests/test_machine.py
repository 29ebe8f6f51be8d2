"""Machine lifecycle: create/attach/destroy, attach errors, config errors,
panics (a dead holder, an indefinite spin), and every exit path leaving
nothing behind -- including the CLI killed by SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import posix_ipc
import pytest

from conftest import wait_for
from smpvm.config import MachineConfig
from smpvm.errors import AttachError, ConfigError, Panic, SysctlError
from smpvm.kern import sysctl
from smpvm.kern.kproc import Supervisor
from smpvm.kern.lwkt_token import lwkt_gettoken
from smpvm.kern.spinlock import spin_lock
from smpvm.layout import lib, threads
from smpvm.machine import Machine

SMPVM = [sys.executable, "-m", "smpvm.cli"]


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


# ---- the command line -------------------------------------------------------

def _run(args, **kw):
    # cwd=/ so that -m finds the installed package, not a source checkout
    return subprocess.run(SMPVM + args, capture_output=True, text=True,
                          timeout=60, cwd="/", **kw)


def test_cli_boot_runs_and_leaves_nothing():
    r = _run(["boot", "--cpus", "4", "--seconds", "1", "--workload", "locks"])
    assert r.returncode == 0, r.stderr
    name = r.stdout.split()[0]
    assert name.startswith("smpvm-")
    assert not os.path.exists(f"/dev/shm/{name}")
    pid = name.split("-")[1]
    assert not [e for e in os.listdir(tempfile.gettempdir())
                if e.startswith(f"smpvm-{pid}-")]


@pytest.mark.parametrize("args,msg", [
    (["boot", "--cpus", "0"], "ncpus=0"),
    (["boot", "--cpus", "x"], "invalid int value"),
    (["boot", "--seconds", "-1"], "--seconds"),
    (["sysctl", "-m", "smpvm-1-1", "kern.hz"], "no machine named"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_input_is_one_line_exit_2(args, msg):
    r = _run(args)
    assert r.returncode == 2
    assert msg in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def _boot(seconds=30, cpus=2, workload="idle"):
    p = subprocess.Popen(SMPVM + ["boot", "--cpus", str(cpus), "--seconds",
                                  str(seconds), "--workload", workload],
                         stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd="/")
    name = p.stdout.readline().strip()
    assert name.startswith("smpvm-"), p.stderr.read()
    m = Machine.attach(name)
    def cpu_pids():
        td = threads(m.base)
        return [td[i].pid for i in range(m.config.maxthreads)
                if td[i].kind == lib.TDK_CPU and td[i].pid > 0]
    wait_for(lambda: len(cpu_pids()) == cpus, what="cpus up")
    pids = cpu_pids()
    return p, m, name, pids


def _gone(name, pids):
    def dead(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True
    return not os.path.exists(f"/dev/shm/{name}") and all(map(dead, pids))


def test_cli_sysctl_on_running_machine():
    p, m, name, pids = _boot()
    try:
        r = _run(["sysctl", "-m", name, "lwkt.token_spin=11"])
        assert r.returncode == 0 and "5 -> 11" in r.stdout, r.stderr
        assert m.hdr.kern.lwkt_token_spin == 11
        r = _run(["sysctl", "-m", name, "-a"])
        assert "lwkt.token_spin: 11  # kernel default 5" in r.stdout
        r = _run(["sysctl", "-m", name, "hw.ncpu=8"])
        assert r.returncode == 2 and "read only" in r.stderr
        r = _run(["ps", "-m", name])
        assert r.returncode == 0 and "cpu1" in r.stdout
        # past int64 (the kernel takes any C int: 101 is fine)
        r = _run(["sysctl", "-m", name,
                  "vm.swapcache.maxswappct=9223372036854775808"])
        assert r.returncode == 2 and "out of range" in r.stderr
        r = _run(["sysctl", "-m", name, "vm.swapcache.accrate=4096"])
        assert r.returncode == 0, r.stderr
        r = _run(["check", "-m", name])
        assert r.returncode == 0 and "0 invariant violations" in r.stdout, \
            r.stdout + r.stderr
        r = _run(["stat", "-m", name, "--json"])
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["accrate"] == 4096 and d["kernel"] == "fixed"
        r = _run(["lockstat", "-m", name, "--once", "--json"])
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["schema"] == 1 and d["locks"]
        r = _run(["lockstat", "-m", name, "--csv", "--class",
                  "pq_inactive"])
        assert r.returncode == 0 and r.stdout.startswith("# smpvm lockstat")
        rows = r.stdout.splitlines()[2:]
        assert rows and all(",pq_inactive," in line for line in rows), \
            r.stdout[:500]
    finally:
        m.close()
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0
        p.stdout.close()
        p.stderr.close()
    assert _gone(name, pids)


def test_cli_cpu_killed_is_a_panic_and_leaves_nothing():
    p, m, name, pids = _boot()
    m.close()
    os.kill(pids[1], signal.SIGKILL)
    assert p.wait(20) == 3
    err = p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    assert "panic: cpu" in err and "killed by SIGKILL" in err
    assert _gone(name, pids)


def test_cli_supervisor_sigkilled_janitor_cleans_up():
    p, m, name, pids = _boot()
    datadir = m.datadir
    m.close()
    p.kill()
    p.wait(10)
    p.stdout.close()
    p.stderr.close()
    wait_for(lambda: _gone(name, pids), timeout=10, what="janitor cleanup")
    assert not os.path.exists(datadir)


def test_clean_sweeps_dead_creators_leftovers(tmp_path):
    # a leftover as a crashed creator whose janitor died too would leave it
    name = "smpvm-999999999-0"
    shm = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=4096)
    shm.close_fd()
    try:
        r = _run(["clean"])
        assert r.returncode == 0
        # a parallel test's Machine.create may have swept it first
        assert f"removed {name}" in r.stdout or "nothing" in r.stdout
        assert not os.path.exists(f"/dev/shm/{name}")
    finally:
        try:
            shm.unlink()
        except posix_ipc.ExistentialError:
            pass


def test_cli_boot_default_workload_serves_reads_from_the_ssd():
    r = _run(["boot", "--cpus", "2", "--seconds", "6", "--npages", "512",
              "--nswap", "2048"])
    assert r.returncode == 0, r.stderr
    assert "failures 0" in r.stdout and "zero_fills 0" in r.stdout
    diverted = int(r.stdout.split("reads      ")[1].split()[0])
    assert diverted > 0, r.stdout


def test_cli_kernel_defaults_leave_swapcache_off():
    p, m, name, pids = _boot()
    m.close()
    try:
        r = _run(["sysctl", "-m", name, "-a"])
        assert "vm.swapcache.data_enable: 1  # kernel default 0" in r.stdout
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(20)
        p.stdout.close()
        p.stderr.close()
    p = subprocess.Popen(SMPVM + ["boot", "--cpus", "2", "--workload", "idle",
                                  "--sysctl-defaults", "kernel"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/")
    name = p.stdout.readline().strip()
    try:
        r = _run(["sysctl", "-m", name, "-a"])
        swc = [l for l in r.stdout.splitlines() if "vm.swapcache." in l]
        assert swc and not [l for l in swc if "kernel default" in l]
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(20)
        p.stdout.close()
        p.stderr.close()
