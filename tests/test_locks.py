"""Spinlocks and tokens across processes: mutual exclusion, token-loss
semantics, LIFO and recursion, statistics, the preemption-point hook."""
import time

import pytest

from conftest import wait_for
from smpvm.errors import Panic
from smpvm.kern.kern_synch import tsleep, wakeup
from smpvm.kern.kproc import Supervisor
from smpvm.kern.lwkt_token import (lwkt_gettoken, lwkt_reltoken,
                                   lwkt_token_held, lwkt_token_pool_lookup,
                                   lwkt_token_swap, lwkt_trytoken, lwkt_yield)
from smpvm.kern.spinlock import (spin_held, spin_lock, spin_pool_index,
                                 spin_trylock, spin_unlock)
from smpvm.layout import ffi, lib, spinlocks, threads, tokens

N_ITER = 3000


def _racy_increment(m, i):
    """A read-modify-write that loses updates unless the caller excludes."""
    v = m.hdr.scratch[i]
    lib.smpvm_noop()
    m.hdr.scratch[i] = v + 1


def _spin_counter(m, lock):
    for _ in range(N_ITER):
        spin_lock(lock)
        _racy_increment(m, 0)
        spin_unlock(lock)


def _token_counter(m, tok):
    for k in range(N_ITER):
        lwkt_gettoken(tok)
        _racy_increment(m, 1)
        if k % 97 == 0:
            lwkt_yield()        # a token-loss point inside the section...
            v = m.hdr.scratch[1]  # ...after which nothing read is trusted
            m.hdr.scratch[1] = v
        lwkt_reltoken(tok)


