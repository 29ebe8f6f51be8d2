"""The pageout daemon (sys/vm/vm_pageout.c), reduced to what feeds and
drains swapcache: it ages pages ACTIVE -> INACTIVE -> CACHE under memory
pressure (vm_page_alloc then reclaims CACHE pages into FREE), launders
dirty inactive pages through the vnode pager (which releases their swap,
C4), and keeps the swap assignments of the pages it recycles: that is what
lets swapcache serve them later.

Deactivations go through vm_page_deactivate, so they bump the swapcache
inactive heuristic exactly as the kernel's do (tail inserts).  The queue
walks use this thread's markers, moved only under the queue spinlock.
"""
from smpvm.kern.kern_synch import tsleep
from smpvm.kern.safepoint import safepoint
from smpvm.layout import ffi, lib
from smpvm.vfs.vfs_bio import vnode_pager_putpage
from smpvm.vm.vm_object import vm_object_drop, vm_object_hold
from smpvm.vm.vm_page import (vm_page_activate, vm_page_busy_try,
                              vm_page_cache, vm_page_deactivate,
                              vm_page_marker, vm_page_marker_insert_head,
                              vm_page_marker_move_after,
                              vm_page_marker_remove, vm_page_protect,
                              vm_page_queue_next, vm_page_queues_spin_lock,
                              vm_page_queues_spin_unlock, vm_page_requeue,
                              vm_page_test_dirty, vm_page_wakeup)
from smpvm.vm.vmview import vmview

INACTIVE_MARKER = 0     # this thread's marker k=0: the inactive scan
ACTIVE_MARKER = 1


def vm_paging_target():
    """Pages to reclaim: free+cache below v_free_target."""
    s = vmview().vmstats
    return int(s.v_free_target) - int(s.v_free_count) - int(s.v_cache_count)


def _next_candidate(q, marker):
    """Advance marker past the next page of q and try to busy it.
    Returns (m, busied) or (-1, False) at the end of the queue."""
    vm_page_queues_spin_lock(q)
    try:
        m = vm_page_queue_next(q, marker)
        if m < 0:
            return -1, False
        vm_page_marker_move_after(q, marker, m)
        if vmview().pages[m].flags & lib.PG_MARKER:
            return m, False
        return m, vm_page_busy_try(m, True) == 0
    finally:
        vm_page_queues_spin_unlock(q)


def _start(q, marker):
    """Put this thread's marker at the head of q for one scan."""
    vm_page_queues_spin_lock(q)
    vm_page_marker_insert_head(q, marker)
    vm_page_queues_spin_unlock(q)


def vm_pageout_scan_inactive(target, maxscan):
    """Walk PQ_INACTIVE from its head; cache clean pages, launder dirty
    ones, reactivate referenced ones.  Returns pages cached."""
    v = vmview()
    marker = vm_page_marker(INACTIVE_MARKER)
    _start(lib.PQ_INACTIVE, marker)
    cached = 0
    scanned = 0
    try:
        while cached < target and scanned < maxscan:
            m, busied = _next_candidate(lib.PQ_INACTIVE, marker)
            if m < 0:
                break
            scanned += 1
            if not busied:
                continue
            pg = v.pages[m]
            if pg.queue != lib.PQ_INACTIVE or pg.object < 0 or \
                    pg.hold_count or pg.wire_count:
                vm_page_wakeup(m)
                continue
            if (pg.flags & lib.PG_REFERENCED) or pg.md_referenced:
                _clear_referenced(pg)
                pg.act_count = min(lib.ACT_MAX, pg.act_count + lib.ACT_ADVANCE)
                vm_page_activate(m)
                vm_page_wakeup(m)
                continue
            vm_page_test_dirty(m)
            if pg.dirty:
                if not (pg.flags & lib.PG_WINATCFLS):
                    # second chance: to the tail (heuristic bumped)
                    _set_flag(pg, lib.PG_WINATCFLS)
                    vm_page_requeue(m)
                    vm_page_wakeup(m)
                    continue
                _launder(m)
                vm_page_wakeup(m)
                continue
            vm_page_protect(m, lib.VM_PROT_NONE)
            if pg.dirty:
                vm_page_wakeup(m)
                continue
            vm_page_cache(m)        # consumes the busy
            cached += 1
    finally:
        vm_page_queues_spin_lock(lib.PQ_INACTIVE)
        vm_page_marker_remove(lib.PQ_INACTIVE, marker)
        vm_page_queues_spin_unlock(lib.PQ_INACTIVE)
    return cached


