"""The pageout daemon (sys/vm/vm_pageout.c), reduced to what feeds and
drains swapcache: it ages pages ACTIVE -> INACTIVE -> CACHE under memory
pressure (vm_page_alloc then reclaims CACHE pages into FREE), launders
dirty inactive pages through the vnode pager (which releases their swap:
vfs_busy_pages unswaps a page it writes), and keeps the swap assignments
of the pages it recycles: that is what lets swapcache serve them later.

The scans are the seed's and its versions' (smpvm/vm/versions.py):
  seed        vm_pageout_scan(pass): PQ_INACTIVE, then PQ_ACTIVE, each
              from its head with a marker, maxscan the whole class count
  027193eb61  the scans split per queue, vm_pageout_scan_inactive(pass, q,
              shortage) and vm_pageout_scan_active(pass, q, ...), called by
              vm_pageout_thread for q < PQ_MAXL2_SIZE with shortage / 256 + 1
              each -- but maxscan still the whole class count
  51c99c6153  maxscan the queue's own count (lcnt), PQAVERAGE shares, the
              shortages renamed avail_shortage / inactive_shortage, q <
              PQ_L2_SIZE (now 256, all populated)
  64949baad7  the requeues bump the swapcache heuristic only when they
              really moved the page to the tail
Deactivations go through vm_page_deactivate, so they bump the swapcache
inactive heuristic exactly as the kernel's do (tail inserts).  The queue
walks use this thread's markers, moved only under the queue spinlock.

Reduced against vm_pageout.c: no laundering clusters (each dirty page is
written alone, under its hard busy, without vm_pageout_flush's soft busy
and pip), no vget (so no vnodes_skipped), the pages' object ref_count not
consulted (a referenced page is reactivated; smpvm's pageout does not hold
the object there), no vm_pageout_scan_cache (vm_page_alloc reclaims CACHE
pages itself), no vm_pageout_page_stats, no process killing, no
swap-backed objects to page out, no vm_pageout_deficit; the daemon polls
at 10 Hz instead of sleeping on vm_pages_needed; other threads' markers
cost a scan no maxscan (_next_busied says why).
"""
import time

from smpvm.kern.kern_synch import tsleep
from smpvm.kern.lwkt_token import lwkt_yield
from smpvm.kern.safepoint import safepoint
from smpvm.layout import lib
from smpvm.vfs.vfs_bio import vnode_pager_putpage
from smpvm.vm.versions import pq_l2_size, since
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

INACTIVE_MARKER = 0     # this thread's marker k=0: the inactive scans
ACTIVE_MARKER = 1
VM_MAX_LAUNDER = 32     # vm_max_launder @seed
NULL = -1


