"""The pageout daemon's scans (csrc/pageout.c, smpvm/vm/vm_pageout.py) on
purpose-built queues, on each kernel version whose scans differ: what an
inactive scan frees, caches, launders, requeues and reactivates; what an
active scan deactivates or caches and how each version counts it; a whole
pass under memory pressure; a launder whose backing file cannot be had."""
import os

import pytest

from smpvm.layout import lib, threads
from smpvm.vfs import syscalls as sc
from smpvm.vfs.vnode import backing_path
from smpvm.vm import vm_page as P
from smpvm.vm import vm_pageout as PO
from smpvm.vm.versions import since
from smpvm.vm.vm_meter import swapcache_status
from smpvm.vm.vm_object import vm_object_drop, vm_object_hold
from smpvm.vm.vmview import vmview

PAGE = lib.PAGE_SIZE
VERSIONS = ["seed", "027193eb61", "51c99c6153", "64949baad7"]


def _file(name, npages):
    """A file of npages clean resident pages (on INACTIVE); (vp, pages)."""
    vp = sc.sys_open(name, create=True)
    sc.sys_write(vp, 0, b"v" * npages * PAGE)
    obj = sc._obj(vp)
    vm_object_hold(obj)
    try:
        pages = [P.vm_page_lookup(obj, p) for p in range(npages)]
    finally:
        vm_object_drop(obj)
    return vp, pages


def _mapped_store_on_inactive(vp, m, off, data):
    """A store through a mapping of page m (only its pte's modified bit is
    set), then m put back on INACTIVE with its reference bits clear."""
    sc.mmap_store(vp, off, data)
    assert P.vm_page_busy_try(m, True) == 0
    P.vm_page_deactivate(m)
    P.vm_page_flag_clear(m, lib.PG_REFERENCED)
    vmview().pages[m].md_referenced = 0
    P.vm_page_wakeup(m)
    assert vmview().pages[m].dirty == 0 and vmview().pages[m].md_modified


def _queue_of(m):
    """The scan's q of page m: its colour since 027193eb61, else 0."""
    return int(vmview().pages[m].pc) if since("027193eb61") else 0


def _class(m):
    """m's queue class: FREE and CACHE are coloured in every version,
    INACTIVE and ACTIVE since 027193eb61."""
    pg = vmview().pages[m]
    if pg.queue - pg.pc in (lib.PQ_FREE, lib.PQ_CACHE):
        return pg.queue - pg.pc
    return pg.queue - (pg.pc if since("027193eb61") else 0)


def _others(base, pages):
    """The pages other than `pages` on the queues of class base that hold
    one of them (a colour's queue may hold other files' pages)."""
    out = []
    for q in sorted({_queue_of(m) for m in pages}):
        P.vm_page_queues_spin_lock(base + q)
        m = P.vm_page_queue_first(base + q)
        while m != -1:
            if m not in pages:
                out.append(m)
            m = P.vm_page_queue_next(base + q, m)
        P.vm_page_queues_spin_unlock(base + q)
    return out


def _scan_inactive(pass_, pages):
    """Every queue holding one of pages, scanned once; the deltas' sum."""
    return sum(PO.vm_pageout_scan_inactive(pass_, q, 1 << 20)
               for q in sorted({_queue_of(m) for m in pages}))


