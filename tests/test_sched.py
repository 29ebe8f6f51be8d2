"""The deterministic scheduler (csrc/sched.c, smpvm/race/sched.py): one
thread between preemption points, seeded strategies, byte-identical
traces, exact replay of recorded choices, deadlock detection, the virtual
clock, and zero cost when off."""
import dataclasses
import mmap
import struct
import time

import pytest

from smpvm.config import MachineConfig, SchedConfig
from smpvm.errors import ConfigError
from smpvm.kern.kern_synch import (EWOULDBLOCK, PINTERLOCKED, tsleep,
                                   tsleep_interlock, wakeup)
from smpvm.kern.kproc import Supervisor
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken, lwkt_yield
from smpvm.kern.spinlock import spin_lock, spin_unlock
from smpvm.layout import lib
from smpvm.machine import Machine
from smpvm.race import sched

IDENT = 0x7000
SPIN = 7
LOGSIZE = 1 << 16
# the shared log (an anonymous MAP_SHARED mapping inherited by fork):
# [0] records, [1] overlaps seen, [2] threads inside, then 8-byte records
HDR = 3

POINT_OPS = {lib.HOOK_SPIN_LOCK, lib.HOOK_SPIN_UNLOCK, lib.HOOK_TOKEN_GET,
             lib.HOOK_TOKEN_REL, lib.HOOK_TSLEEP, lib.HOOK_WAKEUP,
             lib.HOOK_ATOMIC}
SIDE_EVENTS = {lib.SCHED_EV_CLOCK, lib.SCHED_EV_SHUTDOWN}


def _get(log, i):
    return struct.unpack_from("<q", log, 8 * i)[0]


def _put(log, i, v):
    struct.pack_into("<q", log, 8 * i, v)


def _record(log, v):
    n = _get(log, 0)
    _put(log, HDR + n, v)
    _put(log, 0, n + 1)


def _alone(log):
    """Python between points, with no lock: in deterministic mode nobody
    else may run meanwhile."""
    _put(log, 2, _get(log, 2) + 1)
    t = time.perf_counter() + 1e-3
    while time.perf_counter() < t:
        pass
    if _get(log, 2) != 1:
        _put(log, 1, _get(log, 1) + 1)
    _put(log, 2, _get(log, 2) - 1)


def _barrier(m, nthreads):
    """All threads meet: a generation count under vm_token, tsleep with
    the interlock, the last one wakes the rest."""
    lwkt_gettoken(lib.TOK_VM)
    gen = m.hdr.scratch[1]
    m.hdr.scratch[2] += 1
    if m.hdr.scratch[2] == nthreads:
        m.hdr.scratch[2] = 0
        m.hdr.scratch[1] = gen + 1
        wakeup(IDENT)
    else:
        while m.hdr.scratch[1] == gen:
            tsleep_interlock(IDENT)
            tsleep(IDENT, PINTERLOCKED, "barrier", 0)
    lwkt_reltoken(lib.TOK_VM)


def contended(m, log, rounds):
    """Contended spinlock, token (with token-loss yields) and a tsleep/
    wakeup barrier per round; every critical section logs who ran."""
    me = lib.smpvm_curtid()
    for i in range(rounds):
        spin_lock(SPIN)
        _record(log, me << 16 | i)
        spin_unlock(SPIN)
        _alone(log)
        lwkt_gettoken(lib.TOK_VMOBJ)
        m.hdr.scratch[0] += 1
        if i % 2 == 0:
            lwkt_yield()
        _record(log, 1 << 40 | me << 16 | int(m.hdr.scratch[0]))
        lwkt_reltoken(lib.TOK_VMOBJ)
        _barrier(m, m.config.ncpus)


def independent(m, log, rounds):
    """No interaction: each CPU takes only its own spinlock."""
    me = lib.smpvm_curtid()
    for i in range(rounds):
        spin_lock(100 + me)
        spin_unlock(100 + me)


