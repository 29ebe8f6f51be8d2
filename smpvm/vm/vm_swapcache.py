"""sys/vm/vm_swapcache.c at "kernel - More many-cores SMP work" (d2d8515bfb),
ported function for function.  Read it beside ../shared/seeds/vm_swapcache.c.txt:
same functions, same state machine, same locks in the same order, same
blocking points.  The seed's globals are the vm.swapcache.* sysctls in the
machine's shared memory (vm_globals.swapcache), read racily as the kernel
reads them.

Kernel variants (vm_globals.bugs, chosen at boot with --kernel):
  seed   the seed exactly, with its reachable defects (reference 7.4):
         BUG_YIELD_BEFORE_HOLD   (a) lwkt_yield() before vm_object_hold in
                                 the cleaning loop                 [d2d8515bfb]
         BUG_CLEAN_MARKERS       (b)-(d) other OBJT_MARKER objects held and
                                 dropped; the marker re-inserted before an
                                 object reached after blocking
         BUG_CONDFREE_NEG        (e) condfree returns -1            (C, swap_pager)
         BUG_SWBLOCK_LEAK        (g) meta_free leaks a block        (C, swap_pager)
         BUG_WRITE_IGNORES_SWAPINPROG  H1: buffer writes ignore an in-flight
                                 swap write                         (vfs_bio)
  fixed  the upstream fixes that keep the seed's structure:
         739be60bf6  hold the object across lwkt_yield in cleaning
         f5f6d24720  skip markers; re-insert only before an object read with
                     vmobj_token held and no blocking since
         08fb7a9da0  condfree never returns <= 0
         0301c40799  free the last block of an emptied swblock
         0301c40799  meta_build records the new block before freeing the old
         smpvm (no upstream commit): a buffer write waits for an in-flight
                     swap write (closes H1); a range free detaches the
                     whole range before its blocking frees (closes H2)
"""
from smpvm.kern.kern_synch import tsleep, wakeup
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken, lwkt_yield
from smpvm.kern.safepoint import safepoint
from smpvm.kern.sysctl import SysctlNode, register
from smpvm.kern.thread import panic
from smpvm.layout import ffi, lib
from smpvm.vm import vm_object as _vm_object
from smpvm.vm.swap_pager import swap_pager_putpages
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

# The seed's defaults (reference 6.1).  hysteresis is set at thread start.
KERNEL_DEFAULTS = {
    "maxlaunder": 256, "data_enable": 0, "meta_enable": 0, "read_enable": 0,
    "maxswappct": 75, "use_chflags": 1, "minburst": 10000000,
    "curburst": 4000000000, "maxburst": 2000000000, "accrate": 100000,
    "maxfilesize": 0, "write_count": 0,
}
_RANGES = {
    "maxlaunder": (0, 1 << 31), "data_enable": (0, 1), "meta_enable": (0, 1),
    "read_enable": (0, 1), "maxswappct": (0, 100), "hysteresis": (0, 1 << 31),
    "use_chflags": (0, 1), "minburst": (0, 1 << 62), "curburst": (-(1 << 62), 1 << 62),
    "maxburst": (0, 1 << 62), "accrate": (0, 1 << 62),
    "write_count": (0, 1 << 62), "maxfilesize": (0, 1 << 62),
}
for _name, (_lo, _hi) in _RANGES.items():
    register(SysctlNode(
        f"vm.swapcache.{_name}", f"vm_swapcache_{_name}",
        get=lambda m, f=_name: getattr(vmview(m).vmg.swapcache, f),
        set=lambda m, v, f=_name: setattr(vmview(m).vmg.swapcache, f, v),
        lo=_lo, hi=_hi, default=KERNEL_DEFAULTS.get(_name)))
register(SysctlNode(
    "vm.swapcache.inactive_heuristic", "vm_swapcache_inactive_heuristic",
    get=lambda m: vmview(m).vmg.vm_swapcache_inactive_heuristic))
for _f in ("vm_swap_max", "vm_swap_size", "vm_swap_cache_use",
           "vm_swap_anon_use"):
    register(SysctlNode(f"vm.{_f[3:]}", _f,
                        get=lambda m, f=_f: getattr(vmview(m).vmg, f)))


