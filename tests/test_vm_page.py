"""The page and object primitives against their contracts (reference 4):
one test per listed pre/postcondition, at least."""
import time

import pytest

from conftest import wait_for
from smpvm.errors import Panic
from smpvm.kern.kproc import Supervisor
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken
from smpvm.layout import ffi, lib, threads
from smpvm.vm import vm_page as P
from smpvm.vm.vm_object import (resident_pages, vm_object_allocate,
                                vm_object_drop, vm_object_hold,
                                vm_object_pip_add, vm_object_pip_wait,
                                vm_object_pip_wakeup_n)
from smpvm.vm.vmview import vmview


def _new_page(obj, pindex):
    """A busied page inserted at (obj, pindex)."""
    vm_object_hold(obj)
    m = P.vm_page_alloc(obj, pindex, lib.VM_ALLOC_NORMAL)
    vm_object_drop(obj)
    assert m >= 0
    return m


@pytest.fixture
def obj(vm):
    o = vm_object_allocate(lib.OBJT_VNODE, 64)
    assert o >= 0
    return o


def pg(m):
    return vmview().pages[m]


# ---- busy --------------------------------------------------------------------

def test_busy_try_returns_zero_on_success_nonzero_on_failure(vm, obj):
    m = _new_page(obj, 0)                       # alloc hands it out busied
    assert pg(m).flags & lib.PG_BUSY
    assert P.vm_page_busy_try(m, False) != 0    # busy: failure is non-zero
    assert not pg(m).flags & lib.PG_WANTED      # a failure sets no WANTED
    P.vm_page_wakeup(m)
    assert P.vm_page_busy_try(m, False) == 0
    assert pg(m).flags & lib.PG_BUSY
    P.vm_page_wakeup(m)


