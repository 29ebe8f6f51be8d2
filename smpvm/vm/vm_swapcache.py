"""sys/vm/vm_swapcache.c at "kernel - More many-cores SMP work" (d2d8515bfb),
ported function for function.  Read it beside ../shared/seeds/vm_swapcache.c.txt:
same functions, same state machine, same locks in the same order, same
blocking points.  The seed's globals are the vm.swapcache.* sysctls in the
machine's shared memory (vm_globals.swapcache), read racily as the kernel
reads them; the SYSCTL_INT ones are C ints (int32), with C's wrap-around.

Kernel variants (vm_globals.bugs, chosen at boot with --kernel; smpvm/vm/bugs.py
is the table of them):
  seed   the seed exactly, with its defects (lettered as in the README's
         kernel table and smpvm/vm/bugs.py):
         BUG_YIELD_BEFORE_HOLD   (a) lwkt_yield() before vm_object_hold in
                                 the cleaning loop
         BUG_CLEAN_MARKERS       (b)-(d) other OBJT_MARKER objects held and
                                 dropped; the marker re-inserted before an
                                 object reached after blocking; the walk
                                 steps from an object that may have left the
                                 list (TAILQ's stale links, csrc/vm.c)
         BUG_CONDFREE_UNCHARGED  (e) condfree charges nothing for the
                                 swblocks it visits; SWAPMAX(-5)
         BUG_CONDFREE_VMOBJ_HELD (f) vmobj_token held across condfree
         BUG_SWBLOCK_LEAK        (g) meta_free leaks a block   (csrc/vm.c)
         BUG_META_BUILD_FREE_FIRST  meta_build frees before it clears
         BUG_RANGE_FREE_INTERLEAVED H2, BUG_WRITE_IGNORES_SWAPINPROG H1
  fixed  the upstream fixes that keep the seed's structure:
         739be60bf6  hold the object across lwkt_yield in cleaning
         f5f6d24720  skip markers (at no charge); re-insert only before an
                     object still on the list; step from the marker when
                     the object left the list
         08fb7a9da0  condfree charges max(pages freed, swblocks visited, 1);
                     cleaning ends at SWAPMAX(-10)
         08fb7a9da0, 27b6ee0313  vmobj_token released across condfree
         0301c40799  free the last block of an emptied swblock; meta_build
                     clears, frees, then counts
         smpvm (no upstream commit): a buffer write waits for an in-flight
                     swap write (closes H1); a range free detaches the
                     whole range before its blocking frees (closes H2)
"""
import time

from smpvm.kern.kern_synch import tsleep, wakeup
from smpvm.kern.lwkt_token import (lwkt_gettoken, lwkt_reltoken,
                                   lwkt_token_swap, lwkt_yield)
from smpvm.kern.safepoint import safepoint
from smpvm.kern.sysctl import SysctlNode, register
from smpvm.kern.thread import panic
from smpvm.layout import ffi, lib
from smpvm.vm import vm_object as _vm_object
from smpvm.vm import swap_pager
from smpvm.vm.vm_object import (vm_object_drop, vm_object_hold,
                                vm_object_list_insert_after,
                                vm_object_list_insert_before,
                                vm_object_list_insert_head,
                                vm_object_list_next, vm_object_list_remove,
                                vm_object_marker, vm_object_pip_add,
                                vm_object_pip_wakeup)
from smpvm.vm.vm_page import (vm_page_busy_try, vm_page_busy_wait,
                              vm_page_deactivate, vm_page_io_finish,
                              vm_page_io_start, vm_page_lookup_busy_try,
                              vm_page_marker, vm_page_marker_insert_head,
                              vm_page_marker_move_after,
                              vm_page_marker_remove, vm_page_protect,
                              vm_page_queue_next, vm_page_queues_spin_lock,
                              vm_page_queues_spin_unlock, vm_page_test_dirty,
                              vm_page_unqueue_nowakeup, vm_page_wakeup)
from smpvm.vm.vmview import vmview