def demo_sysctls(machine):
    """The default boot set: enables on, and rates scaled to the machine so
    that a 30 s run shows writing, cleaning and diverted reads (the kernel's
    defaults wait minutes and write nothing -- reference 8 items 8-9).
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
    sc = _sc()
    return vmview().vmg.vm_swap_max * (sc.maxswappct + adj) // 100


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

    sc.hysteresis = v.vmstats.v_inactive_target // 2
    v.vmg.vm_swapcache_inactive_heuristic = -sc.hysteresis

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
            if v.vmg.vm_swap_cache_use < SWAPMAX(-5):
                state = SWAPC_WRITING
        sc.state = state

        # We are allowed to continue accumulating burst value in either
        # state.  Allow the user to set curburst > maxburst for the
        # initial load-in.
        if sc.curburst < sc.maxburst:
            sc.curburst += sc.accrate // 10
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
            vm_swapcache_cleaning(object_marker)
        sc.burst = burst

    # Cleanup (NOT REACHED in the kernel; smpvm's threads do shut down)
    vm_page_queues_spin_lock(PQ_INACTIVE)
    vm_page_marker_remove(PQ_INACTIVE, page_marker)
    vm_page_queues_spin_unlock(PQ_INACTIVE)

    lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_remove(object_marker)
    lwkt_reltoken(lib.TOK_VMOBJ)


def vm_swapcache_writing(marker):
    """The writing pass (reference 6.4).  No locks held on entry."""
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
    if vmg.vm_swapcache_inactive_heuristic < -sc.hysteresis:
        vmg.vm_swapcache_inactive_heuristic = -sc.hysteresis
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
            if sc.maxfilesize and \
                    v.objects[object].size > (sc.maxfilesize >> PAGE_SHIFT):
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
        vmg.vm_swapcache_inactive_heuristic = -sc.hysteresis
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
    swap_pager_putpages(object, marray[i:j], False, _RtvalsView(rtvals, i))
    sc.write_count += count * PAGE_SIZE
    sc.curburst -= count * PAGE_SIZE

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
    """The cleaning pass (reference 6.7), with the seed's defects in the
    seed variant and the upstream fixes in the fixed one."""
    v = vmview()
    sc = v.vmg.swapcache
    seed_yield = _bugs() & lib.BUG_YIELD_BEFORE_HOLD
    seed_markers = _bugs() & lib.BUG_CLEAN_MARKERS
    mk = v.objects[marker]
    basei = ffi.new("uint64_t *")

    object = marker
    count = sc.maxlaunder

    # Look for vnode objects
    lwkt_gettoken(lib.TOK_VMOBJ)

    while True:
        object = vm_object_list_next(object)
        if object == NULL:
            break
        if seed_yield:
            lwkt_yield()                        # @seed: before the hold
        count -= 1
        if count <= 0:
            break
        if not seed_markers and v.objects[object].type == lib.OBJT_MARKER:
            continue                            # f5f6d24720: skip markers
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
            vm_object_drop(object)
            if not seed_markers and \
                    vm_object_list_next_safe(object) is None:
                # fixed: the object left the list while we blocked;
                # continue from the marker, which is still linked
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
        basei[0] = mk.size
        n = lib.swap_pager_condfree(object, basei, count)
        mk.size = basei[0]
        if n <= 0:
            # smpvm's INVARIANTS check (the seed has none): a scan factor
            # <= 0 lets the pass's budget grow (reference 7.4 e)
            v.cnt.scan_factor_bad += 1

        vm_object_drop(object)

        count -= n
        if count < 0:
            break

        # Setup for loop.
        mk.size = 0
        object = marker

    # Adjust marker so we continue the scan from where we left off.  When
    # we reach the end we start back at the beginning.
    vm_object_list_remove(marker)
    if object != NULL and (seed_markers or _on_list(object)):
        vm_object_list_insert_before(object, marker)
    else:
        vm_object_list_insert_head(marker)
    mk.backing_object = object

    lwkt_reltoken(lib.TOK_VMOBJ)


def _on_list(o):
    """Is object o on vm_object_list (vmobj_token held)?"""
    v = vmview()
    ob = v.objects[o]
    return ob.state != 0 and (ob.list_prev >= 0 or
                              v.vmg.vm_object_list_head == o)


def vm_object_list_next_safe(o):
    """TAILQ_NEXT from o if o is still linked, else None (fixed variant)."""
    return vm_object_list_next(o) if _on_list(o) else None
