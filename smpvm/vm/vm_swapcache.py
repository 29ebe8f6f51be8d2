"""sys/vm/vm_swapcache.c, ported function for function: the seed
("kernel - More many-cores SMP work", d2d8515bfb) and the ten upstream
commits after it (../shared/seeds/history/), as kernel versions
(smpvm/vm/versions.py).  Read it beside ../shared/seeds/vm_swapcache.c.txt
and the diffs: same functions, same state machine, same locks in the same
order, same blocking points.  The seed's globals are the vm.swapcache.*
sysctls in the machine's shared memory (vm_globals.swapcache), read racily
as the kernel reads them; the SYSCTL_INT ones are C ints (int32), with C's
wrap-around.

How the versions live here: a change of one commit is a gate named by it,
since("<commit>"); a function a commit rewrote is a function per version
(vm_swapcache_cleaning_seed / vm_swapcache_cleaning_f5f6d24720); a fix of
one of the seed's defects is a test of its BUG_* bit (vm_globals.bugs), set
for the versions before the commit that fixed it (smpvm/vm/bugs.py
DEFECT_FIXED_BY), so that a bug on purpose can put it back into any
version:
  027193eb61  one marker per INACTIVE queue (page_marker[PQ_MAXL2_SIZE]),
              the writing pass runs on each queue (marker->queue)
  51c99c6153  PQ_L2_SIZE queues (256, all populated)
  08fb7a9da0  condfree charges the swblocks it visits (csrc/vm.c, (e));
              cleaning ends at SWAPMAX(-10); vmobj_token released across
              condfree ((f)) -- without the swap of 27b6ee0313 that is a
              release out of order, which panics
  27b6ee0313  vm_object_lock_swap() before the release, the token taken
              back after the drop
  739be60bf6  the object held before lwkt_yield() ((a))
  f5f6d24720  vm_swapcache_cleaning rewritten: markers skipped, the marker
              moved only past its own successor (vm_swapcache_movemarker),
              whole objects up to vm.swapcache.cleanperobj ((b)-(d))
  7a175765de  a marker left at the end of the list goes back to the head
  0bf8126181  vm.swapcache.maxscan: every page visited and every object
              reached costs scan budget; maxlaunder only counts flushes
  0301c40799  (the swap pager: csrc/vm.c, (g))
  64949baad7  the writing budgets divided over the queues, the heuristic
              (vm_swapcache_writing_heuristic) reset only when every queue
              reached its end; min_hysteresis
smpvm's own fixes (the `fixed` kernel only): a buffer write waits for an
in-flight swap write (H1), a range free detaches the whole range before
its blocking frees (H2).
"""
import time

from smpvm.errors import SysctlError
from smpvm.kern.kern_synch import tsleep, wakeup
from smpvm.kern.lwkt_token import (lwkt_gettoken, lwkt_reltoken,
                                   lwkt_token_swap, lwkt_yield)
from smpvm.kern.safepoint import safepoint
from smpvm.kern.sysctl import SysctlNode, register
from smpvm.kern.thread import panic
from smpvm.layout import ffi, lib
from smpvm.vm import vm_object as _vm_object
from smpvm.vm import swap_pager
from smpvm.vm.versions import inactive_queues, pq_l2_size, since
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
                              vm_page_marker_insert_head,
                              vm_page_marker_move_after,
                              vm_page_marker_remove, vm_page_protect,
                              vm_page_queue_next, vm_page_queues_spin_lock,
                              vm_page_queues_spin_unlock,
                              vm_page_static_marker, vm_page_test_dirty,
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
VREG, VCHR, VSWAPCACHE = lib.VREG, lib.VCHR, lib.VSWAPCACHE
OBJT_VNODE, OBJ_DEAD = lib.OBJT_VNODE, lib.OBJ_DEAD
VM_PROT_READ, VM_PAGER_PEND, PQ_CACHE = (lib.VM_PROT_READ, lib.VM_PAGER_PEND,
                                         lib.PQ_CACHE)
# the bugs on purpose of the writing pass (smpvm/vm/bugs.py)
BUG_NO_OBJECT_HOLD, BUG_NO_OBJECT_RECHECK = (lib.BUG_NO_OBJECT_HOLD,
                                             lib.BUG_NO_OBJECT_RECHECK)
BUG_MARKER_UNLOCKED, BUG_INVERTED_LOCKS = (lib.BUG_MARKER_UNLOCKED,
                                           lib.BUG_INVERTED_LOCKS)
BUG_FLUSH_UNBUSIED, BUG_NO_PIP = lib.BUG_FLUSH_UNBUSIED, lib.BUG_NO_PIP
NULL = -1

