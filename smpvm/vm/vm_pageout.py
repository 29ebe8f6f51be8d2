"""The pageout daemon (sys/vm/vm_pageout.c), reduced to what feeds and
drains swapcache: it ages pages ACTIVE -> INACTIVE -> CACHE under memory
pressure (vm_page_alloc then reclaims CACHE pages into FREE), launders
dirty inactive pages through the vnode pager (which releases their swap:
vfs_busy_pages unswaps a page it writes), and keeps the swap assignments
of the pages it recycles: that is what lets swapcache serve them later.

Deactivations go through vm_page_deactivate, so they bump the swapcache
inactive heuristic exactly as the kernel's do (tail inserts).  The queue
walks use this thread's markers, moved only under the queue spinlock.

Reduced against vm_pageout.c @seed: no laundering clusters (each dirty
page is written alone, under its hard busy, without vm_pageout_flush's soft
busy and pip), no vget, no direct caching of clean ACTIVE pages under a
shortage, no process-map deactivation, no swap-backed objects to page out.
"""
import contextlib

from smpvm.kern.kern_synch import tsleep
from smpvm.kern.lwkt_token import lwkt_yield
from smpvm.kern.safepoint import safepoint
from smpvm.layout import lib
from smpvm.vfs.vfs_bio import vnode_pager_putpage
from smpvm.vm.vm_object import vm_object_drop, vm_object_hold
from smpvm.vm.vm_page import (vm_page_activate, vm_page_busy_try,
                              vm_page_cache, vm_page_deactivate,
                              vm_page_flag_clear, vm_page_flag_set,
                              vm_page_free,
                              vm_page_marker, vm_page_marker_insert_head,
                              vm_page_marker_move_after,
                              vm_page_marker_remove, vm_page_protect,
                              vm_page_queue_next, vm_page_queues_spin_lock,
                              vm_page_queues_spin_unlock, vm_page_requeue,
                              vm_page_test_dirty, vm_page_wakeup)
from smpvm.vm.vmview import counter_add, vmview

INACTIVE_MARKER = 0     # this thread's marker k=0: the inactive scan
ACTIVE_MARKER = 1


def vm_paging_target():
    """Pages to reclaim: free+cache below v_free_target."""
    s = vmview().vmstats
    return int(s.v_free_target) - int(s.v_free_count) - int(s.v_cache_count)


def _busied_pages(q, k, maxscan):
    """Walk queue q from its head with this thread's k-th marker, moved
    under the queue spinlock past each page; yield the pages this thread
    could busy (also_m_busy), at most maxscan pages visited.  The marker
    leaves the queue when the walk ends."""
    marker = vm_page_marker(k)
    vm_page_queues_spin_lock(q)
    vm_page_marker_insert_head(q, marker)
    vm_page_queues_spin_unlock(q)
    try:
        for _ in range(maxscan):
            vm_page_queues_spin_lock(q)
            m = vm_page_queue_next(q, marker)
            if m >= 0:
                vm_page_marker_move_after(q, marker, m)
                busied = not (vmview().pages[m].flags & lib.PG_MARKER) and \
                    vm_page_busy_try(m, True) == 0
            vm_page_queues_spin_unlock(q)
            if m < 0:
                return
            if busied:
                yield m
    finally:
        vm_page_queues_spin_lock(q)
        vm_page_marker_remove(q, marker)
        vm_page_queues_spin_unlock(q)