def c_div(a, b):
    """a / b as C divides integers: truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def vm_paging_target():
    """Pages to reclaim: free+cache below v_free_target."""
    s = vmview().vmstats
    return int(s.v_free_target) - int(s.v_free_count) - int(s.v_cache_count)


def PQAVERAGE(n):
    """51c99c6153: n spread over the PQ_L2_SIZE queues, rounded away from
    zero, plus one."""
    size = pq_l2_size()
    if n >= 0:
        return c_div(n + (size - 1), size) + 1
    return c_div(n - (size - 1), size) - 1


def _bump_heuristic():
    """++vm_swapcache_inactive_heuristic (racy by design, H5)."""
    vmg = vmview().vmg
    vmg.vm_swapcache_inactive_heuristic = \
        (vmg.vm_swapcache_inactive_heuristic + 1 + (1 << 31)) % (1 << 32) \
        - (1 << 31)


def _requeue_inactive(m):
    """if (m->queue - m->pc == PQ_INACTIVE) { TAILQ_REMOVE; TAILQ_INSERT_TAIL;
    [64949baad7: ++heuristic] } [until then: ++heuristic]"""
    moved = vm_page_requeue(m, lib.PQ_INACTIVE)
    if moved or not since("64949baad7"):
        _bump_heuristic()


def _next_busied(qq, marker, left):
    """One step of a scan's loop head: under queue qq's spinlock, m =
    TAILQ_NEXT(marker); unless the budget `left` (a callable) says stop,
    move the marker past m and try to busy it.  Another thread's marker is
    stepped over without charging `left` (smpvm's deviation: upstream
    charges maxscan for it -- harmless with thousands of pages a queue,
    but on smpvm's machines of a page or two per queue swapcached's
    page_marker[q] would eat a queue's whole maxscan and the pagedaemon
    would free nothing).  Returns (m, busied): m NULL at the end of the
    queue or when the scan stops, busied False for a busy page."""
    pages = vmview().pages
    vm_page_queues_spin_lock(qq)
    while True:
        m = vm_page_queue_next(qq, marker)
        if m == NULL or not pages[m].flags & lib.PG_MARKER:
            break
        vm_page_marker_move_after(qq, marker, m)
    if m == NULL or not left():
        vm_page_queues_spin_unlock(qq)
        return NULL, False
    vm_page_marker_move_after(qq, marker, m)
    counter_add("pageout_pass_pdpages")         # v_pdpages
    busied = vm_page_busy_try(m, True) == 0
    vm_page_queues_spin_unlock(qq)
    return m, busied


def _insert_marker(qq, k):
    """This thread's marker k at the head of queue qq; returns it and the
    queue's count, read under the queue's spinlock."""
    marker = vm_page_marker(k)
    vm_page_queues_spin_lock(qq)
    vm_page_marker_insert_head(qq, marker)
    lcnt = int(vmview().vmg.vm_page_queues[qq].lcnt)
    vm_page_queues_spin_unlock(qq)
    return marker, lcnt


def _remove_marker(qq, marker):
    vm_page_queues_spin_lock(qq)
    vm_page_marker_remove(qq, marker)
    vm_page_queues_spin_unlock(qq)


def vm_pageout_scan_inactive(pass_, q, avail_shortage):
    """Scan INACTIVE queue q (PQ_INACTIVE + q; the seed's one queue is q 0)
    from its head with a marker, for pages to free or cache, until
    avail_shortage pages were freed, maxscan pages visited or the end:
    free invalid pages, cache clean ones, give dirty ones a second pass
    through the queue (pass 0) and then launder them (vm_max_launder a
    scan, unlimited once a pass fell short), reactivate referenced ones.
    maxscan is the whole INACTIVE count (v_inactive_count) until
    51c99c6153 makes it the queue's own.  The pagedaemon holds no lock on
    entry; each page it handles is busied (also_m_busy), and it yields
    after each.  Returns delta, the pages freed, cached or laundered."""
    v = vmview()
    qq = lib.PQ_INACTIVE + q
    delta = 0
    maxlaunder = VM_MAX_LAUNDER if VM_MAX_LAUNDER > 1 else 1
    if pass_:
        maxlaunder = 10000

    marker, lcnt = _insert_marker(qq, INACTIVE_MARKER)
    if since("51c99c6153"):
        maxscan = [lcnt]
    else:
        maxscan = [int(v.vmstats.v_inactive_count)]

    def left():
        # maxscan-- > 0 && avail_shortage - delta > 0
        n = maxscan[0]
        maxscan[0] -= 1
        return n > 0 and avail_shortage - delta > 0

    while True:
        m, busied = _next_busied(qq, marker, left)
        if m == NULL:
            break
        if not busied:
            continue

        lwkt_yield()
        pg = v.pages[m]

        # The page has been successfully busied and is now no longer
        # spinlocked.  The queue is no longer spinlocked either.

        # A held page may be undergoing I/O, so skip it.  (Also a page
        # that left the queue or its object meanwhile.)
        if pg.hold_count or pg.wire_count or pg.object < 0 or \
                pg.queue - (pg.pc if since("027193eb61") else 0) != \
                lib.PQ_INACTIVE:
            if pg.hold_count:
                _requeue_inactive(m)
            vm_page_wakeup(m)
            continue

        # If the page has been referenced while in the inactive queue,
        # activate it (the pmap's and the VM's reference bits).
        if (pg.flags & lib.PG_REFERENCED) or pg.md_referenced:
            _clear_referenced(m)
            pg.act_count = min(lib.ACT_MAX, pg.act_count + lib.ACT_ADVANCE)
            vm_page_activate(m)
            vm_page_wakeup(m)
            continue

        # If the upper level VM system doesn't know anything about the page
        # being dirty, we have to check for it again.
        if pg.dirty == 0:
            vm_page_test_dirty(m)

        if pg.valid == 0:
            # Invalid pages can be easily freed (vm_pageout_page_free)
            vm_page_protect(m, lib.VM_PROT_NONE)
            vm_page_free(m)
            counter_add("pageout_cached")
            delta += 1
        elif pg.dirty == 0:
            # Clean pages can be placed onto the cache queue.  This
            # effectively frees them.
            vm_page_cache(m)            # consumes the busy
            counter_add("pageout_cached")
            delta += 1
        elif (pg.flags & lib.PG_WINATCFLS) == 0 and pass_ == 0:
            # Dirty pages need to be paged out, but flushing a page is
            # extremely expensive verses freeing a clean page: cycle them
            # through the queue twice before flushing them.
            vm_page_flag_set(m, lib.PG_WINATCFLS)
            _requeue_inactive(m)
            vm_page_wakeup(m)
        elif maxlaunder > 0:
            # We don't bother paging objects that are "dead".  Those
            # objects are in a "rundown" state.
            if not _launder(m):
                _requeue_inactive(m)
                vm_page_wakeup(m)
                continue
            # decrement the shortage on success to account for the
            # (future) cleaned page
            delta += 1
            maxlaunder -= 1
            vm_page_wakeup(m)
        else:
            vm_page_wakeup(m)
    _remove_marker(qq, marker)
    return delta


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


def vm_pageout_scan_active(pass_, q, avail_shortage, inactive_shortage,
                           recycle_count):
    """Scan ACTIVE queue q (PQ_ACTIVE + q; the seed's one queue is q 0):
    move pages to INACTIVE to meet inactive_shortage, and while
    avail_shortage - delta > 0 cache clean ones directly.  Referenced
    pages gain act_count and go to the tail, others lose it and are
    deactivated below pass + 1.  maxscan is v_active_count until
    51c99c6153 makes it the queue's own.  Names as 51c99c6153 has them;
    027193eb61 and the seed called them inactive_shortage and
    active_shortage, and counted in delta only the pages cached (since
    51c99c6153: every page moved).  recycle_count: a one-element list.
    The pagedaemon holds no lock on entry.  Returns delta."""
    v = vmview()
    qq = lib.PQ_ACTIVE + q
    delta = 0
    fanned = since("027193eb61")
    every_move = since("51c99c6153")

    marker, lcnt = _insert_marker(qq, ACTIVE_MARKER)
    if every_move:
        maxscan = [lcnt]
    else:
        maxscan = [int(v.vmstats.v_active_count)]
    shortage = [inactive_shortage]

    def left():
        # maxscan-- > 0 && (avail_shortage - delta > 0 ||
        #                   inactive_shortage > 0)
        n = maxscan[0]
        maxscan[0] -= 1
        return n > 0 and (avail_shortage - delta > 0 or shortage[0] > 0)

    while True:
        m, busied = _next_busied(qq, marker, left)
        if m == NULL:
            break
        if not busied:
            continue
        pg = v.pages[m]

        # Don't deactivate pages that are held, even if we can busy them.
        if pg.hold_count != 0:
            vm_page_requeue(m, lib.PQ_ACTIVE)
            vm_page_wakeup(m)
            continue
        lwkt_yield()
        if pg.wire_count or pg.object < 0 or \
                pg.queue - (pg.pc if fanned else 0) != lib.PQ_ACTIVE:
            vm_page_wakeup(m)
            continue

        # Check to see "how much" the page has been used and clear the
        # tracking access bits.
        actcount = 0
        if pg.flags & lib.PG_REFERENCED:
            actcount += 1
        if pg.md_referenced:            # pmap_ts_referenced
            actcount += 1
        if actcount:
            pg.act_count = min(lib.ACT_MAX,
                               pg.act_count + lib.ACT_ADVANCE + actcount)
        _clear_referenced(m)

        if actcount:
            vm_page_requeue(m, lib.PQ_ACTIVE)
            vm_page_wakeup(m)
            continue
        pg.act_count -= min(pg.act_count, lib.ACT_DECLINE)
        if pg.act_count < pass_ + 1:
            # Deactivate the page.  If we had a shortage from our inactive
            # scan try to free (cache) the page instead.
            #
            # Don't just blindly cache the page if we do not have a
            # shortage from the inactive scan, that could lead to gigabytes
            # being moved.
            shortage[0] -= 1
            counter_add("pageout_deactivated")
            if avail_shortage - delta > 0:
                recycle_count[0] += 1
                vm_page_protect(m, lib.VM_PROT_NONE)
                if pg.dirty == 0:
                    if not every_move:
                        delta += 1      # 027193eb61: only cached pages
                    vm_page_cache(m)    # consumes the busy
                    counter_add("pageout_cached")
                else:
                    vm_page_deactivate(m)
                    vm_page_wakeup(m)
            else:
                vm_page_deactivate(m)
                vm_page_wakeup(m)
            if every_move:
                delta += 1              # 51c99c6153: every page moved
        else:
            vm_page_requeue(m, lib.PQ_ACTIVE)
            vm_page_wakeup(m)
    _remove_marker(qq, marker)
    return delta


def _clear_referenced(m):
    vm_page_flag_clear(m, lib.PG_REFERENCED)
    vmview().pages[m].md_referenced = 0


def vm_pageout_scan(pass_):
    """@seed: one pass of the pagedaemon: PQ_INACTIVE, then PQ_ACTIVE
    (027193eb61 split it into the per-queue scans, called from the
    daemon's loop: vm_pageout_scan_queues).  No locks held.  Returns the
    inactive shortage left."""
    s = vmview().vmstats

    # Calculate our target for the number of free+cache pages we want to
    # get to.  This is higher then the number that causes allocations to
    # stall (severe) in order to provide hysteresis, and if we don't make
    # it all the way but get to the minimum we're happy.
    inactive_shortage = vm_paging_target()
    inactive_original_shortage = inactive_shortage

    inactive_shortage -= vm_pageout_scan_inactive(pass_, 0,
                                                  inactive_shortage)

    # We want to move pages from the active queue to the inactive queue to
    # get the inactive queue to the inactive target.  If we still have a
    # page shortage from above we try to directly free clean pages instead
    # of moving them.
    active_shortage = int(s.v_inactive_target) - int(s.v_inactive_count)
    if inactive_original_shortage < c_div(int(s.v_inactive_target), 10):
        inactive_original_shortage = c_div(int(s.v_inactive_target), 10)
    if inactive_shortage <= 0 and \
            active_shortage > inactive_original_shortage * 2:
        active_shortage = inactive_original_shortage * 2

    recycle_count = [0]
    inactive_shortage -= vm_pageout_scan_active(
        pass_, 0, inactive_shortage, active_shortage, recycle_count)
    return inactive_shortage


def vm_pageout_scan_queues(pass_):
    """027193eb61 on: the body of the daemon's loop that replaced
    vm_pageout_scan -- every INACTIVE queue, then every ACTIVE queue, each
    with its share of the shortages.  No locks held.  Returns the shortage
    left (027193eb61's inactive_shortage, 51c99c6153's avail_shortage)."""
    s = vmview().vmstats
    recycle_count = [0]
    if not since("51c99c6153"):
        # 027193eb61: PQ_MAXL2_SIZE queues (only PQ_L2_SIZE = 64 of them
        # carry pages), shortage / PQ_MAXL2_SIZE + 1 each
        nq = lib.PQ_MAXL2_SIZE
        inactive_shortage = vm_paging_target()
        delta1 = 0
        for q in range(nq):
            delta1 += vm_pageout_scan_inactive(
                pass_, q, c_div(inactive_shortage, nq) + 1)

        # Figure out how many active pages we must deactivate.  If we
        # were able to reach our target with just the inactive scan above
        # we limit the number of active pages we deactivate to reduce
        # unnecessary work.
        active_shortage = int(s.v_inactive_target) - \
            int(s.v_inactive_count)
        tmp = inactive_shortage
        if tmp < c_div(int(s.v_inactive_target), 10):
            tmp = c_div(int(s.v_inactive_target), 10)
        inactive_shortage -= delta1
        if inactive_shortage <= 0 and active_shortage > tmp * 2:
            active_shortage = tmp * 2

        delta2 = 0
        for q in range(nq):
            delta2 += vm_pageout_scan_active(
                pass_, q, c_div(inactive_shortage, nq) + 1,
                c_div(active_shortage, nq) + 1, recycle_count)
        inactive_shortage -= delta2
        return inactive_shortage

    # 51c99c6153: PQ_L2_SIZE queues, every one populated, PQAVERAGE shares
    nq = pq_l2_size()
    avail_shortage = vm_paging_target()
    delta1 = 0
    if avail_shortage > 0:
        for q in range(nq):
            delta1 += vm_pageout_scan_inactive(pass_, q,
                                               PQAVERAGE(avail_shortage))
        avail_shortage -= delta1

    # Figure out how many active pages we must deactivate.  If we were
    # able to reach our target with just the inactive scan above we limit
    # the number of active pages we deactivate to reduce unnecessary work.
    inactive_shortage = int(s.v_inactive_target) - int(s.v_inactive_count)

    # If we were unable to free sufficient inactive pages to satisfy the
    # free/cache queue requirements then simply reaching the inactive
    # target may not be good enough.  Try to deactivate pages in excess of
    # the target based on the shortfall, but do not deactivate more than
    # an additional 1/10 the inactive target's worth of active pages.
    if avail_shortage > 0:
        tmp = avail_shortage * 2
        if tmp > c_div(int(s.v_inactive_target), 10):
            tmp = c_div(int(s.v_inactive_target), 10)
        inactive_shortage += tmp

    if avail_shortage > 0 or inactive_shortage > 0:
        delta2 = 0
        for q in range(nq):
            delta2 += vm_pageout_scan_active(
                pass_, q, PQAVERAGE(avail_shortage),
                PQAVERAGE(inactive_shortage), recycle_count)
        inactive_shortage -= delta2
        avail_shortage -= delta2
    return avail_shortage


def vm_pageout_thread(machine):
    """The pagedaemon: sleep until woken (or a tenth of a second), scan when
    free+cache is below target or INACTIVE below half its target; `pass`
    counts the scans in a row that fell short.  Returns on shutdown."""
    hz = machine.config.hz
    v = vmview()
    c = v.cnt
    pass_ = 0
    while not machine.shutting_down():
        tsleep(lib.IDENT_PAGEDAEMON, 0, "psleep", max(1, hz // 10))
        safepoint(machine)
        if machine.shutting_down():
            break
        if not (vm_paging_target() > 0 or
                v.vmstats.v_inactive_count <
                v.vmstats.v_inactive_target // 2):
            pass_ = 0
            continue
        counter_add("pageout_scans")
        c.pageout_pass_pdpages = 0
        t0 = time.monotonic_ns()
        if since("027193eb61"):
            shortage = vm_pageout_scan_queues(pass_)
        else:
            shortage = vm_pageout_scan(pass_)
        t = time.monotonic_ns() - t0
        # smpvm's pageout meter: pages visited and wall time per pass
        c.pageout_pdpages += c.pageout_pass_pdpages
        c.pageout_max_pdpages = max(c.pageout_max_pdpages,
                                    c.pageout_pass_pdpages)
        c.pageout_ns += t
        c.pageout_max_ns = max(c.pageout_max_ns, t)
        pass_ = pass_ + 1 if shortage > 0 else 0
        lib.wakeup(lib.IDENT_VM_FREE)