@dataclasses.dataclass
class Run:
    result: str
    report: str
    summary: dict
    trace: bytes
    events: list
    schedule: object
    log: bytes
    overlaps: int
    panicstr: str
    deadlock: object
    hang: object
    ticks: int
    nplan: int
    plan: list


def run(body, *args, ncpus=3, strategy="random", seed=1, trace=1 << 16,
        seconds=20, **kw):
    cfg = MachineConfig(ncpus=ncpus, clock="virtual",
                        sched=SchedConfig(strategy=strategy, seed=seed,
                                          trace=trace, **kw))
    log = mmap.mmap(-1, LOGSIZE)
    try:
        with Machine.create(cfg) as m:
            with Supervisor(m) as sup:
                sup.start_cpus(body, log, *args)
                result = sup.wait(seconds)
                report = sup.report
            s = sched.sched_state(m)
            return Run(result, report, sched.summary(m),
                       sched.trace_bytes(m), sched.trace(m),
                       sched.recorded_schedule(m), bytes(log),
                       _get(log, 1), m.panicstr, sched.deadlock(m),
                       sched.hang(m),
                       m.hdr.ticks, s.nplan, list(s.plan[0:s.nplan]))
    finally:
        log.close()


def _ok(r):
    assert r.result == "exited", r.report
    assert r.overlaps == 0
    assert r.summary["diverged"] == 0
    # one event per step, in order; clock and shutdown events share a step
    assert [e.step for e in r.events if e.op not in SIDE_EVENTS] == \
        list(range(r.summary["steps"] + 1))


def test_same_seed_same_trace_and_results():
    a = run(contended, 6, seed=11)
    b = run(contended, 6, seed=11)
    _ok(a)
    _ok(b)
    assert a.summary["steps"] > 100
    assert a.summary["switches"] > 20           # it did interleave
    assert a.trace == b.trace                   # byte for byte
    assert a.summary["trace_hash"] == b.summary["trace_hash"]
    assert a.log == b.log
    c = run(contended, 6, seed=12)
    _ok(c)
    assert c.trace != a.trace
    assert c.summary["trace_hash"] != a.summary["trace_hash"]


def test_one_thread_between_points():
    """3 CPU processes on a 2-core host: the lock-free Python between points
    never overlaps, and every critical section ran."""
    r = run(contended, 4, seed=3)
    _ok(r)
    assert _get(r.log, 0) == 3 * 4 * 2


def test_trace_hash_covers_trace():
    r = run(contended, 3, seed=5)
    _ok(r)
    h = 0
    for i in range(0, len(r.trace), 24):
        for (w,) in struct.iter_unpack("<Q", r.trace[i:i + 24]):
            h = ((h ^ w) * 0x100000001b3) & (1 << 64) - 1
    assert f"{h:016x}" == r.summary["trace_hash"]
    assert r.events[0].op == lib.SCHED_EV_START and r.events[0].step == 0
    assert r.events[-1].op == lib.SCHED_EV_EXIT


@pytest.mark.parametrize("strategy", ["random", "pct", "bounded"])
def test_recorded_schedule_replays_exactly(strategy):
    a = run(contended, 5, strategy=strategy, seed=21, depth=3, k=300,
            bound=3)
    _ok(a)
    s = a.schedule
    assert s.complete and s.steps == a.summary["steps"]
    s2 = sched.Schedule.from_json(s.to_json())
    assert s2 == s
    b = run(contended, 5, **dataclasses.asdict(s2.replay_config(1 << 16)))
    _ok(b)
    assert b.trace == a.trace
    assert b.log == a.log
    assert b.schedule.choices == s.choices      # the same list, re-recorded
    assert b.summary["preemptions"] == a.summary["preemptions"]


def test_forced_default_policy_and_a_changed_choice():
    """An empty forced schedule is the default policy (deterministic);
    one more choice changes the run from its step on, and only there."""
    a = run(contended, 3, strategy="forced")
    _ok(a)
    assert a.schedule.choices == [] and a.summary["preemptions"] == 0
    other = next(e for e in a.events[5:] if e.op in POINT_OPS)
    tids = sorted({e.tid for e in a.events if e.tid >= 0})
    want = next(t for t in tids if t != other.tid)
    b = run(contended, 3, strategy="forced",
            schedule=((other.step, want),))
    _ok(b)
    n = other.step
    assert a.events[:n] == b.events[:n]
    assert b.events[n].next == want != a.events[n].next
    assert b.summary["preemptions"] == 1