@pytest.mark.parametrize("vm", VERSIONS, indirect=True)
def test_inactive_scan_frees_caches_launders_requeues_reactivates(vm):
    v = vmview()
    vp, (clean, invalid, dirty, referenced, held) = _file("f", 5)
    pages = [clean, invalid, dirty, referenced, held]
    v.pages[invalid].valid = 0
    new = b"n" * PAGE
    _mapped_store_on_inactive(vp, dirty, 2 * PAGE, new)
    P.vm_page_flag_set(referenced, lib.PG_REFERENCED)
    P.vm_page_hold(held)
    h0 = int(v.vmg.vm_swapcache_inactive_heuristic)
    c0, w0 = int(v.cnt.pageout_cached), int(v.cnt.vnode_writes)
    v.cnt.pageout_pass_pdpages = 0
    others = _others(lib.PQ_INACTIVE, pages)    # clean file pages: cached
    assert all(v.pages[m].valid and not v.pages[m].dirty for m in others)

    # 027193eb61 scans each queue with the whole class's count as maxscan:
    # a page requeued to the tail is visited again in the same scan
    whole_class = since("027193eb61") and not since("51c99c6153")

    # pass 0: the invalid page freed, the clean one cached, the dirty one
    # given its second trip through the queue (on 027193eb61 taken at once:
    # laundered), the referenced one reactivated, the held one requeued
    assert _scan_inactive(0, pages) == 2 + len(others) + whole_class
    assert int(v.cnt.pageout_cached) - c0 == 2 + len(others)
    assert _class(clean) == lib.PQ_CACHE and v.pages[clean].object >= 0
    assert _class(invalid) == lib.PQ_FREE and v.pages[invalid].object == -1
    assert _class(dirty) == lib.PQ_INACTIVE
    assert _class(referenced) == lib.PQ_ACTIVE
    assert v.pages[referenced].act_count == lib.ACT_INIT
    assert not v.pages[referenced].flags & lib.PG_REFERENCED
    assert _class(held) == lib.PQ_INACTIVE
    for m in pages:                 # every busy released (or consumed)
        assert not v.pages[m].flags & lib.PG_BUSY
    if whole_class:
        assert int(v.cnt.pageout_pass_pdpages) > 5 + len(others)
        assert int(v.vmg.vm_swapcache_inactive_heuristic) > h0 + 2
    else:
        assert int(v.cnt.pageout_pass_pdpages) == 5 + len(others)
        assert int(v.vmg.vm_swapcache_inactive_heuristic) == h0 + 2
        assert v.pages[dirty].dirty
        assert v.pages[dirty].flags & lib.PG_WINATCFLS
        assert int(v.cnt.vnode_writes) == w0
        # pass 1: the dirty page laundered
        h1 = int(v.vmg.vm_swapcache_inactive_heuristic)
        assert _scan_inactive(1, [dirty, held]) == 1
        assert int(v.vmg.vm_swapcache_inactive_heuristic) == h1 + 1

    # laundered: written to its file, clean, still inactive
    assert int(v.cnt.vnode_writes) == w0 + 1
    assert v.pages[dirty].dirty == 0
    assert not v.pages[dirty].flags & (lib.PG_WINATCFLS | lib.PG_BUSY)
    assert _class(dirty) == lib.PQ_INACTIVE
    with open(backing_path(vm, vp), "rb") as f:
        f.seek(2 * PAGE)
        assert f.read(PAGE) == new
    P.vm_page_unhold(held)


@pytest.mark.parametrize("vm", VERSIONS, indirect=True)
def test_active_scan_deactivates_and_caches_as_each_version_counts(vm):
    v = vmview()

    def active_idle(m):
        assert P.vm_page_busy_try(m, True) == 0
        P.vm_page_activate(m)
        P.vm_page_wakeup(m)
        v.pages[m].act_count = 0
    _, (idle, used) = _file("f", 2)
    active_idle(idle)
    active_idle(used)
    P.vm_page_flag_set(used, lib.PG_REFERENCED)
    d0 = int(v.cnt.pageout_deactivated)
    rc = [0]

    # no avail shortage: the idle page is moved to INACTIVE, the used one
    # gains act_count and stays; 51c99c6153 counts every page moved, the
    # versions before it only the pages cached
    delta = sum(PO.vm_pageout_scan_active(0, q, 0, 1 << 20, rc)
                for q in sorted({_queue_of(idle), _queue_of(used)}))
    assert delta == (1 if since("51c99c6153") else 0)
    assert _class(idle) == lib.PQ_INACTIVE
    assert _class(used) == lib.PQ_ACTIVE
    # (on 027193eb61 the used page's queue is scanned with maxscan the
    # class's count once the idle page left it: 1, one visit)
    assert v.pages[used].act_count == lib.ACT_ADVANCE + 1
    assert not v.pages[used].flags & lib.PG_REFERENCED
    assert int(v.cnt.pageout_deactivated) - d0 == 1 and rc == [0]

    # an avail shortage: a clean idle page is cached at once (recycled)
    _, (spare,) = _file("g", 1)
    active_idle(spare)
    q = _queue_of(spare)
    while _class(spare) == lib.PQ_ACTIVE:       # others of its queue first
        PO.vm_pageout_scan_active(0, q, 1 << 20, 1 << 20, rc)
    assert _class(spare) == lib.PQ_CACHE and rc[0] >= 1