# The seed's defaults (vm_swapcache.c @seed, lines 96-107).  hysteresis is
# set at thread start.  Later commits add maxscan (0bf8126181: 256 * 4),
# cleanperobj (f5f6d24720: 16 MB) and min_hysteresis (64949baad7: 1024),
# and 64949baad7 scales maxlaunder and maxscan to the queues
# (kernel_defaults).
KERNEL_DEFAULTS = {
    "maxlaunder": 256, "data_enable": 0, "meta_enable": 0, "read_enable": 0,
    "maxswappct": 75, "use_chflags": 1, "minburst": 10000000,
    "curburst": 4000000000, "maxburst": 2000000000, "accrate": 100000,
    "maxfilesize": 0, "write_count": 0, "maxscan": 256 * 4,
    "cleanperobj": 16 * 1024 * 1024, "min_hysteresis": 1024,
}
# SYSCTL_INT nodes hold a C int, SYSCTL_QUAD nodes an int64_t: any value of
# the type is taken, as the kernel's handlers take it (sysctl(8) parses the
# text with strtol/strtoq; an INT keeps the low 32 bits of it).
SYSCTL_INT_NODES = ("maxlaunder", "data_enable", "meta_enable",
                    "read_enable", "maxswappct", "hysteresis", "use_chflags",
                    "maxscan", "min_hysteresis")
SYSCTL_QUAD_NODES = ("minburst", "curburst", "maxburst", "maxfilesize",
                     "accrate", "write_count", "cleanperobj")
# the nodes a later commit added: absent from the versions before it
SYSCTL_SINCE = {"maxscan": "0bf8126181", "cleanperobj": "f5f6d24720",
                "min_hysteresis": "64949baad7"}


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


def _exists(machine, name):
    """Is vm.swapcache.<name> a node of machine's kernel version?"""
    commit = SYSCTL_SINCE.get(name)
    if commit and not since(commit, machine):
        raise SysctlError(f"sysctl: unknown oid 'vm.swapcache.{name}' (added "
                          f"by {commit}, after this kernel)")


def _set_node(machine, value, f, wrap):
    _exists(machine, f)
    if f == "hysteresis" and since("64949baad7", machine):
        raise SysctlError("sysctl: oid 'vm.swapcache.hysteresis' is read "
                          "only (since 64949baad7: min_hysteresis)")
    setattr(vmview(machine).vmg.swapcache, f, wrap(value))


def _get_node(machine, f):
    _exists(machine, f)
    return getattr(vmview(machine).vmg.swapcache, f)


for _name in SYSCTL_INT_NODES + SYSCTL_QUAD_NODES:
    _wrap = c_int if _name in SYSCTL_INT_NODES else c_int64
    register(SysctlNode(
        f"vm.swapcache.{_name}", f"vm_swapcache_{_name}"
        + (f" (since {SYSCTL_SINCE[_name]})" if _name in SYSCTL_SINCE
           else ""),
        get=lambda machine, f=_name: _get_node(machine, f),
        set=lambda machine, value, f=_name, w=_wrap: _set_node(
            machine, value, f, w),
        default=(lambda machine, f=_name: kernel_defaults(machine)[f])
        if _name in KERNEL_DEFAULTS else None))
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


def kernel_defaults(machine):
    """The vm.swapcache.* defaults of machine's kernel version: the seed's,
    with 64949baad7's maxscan = PQ_L2_SIZE * 8 and maxlaunder =
    PQ_L2_SIZE * 4."""
    d = dict(KERNEL_DEFAULTS)
    if since("64949baad7", machine):
        d["maxscan"] = pq_l2_size(machine) * 8
        d["maxlaunder"] = pq_l2_size(machine) * 4
    return d


