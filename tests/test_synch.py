"""tsleep / wakeup across processes: with and without timeout, the
interlock, wakeup_one, and the rules about spinlocks."""
import time

import pytest

from conftest import wait_for
from smpvm.errors import Panic
from smpvm.kern.kern_synch import (EWOULDBLOCK, PINTERLOCKED, tsleep,
                                   tsleep_interlock, wakeup, wakeup_one)
from smpvm.kern.kproc import Supervisor
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken
from smpvm.kern.spinlock import spin_lock
from smpvm.layout import lib, threads

IDENT = 0x7000


def _sleep_and_report(m, ident, timo, slot):
    t0 = time.monotonic()
    r = tsleep(ident, 0, "test", timo)
    m.hdr.scratch[slot] = 1000 + r
    m.hdr.scratch[slot + 3] = int((time.monotonic() - t0) * 1e6)


def test_wakeup_across_processes(machine, host):
    with Supervisor(machine) as sup:
        tid = sup.kproc_start("sleeper", _sleep_and_report, IDENT, 0, 0)
        td = threads(machine.base)[tid]
        wait_for(lambda: td.state == lib.TDS_SLEEPING, what="asleep")
        assert td.wchan == IDENT
        time.sleep(0.05)
        assert machine.hdr.scratch[0] == 0      # no timeout: still asleep
        wakeup(IDENT + 1)                       # another ident: no effect
        time.sleep(0.02)
        assert machine.hdr.scratch[0] == 0
        wakeup(IDENT)
        wait_for(lambda: machine.hdr.scratch[0] != 0, what="woken")
        assert machine.hdr.scratch[0] == 1000   # tsleep returned 0
        assert sup.wait(10) == "exited", sup.report


def test_tsleep_timeout_across_processes(machine, host):
    hz = machine.config.hz
    with Supervisor(machine) as sup:
        sup.kproc_start("sleeper", _sleep_and_report, IDENT, 5, 0)
        assert sup.wait(10) == "exited", sup.report
    assert machine.hdr.scratch[0] == 1000 + EWOULDBLOCK
    assert machine.hdr.scratch[3] >= 5 / hz * 1e6 * 0.95


def test_interlock_prevents_lost_wakeup(machine, host):
    tsleep_interlock(IDENT)
    wakeup(IDENT)               # arrives before the sleep
    t0 = time.monotonic()
    assert tsleep(IDENT, PINTERLOCKED, "intl", 100) == 0
    assert time.monotonic() - t0 < 0.5


def test_without_interlock_an_early_wakeup_is_lost(machine, host):
    wakeup(IDENT)
    assert tsleep(IDENT, 0, "lost", 2) == EWOULDBLOCK


def test_wakeup_one_wakes_exactly_one(machine, host):
    with Supervisor(machine) as sup:
        tids = [sup.kproc_start(f"s{i}", _sleep_and_report, IDENT, 0, i)
                for i in range(2)]
        tds = [threads(machine.base)[t] for t in tids]
        wait_for(lambda: all(t.state == lib.TDS_SLEEPING for t in tds))
        wakeup_one(IDENT)
        wait_for(lambda: sum(machine.hdr.scratch[i] != 0 for i in range(2))
                 == 1, what="one woken")
        time.sleep(0.05)
        assert sum(machine.hdr.scratch[i] != 0 for i in range(2)) == 1
        wakeup_one(IDENT)
        assert sup.wait(10) == "exited", sup.report
    assert [machine.hdr.scratch[i] for i in range(2)] == [1000, 1000]


def test_tsleep_with_spinlock_held_panics(machine, host):
    spin_lock(1)
    with pytest.raises(Panic, match="holding 1 spinlocks"):
        tsleep(IDENT, 0, "bad", 1)


def test_contended_token_under_spinlock_panics(machine, host):
    """lwkt_switch asserts no spinlock is held when the thread blocks."""
    with Supervisor(machine) as sup:
        lwkt_gettoken(lib.TOK_VM)
        machine.hdr.scratch[0] = 0

        def body(m):
            spin_lock(2)
            lwkt_gettoken(lib.TOK_VM)

        sup.kproc_start("bad", body)
        assert sup.wait(10) == "panic"
        assert "while holding 1 spinlocks" in machine.panicstr
        lwkt_reltoken(lib.TOK_VM)