def _launder(m):
    """Write a dirty vnode page back to its file (busied)."""
    v = vmview()
    pg = v.pages[m]
    obj = pg.object
    vm_object_hold(obj)
    try:
        vp = v.objects[obj].handle
        if pg.object == obj and vp >= 0 and \
                v.objects[obj].type == lib.OBJT_VNODE:
            vnode_pager_putpage(vp, m)
            _clear_flag(pg, lib.PG_WINATCFLS)
    finally:
        vm_object_drop(obj)


def vm_pageout_scan_active(target, maxscan):
    """Age PQ_ACTIVE: referenced pages gain act_count and go to the tail,
    others lose it; at zero they are deactivated (INACTIVE tail)."""
    v = vmview()
    marker = vm_page_marker(ACTIVE_MARKER)
    _start(lib.PQ_ACTIVE, marker)
    moved = 0
    scanned = 0
    try:
        while moved < target and scanned < maxscan:
            m, busied = _next_candidate(lib.PQ_ACTIVE, marker)
            if m < 0:
                break
            scanned += 1
            if not busied:
                continue
            pg = v.pages[m]
            if pg.queue != lib.PQ_ACTIVE or pg.hold_count or pg.wire_count:
                vm_page_wakeup(m)
                continue
            if (pg.flags & lib.PG_REFERENCED) or pg.md_referenced:
                _clear_referenced(pg)
                pg.act_count = min(lib.ACT_MAX, pg.act_count + lib.ACT_ADVANCE)
                vm_page_requeue(m)
            else:
                pg.act_count = max(0, pg.act_count - lib.ACT_DECLINE)
                if pg.act_count == 0:
                    vm_page_deactivate(m)
                    moved += 1
            vm_page_wakeup(m)
    finally:
        vm_page_queues_spin_lock(lib.PQ_ACTIVE)
        vm_page_marker_remove(lib.PQ_ACTIVE, marker)
        vm_page_queues_spin_unlock(lib.PQ_ACTIVE)
    return moved


def _set_flag(pg, bit):
    lib.atomic_set_int(_flags(pg), bit)


def _clear_flag(pg, bit):
    lib.atomic_clear_int(_flags(pg), bit)


def _flags(pg):
    return ffi.addressof(pg, "flags")


def _clear_referenced(pg):
    _clear_flag(pg, lib.PG_REFERENCED)
    pg.md_referenced = 0


def vm_pageout_scan():
    """One pass: refill INACTIVE from ACTIVE, then reclaim from INACTIVE."""
    v = vmview()
    s = v.vmstats
    lib.atomic_fetchadd_long(_cnt("pageout_scans"), 1)
    target = vm_paging_target()
    short = int(s.v_inactive_target) - int(s.v_inactive_count)
    if short > 0 or target > 0:
        vm_pageout_scan_active(max(short, target, 1), int(s.v_active_count))
    if target > 0:
        vm_pageout_scan_inactive(target, 2 * int(s.v_inactive_count) + 16)


def _cnt(field):
    return ffi.addressof(vmview().cnt, field)


def vm_pageout_thread(machine):
    """The pagedaemon: sleep until woken (or a tenth of a second), scan when
    free+cache is below target.  Returns on shutdown."""
    hz = machine.config.hz
    while not machine.shutting_down():
        tsleep(lib.IDENT_PAGEDAEMON, 0, "psleep", max(1, hz // 10))
        safepoint(machine)
        if machine.shutting_down():
            break
        if vm_paging_target() > 0 or \
                vmview().vmstats.v_inactive_count < \
                vmview().vmstats.v_inactive_target // 2:
            vm_pageout_scan()
            lib.wakeup(lib.IDENT_VM_FREE)