def test_busy_try_respects_soft_busy_only_with_also_m_busy(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_io_start(m)
    P.vm_page_wakeup(m)
    assert pg(m).flags & lib.PG_SBUSY and pg(m).busy == 1
    assert P.vm_page_busy_try(m, True) != 0     # soft-busy counts
    assert P.vm_page_busy_try(m, False) == 0    # the buffer cache ignores it
    P.vm_page_io_finish(m)
    assert not pg(m).flags & lib.PG_SBUSY and pg(m).busy == 0
    P.vm_page_wakeup(m)


def test_busy_try_on_a_marker_always_fails(vm):
    mk = P.vm_page_marker(0)
    assert pg(mk).flags & lib.PG_MARKER and pg(mk).flags & lib.PG_FICTITIOUS
    assert pg(mk).wire_count == 1
    assert P.vm_page_busy_try(mk, False) != 0


def _busy_hold_then_release(m_obj, m, tok):
    P.vm_page_busy_wait(m, False, "child")
    m_obj.hdr.scratch[0] = 1
    wait_for(lambda: m_obj.hdr.scratch[1] == 1)
    # the waiter sleeps in busy_wait: its token is free for us
    lwkt_gettoken(tok)
    lwkt_reltoken(tok)
    m_obj.hdr.scratch[2] = 1
    P.vm_page_wakeup(m)


def test_busy_wait_sleeps_sets_wanted_and_loses_tokens(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_wakeup(m)
    tok = lib.TOK_VNODE
    with Supervisor(vm) as sup:
        sup.kproc_start("holder", _busy_hold_then_release, m, tok)
        wait_for(lambda: vm.hdr.scratch[0] == 1)
        lwkt_gettoken(tok)
        vm.hdr.scratch[1] = 1
        P.vm_page_busy_wait(m, False, "test")   # sleeps; tok released
        assert vm.hdr.scratch[2] == 1           # the child took tok
        assert lib.lwkt_token_held(tok)         # and we own it again
        lwkt_reltoken(tok)
        assert pg(m).flags & lib.PG_BUSY
        assert pg(m).flags & lib.PG_REFERENCED  # set by the sleeper
        assert not pg(m).flags & lib.PG_WANTED  # cleared by the wakeup
        P.vm_page_wakeup(m)
        assert sup.wait(10) == "exited", sup.report


def test_wakeup_of_unbusy_page_panics(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_wakeup(m)
    with pytest.raises(Panic, match="not busy"):
        P.vm_page_wakeup(m)


def test_wakeup_under_a_queue_spinlock_panics(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_queues_spin_lock(lib.PQ_INACTIVE)
    with pytest.raises(Panic, match="queue spinlock held"):
        P.vm_page_wakeup(m)


def test_io_start_and_finish_need_hard_busy(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_wakeup(m)
    with pytest.raises(Panic, match="not busy"):
        P.vm_page_io_start(m)


def _wait_soft_busy(m_obj, m):
    P.vm_page_busy_wait(m, True, "sbwait")
    m_obj.hdr.scratch[0] = 1
    P.vm_page_wakeup(m)


def test_io_finish_wakes_nobody_the_following_wakeup_does(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_io_start(m)
    P.vm_page_wakeup(m)                     # soft-busy only now
    with Supervisor(vm) as sup:
        tid = sup.kproc_start("waiter", _wait_soft_busy, m)
        td = threads(vm.base)[tid]
        wait_for(lambda: td.state == lib.TDS_SLEEPING)
        P.vm_page_busy_wait(m, False, "t")  # hard-busy (ignores soft)
        P.vm_page_io_finish(m)
        time.sleep(0.05)
        assert vm.hdr.scratch[0] == 0       # io_finish woke nobody
        P.vm_page_wakeup(m)                 # WANTED was set: wakes it
        assert sup.wait(10) == "exited", sup.report
    assert vm.hdr.scratch[0] == 1


# ---- hold / wire -------------------------------------------------------------

def test_hold_moves_free_page_to_hold_queue_and_back(vm):
    free_q = [m for m in range(64) if pg(m).queue - pg(m).pc == lib.PQ_FREE]
    m = free_q[0]
    P.vm_page_hold(m)
    assert pg(m).queue == lib.PQ_HOLD and pg(m).hold_count == 1
    P.vm_page_unhold(m)
    assert pg(m).queue - pg(m).pc == lib.PQ_FREE and pg(m).hold_count == 0
    with pytest.raises(Panic, match="hold count"):
        P.vm_page_unhold(m)


def test_free_of_held_page_goes_to_hold_queue(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_hold(m)
    P.vm_page_free(m)
    assert pg(m).queue == lib.PQ_HOLD and pg(m).object == -1
    P.vm_page_unhold(m)
    assert pg(m).queue - pg(m).pc == lib.PQ_FREE


def test_wire_and_unwire(vm, obj):
    v = vmview()
    m = _new_page(obj, 0)
    P.vm_page_deactivate(m)
    w0 = v.vmstats.v_wire_count
    P.vm_page_wire(m)
    assert pg(m).queue == lib.PQ_NONE and pg(m).wire_count == 1
    assert v.vmstats.v_wire_count == w0 + 1
    h0 = v.vmg.vm_swapcache_inactive_heuristic
    P.vm_page_unwire(m, 0)
    assert pg(m).queue == lib.PQ_INACTIVE and pg(m).wire_count == 0
    assert v.vmg.vm_swapcache_inactive_heuristic == h0 + 1
    P.vm_page_wire(m)
    P.vm_page_unwire(m, 1)
    assert pg(m).queue == lib.PQ_ACTIVE
    with pytest.raises(Panic, match="invalid wire count"):
        P.vm_page_unwire(m, 0)


def test_wire_needs_busy(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_wakeup(m)
    with pytest.raises(Panic, match="not busy"):
        P.vm_page_wire(m)


# ---- queues ------------------------------------------------------------------

def test_deactivate_goes_to_inactive_tail_and_bumps_heuristic(vm, obj):
    v = vmview()
    a, b = _new_page(obj, 0), _new_page(obj, 1)
    h0 = v.vmg.vm_swapcache_inactive_heuristic
    P.vm_page_deactivate(a)
    P.vm_page_deactivate(b)
    assert v.vmg.vm_swapcache_inactive_heuristic == h0 + 2
    q = v.vmg.vm_page_queues[lib.PQ_INACTIVE]
    assert q.tail == b and pg(b).pq_prev == a
    P.vm_page_deactivate(a)                 # already INACTIVE: no move
    assert q.tail == b and v.vmg.vm_swapcache_inactive_heuristic == h0 + 2
    P.vm_page_deactivate_head(b)            # already INACTIVE: no move
    assert q.tail == b
    P.vm_page_activate(b)
    P.vm_page_deactivate_head(b)            # head insert: no bump
    assert q.head == b and v.vmg.vm_swapcache_inactive_heuristic == h0 + 2


def test_activate_raises_act_count(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_activate(m)
    assert pg(m).queue == lib.PQ_ACTIVE and pg(m).act_count >= lib.ACT_INIT


def test_cache_refuses_held_panics_dirty_and_caches_clean(vm, obj):
    m = _new_page(obj, 0)
    pg(m).valid = lib.VM_PAGE_BITS_ALL
    P.vm_page_hold(m)
    P.vm_page_cache(m)                      # refused: just unbusied
    assert pg(m).queue - pg(m).pc != lib.PQ_CACHE
    assert not pg(m).flags & lib.PG_BUSY
    P.vm_page_unhold(m)
    P.vm_page_busy_wait(m, False, "t")
    P.vm_page_cache(m)
    assert pg(m).queue - pg(m).pc == lib.PQ_CACHE     # the queue - pc rule
    assert pg(m).object == obj and not pg(m).flags & lib.PG_BUSY
    m2 = _new_page(obj, 1)
    P.vm_page_deactivate(m2)
    pg(m2).valid = lib.VM_PAGE_BITS_ALL
    P.vm_page_dirty(m2)
    with pytest.raises(Panic, match="dirty"):
        P.vm_page_cache(m2)


def test_free_refuses_soft_busy_and_mapped(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_io_start(m)
    with pytest.raises(Panic, match="vm_page_free"):
        P.vm_page_free(m)


def test_free_refuses_a_mapped_page(vm, obj):
    m = _new_page(obj, 0)
    P.pmap_enter(m, 1)
    with pytest.raises(Panic, match="vm_page_free"):
        P.vm_page_free(m)


def test_dirty_on_cache_queue_panics(vm, obj):
    m = _new_page(obj, 0)
    pg(m).valid = lib.VM_PAGE_BITS_ALL
    P.vm_page_cache(m)
    P.vm_page_busy_wait(m, False, "t")
    with pytest.raises(Panic, match="vm_page_dirty"):
        P.vm_page_dirty(m)


# ---- pmap ---------------------------------------------------------------------

def test_store_sets_only_modified_protect_and_test_dirty_fold_it(vm, obj):
    m = _new_page(obj, 3)
    pg(m).valid = lib.VM_PAGE_BITS_ALL
    assert not P.pmap_store(m, obj, 3, 0, b"x")     # not mapped: fault
    P.pmap_enter(m, 1)
    assert pg(m).flags & lib.PG_WRITEABLE and pg(m).flags & lib.PG_MAPPED
    assert P.pmap_store(m, obj, 3, 10, b"hello")
    assert pg(m).md_modified == 1 and pg(m).dirty == 0    # store: pte only
    assert not P.pmap_store(m, obj, 4, 0, b"x")     # another identity
    P.vm_page_test_dirty(m)
    assert pg(m).dirty == lib.VM_PAGE_BITS_ALL
    pg(m).dirty = 0
    P.vm_page_protect(m, lib.VM_PROT_READ)           # folds, write-protects
    assert pg(m).dirty == lib.VM_PAGE_BITS_ALL and pg(m).md_modified == 0
    assert not pg(m).flags & lib.PG_WRITEABLE and pg(m).flags & lib.PG_MAPPED
    assert not P.pmap_store(m, obj, 3, 0, b"x")     # now a write fault
    assert P.pmap_load(m, obj, 3, 10, 5) == b"hello"
    P.vm_page_protect(m, lib.VM_PROT_NONE)
    assert not pg(m).flags & (lib.PG_WRITEABLE | lib.PG_MAPPED)
    assert P.pmap_load(m, obj, 3, 10, 5) is None
    P.vm_page_wakeup(m)
    with pytest.raises(Panic, match="not busy"):
        P.vm_page_protect(m, lib.VM_PROT_READ)


# ---- lookup / alloc / insert / remove ---------------------------------------------

def test_lookup_busy_try_three_outcomes(vm, obj):
    vm_object_hold(obj)
    try:
        assert P.vm_page_lookup_busy_try(obj, 5, True) == (-1, 0)
        m = P.vm_page_alloc(obj, 5, lib.VM_ALLOC_NORMAL)
        assert P.vm_page_lookup_busy_try(obj, 5, True) == (m, 1)
        P.vm_page_wakeup(m)
        assert P.vm_page_lookup_busy_try(obj, 5, True) == (m, 0)
        assert pg(m).flags & lib.PG_BUSY
        P.vm_page_wakeup(m)
    finally:
        vm_object_drop(obj)


def test_lookup_needs_the_object_token(vm, obj):
    with pytest.raises(Panic, match="not held"):
        P.vm_page_lookup(obj, 0)


def test_alloc_resets_flags_and_collision_with_null_ok(vm, obj):
    vm_object_hold(obj)
    try:
        m = P.vm_page_alloc(obj, 7, lib.VM_ALLOC_NORMAL)
        assert pg(m).flags & ~(lib.PG_ZERO | lib.PG_SBUSY) == lib.PG_BUSY
        assert pg(m).valid == 0 and pg(m).act_count == 0
        assert pg(m).object == obj and pg(m).pindex == 7
        assert P.vm_page_alloc(obj, 7, lib.VM_ALLOC_NORMAL |
                               lib.VM_ALLOC_NULL_OK) == -1
        assert resident_pages(obj) == [m]
        P.vm_page_remove(m)
        assert pg(m).object == -1 and resident_pages(obj) == []
        P.vm_page_free(m)
    finally:
        vm_object_drop(obj)


def test_alloc_reclaims_cache_pages_and_the_swap_stays(vm, obj):
    """Once FREE is down to v_free_reserved, vm_page_alloc frees a CACHE
    page (C6: the seed switches there, it does not drain FREE first); its
    object keeps its swap, and a page inserted there again gets PG_SWAPPED
    back."""
    v = vmview()
    vm_object_hold(obj)
    try:
        blk = lib.swp_pager_getswapspace(obj, 1)
        lib.swp_pager_meta_build(obj, 0, blk)
        m = P.vm_page_alloc(obj, 0, lib.VM_ALLOC_NORMAL)
        assert pg(m).flags & lib.PG_SWAPPED       # derived at insert
        pg(m).valid = lib.VM_PAGE_BITS_ALL
        P.vm_page_cache(m)
        held = []
        while v.vmstats.v_free_count > v.vmstats.v_free_reserved:
            held.append(P.vm_page_alloc(-1, 0, lib.VM_ALLOC_NORMAL))
        other = P.vm_page_alloc(-1, 0, lib.VM_ALLOC_NORMAL)
        assert other == m                          # the cache page
        assert v.vmstats.v_free_count == v.vmstats.v_free_reserved
        assert P.vm_page_alloc(-1, 0, lib.VM_ALLOC_NORMAL) == -1  # reserve
        assert P.vm_page_lookup(obj, 0) == -1
        assert lib.swap_pager_meta_lookup(obj, 0) == blk
        assert not pg(m).flags & lib.PG_SWAPPED
        for p in held + [other]:
            P.vm_page_free(p)
        m2 = P.vm_page_alloc(obj, 0, lib.VM_ALLOC_NORMAL)
        assert pg(m2).flags & lib.PG_SWAPPED
        P.vm_page_wakeup(m2)
    finally:
        vm_object_drop(obj)


# ---- markers and lock order -------------------------------------------------------

def test_markers_are_real_entries_seen_by_every_process(vm):
    from smpvm.machine import Machine
    mk = P.vm_page_marker(0)
    P.vm_page_queues_spin_lock(lib.PQ_INACTIVE)
    P.vm_page_marker_insert_head(lib.PQ_INACTIVE, mk)
    P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE)
    other = Machine.attach(vm.name)
    try:
        v2 = vmview(other)
        assert v2.vmg.vm_page_queues[lib.PQ_INACTIVE].head == mk
        assert v2.pages[mk].flags & lib.PG_MARKER
        assert v2.vmg.vm_page_queues[lib.PQ_INACTIVE].lcnt == \
            v2.vmstats.v_inactive_count          # markers are not counted
    finally:
        other.close()
    P.vm_page_queues_spin_lock(lib.PQ_INACTIVE)
    P.vm_page_marker_remove(lib.PQ_INACTIVE, mk)
    P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE)


def test_marker_moves_need_the_queue_spinlock(vm):
    with pytest.raises(Panic, match="spinlock not held"):
        P.vm_page_queue_first(lib.PQ_INACTIVE)


def test_page_spinlock_after_queue_spinlock_panics(vm, obj):
    m = _new_page(obj, 0)
    P.vm_page_queues_spin_lock(lib.PQ_ACTIVE)
    with pytest.raises(Panic, match="lock order: page"):
        P.vm_page_spin_lock(m)


def test_two_page_spinlocks_panic(vm, obj):
    a, b = _new_page(obj, 0), _new_page(obj, 1)
    P.vm_page_spin_lock(a)
    with pytest.raises(Panic, match="another page spinlock"):
        P.vm_page_spin_lock(b)


# ---- objects ----------------------------------------------------------------------

def _pip_release(m_obj, o):
    time.sleep(0.05)
    m_obj.hdr.scratch[0] = 1
    vm_object_pip_wakeup_n(o, 2)


def test_pip_wait_sleeps_until_the_last_release(vm, obj):
    vm_object_pip_add(obj, 2)
    with Supervisor(vm) as sup:
        sup.kproc_start("io", _pip_release, obj)
        vm_object_pip_wait(obj, "t")
        assert vm.hdr.scratch[0] == 1
        assert vmview().objects[obj].paging_in_progress == 0
        assert sup.wait(10) == "exited", sup.report


def test_hold_of_a_freed_object_panics_and_last_drop_frees(vm, obj):
    v = vmview()
    o = v.objects[obj]
    vm_object_hold(obj)
    lib.atomic_set_int(ffi.addressof(o, "flags"), lib.OBJ_DEAD)
    o.ref_count = 0
    assert o.state == 1
    vm_object_drop(obj)                     # last drop: slot freed
    assert o.state == 0
    with pytest.raises(Panic, match="use after free"):
        vm_object_hold(obj)