SWAPC_WRITING, SWAPC_CLEANING = 0, 1
SWAPB_BURSTING, SWAPB_RECOVERING = 0, 1
SWAP_META_PAGES = lib.SWAPCACHE_META_PAGES      # 16 in this file @seed
SWAP_META_MASK = lib.SWAPCACHE_META_MASK
PQ_INACTIVE = lib.PQ_INACTIVE
PG_MARKER, PG_SWAPPED = lib.PG_MARKER, lib.PG_SWAPPED
PG_NOTMETA, PG_UNMANAGED = lib.PG_NOTMETA, lib.PG_UNMANAGED
VM_PAGE_BITS_ALL = lib.VM_PAGE_BITS_ALL
PAGE_SIZE, PAGE_SHIFT = lib.PAGE_SIZE, lib.PAGE_SHIFT
NULL = -1

# The seed's defaults (vm_swapcache.c @seed, lines 96-107).  hysteresis is
# set at thread start.
KERNEL_DEFAULTS = {
    "maxlaunder": 256, "data_enable": 0, "meta_enable": 0, "read_enable": 0,
    "maxswappct": 75, "use_chflags": 1, "minburst": 10000000,
    "curburst": 4000000000, "maxburst": 2000000000, "accrate": 100000,
    "maxfilesize": 0, "write_count": 0,
}
# SYSCTL_INT nodes hold a C int, SYSCTL_QUAD nodes an int64_t: any value of
# the type is taken, as the kernel's handlers take it (sysctl(8) parses the
# text with strtol/strtoq; an INT keeps the low 32 bits of it).
SYSCTL_INT_NODES = ("maxlaunder", "data_enable", "meta_enable",
                    "read_enable", "maxswappct", "hysteresis", "use_chflags")
SYSCTL_QUAD_NODES = ("minburst", "curburst", "maxburst", "maxfilesize",
                     "accrate", "write_count")


def c_int(v):
    """v as a C int (int32) after C's wrap-around."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def c_int64(v):
    """v as an int64_t after wrap-around."""
    return (v + (1 << 63)) % (1 << 64) - (1 << 63)


def c_div(a, b):
    """a / b as C divides integers: truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


for _name in SYSCTL_INT_NODES + SYSCTL_QUAD_NODES:
    _wrap = c_int if _name in SYSCTL_INT_NODES else c_int64
    register(SysctlNode(
        f"vm.swapcache.{_name}", f"vm_swapcache_{_name}",
        get=lambda machine, f=_name: getattr(vmview(machine).vmg.swapcache,
                                             f),
        set=lambda machine, value, f=_name, w=_wrap: setattr(
            vmview(machine).vmg.swapcache, f, w(value)),
        default=KERNEL_DEFAULTS.get(_name)))
# smpvm's additions (the seed has no such nodes): the heuristic, an
# exported global of the seed without a sysctl, and vm.swap_max
register(SysctlNode(
    "vm.swapcache.inactive_heuristic", "vm_swapcache_inactive_heuristic",
    get=lambda machine: vmview(machine).vmg.vm_swapcache_inactive_heuristic))
# the seed's read-only SYSCTL_INTs of swap_pager.c, and smpvm's vm.swap_max
for _f in ("vm_swap_max", "vm_swap_size", "vm_swap_cache_use",
           "vm_swap_anon_use"):
    register(SysctlNode(f"vm.{_f[3:]}", _f,
                        get=lambda machine, f=_f: getattr(vmview(machine).vmg,
                                                          f)))