def _two_token_counter(m, a, b, flip):
    """AB on some CPUs, BA on others: tokens must not deadlock."""
    first, second = (b, a) if flip else (a, b)
    for _ in range(N_ITER // 2):
        lwkt_gettoken(first)
        lwkt_gettoken(second)
        _racy_increment(m, 2)
        lwkt_reltoken(second)
        lwkt_reltoken(first)


def _run_cpus(m, fn, *args, seconds=60):
    with Supervisor(m) as sup:
        sup.start_cpus(fn, *args)
        assert sup.wait(seconds) == "exited", sup.report


def test_spinlock_mutual_exclusion_4_processes(machine):
    _run_cpus(machine, _spin_counter, 7)
    assert machine.hdr.scratch[0] == 4 * N_ITER
    st = spinlocks(machine.base)[7]
    assert st.st_acquisitions == 4 * N_ITER
    assert st.counta == 0


def test_token_mutual_exclusion_4_processes(machine):
    _run_cpus(machine, _token_counter, lib.TOK_VM)
    assert machine.hdr.scratch[1] == 4 * N_ITER
    assert tokens(machine.base)[lib.TOK_VM].t_ref == 0


def _flip_counter(m, a, b):
    _two_token_counter(m, a, b, lib.smpvm_curtid() % 2)


def test_tokens_in_opposite_orders_never_deadlock(machine):
    a, b = lwkt_pool(machine, 1), lwkt_pool(machine, 2)
    _run_cpus(machine, _flip_counter, a, b)
    assert machine.hdr.scratch[2] == 4 * (N_ITER // 2)


def lwkt_pool(machine, k):
    return lib.SMPVM_NGLOBAL_TOKENS + k


def _sleep_holding_token(m, tok, ident):
    lwkt_gettoken(tok)
    m.hdr.scratch[0] = 1                    # "I hold it, going to sleep"
    r = tsleep(ident, 0, "holdtok", 0)
    m.hdr.scratch[1] = 1 + r                # "back from tsleep"
    m.hdr.scratch[2] = lwkt_token_held(tok)
    lwkt_reltoken(tok)


def test_token_released_while_holder_sleeps(machine, host):
    tok, ident = lib.TOK_VMOBJ, 0xabc000
    with Supervisor(machine) as sup:
        tid = sup.kproc_start("sleeper", _sleep_holding_token, tok, ident)
        td = threads(machine.base)[tid]
        wait_for(lambda: machine.hdr.scratch[0] == 1 and
                 td.state == lib.TDS_SLEEPING, what="sleeper asleep")
        # asleep: its token is free, and the sleeper still has it stacked
        assert tokens(machine.base)[tok].t_ref == 0
        assert td.td_toks_stop == 1 and td.td_toks[0] == tok
        assert lwkt_trytoken(tok) == 1
        wakeup(ident)
        # woken, but it cannot run until it owns its token again
        wait_for(lambda: td.state == lib.TDS_TOKWAIT, what="token wait")
        time.sleep(0.05)
        assert machine.hdr.scratch[1] == 0
        lwkt_reltoken(tok)
        wait_for(lambda: machine.hdr.scratch[1] == 1, what="sleeper resumed")
        assert machine.hdr.scratch[2] == 1     # it owned the token again
        assert sup.wait(10) == "exited", sup.report


def test_token_recursion_and_lifo(machine, host):
    a, b = lib.TOK_VM, lib.TOK_VMOBJ
    ref = host + 1
    lwkt_gettoken(a)
    lwkt_gettoken(a)                        # recursive
    lwkt_reltoken(a)
    assert tokens(machine.base)[a].t_ref == ref   # outer ref still holds
    lwkt_gettoken(b)
    lwkt_token_swap()                       # now a is on top
    lwkt_reltoken(a)
    assert tokens(machine.base)[a].t_ref == 0
    assert lwkt_token_held(b)
    lwkt_reltoken(b)
    assert tokens(machine.base)[b].t_ref == 0
    assert threads(machine.base)[host].td_toks_stop == 0


def test_token_out_of_order_release_panics(machine, host):
    lwkt_gettoken(lib.TOK_VM)
    lwkt_gettoken(lib.TOK_VMOBJ)
    with pytest.raises(Panic, match="out of order"):
        lwkt_reltoken(lib.TOK_VM)
    assert machine.panicked


def test_spinlock_recursion_and_unheld_unlock_panic(machine, host):
    spin_lock(3)
    assert spin_held(3)
    with pytest.raises(Panic, match="recursion"):
        spin_lock(3)


def test_spin_unlock_not_held_panics(machine, host):
    with pytest.raises(Panic, match="not held"):
        spin_unlock(9)


def test_spin_trylock(machine, host):
    assert spin_trylock(4) == 1
    td = threads(machine.base)[host]
    assert td.gd_spinlocks_wr == 1 and td.td_critcount == 1
    assert td.nspins == 1 and td.spins_held[0] == 4
    spin_unlock(4)
    assert td.gd_spinlocks_wr == 0 and td.td_critcount == 0 and td.nspins == 0


def _hold_spin_while_told(m, lock, k):
    """Take the lock k times, each after the host says it holds it."""
    for i in range(k):
        wait_for(lambda: m.hdr.scratch[0] == i + 1)
        spin_lock(lock)
        spin_unlock(lock)
        m.hdr.scratch[1] = i + 1


def _hold_tok_while_told(m, tok, k):
    for i in range(k):
        wait_for(lambda: m.hdr.scratch[0] == i + 1)
        lwkt_gettoken(tok)
        lwkt_reltoken(tok)
        m.hdr.scratch[1] = i + 1


K = 4
HOLD = 0.03


def test_spinlock_statistics_exact(machine, host):
    lock = 11
    machine.hdr.prof_enabled = 1        # hold times are lock profiling's
    with Supervisor(machine) as sup:
        tid = sup.kproc_start("contender", _hold_spin_while_told, lock, K)
        td = threads(machine.base)[tid]
        for i in range(K):
            spin_lock(lock)
            machine.hdr.scratch[0] = i + 1
            wait_for(lambda: td.state == lib.TDS_SPINWAIT, what="spinning")
            time.sleep(HOLD)
            spin_unlock(lock)
            wait_for(lambda: machine.hdr.scratch[1] == i + 1)
        assert sup.wait(10) == "exited", sup.report
    st = spinlocks(machine.base)[lock]
    assert st.st_acquisitions == 2 * K
    assert st.st_contended == K
    assert st.countb >= K               # the seed's contention counter
    assert st.st_spins > 0
    assert st.st_wait_max_ns >= HOLD * 0.5e9
    assert st.st_wait_ns >= K * HOLD * 0.5e9
    assert st.st_hold_max_ns >= HOLD * 0.9e9
    assert st.st_bounces == 2 * K - 1   # the owner changes at every acquire


def test_token_statistics_exact(machine, host):
    tok = lib.TOK_VNODE
    machine.hdr.prof_enabled = 1        # hold times are lock profiling's
    with Supervisor(machine) as sup:
        tid = sup.kproc_start("contender", _hold_tok_while_told, tok, K)
        td = threads(machine.base)[tid]
        for i in range(K):
            lwkt_gettoken(tok)
            machine.hdr.scratch[0] = i + 1
            wait_for(lambda: td.state == lib.TDS_TOKWAIT, what="token wait")
            time.sleep(HOLD)
            lwkt_reltoken(tok)
            wait_for(lambda: machine.hdr.scratch[1] == i + 1)
        assert sup.wait(10) == "exited", sup.report
        assert td.n_switches == K
    st = tokens(machine.base)[tok]
    assert st.st_acquisitions == 2 * K
    assert st.st_contended == K
    assert st.t_collisions == K
    assert st.st_wait_max_ns >= HOLD * 0.5e9
    assert st.st_hold_max_ns >= HOLD * 0.9e9


def _held(lock, seconds, on_at_lock, on_at_unlock, machine):
    machine.hdr.prof_enabled = on_at_lock
    if lock == "spin":
        spin_lock(3)
    else:
        lwkt_gettoken(lib.TOK_VNODE)
    time.sleep(seconds)
    machine.hdr.prof_enabled = on_at_unlock
    if lock == "spin":
        spin_unlock(3)
    else:
        lwkt_reltoken(lib.TOK_VNODE)


@pytest.mark.parametrize("lock", ["spin", "token"])
def test_hold_times_are_taken_while_profiling_is_on(machine, host, lock):
    """Two TSC reads per acquisition are the profiler's cost: hold times
    are counted while lock profiling is on (as Linux lock_stat and FreeBSD
    LOCK_PROFILING do), acquisitions always.  A hold is timed
    when profiling was on at its acquisition (`smpvm lockstat` attaching
    or leaving while the lock is held), and averaged over timed holds."""
    from smpvm.prof import lockstat
    st = (spinlocks(machine.base)[3] if lock == "spin" else
          tokens(machine.base)[lib.TOK_VNODE])
    _held(lock, 0.01, 0, 0, machine)
    assert st.st_acquisitions == 1 and st.st_hold_ns == 0
    assert st.st_hold_max_ns == st.st_hold_min_ns == 0
    _held(lock, 0.01, 0, 1, machine)            # taken before profiling
    assert st.st_acquisitions == 2 and st.st_hold_ns == 0
    _held(lock, 0.02, 1, 0, machine)            # timed, released after
    assert st.st_acquisitions == 3
    assert 0.019e9 <= st.st_hold_ns == st.st_hold_max_ns == \
        st.st_hold_min_ns < 10e9
    _held(lock, 0.01, 0, 0, machine)            # untimed again
    assert st.st_hold_max_ns == st.st_hold_ns
    lk = next(x for x in lockstat.snapshot(machine)["locks"]
              if x["kind"] == lock and
              x["id"] == (3 if lock == "spin" else lib.TOK_VNODE))
    assert lk["acquisitions"] == 4 and lk["holds_timed"] == 1
    assert lk["hold_avg_ns"] == lk["hold_ns"] == st.st_hold_ns
    assert "-" not in lockstat._hold(lk, "hold_avg_ns", ".2f")
    assert lockstat._hold(dict(lk, holds_timed=0), "hold_avg_ns",
                          ".2f") == "-"


def test_the_profilers_site_lookup_is_no_preemption_point(machine, host):
    """A release that names its site for a waiter calls the Python site
    lookup from inside tok_release/spin_unlock; it must add no preemption
    point (a deterministic schedule would switch away from a thread that
    sleeps still owning its tokens: a deadlock only with --lockstat) and
    still be counted as the profiler's own cost."""
    td = threads(machine.base)[host]
    machine.hdr.prof_enabled = 1
    lib.smpvm_set_count_hook(1)
    try:
        lwkt_gettoken(lib.TOK_VM)
        tokens(machine.base)[lib.TOK_VM].want_site = 1  # a waiter asks
        lwkt_reltoken(lib.TOK_VM)
        spin_lock(2)
        spinlocks(machine.base)[2].want_site = 1
        spin_unlock(2)
    finally:
        lib.smpvm_set_count_hook(0)
    assert td.n_hooks == 4              # the four lock operations only
    assert tokens(machine.base)[lib.TOK_VM].rel_site != 0
    assert spinlocks(machine.base)[2].rel_site != 0
    assert machine.hdr.prof_calls == 2 and machine.hdr.prof_ns > 0


_STATS = ("st_acquisitions", "st_contended", "st_spins", "st_bounces",
          "st_wait_ns", "st_wait_max_ns", "st_wait_min_ns", "st_hold_ns",
          "st_hold_max_ns", "st_hold_min_ns")


def test_stats_reset(machine, host):
    """Every statistic of both kinds of lock, on either cache line."""
    machine.hdr.prof_enabled = 1
    spin_lock(1)
    spin_unlock(1)
    lwkt_gettoken(lib.TOK_VM)
    lwkt_reltoken(lib.TOK_VM)
    sp, tok = spinlocks(machine.base)[1], tokens(machine.base)[lib.TOK_VM]
    assert sp.st_acquisitions == 1 and sp.st_hold_min_ns > 0
    for st in (sp, tok):                # as a contended history leaves them
        for i, f in enumerate(_STATS):
            setattr(st, f, i + 1)
    tok.t_collisions = 7
    lib.smpvm_stats_reset(machine.base)
    for st in (sp, tok):
        assert [getattr(st, f) for f in _STATS] == [0] * len(_STATS)
    assert tok.t_collisions == 0


def test_pool_hashes_follow_the_kernel(machine, host):
    for addr in (0, 4096, 0xffff880012345000, 123456789):
        assert spin_pool_index(addr) == \
            ((addr >> 5) ^ (addr >> 12)) & (machine.config.spin_pool - 1)
        assert lwkt_token_pool_lookup(addr) == \
            lib.SMPVM_NGLOBAL_TOKENS + addr % lib.LWKT_NUM_POOL_TOKENS
    # two objects aliasing one pool token: holding both is recursion
    a, b = 4096, 4096 + lib.LWKT_NUM_POOL_TOKENS
    ta, tb = lwkt_token_pool_lookup(a), lwkt_token_pool_lookup(b)
    assert ta == tb
    lwkt_gettoken(ta)
    lwkt_gettoken(tb)
    lwkt_reltoken(tb)
    assert lwkt_token_held(ta)
    lwkt_reltoken(ta)


def test_count_hook_sees_every_preemption_point(machine, host):
    td = threads(machine.base)[host]
    lib.smpvm_set_count_hook(1)
    try:
        spin_lock(2)
        spin_unlock(2)
        lwkt_gettoken(lib.TOK_VM)
        lwkt_reltoken(lib.TOK_VM)
        wakeup(0x55)
    finally:
        lib.smpvm_set_count_hook(0)
    assert td.n_hooks == 5
    spin_lock(2)
    spin_unlock(2)
    assert td.n_hooks == 5              # no-op by default


def test_python_hook_gets_op_and_lock(machine, host):
    seen = []

    @ffi.callback("void(int, int)")
    def hook(op, lid):
        seen.append((op, lid))

    lib.smpvm_set_hook(hook)
    try:
        spin_lock(6)
        spin_unlock(6)
        lwkt_gettoken(lib.TOK_VMOBJ)
        lwkt_reltoken(lib.TOK_VMOBJ)
    finally:
        lib.smpvm_set_hook(ffi.NULL)
    assert seen == [(lib.HOOK_SPIN_LOCK, 6), (lib.HOOK_SPIN_UNLOCK, 6),
                    (lib.HOOK_TOKEN_GET, lib.TOK_VMOBJ),
                    (lib.HOOK_TOKEN_REL, lib.TOK_VMOBJ)]
