"""Pages (sys/vm/vm_page.c).  Each kernel name is the C entry of csrc/vm.c --
one cffi call per operation; the contracts are in the C comments (csrc/vm.c),
which follow vm_page.c @seed.  A page is an index into the page array.

Busy:       vm_page_busy_try(m, also_m_busy) -> 0 on SUCCESS, non-zero if
            busy; vm_page_busy_wait(m, also_m_busy, wmesg) sleeps (tokens
            lost); vm_page_wakeup(m) (busy has no owner; never under a queue
            spinlock); vm_page_io_start/io_finish (soft busy, under hard busy;
            io_finish wakes nobody); vm_page_sleep_busy; vm_page_flash.
Hold/wire:  vm_page_hold/unhold (no busy); vm_page_wire/unwire(m, act) (busy).
Queues:     vm_page_deactivate (INACTIVE tail, heuristic++), _deactivate_head,
            vm_page_activate, vm_page_unqueue[_nowakeup], vm_page_cache (busy
            consumed), vm_page_free (busy, unmapped, not soft-busy),
            vm_page_requeue(m, base) (to the tail of its queue if it is still
            on one of class base; 1 if moved).  INACTIVE, ACTIVE and HOLD
            are single queues in the seed and PQ_xxx + m->pc since
            027193eb61 (csrc/smpvm.h); FREE and CACHE are always coloured.
Flags:      vm_page_flag_set/clear(m, bits): atomic, no lock needed.
pmap:       vm_page_protect(m, prot) folds pte-modified into dirty;
            vm_page_test_dirty; vm_page_dirty; pmap_store/pmap_load.
Object:     vm_page_lookup, vm_page_lookup_busy_try/_wait, vm_page_insert,
            vm_page_remove, vm_page_alloc(o, pindex, req) -> -1 if none.
Markers:    vm_page_marker(k) is this thread's k-th marker,
            vm_page_static_marker(q) swapcached's page_marker[q]; the walks
            (vm_page_queue_first/next, vm_page_marker_*) need the queue
            spinlock (vm_page_queues_spin_lock(q)).
"""
import time

from smpvm.errors import Shutdown
from smpvm.kern.kern_synch import PINTERLOCKED, tsleep, tsleep_interlock
from smpvm.kern.safepoint import safepoint
from smpvm.kern.thread import curmachine
from smpvm.layout import ffi, lib
from smpvm.vm.vmview import counter_add, vmview

vm_page_busy_try = lib.vm_page_busy_try
vm_page_io_start = lib.vm_page_io_start
vm_page_io_finish = lib.vm_page_io_finish
vm_page_wakeup = lib.vm_page_wakeup
vm_page_flash = lib.vm_page_flash
vm_page_hold = lib.vm_page_hold
vm_page_unhold = lib.vm_page_unhold
vm_page_wire = lib.vm_page_wire
vm_page_unwire = lib.vm_page_unwire
vm_page_deactivate = lib.vm_page_deactivate
vm_page_deactivate_head = lib.vm_page_deactivate_head
vm_page_activate = lib.vm_page_activate
vm_page_requeue = lib.vm_page_requeue
vm_page_unqueue = lib.vm_page_unqueue
vm_page_unqueue_nowakeup = lib.vm_page_unqueue_nowakeup
vm_page_cache = lib.vm_page_cache
vm_page_free = lib.vm_page_free
vm_page_dirty = lib.vm_page_dirty
vm_page_undirty = lib.vm_page_undirty
vm_page_protect = lib.vm_page_protect
vm_page_test_dirty = lib.vm_page_test_dirty
pmap_clear_modify = lib.pmap_clear_modify
pmap_enter = lib.pmap_enter
vm_page_lookup = lib.vm_page_lookup
vm_page_insert = lib.vm_page_insert
vm_page_remove = lib.vm_page_remove
vm_page_alloc = lib.vm_page_alloc
vm_page_marker = lib.vm_page_marker
vm_page_static_marker = lib.vm_page_static_marker
vm_page_queues_spin_lock = lib.vm_page_queues_spin_lock
vm_page_queues_spin_unlock = lib.vm_page_queues_spin_unlock
vm_page_spin_lock = lib.vm_page_spin_lock
vm_page_spin_unlock = lib.vm_page_spin_unlock
vm_page_queue_first = lib.vm_page_queue_first
vm_page_queue_next = lib.vm_page_queue_next
vm_page_marker_insert_head = lib.vm_page_marker_insert_head
vm_page_marker_move_after = lib.vm_page_marker_move_after
vm_page_marker_remove = lib.vm_page_marker_remove

