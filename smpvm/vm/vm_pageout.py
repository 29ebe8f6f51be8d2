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

The scans are C (csrc/pageout.c): the pageout daemon is not the subject
of study, and on the 256-queue versions a pass walks 256 INACTIVE and 256
ACTIVE queues.  They make the Python port's primitive calls and checked
field accesses in its order (the preemption points of a deterministic
schedule stay where they were); the daemon's loop below stays Python.

Reduced against vm_pageout.c: no laundering clusters (each dirty page is
written alone, under its hard busy, without vm_pageout_flush's soft busy
and pip), no vget (so no vnodes_skipped), the pages' object ref_count not
consulted (a referenced page is reactivated; smpvm's pageout does not hold
the object there), no vm_pageout_scan_cache (vm_page_alloc reclaims CACHE
pages itself), no vm_pageout_page_stats, no process killing, no
swap-backed objects to page out, no vm_pageout_deficit; the daemon's
idle sleep on vm_pages_needed times out at 10 Hz (the seed's stats
interval), and where the seed would run vm_pageout_page_stats it scans if
INACTIVE is below half its target; other threads' markers cost a scan no
maxscan (next_busied in csrc/pageout.c says why).  The wakeup protocol is
the seed's: pagedaemon_wakeup (csrc/vm.c) wakes the daemon only when
paging is needed and nobody has asked yet, so a burst of allocations costs
one host wakeup, not one each.
"""
import time

from smpvm.kern.kern_synch import PINTERLOCKED, tsleep, tsleep_interlock
from smpvm.kern.safepoint import safepoint
from smpvm.layout import ffi, lib
from smpvm.vfs.vnode import backing_fd
from smpvm.vm.swap_pager import raise_host_error
from smpvm.vm.versions import since
from smpvm.vm.vmview import counter_add, vmview

vm_paging_target = lib.vm_paging_target


def _fd_error(exc, value, tb):
    """An exception of the descriptor callback (a Panic signalled
    meanwhile, a backing file that cannot be opened) is raised when the
    scan returns; C sees -1 and stops the scan there."""
    _pending[0] = value
    return -1


_pending = [None]


@ffi.callback("pageout_fd_fn", onerror=_fd_error)
def _fd_cb(vp):
    """C's question (csrc/pageout.c launder): this process's descriptor of
    vp's backing file, as vnode_pager_putpage gets it."""
    return backing_fd(vmview().machine, vp)


lib.vm_pageout_set_fd_fn(_fd_cb)


def _raise_pending():
    """After a scan: raise what stopped it (the callback's exception, a
    host I/O error of the laundering write), as the Python scan raised."""
    e = lib.vm_pageout_take_error()
    if e == -1:
        exc, _pending[0] = _pending[0], None
        raise exc if exc is not None else RuntimeError(
            "vm_pageout: no descriptor for a backing file")
    if e:
        raise_host_error(e)


def vm_pageout_scan_inactive(pass_, q, avail_shortage):
    """csrc/pageout.c: scan INACTIVE queue q for pages to free, cache or
    launder, until avail_shortage of them; no lock held on entry.
    Returns delta, the pages freed, cached or laundered."""
    delta = lib.vm_pageout_scan_inactive(pass_, q, avail_shortage)
    _raise_pending()
    return delta


def vm_pageout_scan_active(pass_, q, avail_shortage, inactive_shortage,
                           recycle_count):
    """csrc/pageout.c: scan ACTIVE queue q, deactivating (or, under
    avail_shortage, caching) pages to meet inactive_shortage; no lock held
    on entry.  recycle_count: a one-element list, added to.  Returns
    delta."""
    rc = ffi.new("int *", recycle_count[0])
    delta = lib.vm_pageout_scan_active(pass_, q, avail_shortage,
                                       inactive_shortage, rc)
    recycle_count[0] = rc[0]
    _raise_pending()
    return delta


def vm_pageout_scan(pass_):
    """csrc/pageout.c @seed: PQ_INACTIVE then PQ_ACTIVE; no lock held.
    Returns the inactive shortage left."""
    shortage = lib.vm_pageout_scan(pass_)
    _raise_pending()
    return shortage


def vm_pageout_scan_queues(pass_):
    """csrc/pageout.c, 027193eb61 on: every INACTIVE queue, then every
    ACTIVE queue, each with its share; no lock held.  Returns the shortage
    left."""
    shortage = lib.vm_pageout_scan_queues(pass_)
    _raise_pending()
    return shortage


def vm_pageout_thread(machine):
    """The pagedaemon (vm_pageout.c @seed, vm_pageout_thread's loop): sleep
    on vm_pages_needed until pagedaemon_wakeup() asks for a scan (csrc/vm.c:
    an allocation, or a page taken off FREE/CACHE, with free+cache short),
    or a tenth of a second passes; scan; after a scan that fell short
    (`pass` counts them) scan again at once while more requests are
    pending (vm_pages_needed > 1), else after a tenth of a second; after
    one that met its target stop asking (vm_pages_needed = 0) unless memory
    is at its minimum.  Waiters in vm_wait are woken after every scan.
    Returns on shutdown."""
    hz = machine.config.hz
    v = vmview()
    c = v.cnt
    g = v.vmg
    pdelay = max(1, hz // 10)
    lib.vm_pageout_thread_init()
    pass_ = 0
    while True:
        safepoint(machine)
        if machine.shutting_down():
            break
        # Wait for an action request.  If we time out check to see if
        # paging is needed (in case the normal wakeup code raced us).
        # smpvm: the interlock comes before the test, so a request made
        # between the test and the sleep is not lost (a Python test and
        # sleep leave a window of microseconds, not the kernel's
        # nanoseconds); the seed's stats interval is smpvm's 10 Hz poll,
        # and vm_pageout_page_stats (absent) is replaced by a scan when
        # INACTIVE is below half its target.
        tsleep_interlock(lib.IDENT_PAGEDAEMON)
        if g.vm_pages_needed == 0:
            error = tsleep(lib.IDENT_PAGEDAEMON, PINTERLOCKED, "psleep",
                           pdelay)
            if machine.shutting_down():
                break
            if error and not lib.vm_paging_needed() and \
                    g.vm_pages_needed == 0 and not \
                    v.vmstats.v_inactive_count < \
                    v.vmstats.v_inactive_target // 2:
                continue
            g.vm_pages_needed = 1

        # Scan for pageout.
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
        lib.wakeup(lib.IDENT_VM_FREE)       # smpvm: vm_wait's sleepers

        # Try to avoid thrashing the system with activity.
        if shortage > 0:
            pass_ += 1
            if v.raw.vmg.swap_pager_full:
                # Running out of memory, catastrophic back-off to
                # one-second intervals.
                tsleep(lib.IDENT_PAGEDAEMON, 0, "pdelay", hz)
            elif pass_ < 10 and g.vm_pages_needed > 1:
                # Normal operation, additional processes have already
                # kicked us.  Retry immediately.
                pass
            elif pass_ < 10:
                # Normal operation, fewer processes.  Delay a bit but
                # allow wakeups.
                g.vm_pages_needed = 0
                tsleep(lib.IDENT_PAGEDAEMON, 0, "pdelay", pdelay)
                g.vm_pages_needed = 1
            else:
                # We've taken too many passes, forced delay.
                tsleep(lib.IDENT_PAGEDAEMON, 0, "pdelay", pdelay)
        else:
            # Interlocked wakeup of waiters (non-optional)
            pass_ = 0
            if g.vm_pages_needed and not lib.vm_page_count_min(0):
                g.vm_pages_needed = 0