def _sleep_forever(m, log):
    tsleep(IDENT + lib.smpvm_curtid(), 0, "forever", 0)


def test_deadlock_detected_and_named():
    r = run(_sleep_forever, ncpus=2, seed=1)
    assert r.result == "panic"
    assert r.deadlock.startswith("sched: deadlock at step")
    assert r.panicstr == r.deadlock[:len(r.panicstr)]
    for name in ("cpu0", "cpu1"):
        assert name in r.deadlock
    assert r.deadlock.count('sleeps on') == 2
    assert '"forever"' in r.deadlock
    assert r.events[-1].op == lib.SCHED_EV_DEADLOCK


def _ab_ba(m, log):
    me = lib.smpvm_curtid()
    a, b = (20, 21) if me % 2 == 0 else (21, 20)
    spin_lock(a)
    spin_lock(b)
    spin_unlock(b)
    spin_unlock(a)


def test_abba_spinlock_deadlock_found_and_named():
    """Random finds the lock-order deadlock within a few seeds; the report
    names both spinlocks and their holders."""
    for seed in range(1, 40):
        r = run(_ab_ba, ncpus=2, seed=seed)
        if r.result == "panic":
            break
        _ok(r)
    else:
        pytest.fail("no seed of 1..39 interleaved the AB-BA deadlock")
    assert "deadlock" in r.deadlock
    assert r.deadlock.count("spins on spinlock") == 2
    again = run(_ab_ba, ncpus=2, seed=seed)
    assert again.trace == r.trace and again.deadlock == r.deadlock


def _timed_sleeps(m, log, timos):
    me = lib.smpvm_curtid()             # cpu i is tid i (no host thread)
    rv = tsleep(IDENT + me, 0, "nap", timos[me])
    _record(log, me << 32 | rv << 16 | int(m.hdr.ticks))


def test_virtual_clock_timeouts_fire_when_everyone_sleeps():
    r = run(_timed_sleeps, (5, 12, 12), ncpus=3, seed=4)
    _ok(r)
    recs = [_get(r.log, HDR + i) for i in range(_get(r.log, 0))]
    assert sorted((v >> 16) & 0xffff for v in recs) == [EWOULDBLOCK] * 3
    assert sorted(v & 0xffff for v in recs) == [5, 12, 12]
    assert r.ticks == 12
    clocks = [e.id for e in r.events if e.op == lib.SCHED_EV_CLOCK]
    assert clocks == [5, 12]


def _until_shutdown(m, log):
    if lib.smpvm_curtid() % 2:
        while not m.shutting_down():
            tsleep(lib.IDENT_SHUTDOWN, 0, "idle", 0)
    else:
        while not m.shutting_down():
            spin_lock(SPIN)
            spin_unlock(SPIN)


def test_max_steps_asks_for_shutdown():
    r = run(_until_shutdown, ncpus=2, seed=2, max_steps=300)
    _ok(r)
    ev = [e for e in r.events if e.op == lib.SCHED_EV_SHUTDOWN]
    assert len(ev) == 1 and ev[0].step == 300
    assert 300 < r.summary["steps"] < 320


def _nap_while_other_spins(m, log):
    if lib.smpvm_curtid() == 0:
        rv = tsleep(IDENT, 0, "nap", 3)
        _put(log, 3, 1000 + rv)
        _put(log, 4, m.hdr.ticks)
        _put(log, 5, 1)
    else:
        while not _get(log, 5):
            spin_lock(SPIN)
            spin_unlock(SPIN)