_busy_wait = lib.vm_page_busy_wait
_sleep_busy = lib.vm_page_sleep_busy
_lookup_busy_wait = lib.vm_page_lookup_busy_wait
_lookup_busy_try = lib.vm_page_lookup_busy_try
_pmap_store = lib.pmap_store
_pmap_load = lib.pmap_load

_err = ffi.new("int *")


# m->flags |= bits / &= ~bits, atomically (no lock needed): csrc/bio.c
vm_page_flag_set = lib.vm_page_flag_set
vm_page_flag_clear = lib.vm_page_flag_clear


vm_page_count_severe = lib.vm_page_count_severe
vm_page_count_target = lib.vm_page_count_target


def vm_page_busy_wait(m, also_m_busy, wmesg):
    """Busy m, sleeping while it is busy; tokens are lost while asleep."""
    _busy_wait(m, also_m_busy, wmesg.encode())


def vm_page_sleep_busy(m, also_m_busy, wmesg):
    """Wait at most once for m's busy to change; never busies.  1 if slept."""
    return _sleep_busy(m, also_m_busy, wmesg.encode())


def vm_page_lookup_busy_try(obj, pindex, also_m_busy):
    """(m, error): (-1, 0) absent; (m, 1) busy; (m, 0) busied by us.
    The caller holds obj."""
    m = _lookup_busy_try(obj, pindex, also_m_busy, _err)
    return m, _err[0]


def vm_page_lookup_busy_wait(obj, pindex, also_m_busy, wmesg):
    """Busied page at (obj, pindex) or -1 if absent; sleeps while busy and
    looks up again after every sleep.  The caller holds obj."""
    return _lookup_busy_wait(obj, pindex, also_m_busy, wmesg.encode())


def pmap_store(m, obj, pindex, off, data):
    """A store through a mapping of (obj, pindex) that resolved to page m:
    True if a writable pte took it, False on a write fault."""
    return _pmap_store(m, obj, pindex, off, data, len(data)) == 0


def pmap_load(m, obj, pindex, off, n):
    """A load through a mapping: bytes, or None on a fault."""
    buf = ffi.new("char[]", n)
    if _pmap_load(m, obj, pindex, off, buf, n) != 0:
        return None
    return ffi.buffer(buf, n)[:]


def vm_wait():
    """Block until free memory may be available (vm_page.c @seed,
    vm_wait(0)): under vm_token, if free+cache is below v_free_target,
    wake the pagedaemon unless it was asked already (vm_pages_needed) and
    sleep on the free count for at most hz ticks.
    Every token is lost while asleep; callers look again.  No
    requirements; the caller holds no busied page."""
    machine = curmachine()
    if machine.shutting_down():
        # the pagedaemon has stopped: no page will be freed for us
        raise Shutdown("vm_wait at shutdown")
    lib.lwkt_gettoken(lib.TOK_VM)
    # smpvm: queued on the free count before the test, so the pagedaemon's
    # wakeup after a scan that ends between the test and the sleep is not
    # lost (the seed's window is nanoseconds and its frees wake waiters
    # too; a lost wakeup here would cost the full hz ticks)
    tsleep_interlock(lib.IDENT_VM_FREE)
    if lib.vm_page_count_target():
        g = vmview().vmg
        if g.vm_pages_needed == 0:
            g.vm_pages_needed = 1
            lib.wakeup(lib.IDENT_PAGEDAEMON)
        t0 = time.monotonic_ns()
        tsleep(lib.IDENT_VM_FREE, PINTERLOCKED, "vmwait", machine.config.hz)
        # smpvm's counters: how long allocations stalled for memory
        counter_add("vm_waits")
        counter_add("vm_wait_ns", time.monotonic_ns() - t0)
    lib.lwkt_reltoken(lib.TOK_VM)
    safepoint(machine)