@pytest.mark.vmconfig(npages=256)
@pytest.mark.parametrize("vm", VERSIONS, indirect=True)
def test_a_pass_under_memory_pressure_reaches_the_free_target(vm):
    v = vmview()
    p0 = swapcache_status(vm)["paging"]
    _file("f", 236)
    short = PO.vm_paging_target()
    assert short > 0
    c0 = int(v.cnt.pageout_cached)
    if since("027193eb61"):
        left = PO.vm_pageout_scan_queues(0)
    else:
        left = PO.vm_pageout_scan(0)
    assert left <= 0 and PO.vm_paging_target() <= 0
    assert int(v.cnt.pageout_cached) - c0 >= short
    # the status (smpvm stat --json, a run's --json) shows the paging
    p1 = swapcache_status(vm)["paging"]
    assert p1["page_allocs"] - p0["page_allocs"] >= 236
    assert p1["page_caches"] - p0["page_caches"] >= short


@pytest.mark.parametrize("vm", ["seed", "fixed"], indirect=True)
def test_a_launder_without_its_file_raises_with_the_object_dropped(vm,
                                                                  monkeypatch):
    """The backing file's descriptor is Python's: its failure stops the scan
    where the Python port's exception did (object dropped, page busy)."""
    v = vmview()
    vp, (m,) = _file("f", 1)
    _mapped_store_on_inactive(vp, m, 0, b"x")

    def no_file(machine, vp):
        raise FileNotFoundError(2, os.strerror(2), "backing file")
    monkeypatch.setattr(PO, "backing_fd", no_file)
    obj = int(v.pages[m].object)
    holds = int(v.objects[obj].hold_count)
    with pytest.raises(FileNotFoundError):
        PO.vm_pageout_scan_inactive(1, _queue_of(m), 1 << 20)
    assert int(v.objects[obj].hold_count) == holds
    assert v.pages[m].flags & lib.PG_BUSY and v.pages[m].dirty
    assert lib.vm_pageout_take_error() == 0     # taken by the raise


@pytest.mark.vmconfig(npages=256)
def test_pagedaemon_wakeup_asks_once_and_only_when_paging_is_needed(vm):
    """pagedaemon_wakeup (the seed's, csrc/vm.c): nothing while free+cache
    is above v_free_reserved + v_cache_min; below it one request
    (vm_pages_needed 0 -> 1) with one wakeup of the daemon; later calls
    wake nobody and bump vm_pages_needed only while memory is at its
    minimum; the pagedaemon's own calls ask nothing.  (This thread is
    queued on the daemon's ident, so a wakeup shows as its woken flag.)"""
    v = vmview()
    g, s = v.vmg, v.vmstats
    me = threads(vm.base)[lib.smpvm_curtid()]

    def ask():
        lib.tsleep_interlock(lib.IDENT_PAGEDAEMON)
        lib.pagedaemon_wakeup()
        return int(g.vm_pages_needed), int(me.woken)

    g.vm_pages_needed = 0
    assert not lib.vm_paging_needed() and ask() == (0, 0)
    _file("f", 240)                 # free+cache falls below the low water
    assert s.v_free_count + s.v_cache_count < \
        s.v_free_reserved + s.v_cache_min and lib.vm_paging_needed()
    g.vm_pages_needed = 0
    assert ask() == (1, 1)          # asked, and woken
    assert not lib.vm_page_count_min(0) and ask() == (1, 0)
    free_min = int(s.v_free_min)
    s.v_free_min = s.v_free_count + s.v_cache_count + 1
    try:
        assert lib.vm_page_count_min(0)
        assert ask() == (2, 0) and ask() == (3, 0)  # more requests pending
        g.vm_pages_needed = 0
        lib.vm_pageout_thread_init()                # we are the pagedaemon
        assert ask() == (0, 0)
    finally:
        s.v_free_min = free_min
        g.pagethread = -1