def test_tick_steps_move_the_clock_while_cpus_are_busy():
    r = run(_nap_while_other_spins, ncpus=2, seed=3, tick_steps=10)
    _ok(r)
    assert _get(r.log, 3) == 1000 + EWOULDBLOCK and _get(r.log, 4) == 3
    assert r.ticks >= 3 and r.summary["steps"] < 100
    ticks = [e for e in r.events if e.op == lib.SCHED_EV_CLOCK]
    assert [e.step for e in ticks[:3]] == [10, 20, 30]


def test_no_exit_after_shutdown_is_a_hang():
    """Without ticks the napper never wakes and the spinner ignores the
    shutdown: 2 x max_steps is a panic naming both."""
    r = run(_nap_while_other_spins, ncpus=2, seed=3, max_steps=100)
    assert r.result == "panic"
    assert r.summary["hang"] and r.summary["steps"] == 200
    assert "no exit 100 steps after the shutdown at step 100" in r.panicstr
    assert '"nap" with a timeout' in r.panicstr and "cpu1 (tid 1) runs" \
        in r.panicstr
    assert r.events[-1].op == lib.SCHED_EV_HANG


def _switches_at_points(r):
    return [e for e in r.events if e.op in POINT_OPS and e.next != e.tid]


def test_pct_respects_depth():
    """Independent threads: PCT runs the highest priority until it exits;
    only the d-1 change points (in [1, k]) may switch at a point."""
    d1 = run(independent, 30, strategy="pct", seed=1, depth=1, k=150)
    _ok(d1)
    assert d1.nplan == 0 and _switches_at_points(d1) == []
    counts = []
    for seed in range(1, 6):
        r = run(independent, 30, strategy="pct", seed=seed, depth=3, k=150)
        _ok(r)
        assert r.nplan == 2 and all(1 <= p <= 150 for p in r.plan)
        sw = _switches_at_points(r)
        assert all(e.step in r.plan for e in sw)
        counts.append(len(sw))
    assert max(counts) <= 2 and max(counts) > 0
    assert sched.pct_bound(3, 150, 3) == pytest.approx(1 / (3 * 150 ** 2))


def test_bounded_respects_its_budget():
    r0 = run(contended, 4, strategy="bounded", seed=7, bound=0, k=200)
    _ok(r0)
    assert r0.summary["preemptions"] == 0
    assert r0.schedule.preemption_list() == []
    assert _switches_at_points(r0) == []        # only blocks, yields, exits
    assert r0.summary["switches"] > 10
    got = []
    for seed in range(1, 5):
        r = run(contended, 4, strategy="bounded", seed=seed, bound=2, k=200)
        _ok(r)
        assert r.summary["preemptions"] <= 2
        assert len(_switches_at_points(r)) == r.summary["preemptions"]
        got.append(r.summary["preemptions"])
    assert max(got) > 0


def _report_hook(m, log):
    _put(log, 10 + lib.smpvm_curtid(), 100 + lib.sched_hook_installed())


def test_off_mode_costs_nothing():
    """Off (the default): no region, no hook in any thread; on: sched_point
    is the hook of every scheduled thread."""
    log = mmap.mmap(-1, LOGSIZE)
    try:
        with Machine.create(MachineConfig(ncpus=2)) as m:
            assert m.hdr.region_len[lib.REG_SCHED] == 0
            assert sched.sched_state(m) is None
            with Supervisor(m) as sup:
                tids = sup.start_cpus(_report_hook, log)
                assert sup.wait(10) == "exited", sup.report
        assert [_get(log, 10 + t) for t in tids] == [100, 100]
        assert lib.sched_hook_installed() == 0
        r = run(_report_hook, ncpus=2)
        _ok(r)
        assert [_get(r.log, 10 + t) for t in (0, 1)] == [101, 101]
    finally:
        log.close()


def test_config_checks():
    with pytest.raises(ConfigError, match="clock"):
        MachineConfig(sched=SchedConfig(strategy="random")).validate()
    with pytest.raises(ConfigError, match="strategy"):
        MachineConfig(clock="virtual",
                      sched=SchedConfig(strategy="fifo")).validate()
    with pytest.raises(ConfigError, match="ascending"):
        SchedConfig(strategy="forced", schedule=((5, 1), (5, 2))).validate()