def demo_sysctls(machine):
    """The default boot set: enables on, and rates scaled to the machine so
    that a 30 s run shows writing, cleaning and diverted reads (the kernel's
    defaults wait minutes before a first write: curburst must reach
    accrate, and the heuristic must see the inactive queue fill).
    Burst: accrate = 1/8 of swap per second, curburst starts at maxburst.
    maxswappct 40: cleaning starts above 40 % of swap and writing resumes
    below 35 % (swap fragments long before it is 75 % used).  The later
    commits' knobs scale with the machine too: cleanperobj (16 MB, for
    files of many MB) to 64 pages, the size of a stress file;
    min_hysteresis (1024 pages of a machine of many GB) to the seed's
    hysteresis, v_inactive_target / 2; maxlaunder and maxscan keep the
    version's defaults."""
    swap_bytes = machine.config.nswap * PAGE_SIZE
    accrate = max(PAGE_SIZE * SWAP_META_PAGES, swap_bytes // 8)
    return {
        "data_enable": 1, "meta_enable": 1, "read_enable": 1,
        "use_chflags": 0, "maxswappct": 40,
        "accrate": accrate, "minburst": accrate, "maxburst": accrate * 4,
        "curburst": accrate * 4, "maxfilesize": 0, "write_count": 0,
        "cleanperobj": 64 * PAGE_SIZE,
        "min_hysteresis": max(1, machine.config.npages // 8),
    }


def vm_swapcache_boot(machine, profile="demo"):
    """Set the vm.swapcache.* sysctls at boot: 'kernel' (the version's
    exact defaults) or 'demo' (see demo_sysctls)."""
    sc = vmview(machine).vmg.swapcache
    values = kernel_defaults(machine)
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
    return SWAPMAX(-10 if since("08fb7a9da0") else -5)


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

    # Initialize our marker for the inactive scan (SWAPC_WRITING).
    # 027193eb61: one per INACTIVE queue, static struct vm_page
    # page_marker[PQ_MAXL2_SIZE] (51c99c6153: [PQ_L2_SIZE]); the seed's one
    # marker is page_marker[0], on PQ_INACTIVE itself.
    nq = inactive_queues()
    page_marker = [vm_page_static_marker(q) for q in range(nq)]
    for q in range(nq):
        vm_page_queues_spin_lock(PQ_INACTIVE + q)
        vm_page_marker_insert_head(PQ_INACTIVE + q, page_marker[q])
        vm_page_queues_spin_unlock(PQ_INACTIVE + q)

    if since("64949baad7"):
        # vm_swapcache_min_hysteresis = 1024 is its default, set at boot
        # (vm_swapcache_boot); smpvm keeps a value set at boot, which on a
        # real machine sysctl.conf would set after this thread started
        sc.hysteresis = sc.min_hysteresis
    else:
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
        if since("64949baad7"):
            burst = _writing_64949baad7(v, state, burst, page_marker,
                                        object_marker)
        elif state == SWAPC_WRITING:
            if sc.curburst >= sc.accrate:
                if burst == SWAPB_BURSTING:
                    _writing_pass(v, page_marker)
                    if sc.curburst <= 0:
                        burst = SWAPB_RECOVERING
                elif sc.curburst > sc.minburst:
                    _writing_pass(v, page_marker)
                    burst = SWAPB_BURSTING
        else:
            _cleaning_pass(v, object_marker)
        sc.burst = burst

    # Cleanup (NOT REACHED in the kernel; smpvm's threads do shut down)
    for q in range(nq):
        vm_page_queues_spin_lock(PQ_INACTIVE + q)
        vm_page_marker_remove(PQ_INACTIVE + q, page_marker[q])
        vm_page_queues_spin_unlock(PQ_INACTIVE + q)

    lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_remove(object_marker)
    lwkt_reltoken(lib.TOK_VMOBJ)


def _writing_64949baad7(v, state, burst, page_marker, object_marker):
    """The tail of the daemon's loop as 64949baad7 rewrote it: the budgets
    divided over the queues (plus a bit of slop), the heuristic tested once
    (vm_swapcache_writing_heuristic) and reset only when every queue's scan
    reached its end.  Returns burst."""
    sc = v.vmg.swapcache
    if state != SWAPC_WRITING:
        _cleaning_pass(v, object_marker)
        return burst
    if sc.curburst < sc.accrate:
        return burst

    reached_end = 0
    count = c_div(sc.maxlaunder, pq_l2_size()) + 2
    scount = c_div(sc.maxscan, pq_l2_size()) + 2

    if burst == SWAPB_BURSTING:
        if vm_swapcache_writing_heuristic():
            reached_end = _writing_pass(v, page_marker, count, scount)
        if sc.curburst <= 0:
            burst = SWAPB_RECOVERING
    elif sc.curburst > sc.minburst:
        if vm_swapcache_writing_heuristic():
            reached_end = _writing_pass(v, page_marker, count, scount)
        burst = SWAPB_BURSTING
    if reached_end == pq_l2_size():
        v.vmg.vm_swapcache_inactive_heuristic = c_int(-sc.hysteresis)
    return burst


def _writing_pass(v, page_marker, count=None, scount=None):
    """for (q = 0; q < PQ_L2_SIZE; ++q) vm_swapcache_writing(&page_marker[q]
    [, count, scount]), metered by smpvm's writing meter.  Returns the
    number of queues whose end was reached."""
    c = v.cnt
    c.writing_passes += 1                       # smpvm's counters
    c.writing_pass_pages = 0
    c.writing_pass_scanned = 0
    budget = v.vmg.swapcache.maxlaunder
    cpu = time.thread_time_ns()
    reached_end = 0
    for marker in page_marker:
        if count is None:
            reached_end += vm_swapcache_writing(marker)
        else:
            reached_end += vm_swapcache_writing(marker, count, scount)
    cpu = time.thread_time_ns() - cpu
    c.writing_cpu_ns += cpu
    if cpu > c.writing_max_cpu_ns:
        c.writing_max_cpu_ns = cpu
    if c.writing_pass_scanned:
        c.writing_scanning_passes += 1
    if c.writing_pass_scanned > c.writing_max_scanned:
        c.writing_max_scanned = c.writing_pass_scanned
    if c.writing_pass_pages > c.writing_max_pages:
        c.writing_max_pages = c.writing_pass_pages
        c.writing_max_budget = max(budget, 0)
    return reached_end


def _cleaning_pass(v, object_marker):
    """vm_swapcache_cleaning(&object_marker), metered by smpvm's cleaning
    meter."""
    v.cnt.cleaning_passes += 1
    clean_meter_begin(v)
    cpu = time.thread_time_ns()
    vm_swapcache_cleaning(object_marker)
    clean_meter_end(v, time.thread_time_ns() - cpu)


def vm_swapcache_writing_heuristic():
    """64949baad7: deal with an overflow of the heuristic counter or if the
    user manually changes the hysteresis.

    Try to avoid small incremental pageouts by waiting for enough pages to
    buildup in the inactive queue to hopefully get a good burst in.  This
    heuristic is bumped by the VM system and reset when our scan hits the
    end of the queue.

    Return TRUE if we need to take a writing pass.  No requirements."""
    v = vmview()
    sc = v.vmg.swapcache
    hyst = c_div(v.vmstats.v_inactive_count, 4)
    if hyst < sc.min_hysteresis:
        hyst = sc.min_hysteresis
    sc.hysteresis = hyst

    if v.vmg.vm_swapcache_inactive_heuristic < -hyst:
        v.vmg.vm_swapcache_inactive_heuristic = c_int(-hyst)

    if v.vmg.vm_swapcache_inactive_heuristic < 0:
        v.cnt.heuristic_waits += 1              # smpvm's counter
    return v.vmg.vm_swapcache_inactive_heuristic >= 0


def vm_swapcache_writing(marker, count=None, scount=None):
    """The writing pass over one INACTIVE queue (the marker's: PQ_INACTIVE
    in the seed, PQ_INACTIVE + q since 027193eb61): push clean, eligible
    pages to swap, from the marker on, within the budget and curburst.
    Until 64949baad7: vm_swapcache_writing(marker), which tests the
    heuristic itself and takes maxlaunder (0bf8126181: and maxscan) as its
    budget.  Since 64949baad7: vm_swapcache_writing(marker, count, scount),
    the caller's share of the budgets; returns non-zero if the scan hit the
    end of the queue.  No locks held on entry; takes the queue spinlock,
    page busy and object tokens as the seed does."""
    v = vmview()
    sc = v.vmg.swapcache
    vmg = v.vmg
    cnt = v.cnt                 # smpvm's counters (`smpvm stat`), not the seed's
    scan_limited = since("0bf8126181")
    q = v.pages[marker].queue   # 027193eb61: marker->queue
    bugs = _bugs()              # the bugs on purpose (immutable)

    if not since("64949baad7"):
        # Deal with an overflow of the heuristic counter or if the user
        # manually changes the hysteresis.
        #
        # Try to avoid small incremental pageouts by waiting for enough
        # pages to buildup in the inactive queue to hopefully get a good
        # burst in.  This heuristic is bumped by the VM system and reset
        # when our scan hits the end of the queue.
        if vmg.vm_swapcache_inactive_heuristic < c_int(-sc.hysteresis):
            vmg.vm_swapcache_inactive_heuristic = c_int(-sc.hysteresis)
        if vmg.vm_swapcache_inactive_heuristic < 0:
            cnt.heuristic_waits += 1
            return 0

    # Scan the inactive queue from our marker to locate suitable pages to
    # push to the swap cache.  We are looking for clean vnode-backed pages.
    #
    # NOTE (until 0bf8126181): PG_SWAPPED pages in particular are not part
    #       of our count because once the cache stabilizes we can end up
    #       with a very high datarate of VM pages cycling from it.
    # BUG_NO_OBJECT_HOLD (broken on purpose): the pass's object hold and
    # drop do nothing, so the object is used without its token
    if bugs & BUG_NO_OBJECT_HOLD:
        vm_object_hold = vm_object_drop = _no_hold
    else:
        vm_object_hold = _vm_object.vm_object_hold
        vm_object_drop = _vm_object.vm_object_drop
    if count is None:
        count = sc.maxlaunder
        scount = sc.maxscan                     # 0bf8126181

    vm_page_queues_spin_lock(q)
    held = 0                    # smpvm's meter: pages under this hold
    # smpvm's meters of every visit (pages scanned, skipped as swapped or
    # marker, the most held), kept here and added to cnt when the loop
    # ends: statistics, not kernel state, and three stores per page cost
    # more than the rest of a skip (a pass that raises loses its share)
    scanned = skipped = max_held = 0
    while True:
        # while ((m = TAILQ_NEXT(marker, pageq)) != NULL && count-- > 0)
        # 0bf8126181: ... && count > 0 && scount-- > 0)
        m = vm_page_queue_next(q, marker)
        if m == NULL:
            break
        if scan_limited:
            if not count > 0:
                break
            c, scount = scount, scount - 1
        else:
            c, count = count, count - 1
        if not c > 0:
            break
        pg = v.pages[m]
        if pg.queue != q:                           # KKASSERT
            vm_page_queues_spin_unlock(q)
            panic(f"vm_swapcache_writing: page {m} on queue {pg.queue}, "
                  f"the marker's is {q}")

        if sc.curburst < 0:
            break
        if bugs & BUG_MARKER_UNLOCKED:      # broken on purpose
            vm_page_queues_spin_unlock(q)
            vm_page_marker_move_after(q, marker, m)
            vm_page_queues_spin_lock(q)
        else:
            vm_page_marker_move_after(q, marker, m)
        scanned += 1
        held += 1
        if held > max_held:
            max_held = held
        if bugs & BUG_INVERTED_LOCKS:       # broken on purpose
            lib.vm_page_spin_lock(m)
            lib.vm_page_spin_unlock(m)

        # Ignore markers and ignore pages that already have a swap
        # assignment (until 0bf8126181 they cost no budget either).
        if pg.flags & (PG_MARKER | PG_SWAPPED):
            if not scan_limited:
                count += 1
            skipped += 1
            continue
        early = None
        if bugs & BUG_NO_OBJECT_RECHECK:     # broken on purpose:
            early = pg.object                       # read before the busy
        if vm_page_busy_try(m, True):
            cnt.skip_busy += 1
            continue
        vm_page_queues_spin_unlock(q)
        held = 0

        object = pg.object if early is None else early
        if object == NULL:
            cnt.skip_object += 1
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(q)
            continue
        vm_object_hold(object)
        if pg.object != object and not (bugs & BUG_NO_OBJECT_RECHECK):
            cnt.skip_object += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(q)
            continue
        if vm_swapcache_test(m):
            cnt.skip_test += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(q)
            continue

        vp = v.objects[object].handle
        if vp == NULL:
            cnt.skip_object += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(q)
            continue

        vn = v.vnodes[vp]
        if vn.v_type == VREG:
            # PG_NOTMETA generically means 'don't swapcache this'.
            if pg.flags & PG_NOTMETA:
                cnt.skip_notmeta += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(q)
                continue
            # If data_enable is 0 do not try to swapcache data.  If
            # use_chflags is set then only swapcache data for VSWAPCACHE
            # marked vnodes, otherwise any vnode.
            if sc.data_enable == 0 or \
                    ((vn.v_flag & VSWAPCACHE) == 0 and sc.use_chflags):
                cnt.skip_disabled += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(q)
                continue
            # object->size is a vm_pindex_t: the comparison is unsigned
            if sc.maxfilesize and v.objects[object].size > \
                    (sc.maxfilesize >> PAGE_SHIFT) % (1 << 64):
                cnt.skip_maxfilesize += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(q)
                continue
            isblkdev = 0
        elif vn.v_type == VCHR:
            if pg.flags & PG_NOTMETA:
                cnt.skip_notmeta += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(q)
                continue
            if sc.meta_enable == 0:
                cnt.skip_disabled += 1
                vm_object_drop(object)
                vm_page_wakeup(m)
                vm_page_queues_spin_lock(q)
                continue
            isblkdev = 1
        else:
            cnt.skip_disabled += 1
            vm_object_drop(object)
            vm_page_wakeup(m)
            vm_page_queues_spin_lock(q)
            continue

        # Assign swap and initiate I/O.
        # (adjust for the --count which also occurs in the loop; since
        # 0bf8126181 the loop no longer counts: a cluster of k costs k)
        count -= vm_swapcached_flush(m, isblkdev) - (0 if scan_limited
                                                     else 1)

        # Setup for next loop using marker.
        vm_object_drop(object)
        vm_page_queues_spin_lock(q)
    cnt.pages_scanned += scanned
    cnt.writing_pass_scanned += scanned
    cnt.skip_free += skipped
    if max_held > cnt.writing_max_held:
        cnt.writing_max_held = max_held

    # The marker could wind up at the end, which is ok.  If we hit the end
    # of the list adjust the heuristic (64949baad7: the caller does, once
    # every queue has hit its end).
    #
    # Earlier inactive pages that were dirty and become clean are typically
    # moved to the end of PQ_INACTIVE by virtue of vfs_vmio_release() when
    # they become unwired from the buffer cache.
    if m == NULL and not since("64949baad7"):
        vmg.vm_swapcache_inactive_heuristic = c_int(-sc.hysteresis)
    vm_page_queues_spin_unlock(q)

    # m invalid but can be used to test for NULL
    return int(m == NULL)


def vm_swapcached_flush(m, isblkdev):
    """Flush the specified page using the swap_pager.  The page must be
    busied by the caller and its disposition becomes the responsibility of
    this function.  Clusters inside the aligned 16-page window of m.
    Returns a count of pages we might have flushed (minimum 1)."""
    v = vmview()
    sc = v.vmg.swapcache
    marray = [NULL] * SWAP_META_PAGES
    rtvals = [0] * SWAP_META_PAGES

    if _bugs() & BUG_FLUSH_UNBUSIED:       # broken on purpose
        vm_page_wakeup(m)
    vm_page_io_start(m)
    vm_page_protect(m, VM_PROT_READ)
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
        vm_page_protect(m, VM_PROT_READ)
        if v.pages[m].queue - v.pages[m].pc == PQ_CACHE:
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
        vm_page_protect(m, VM_PROT_READ)
        if v.pages[m].queue - v.pages[m].pc == PQ_CACHE:
            vm_page_unqueue_nowakeup(m)
            vm_page_deactivate(m)
        marray[j] = m
        vm_page_wakeup(m)
        j += 1

    count = j - i
    if not _bugs() & BUG_NO_PIP:                # the bug: no pip taken
        vm_object_pip_add(object, count)
    swap_pager.swap_pager_putpages(object, marray[i:j], False,
                                   _RtvalsView(rtvals, i))
    sc.write_count = c_int64(sc.write_count + count * PAGE_SIZE)
    sc.curburst = c_int64(sc.curburst - count * PAGE_SIZE)
    v.cnt.writing_pass_pages += count           # smpvm's writing meter

    while i < j:
        if rtvals[i] != VM_PAGER_PEND:
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
        if type(k) is slice:            # rtvals[0:n] = ... (swap_pager.py)
            self.a[self.i + k.start:self.i + k.stop] = val
        else:
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
    if obj.type != OBJT_VNODE or (obj.flags & OBJ_DEAD):
        return 1
    vm_page_test_dirty(m)
    if pg.dirty & pg.valid:
        return 1
    return 0


def vm_swapcache_cleaning(marker):
    """Cleaning pass: walk vm_object_list from the marker and free whole
    swblocks of vnode objects that have no resident page.  No locks held
    on entry; takes vmobj_token.  The seed's pass until f5f6d24720
    rewrote it (vm_swapcache_cleaning_seed), the rewritten one since
    (vm_swapcache_cleaning_f5f6d24720) -- unless the seed's list walk is
    put back on purpose (BUG_CLEAN_MARKERS, --bug clean-markers)."""
    if since("f5f6d24720") and not _bugs() & lib.BUG_CLEAN_MARKERS:
        vm_swapcache_cleaning_f5f6d24720(marker)
    else:
        vm_swapcache_cleaning_seed(marker)


def _live_vnode_object(v, obj):
    """Only operate on live VNODE objects with regular/chardev types."""
    vp = obj.handle
    return not ((obj.type != OBJT_VNODE) or
                ((obj.flags & OBJ_DEAD) or obj.swblock_count == 0) or
                (vp == NULL) or
                (v.vnodes[vp].v_type not in (VREG, VCHR)))


def vm_swapcache_cleaning_seed(marker):
    """The seed's cleaning pass, up to vm.swapcache.maxlaunder objects and
    swblocks, with its defects (a)-(f) -- and the fixes of them that
    08fb7a9da0, 27b6ee0313 and 739be60bf6 made before f5f6d24720 rewrote
    the pass.  No locks held on entry; takes vmobj_token."""
    v = vmview()
    sc = v.vmg.swapcache
    bugs = _bugs()
    mk = v.objects[marker]
    cnt = v.cnt                 # smpvm's cleaning meter, not the seed's
    basei = ffi.new("uint64_t *")

    object = marker
    count = sc.maxlaunder
    cnt.clean_pass_budget = max(count, 0)

    # Look for vnode objects
    lwkt_gettoken(lib.TOK_VMOBJ)

    while True:
        object = vm_object_list_next(object)
        if object == NULL:
            break
        cnt.clean_pass_objects += 1
        cnt.clean_pass_charge += 1
        if bugs & lib.BUG_YIELD_BEFORE_HOLD:
            lwkt_yield()                        # @seed: before the hold (a)
            count -= 1
            if count <= 0:
                break
            vm_object_hold(object)
        else:
            # 739be60bf6: VM object must be held while vmobj_token
            # serializes list, before the lwkt_yield() not after
            vm_object_hold(object)
            lwkt_yield()
            count -= 1
            if count <= 0:
                vm_object_drop(object)
                break

        # Only operate on live VNODE objects with regular/chardev types
        # (@seed: an OBJT_MARKER object is held, dropped and charged (d))
        if not _live_vnode_object(v, v.objects[object]):
            vm_object_drop(object)
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
        basei[0] = mk.size
        if bugs & lib.BUG_CONDFREE_VMOBJ_HELD:
            # @seed: vmobj_token held across condfree (f)
            n = swap_pager.swap_pager_condfree(object, basei, count)
            mk.size = basei[0]
            vm_object_drop(object)
        elif not since("27b6ee0313"):
            # 08fb7a9da0: vmobj_token released across condfree -- but it
            # is not the top token (the object's is), and lwkt_reltoken
            # asserts the reverse order: this panics (27b6ee0313)
            lwkt_reltoken(lib.TOK_VMOBJ)
            n = swap_pager.swap_pager_condfree(object, basei, count)
            mk.size = basei[0]
            lwkt_gettoken(lib.TOK_VMOBJ)
            vm_object_drop(object)
        else:
            # 27b6ee0313: vm_object_lock_swap() (lwkt_token_swap() since
            # 739be60bf6) puts vmobj_token on top; taken back after the
            # drop
            lwkt_token_swap()
            lwkt_reltoken(lib.TOK_VMOBJ)

            n = swap_pager.swap_pager_condfree(object, basei, count)
            mk.size = basei[0]

            vm_object_drop(object)
            lwkt_gettoken(lib.TOK_VMOBJ)

        count -= n
        if count < 0:
            break

        # Setup for loop.
        mk.size = 0
        object = marker

    # Adjust marker so we continue the scan from where we left off.  When
    # we reach the end we start back at the beginning.  (b): `object` may
    # have left the list while the tokens were lost (condfree, the yield):
    # TAILQ_INSERT_BEFORE then splices through its stale links.
    vm_object_list_remove(marker)
    if object != NULL:
        vm_object_list_insert_before(object, marker)
    else:
        vm_object_list_insert_head(marker)
    mk.backing_object = object

    lwkt_reltoken(lib.TOK_VMOBJ)


def vm_swapcache_cleaning_f5f6d24720(marker):
    """Cleaning pass, as f5f6d24720 rewrote it (and 7a175765de, 0bf8126181
    changed it).  We clean whole objects up to 16MB
    (vm.swapcache.cleanperobj).  No locks held on entry; takes
    vmobj_token."""
    v = vmview()
    sc = v.vmg.swapcache
    bugs = _bugs()
    mk = v.objects[marker]
    cnt = v.cnt                 # smpvm's cleaning meter, not the upstream's
    basei = ffi.new("uint64_t *")
    scan_limited = since("0bf8126181")

    count = sc.maxlaunder
    scount = sc.maxscan                         # 0bf8126181
    cnt.clean_pass_budget = max(count, 0)
    object = NULL

    # Look for vnode objects
    lwkt_gettoken(lib.TOK_VMOBJ)

    while True:
        object = vm_object_list_next(marker)
        if object == NULL:
            break
        # We have to skip markers.  We cannot hold/drop marker objects!
        if v.objects[object].type == lib.OBJT_MARKER:
            vm_swapcache_movemarker(marker, object)
            continue

        # Safety, or in case there are millions of VM objects without
        # swapcache backing.  (0bf8126181: charged to scount)
        cnt.clean_pass_objects += 1
        if scan_limited:
            scount -= 1
            if scount <= 0:
                break
        else:
            cnt.clean_pass_charge += 1
            count -= 1
            if count <= 0:
                break

        # We must hold the object before potentially yielding.
        if bugs & lib.BUG_YIELD_BEFORE_HOLD:    # (a), on purpose
            lwkt_yield()
            vm_object_hold(object)
        else:
            vm_object_hold(object)
            lwkt_yield()

        # Only operate on live VNODE objects that are either VREG or VCHR
        # (VCHR for meta-data).
        if not _live_vnode_object(v, v.objects[object]):
            vm_object_drop(object)
            # object may be invalid now
            vm_swapcache_movemarker(marker, object)
            continue

        # Reset the object pindex stored in the marker if the working
        # object has changed.
        if mk.backing_object != object:
            mk.size = 0
            mk.backing_object_offset = 0
            mk.backing_object = object

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
        #
        # Scan the object linearly and try to batch large sets of blocks
        # that are likely to clean out entire swap radix tree leafs.
        lwkt_token_swap()
        lwkt_reltoken(lib.TOK_VMOBJ)

        basei[0] = mk.size
        n = swap_pager.swap_pager_condfree(
            object, basei, (count + SWAP_META_MASK) & ~SWAP_META_MASK)
        mk.size = basei[0]

        vm_object_drop(object)          # object may be invalid now
        lwkt_gettoken(lib.TOK_VMOBJ)

        # If we have exhausted the object or deleted our per-pass page
        # limit then move us to the next object.  Note that the current
        # object may no longer be on the vm_object_list.
        if n <= 0 or mk.backing_object_offset > sc.cleanperobj:
            vm_swapcache_movemarker(marker, object)

        # If we have exhausted our max-launder stop for now.
        count -= n
        mk.backing_object_offset = (mk.backing_object_offset
                                    + n * PAGE_SIZE) % (1 << 64)
        if count < 0:
            break

    # 7a175765de: if we wound up at the end of the list this will move the
    # marker back to the beginning.
    if since("7a175765de") and object == NULL:
        vm_swapcache_movemarker(marker, NULL)

    lwkt_reltoken(lib.TOK_VMOBJ)


def vm_swapcache_movemarker(marker, object):
    """f5f6d24720: move the marker past the current object.  Object can be
    stale, but we still need it to determine if the marker has to be moved.
    If the object is still the 'current object' (object after the marker),
    we hop-scotch the marker past it.  vmobj_token held."""
    if vm_object_list_next(marker) == object:
        vm_object_list_remove(marker)
        if object != NULL:
            vm_object_list_insert_after(object, marker)
        else:
            vm_object_list_insert_head(marker)


def clean_meter_begin(v):
    """smpvm's cleaning meter: a pass starts (swapcached), with the swap
    cache use and the writing mark now."""
    c = v.cnt
    c.clean_pass_budget = 0
    c.clean_pass_objects = 0
    c.clean_pass_swblocks = 0
    c.clean_pass_freed = 0
    c.clean_pass_charge = 0
    c.clean_pass_overran = 0
    c.clean_pass_condfrees = 0
    # read racily, as statistics are: no field check, so no preemption
    # point in the daemon's path
    c.clean_pass_use = max(0, v.raw.vmg.vm_swap_cache_use)
    c.clean_pass_mark = max(0, SWAPMAX_WRITING())


def clean_meter_end(v, cpu_ns):
    """smpvm's cleaning meter: the pass that just ended, against its
    budget; the overruns (swblocks visited past the budget) and the idle
    streak that vm_meter.cleaning_findings reports.  A pass is idle when
    it had swap to clean -- it started at or over the writing mark, as the
    daemon's passes do (the CLEANING state) -- and reached no object with
    swap (called swap_pager_condfree on none).  A pass that reached one is
    not, even if the call visited no swblock: the marker's iterator was
    past the object's last one, which upstream keeps until the walk works
    on another object (a lone object with swap is passed over that way
    pass after pass, the walk going round the list), a policy of the
    walk, not a walk cut off from the objects."""
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
    # idle: no object with swap reached while there was swap to clean (a
    # writing mark of 0, maxswappct <= 10, keeps the daemon CLEANING with
    # no swap at all: no walk is cut off then)
    if c.clean_pass_condfrees == 0 and \
            c.clean_pass_use >= max(c.clean_pass_mark, 1):
        c.clean_idle_streak += 1
        if c.clean_idle_streak == 1:
            c.clean_idle_start_use = c.clean_pass_use
            c.clean_idle_start_mark = c.clean_pass_mark
        if c.clean_idle_streak > c.clean_idle_max:
            c.clean_idle_max = c.clean_idle_streak
            c.clean_idle_use = c.clean_idle_start_use
            c.clean_idle_mark = c.clean_idle_start_mark
    else:
        c.clean_idle_streak = 0