def vm_pageout_scan_inactive(target, maxscan):
    """Walk PQ_INACTIVE from its head (vm_pageout_scan's inactive loop):
    free invalid pages, cache clean ones, give dirty ones a second pass
    through the queue and then launder them, reactivate referenced ones.
    The pagedaemon holds no lock on entry; each page it handles is busied
    (also_m_busy), and it yields after each (lwkt_yield, as the seed).
    Returns the pages freed or cached."""
    v = vmview()
    cached = 0
    with contextlib.closing(_busied_pages(lib.PQ_INACTIVE, INACTIVE_MARKER,
                                          maxscan)) as walk:
        for m in walk:
            if cached >= target:
                vm_page_wakeup(m)
                break
            lwkt_yield()
            pg = v.pages[m]
            if pg.queue != lib.PQ_INACTIVE or pg.object < 0 or \
                    pg.hold_count or pg.wire_count:
                vm_page_wakeup(m)
                continue
            if (pg.flags & lib.PG_REFERENCED) or pg.md_referenced:
                _clear_referenced(m)
                pg.act_count = min(lib.ACT_MAX, pg.act_count + lib.ACT_ADVANCE)
                vm_page_activate(m)
                vm_page_wakeup(m)
                continue
            vm_page_test_dirty(m)
            if pg.valid == 0:
                # invalid pages can be easily freed (vm_pageout_page_free)
                vm_page_protect(m, lib.VM_PROT_NONE)
                vm_page_free(m)
                cached += 1
                continue
            if pg.dirty:
                if not (pg.flags & lib.PG_WINATCFLS):
                    # second chance: to the tail (heuristic bumped)
                    vm_page_flag_set(m, lib.PG_WINATCFLS)
                    vm_page_requeue(m)
                    vm_page_wakeup(m)
                    continue
                if not _launder(m):
                    # an object in rundown (OBJ_DEAD) is not paged: to the
                    # tail again (heuristic bumped)
                    vm_page_requeue(m)
                vm_page_wakeup(m)
                continue
            vm_page_protect(m, lib.VM_PROT_NONE)
            if pg.dirty:
                vm_page_wakeup(m)
                continue
            vm_page_cache(m)        # consumes the busy
            cached += 1
    return cached


def _launder(m):
    """Write dirty page m (busied by the caller, which holds no lock) back
    to its file, holding its object; True if it was written, False for an
    object in rundown (OBJ_DEAD, or no longer a vnode's)."""
    v = vmview()
    pg = v.pages[m]
    obj = pg.object
    vm_object_hold(obj)
    try:
        vp = v.objects[obj].handle
        if pg.object == obj and vp >= 0 and \
                v.objects[obj].type == lib.OBJT_VNODE and \
                not v.objects[obj].flags & lib.OBJ_DEAD:
            vnode_pager_putpage(vp, m)
            vm_page_flag_clear(m, lib.PG_WINATCFLS)
            return True
        return False
    finally:
        vm_object_drop(obj)


def vm_pageout_scan_active(target, maxscan):
    """Age PQ_ACTIVE (vm_pageout_scan's active loop): referenced pages gain
    act_count and go to the tail, others lose it; at zero they are
    deactivated (INACTIVE tail).  The pagedaemon holds no lock on entry;
    each page it handles is busied, and it yields after each.  Returns the
    pages deactivated."""
    v = vmview()
    moved = 0
    with contextlib.closing(_busied_pages(lib.PQ_ACTIVE, ACTIVE_MARKER,
                                          maxscan)) as walk:
        for m in walk:
            if moved >= target:
                vm_page_wakeup(m)
                break
            lwkt_yield()
            pg = v.pages[m]
            if pg.queue != lib.PQ_ACTIVE or pg.hold_count or pg.wire_count:
                vm_page_wakeup(m)
                continue
            if (pg.flags & lib.PG_REFERENCED) or pg.md_referenced:
                _clear_referenced(m)
                pg.act_count = min(lib.ACT_MAX, pg.act_count + lib.ACT_ADVANCE)
                vm_page_requeue(m)
            else:
                pg.act_count = max(0, pg.act_count - lib.ACT_DECLINE)
                if pg.act_count == 0:
                    vm_page_deactivate(m)
                    moved += 1
            vm_page_wakeup(m)
    return moved


def _clear_referenced(m):
    vm_page_flag_clear(m, lib.PG_REFERENCED)
    vmview().pages[m].md_referenced = 0


def vm_pageout_scan():
    """One pass, in the seed's order: reclaim from INACTIVE, then refill it
    from ACTIVE.  The pagedaemon holds no lock."""
    v = vmview()
    s = v.vmstats
    counter_add("pageout_scans")
    target = vm_paging_target()
    if target > 0:
        target -= vm_pageout_scan_inactive(target,
                                           int(s.v_inactive_count) + 16)
    short = int(s.v_inactive_target) - int(s.v_inactive_count)
    if short > 0 or target > 0:
        vm_pageout_scan_active(max(short, target, 1), int(s.v_active_count))


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