def demo_sysctls(machine):
    """The default boot set: enables on, and rates scaled to the machine so
    that a 30 s run shows writing, cleaning and diverted reads (the kernel's
    defaults wait minutes before a first write: curburst must reach
    accrate, and the heuristic must see the inactive queue fill).
    Burst: accrate = 1/8 of swap per second, curburst starts at maxburst.
    maxswappct 40: cleaning starts above 40 % of swap and writing resumes
    below 35 % (swap fragments long before it is 75 % used)."""
    swap_bytes = machine.config.nswap * PAGE_SIZE
    accrate = max(PAGE_SIZE * SWAP_META_PAGES, swap_bytes // 8)
    return {
        "data_enable": 1, "meta_enable": 1, "read_enable": 1,
        "use_chflags": 0, "maxlaunder": 256, "maxswappct": 40,
        "accrate": accrate, "minburst": accrate, "maxburst": accrate * 4,
        "curburst": accrate * 4, "maxfilesize": 0, "write_count": 0,
    }


def vm_swapcache_boot(machine, profile="demo"):
    """Set the vm.swapcache.* sysctls at boot: 'kernel' (the seed's exact
    defaults) or 'demo' (see demo_sysctls)."""
    sc = vmview(machine).vmg.swapcache
    values = dict(KERNEL_DEFAULTS)
    if profile == "demo":
        values.update(demo_sysctls(machine))
    elif profile != "kernel":
        raise ValueError(f"sysctl profile {profile!r}: kernel or demo")
    for k, v in values.items():
        setattr(sc, k, v)


def _sc():
    return vmview().vmg.swapcache


def _bugs():
    return vmview().vmg.bugs


def _no_hold(o):
    """vm_object_hold/drop under BUG_NO_OBJECT_HOLD: nothing."""


def SWAPMAX(adj):
    """((int64_t)vm_swap_max * (vm_swapcache_maxswappct + (adj)) / 100)"""
    sc = _sc()
    return c_div(vmview().vmg.vm_swap_max * c_int(sc.maxswappct + adj), 100)


def SWAPMAX_WRITING():
    """The mark below which cleaning gives way to writing: SWAPMAX(-5) in
    the seed, SWAPMAX(-10) since 08fb7a9da0."""
    return SWAPMAX(-5 if _bugs() & lib.BUG_CONDFREE_UNCHARGED else -10)


def shutdown_swapcache(machine):
    """The shutdown_pre_sync hook: stop swapcache I/O at once."""
    sc = vmview(machine).vmg.swapcache
    sc.read_enable = 0
    sc.data_enable = 0
    sc.meta_enable = 0
    wakeup(lib.IDENT_SWAPCACHE)         # shortcut the 5-second wait


def vm_swapcached_thread(machine):
    """vm_swapcached is the high level pageout daemon.  No requirements."""
    v = vmview()
    sc = v.vmg.swapcache
    hz = machine.config.hz
    state = SWAPC_WRITING
    burst = SWAPB_BURSTING

    # Initialize our marker for the inactive scan (SWAPC_WRITING)
    page_marker = vm_page_marker(0)
    vm_page_queues_spin_lock(PQ_INACTIVE)
    vm_page_marker_insert_head(PQ_INACTIVE, page_marker)
    vm_page_queues_spin_unlock(PQ_INACTIVE)

    sc.hysteresis = c_int(v.vmstats.v_inactive_target // 2)
    v.vmg.vm_swapcache_inactive_heuristic = c_int(-sc.hysteresis)

    # Initialize our marker for the vm_object scan (SWAPC_CLEANING)
    object_marker = vm_object_marker()
    lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_insert_head(object_marker)
    lwkt_reltoken(lib.TOK_VMOBJ)

    while True:
        # Handle shutdown (kproc_suspend_loop)
        if machine.shutting_down():
            break

        # Check every 5 seconds when not enabled or if no swap is present.
        if (sc.data_enable == 0 and sc.meta_enable == 0) or \
                v.vmg.vm_swap_max == 0:
            tsleep(lib.IDENT_SWAPCACHE, 0, "csleep", hz * 5)
            safepoint(machine)                  # smpvm: stop-the-world checks
            continue

        # Polling rate when enabled is approximately 10 hz.
        tsleep(lib.IDENT_SWAPCACHE, 0, "csleep", hz // 10)
        safepoint(machine)                      # smpvm: stop-the-world checks
        v.cnt.swapcache_loops += 1              # smpvm's counter

        # State hysteresis.  Generate write activity up to 75% of swap,
        # then clean out swap assignments down to 70%, then repeat.
        if state == SWAPC_WRITING:
            if v.vmg.vm_swap_cache_use > SWAPMAX(0):
                state = SWAPC_CLEANING
        else:
            if v.vmg.vm_swap_cache_use < SWAPMAX_WRITING():
                state = SWAPC_WRITING
        sc.state = state

        # We are allowed to continue accumulating burst value in either
        # state.  Allow the user to set curburst > maxburst for the
        # initial load-in.
        if sc.curburst < sc.maxburst:
            sc.curburst = c_int64(sc.curburst + c_div(sc.accrate, 10))
            if sc.curburst > sc.maxburst:
                sc.curburst = sc.maxburst

        # We don't want to nickle-and-dime the scan as that will create
        # unnecessary fragmentation.  The minimum burst is one-seconds
        # worth of accumulation.
        if state == SWAPC_WRITING:
            if sc.curburst >= sc.accrate:
                if burst == SWAPB_BURSTING:
                    v.cnt.writing_passes += 1           # smpvm's counter
                    vm_swapcache_writing(page_marker)
                    if sc.curburst <= 0:
                        burst = SWAPB_RECOVERING
                elif sc.curburst > sc.minburst:
                    v.cnt.writing_passes += 1
                    vm_swapcache_writing(page_marker)
                    burst = SWAPB_BURSTING
        else:
            v.cnt.cleaning_passes += 1
            clean_meter_begin(v)                # smpvm's cleaning meter
            cpu = time.thread_time_ns()
            vm_swapcache_cleaning(object_marker)
            clean_meter_end(v, time.thread_time_ns() - cpu)
        sc.burst = burst

    # Cleanup (NOT REACHED in the kernel; smpvm's threads do shut down)
    vm_page_queues_spin_lock(PQ_INACTIVE)
    vm_page_marker_remove(PQ_INACTIVE, page_marker)
    vm_page_queues_spin_unlock(PQ_INACTIVE)

    lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_remove(object_marker)
    lwkt_reltoken(lib.TOK_VMOBJ)


def vm_swapcache_writing(marker):
    """The writing pass: push clean, eligible pages from the INACTIVE queue
    to swap, from the marker on, within maxlaunder and curburst.  No locks
    held on entry; takes the INACTIVE queue spinlock, page busy and object
    tokens as the seed does."""
    v = vmview()
    sc = v.vmg.swapcache
    vmg = v.vmg
    cnt = v.cnt                 # smpvm's counters (`smpvm stat`), not the seed's

    # Deal with an overflow of the heuristic counter or if the user
    # manually changes the hysteresis.
    #
    # Try to avoid small incremental pageouts by waiting for enough pages
    # to buildup in the inactive queue to hopefully get a good burst in.
    # This heuristic is bumped by the VM system and reset when our scan
    # hits the end of the queue.
    if vmg.vm_swapcache_inactive_heuristic < c_int(-sc.hysteresis):
        vmg.vm_swapcache_inactive_heuristic = c_int(-sc.hysteresis)
    if vmg.vm_swapcache_inactive_heuristic < 0:
        cnt.heuristic_waits += 1
        return

    # Scan the inactive queue from our marker to locate suitable pages to
    # push to the swap cache.  We are looking for clean vnode-backed pages.
    #
    # NOTE: PG_SWAPPED pages in particular are not part of our count
    #       because once the cache stabilizes we can end up with a very
    #       high datarate of VM pages cycling from it.
    # BUG_NO_OBJECT_HOLD (broken on purpose): the pass's object hold and
    # drop do nothing, so the object is used without its token
    if _bugs() & lib.BUG_NO_OBJECT_HOLD:
        vm_object_hold = vm_object_drop = _no_hold
    else:
        vm_object_hold = _vm_object.vm_object_hold
        vm_object_drop = _vm_object.vm_object_drop
    count = sc.maxlaunder

    vm_page_queues_spin_lock(PQ_INACTIVE)
    while True:
        # while ((m = TAILQ_NEXT(marker, pageq)) != NULL && count-- > 0)
        m = vm_page_queue_next(PQ_INACTIVE, marker)
        if m == NULL:
            break
        c, count = count, count - 1
        if not c > 0:
            break
        pg = v.pages[m]
        if pg.queue != PQ_INACTIVE:                 # KKASSERT
            vm_page_queues_spin_unlock(PQ_INACTIVE)
            panic(f"vm_swapcache_writing: page {m} on queue {pg.queue}")

        if sc.curburst < 0:
            break
        if _bugs() & lib.BUG_MARKER_UNLOCKED:      # broken on purpose
            vm_page_queues_spin_unlock(PQ_INACTIVE)
            vm_page_marker_move_after(PQ_INACTIVE, marker, m)
            vm_page_queues_spin_lock(PQ_INACTIVE)
        else:
            vm_page_marker_move_after(PQ_INACTIVE, marker, m)
        cnt.pages_scanned += 1
        if _bugs() & lib.BUG_INVERTED_LOCKS:       # broken on purpose
            lib.vm_page_spin_lock(m)
            lib.vm_page_spin_unlock(m)
        if pg.flags & (PG_MARKER | PG_SWAPPED):
            count += 1
            cnt.skip_free += 1
            continue
        early = None
        if _bugs() & lib.BUG_NO_OBJECT_RECHECK:     # broken on purpose:
            early = pg.object                       # read before the busy
        if vm_page_busy_try(m, True):
            cnt.skip_busy += 1
            continue
        vm_page_queues_spin_unlock(PQ_INACTIVE)

        object = pg.object if early is None else early
        if object == NULL:
            cnt.skip_object += 1
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(PQ_INACTIVE)
            continue
        vm_object_hold(object)
        if pg.object != object and not (_bugs() & lib.BUG_NO_OBJECT_RECHECK):
            cnt.skip_object += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(PQ_INACTIVE)
            continue
        if vm_swapcache_test(m):
            cnt.skip_test += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(PQ_INACTIVE)
            continue

        vp = v.objects[object].handle
        if vp == NULL:
            cnt.skip_object += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(PQ_INACTIVE)
            continue

        vn = v.vnodes[vp]
        if vn.v_type == lib.VREG:
            # PG_NOTMETA generically means 'don't swapcache this'.
            if pg.flags & PG_NOTMETA:
                cnt.skip_notmeta += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(PQ_INACTIVE)
                continue
            # If data_enable is 0 do not try to swapcache data.  If
            # use_chflags is set then only swapcache data for VSWAPCACHE
            # marked vnodes, otherwise any vnode.
            if sc.data_enable == 0 or \
                    ((vn.v_flag & lib.VSWAPCACHE) == 0 and sc.use_chflags):
                cnt.skip_disabled += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(PQ_INACTIVE)
                continue
            # object->size is a vm_pindex_t: the comparison is unsigned
            if sc.maxfilesize and v.objects[object].size > \
                    (sc.maxfilesize >> PAGE_SHIFT) % (1 << 64):
                cnt.skip_maxfilesize += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(PQ_INACTIVE)
                continue
            isblkdev = 0
        elif vn.v_type == lib.VCHR:
            if pg.flags & PG_NOTMETA:
                cnt.skip_notmeta += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(PQ_INACTIVE)
                continue
            if sc.meta_enable == 0:
                cnt.skip_disabled += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(PQ_INACTIVE)
                continue
            isblkdev = 1
        else:
            cnt.skip_disabled += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(PQ_INACTIVE)
            continue

        # Assign swap and initiate I/O.
        # (adjust for the --count which also occurs in the loop)
        count -= vm_swapcached_flush(m, isblkdev) - 1

        # Setup for next loop using marker.
        vm_object_drop(object)
        vm_page_queues_spin_lock(PQ_INACTIVE)

    # The marker could wind up at the end, which is ok.  If we hit the end
    # of the list adjust the heuristic.
    if m == NULL:
        vmg.vm_swapcache_inactive_heuristic = c_int(-sc.hysteresis)
    vm_page_queues_spin_unlock(PQ_INACTIVE)


def vm_swapcached_flush(m, isblkdev):
    """Flush the specified page using the swap_pager.  The page must be
    busied by the caller and its disposition becomes the responsibility of
    this function.  Clusters inside the aligned 16-page window of m.
    Returns a count of pages we might have flushed (minimum 1)."""
    v = vmview()
    sc = v.vmg.swapcache
    marray = [NULL] * SWAP_META_PAGES
    rtvals = [0] * SWAP_META_PAGES

    if _bugs() & lib.BUG_FLUSH_UNBUSIED:       # broken on purpose
        vm_page_wakeup(m)
    vm_page_io_start(m)
    vm_page_protect(m, lib.VM_PROT_READ)
    object = v.pages[m].object
    vm_object_hold(object)

    # Try to cluster around (m), keeping in mind that the swap pager can
    # only do SMAP_META_PAGES worth of continguous write.
    x = int(v.pages[m].pindex) & SWAP_META_MASK
    marray[x] = m
    basei = v.pages[m].pindex
    vm_page_wakeup(m)

    i = x - 1
    while i >= 0:
        m, error = vm_page_lookup_busy_try(object, basei - x + i, True)
        if error or m == NULL:
            break
        if vm_swapcache_test(m):
            vm_page_wakeup(m)
            break
        if isblkdev and (v.pages[m].flags & PG_NOTMETA):
            vm_page_wakeup(m)
            break
        vm_page_io_start(m)
        vm_page_protect(m, lib.VM_PROT_READ)
        if v.pages[m].queue - v.pages[m].pc == lib.PQ_CACHE:
            vm_page_unqueue_nowakeup(m)
            vm_page_deactivate(m)
        marray[i] = m
        vm_page_wakeup(m)
        i -= 1
    i += 1

    j = x + 1
    while j < SWAP_META_PAGES:
        m, error = vm_page_lookup_busy_try(object, basei - x + j, True)
        if error or m == NULL:
            break
        if vm_swapcache_test(m):
            vm_page_wakeup(m)
            break
        if isblkdev and (v.pages[m].flags & PG_NOTMETA):
            vm_page_wakeup(m)
            break
        vm_page_io_start(m)
        vm_page_protect(m, lib.VM_PROT_READ)
        if v.pages[m].queue - v.pages[m].pc == lib.PQ_CACHE:
            vm_page_unqueue_nowakeup(m)
            vm_page_deactivate(m)
        marray[j] = m
        vm_page_wakeup(m)
        j += 1

    count = j - i
    if not _bugs() & lib.BUG_NO_PIP:            # the bug: no pip taken
        vm_object_pip_add(object, count)
    swap_pager.swap_pager_putpages(object, marray[i:j], False,
                                   _RtvalsView(rtvals, i))
    sc.write_count = c_int64(sc.write_count + count * PAGE_SIZE)
    sc.curburst = c_int64(sc.curburst - count * PAGE_SIZE)

    while i < j:
        if rtvals[i] != lib.VM_PAGER_PEND:
            vm_page_busy_wait(marray[i], False, "swppgfd")
            vm_page_io_finish(marray[i])
            vm_page_wakeup(marray[i])
            vm_object_pip_wakeup(object)
        i += 1
    vm_object_drop(object)
    return count


class _RtvalsView:
    """rtvals + i: an offset view of the flush's rtvals array."""
    __slots__ = ("a", "i")

    def __init__(self, a, i):
        self.a, self.i = a, i

    def __setitem__(self, k, val):
        self.a[self.i + k] = val


def vm_swapcache_test(m):
    """Test whether a VM page is suitable for writing to the swapcache.
    Does not test m->queue, PG_MARKER, or PG_SWAPPED.  The caller holds
    busy on m.  Returns 0 on success, 1 on failure."""
    v = vmview()
    pg = v.pages[m]
    if pg.flags & PG_UNMANAGED:
        return 1
    if pg.hold_count or pg.wire_count:
        return 1
    if pg.valid != VM_PAGE_BITS_ALL:
        return 1
    if pg.dirty & pg.valid:
        return 1
    object = pg.object
    if object == NULL:
        return 1
    obj = v.objects[object]
    if obj.type != lib.OBJT_VNODE or (obj.flags & lib.OBJ_DEAD):
        return 1
    vm_page_test_dirty(m)
    if pg.dirty & pg.valid:
        return 1
    return 0


def vm_swapcache_cleaning(marker):
    """Cleaning pass: walk vm_object_list from the marker and free whole
    swblocks of vnode objects that have no resident page, up to
    vm.swapcache.maxlaunder.  No locks held on entry; takes vmobj_token.
    The seed's defects (a)-(f) in the seed variant, the upstream fixes in
    the fixed one (see the module's docstring)."""
    v = vmview()
    sc = v.vmg.swapcache
    bugs = _bugs()
    seed_yield = bugs & lib.BUG_YIELD_BEFORE_HOLD
    seed_markers = bugs & lib.BUG_CLEAN_MARKERS
    seed_vmobj = bugs & lib.BUG_CONDFREE_VMOBJ_HELD
    mk = v.objects[marker]
    cnt = v.cnt                 # smpvm's cleaning meter, not the seed's
    basei = ffi.new("uint64_t *")

    object = marker
    count = sc.maxlaunder
    cnt.clean_pass_budget = max(count, 0)
    linked = True       # fixed: the object the loop stops at is linked

    # Look for vnode objects
    lwkt_gettoken(lib.TOK_VMOBJ)

    while True:
        object = vm_object_list_next(object)
        if object == NULL:
            break
        if not seed_markers and v.objects[object].type == lib.OBJT_MARKER:
            continue                # f5f6d24720: skip markers, no charge
        cnt.clean_pass_objects += 1
        if seed_yield:
            lwkt_yield()                        # @seed: before the hold
        count -= 1
        if count <= 0:
            break
        vm_object_hold(object)
        if not seed_yield:
            lwkt_yield()                        # 739be60bf6: held across

        # Only operate on live VNODE objects with regular/chardev types
        obj = v.objects[object]
        vp = obj.handle
        if (obj.type != lib.OBJT_VNODE) or \
                ((obj.flags & lib.OBJ_DEAD) or obj.swblock_count == 0) or \
                (vp == NULL) or \
                (v.vnodes[vp].v_type not in (lib.VREG, lib.VCHR)):
            gone = not seed_markers and not obj.on_list
            vm_object_drop(object)
            if gone:
                # f5f6d24720: the object left the list while we blocked
                # (and may be freed now); go on from the marker
                object = marker
            continue

        # Adjust iterator.
        if mk.backing_object != object:
            mk.size = 0

        # Move the marker so we can work on the VM object
        vm_object_list_remove(marker)
        vm_object_list_insert_after(object, marker)

        # Look for swblocks starting at our iterator.
        #
        # The swap_pager_condfree() function attempts to free swap space
        # starting at the specified index.  The index will be updated on
        # return.  The function will return a scan factor (NOT the number
        # of blocks freed).
        #
        # If it must cut its scan of the object short due to an excessive
        # number of swblocks, or is able to free the requested number of
        # blocks, it will return n >= count and we break and pick it back
        # up on a future attempt.
        if not seed_vmobj:
            # 08fb7a9da0, 27b6ee0313: vmobj_token is not held across
            # condfree (the object's token is above it: swap them)
            lwkt_token_swap()
            lwkt_reltoken(lib.TOK_VMOBJ)
        basei[0] = mk.size
        n = swap_pager.swap_pager_condfree(object, basei, count)
        mk.size = basei[0]

        vm_object_drop(object)
        if not seed_vmobj:
            lwkt_gettoken(lib.TOK_VMOBJ)

        count -= n
        if count < 0:
            # fixed: the object is still linked iff it is still right
            # before the marker (vmobj_token was not held in condfree)
            linked = seed_markers or mk.list_prev == object
            break

        # Setup for loop.
        mk.size = 0
        object = marker

    # Adjust marker so we continue the scan from where we left off.  When
    # we reach the end we start back at the beginning.
    if seed_markers or linked or object == NULL:
        vm_object_list_remove(marker)
        if object != NULL:
            vm_object_list_insert_before(object, marker)
        else:
            vm_object_list_insert_head(marker)
    # else (f5f6d24720): the object vanished; the marker stays where it is
    mk.backing_object = object

    lwkt_reltoken(lib.TOK_VMOBJ)


def clean_meter_begin(v):
    """smpvm's cleaning meter: a pass starts (swapcached)."""
    c = v.cnt
    c.clean_pass_budget = 0
    c.clean_pass_objects = 0
    c.clean_pass_swblocks = 0
    c.clean_pass_freed = 0
    c.clean_pass_charge = 0
    c.clean_pass_overran = 0


def clean_meter_end(v, cpu_ns):
    """smpvm's cleaning meter: the pass that just ended, against its
    budget; the overruns (swblocks visited past the budget) and the idle
    streak (passes that visited no swblock and freed nothing) that
    vm_meter.cleaning_findings reports."""
    c = v.cnt
    swb = c.clean_pass_swblocks
    c.clean_last_objects = c.clean_pass_objects
    c.clean_last_swblocks = swb
    c.clean_last_budget = c.clean_pass_budget
    c.clean_last_freed = c.clean_pass_freed
    c.clean_last_cpu_ns = cpu_ns
    c.clean_cpu_ns += cpu_ns
    if cpu_ns > c.clean_max_cpu_ns:
        c.clean_max_cpu_ns = cpu_ns
    c.clean_swblocks += swb
    if c.clean_pass_overran:
        c.clean_overruns += 1
        if swb > c.clean_worst_swblocks:
            c.clean_worst_swblocks = swb
            c.clean_worst_objects = c.clean_pass_objects
            c.clean_worst_budget = c.clean_pass_budget
    if swb == 0 and c.clean_pass_freed == 0:
        c.clean_idle_streak += 1
        if c.clean_idle_streak > c.clean_idle_max:
            c.clean_idle_max = c.clean_idle_streak
            c.clean_idle_use = max(0, v.vmg.vm_swap_cache_use)
            c.clean_idle_mark = max(0, SWAPMAX_WRITING())
    else:
        c.clean_idle_streak = 0
