"""Scenario tests of the swapcached port (reference 6), deterministic: the
passes are called directly by this thread, and the daemon loop runs in its
own process on the virtual clock, advanced iteration by iteration.  The
writing pass's tests are the seed's (one INACTIVE queue, one marker); the
later versions' writing and cleaning rules are tested in
tests/test_versions.py."""
import pytest

from conftest import wait_for
from smpvm.errors import Panic
from smpvm.kern.kproc import Supervisor
from smpvm.kern import sysctl
from smpvm.layout import ffi, lib, threads
from smpvm.stress.history import KillAtFirstYield, open_gate
from smpvm.vfs import syscalls as sc
from smpvm.vm import vm_page as P
from smpvm.vm import vm_swapcache as S
from smpvm.vm.versions import inactive_queues, since
from smpvm.vm.vm_meter import (LIVENESS_MIN_PASSES,
                                LIVENESS_PASSES_PER_OBJECT,
                                cleaning_cost_finding, cleaning_findings,
                                swapcache_status)
from smpvm.vm.vm_object import (resident_pages, vm_object_drop,
                                vm_object_hold)
from smpvm.vm.vmview import vmview

PAGE = lib.PAGE_SIZE
INACT = lib.PQ_INACTIVE
SEED = pytest.mark.vmconfig(kernel="seed")


def swc():
    return vmview().vmg.swapcache



def make_file(name, npages, cache_flag=False):
    """A file of npages clean, valid pages, all on the INACTIVE tail."""
    vp = sc.sys_open(name, create=True)
    if cache_flag:
        sc.sys_chflags(name, lib.UF_CACHE)
        sc.sys_close(vp)
        vp = sc.sys_open(name)
    sc.sys_write(vp, 0, bytes(range(256)) * (npages * PAGE // 256))
    return vp


def pages_of(vp):
    v = vmview()
    obj = v.vnodes[vp].v_object
    vm_object_hold(obj)
    try:
        ms = resident_pages(obj)
    finally:
        vm_object_drop(obj)
    return {v.pages[m].pindex: m for m in ms}


def swapped(vp):
    v = vmview()
    return sorted(p for p, m in pages_of(vp).items()
                  if v.pages[m].flags & lib.PG_SWAPPED)


def marker_at_head():
    mk = P.vm_page_marker(0)
    P.vm_page_queues_spin_lock(INACT)
    P.vm_page_marker_insert_head(INACT, mk)
    P.vm_page_queues_spin_unlock(INACT)
    return mk


def write_inactive(budget=1 << 20):
    """One writing pass over every INACTIVE queue of the running version,
    each from its head (swapcached's page_marker[q]), the gate open and the
    budget large: what _cleaning_setup needs on any version."""
    v = vmview()
    for q in range(inactive_queues()):
        mk = P.vm_page_static_marker(q)
        P.vm_page_queues_spin_lock(INACT + q)
        if v.pages[mk].queue != lib.PQ_NONE:
            P.vm_page_marker_remove(INACT + q, mk)
        P.vm_page_marker_insert_head(INACT + q, mk)
        P.vm_page_queues_spin_unlock(INACT + q)
        open_gate()
        if since("64949baad7"):
            S.vm_swapcache_writing(mk, budget, budget)
        else:
            swc().maxlaunder = budget
            swc().maxscan = budget
            S.vm_swapcache_writing(mk)
        P.vm_page_queues_spin_lock(INACT + q)
        P.vm_page_marker_remove(INACT + q, mk)  # swapcached's, not ours
        P.vm_page_queues_spin_unlock(INACT + q)


def marker_next(mk):
    P.vm_page_queues_spin_lock(INACT)
    try:
        return P.vm_page_queue_next(INACT, mk)
    finally:
        P.vm_page_queues_spin_unlock(INACT)


# ---- the writing pass -----------------------------------------------------------

@SEED
def test_writing_pass_writes_clean_inactive_vnode_pages(vm):
    vp = make_file("w", 16)
    open_gate()
    mk = marker_at_head()
    S.vm_swapcache_writing(mk)
    assert swapped(vp) == list(range(16))
    assert swc().write_count == 16 * PAGE


@SEED
def test_heuristic_gate_and_clamp(vm):
    v = vmview()
    vp = make_file("g", 4)
    mk = marker_at_head()
    swc().curburst = 1 << 40
    swc().hysteresis = 10
    v.vmg.vm_swapcache_inactive_heuristic = -1000      # overflowed
    S.vm_swapcache_writing(mk)
    assert v.vmg.vm_swapcache_inactive_heuristic == -10   # clamped
    assert swapped(vp) == []                               # negative: no scan
    v.vmg.vm_swapcache_inactive_heuristic = 0
    S.vm_swapcache_writing(mk)
    assert swapped(vp) == [0, 1, 2, 3]
    # the pass reached the end of the queue: heuristic reset
    assert v.vmg.vm_swapcache_inactive_heuristic == -10


@SEED
def test_maxlaunder_budget_not_charged_for_swapped_pages_or_markers(vm):
    a = make_file("a", 4)
    open_gate()
    mk = marker_at_head()
    S.vm_swapcache_writing(mk)                 # a: 4 pages now PG_SWAPPED
    assert swapped(a) == [0, 1, 2, 3]
    # requeue a's pages ahead of b's; then a budget of 1 cluster
    for m in pages_of(a).values():
        P.vm_page_requeue(m, INACT)
    b = make_file("b", 4)
    for m in pages_of(a).values():
        P.vm_page_deactivate_head(m)
    P.vm_page_queues_spin_lock(INACT)
    P.vm_page_marker_remove(INACT, mk)
    P.vm_page_marker_insert_head(INACT, mk)
    P.vm_page_queues_spin_unlock(INACT)
    swc().maxlaunder = 4
    vmview().vmg.vm_swapcache_inactive_heuristic = 0
    S.vm_swapcache_writing(mk)
    # a's four swapped pages cost nothing: the budget still wrote b
    assert swapped(b) == [0, 1, 2, 3]


@SEED
def test_rejects_cost_budget_and_marker_keeps_its_place(vm):
    v = vmview()
    dirty = make_file("d", 3)
    good = make_file("ok", 3)
    for m in pages_of(dirty).values():       # dirty: rejected by the test
        P.vm_page_busy_wait(m, False, "t")
        P.vm_page_dirty(m)
        P.vm_page_wakeup(m)
    open_gate()
    swc().maxlaunder = 2
    mk = marker_at_head()
    S.vm_swapcache_writing(mk)
    assert swapped(good) == []               # budget spent on rejects
    assert marker_next(mk) == pages_of(dirty)[2]   # stopped after 2
    assert v.vmg.vm_swapcache_inactive_heuristic == 0  # not at the end
    swc().maxlaunder = 256
    S.vm_swapcache_writing(mk)               # resumes from the marker
    assert swapped(good) == [0, 1, 2] and swapped(dirty) == []
    assert marker_next(mk) == -1             # at the end, stays there


@SEED
def test_curburst_negative_stops_the_pass(vm):
    vp = make_file("cb", 40)
    open_gate()
    swc().curburst = 1                        # one cluster, then < 0
    mk = marker_at_head()
    S.vm_swapcache_writing(mk)
    assert swapped(vp) == list(range(16))
    assert swc().curburst == 1 - 16 * PAGE


@SEED
@pytest.mark.parametrize("what", ["data_enable", "use_chflags", "maxfilesize",
                                  "notmeta", "held", "wired", "invalid",
                                  "dirty", "pmap_modified", "dead"])
def test_each_eligibility_clause_rejects(vm, what):
    v = vmview()
    vp = make_file("e", 4)
    open_gate()
    ms = pages_of(vp)
    m = ms[0]
    if what == "data_enable":
        swc().data_enable = 0
    elif what == "use_chflags":
        swc().use_chflags = 1                 # and no chflags cache
    elif what == "maxfilesize":
        swc().maxfilesize = 2 * PAGE
    else:
        for m in ms.values():
            P.vm_page_busy_wait(m, False, "t")
            pg = v.pages[m]
            if what == "notmeta":
                lib.atomic_set_int(ffi.addressof(pg, "flags"), lib.PG_NOTMETA)
            elif what == "held":
                P.vm_page_hold(m)
            elif what == "wired":
                pg.wire_count = 1            # as a buffer would leave it
            elif what == "invalid":
                pg.valid = 0x0f
            elif what == "dirty":
                P.vm_page_dirty(m)
            elif what == "pmap_modified":
                pg.md_modified = 1           # only the pte says so
            elif what == "dead":
                lib.atomic_set_int(
                    ffi.addressof(v.objects[pg.object], "flags"), lib.OBJ_DEAD)
            P.vm_page_wakeup(m)
    S.vm_swapcache_writing(marker_at_head())
    assert swapped(vp) == []
    if what == "pmap_modified":
        assert v.pages[ms[0]].dirty == lib.VM_PAGE_BITS_ALL  # test_dirty


@SEED
def test_use_chflags_with_cache_flag_is_eligible(vm):
    vp = make_file("c", 2, cache_flag=True)
    open_gate()
    swc().use_chflags = 1
    S.vm_swapcache_writing(marker_at_head())
    assert swapped(vp) == [0, 1]


@SEED
def test_meta_enable_gates_the_vchr_device(vm):
    from smpvm.vfs.vnode import vn_meta
    meta = vn_meta()
    sc.sys_write(meta, 0, b"M" * 4 * PAGE)
    open_gate()
    swc().meta_enable = 0
    S.vm_swapcache_writing(marker_at_head())
    assert swapped(meta) == []
    swc().meta_enable = 1
    swc().data_enable = 0                     # VCHR ignores data_enable
    vmview().vmg.vm_swapcache_inactive_heuristic = 0
    P.vm_page_queues_spin_lock(INACT)
    P.vm_page_marker_remove(INACT, P.vm_page_marker(0))
    P.vm_page_queues_spin_unlock(INACT)
    S.vm_swapcache_writing(marker_at_head())
    assert swapped(meta) == [0, 1, 2, 3]


# ---- the flush and its clustering ----------------------------------------------

def _flush_page(vp, pindex, isblkdev=0):
    v = vmview()
    m = pages_of(vp)[pindex]
    obj = v.pages[m].object
    P.vm_page_busy_wait(m, True, "t")
    vm_object_hold(obj)
    try:
        return S.vm_swapcached_flush(m, isblkdev)
    finally:
        vm_object_drop(obj)


def test_cluster_stays_in_the_aligned_16_page_window(vm):
    vp = make_file("k", 40)
    n = _flush_page(vp, 20)
    assert n == 16
    assert swapped(vp) == list(range(16, 32))
    v = vmview()
    obj = v.vnodes[vp].v_object
    vm_object_hold(obj)
    blks = [lib.swap_pager_meta_lookup(obj, p) for p in range(16, 32)]
    vm_object_drop(obj)
    assert blks == list(range(blks[0], blks[0] + 16))   # one contiguous run


def test_cluster_stops_at_the_first_ineligible_neighbour(vm):
    v = vmview()
    vp = make_file("s", 16)
    ms = pages_of(vp)
    for p in (3, 12):
        P.vm_page_busy_wait(ms[p], False, "t")
        P.vm_page_dirty(ms[p])
        P.vm_page_wakeup(ms[p])
    P.vm_page_busy_wait(ms[9], False, "t")   # busy: stops the forward scan
    try:
        assert _flush_page(vp, 6) == 5
    finally:
        P.vm_page_wakeup(ms[9])
    assert swapped(vp) == [4, 5, 6, 7, 8]
    assert v.cnt.swap_write_clusters == 1


@SEED
def test_cache_neighbours_are_deactivated(vm):
    v = vmview()
    vp = make_file("q", 4)
    ms = pages_of(vp)
    P.vm_page_busy_wait(ms[1], False, "t")
    P.vm_page_cache(ms[1])
    assert v.pages[ms[1]].queue - v.pages[ms[1]].pc == lib.PQ_CACHE
    _flush_page(vp, 0)
    assert v.pages[ms[1]].queue == INACT and 1 in swapped(vp)


def test_write_count_and_curburst_charged_even_when_allocation_fails(vm):
    v = vmview()
    vp = make_file("f", 16)
    obj = v.vnodes[vp].v_object
    hog = []
    while True:                               # exhaust swap
        b = lib.swp_pager_getswapspace(obj, 16)
        if b == lib.SWAPBLK_NONE:
            b = lib.swp_pager_getswapspace(obj, 1)
            if b == lib.SWAPBLK_NONE:
                break
            hog.append((b, 1))
        else:
            hog.append((b, 16))
    swc().write_count = 0
    swc().curburst = 1000000
    assert _flush_page(vp, 0) == 16
    assert swc().write_count == 16 * PAGE
    assert swc().curburst == 1000000 - 16 * PAGE
    assert swapped(vp) == []
    # every FAIL page was finished: no busy, no soft busy, pip back to 0
    for m in pages_of(vp).values():
        assert not v.pages[m].flags & (lib.PG_BUSY | lib.PG_SBUSY)
    assert v.objects[obj].paging_in_progress == 0
    for b, n in hog:
        lib.swp_pager_freeswapspace(obj, b, n)


# ---- cleaning -----------------------------------------------------------------------

def _recycle(vp):
    """Free vp's resident pages: its swap outlives them."""
    obj = vmview().vnodes[vp].v_object
    vm_object_hold(obj)
    for m in resident_pages(obj):
        P.vm_page_busy_wait(m, True, "t")
        P.vm_page_protect(m, lib.VM_PROT_NONE)
        P.vm_page_free(m)
    vm_object_drop(obj)


def _cleaning_setup(nfiles=3, npages=32):
    vps = [make_file(f"cl{i}", npages) for i in range(nfiles)]
    open_gate()
    write_inactive()
    for vp in vps:
        _recycle(vp)
    return vps


def _object_marker_on_list():
    from smpvm.vm.vm_object import (vm_object_list_insert_head,
                                    vm_object_marker)
    om = vm_object_marker()
    lib.lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_insert_head(om)
    lib.lwkt_reltoken(lib.TOK_VMOBJ)
    return om


def test_cleaning_frees_non_resident_swap_and_resumes(vm):
    v = vmview()
    _cleaning_setup()
    assert v.vmg.vm_swap_cache_use == 96
    om = _object_marker_on_list()
    swc().maxlaunder = 40                   # budget: about one object
    S.vm_swapcache_cleaning(om)
    first = v.vmg.vm_swap_cache_use
    assert first < 96
    S.vm_swapcache_cleaning(om)             # resumes past the marker
    assert v.vmg.vm_swap_cache_use < first
    for _ in range(4):
        S.vm_swapcache_cleaning(om)
    assert v.vmg.vm_swap_cache_use == 0
    assert v.objects[om].type == lib.OBJT_MARKER


def _condfree_uncharged_setup():
    """A big object whose 9 swblocks all keep one resident page (condfree
    visits them and frees nothing), then two small objects with nothing
    resident.  The list: [marker, meta, big, cl0, cl1]."""
    v = vmview()
    big = make_file("big", 9 * 32)
    small = _cleaning_setup(nfiles=2, npages=32)
    obj = v.vnodes[big].v_object
    vm_object_hold(obj)
    for m in resident_pages(obj):
        if v.pages[m].pindex % 32:
            P.vm_page_busy_wait(m, True, "t")
            P.vm_page_protect(m, lib.VM_PROT_NONE)
            P.vm_page_free(m)
    vm_object_drop(obj)
    return big, small


def _cache_use_of(vp):
    v = vmview()
    obj = v.vnodes[vp].v_object
    vm_object_hold(obj)
    try:
        return sum(lib.swap_pager_meta_lookup(obj, p) != lib.SWAPBLK_NONE
                   for p in range(int(v.objects[obj].size)))
    finally:
        vm_object_drop(obj)


def _cleaning_due():
    """vm.swapcache.maxswappct at its smallest with a writing mark above
    zero, which the swap cache use is at or over: the daemon would be
    CLEANING, and the meter counts an idle pass."""
    swc().maxswappct = 0
    while S.SWAPMAX_WRITING() <= 0:
        swc().maxswappct += 1
    assert S.SWAPMAX_WRITING() <= vmview().vmg.vm_swap_cache_use


def _metered_pass(om):
    """One cleaning pass, metered as swapcached meters it."""
    v = vmview()
    S.clean_meter_begin(v)
    S.vm_swapcache_cleaning(om)
    S.clean_meter_end(v, 0)
    return v.cnt


@pytest.mark.vmconfig(kernel="seed", npages=1024)
def test_seed_cleaning_is_not_charged_for_the_swblocks_it_visits(vm):
    """(e), fixed by 08fb7a9da0: with a budget of 12, the big object's 9
    swblocks cost the pass nothing (condfree returns the 0 pages it freed),
    so the pass goes on and cleans cl0; the meter sees a pass that went on
    past its budget.  (Under the fixed charge -- vm.c swap_pager_condfree's
    BUG_CONDFREE_UNCHARGED return removed -- this test fails.)"""
    big, small = _condfree_uncharged_setup()
    om = _object_marker_on_list()
    swc().maxlaunder = 12
    c = _metered_pass(om)
    assert _cache_use_of(small[0]) == 0
    assert _cache_use_of(big) == 9 * 32
    assert c.clean_last_swblocks == 10 and c.clean_overruns == 1
    text = cleaning_cost_finding(c)
    assert text.startswith("cleaning pass visited 10 swblocks on a budget "
                           "of 12") and "(e), fixed by 08fb7a9da0" in text


@pytest.mark.vmconfig(npages=1024)
def test_fixed_cleaning_charges_each_swblock_and_stops_at_its_budget(vm):
    big, small = _condfree_uncharged_setup()
    om = _object_marker_on_list()
    swc().maxlaunder = 12
    c = _metered_pass(om)
    assert _cache_use_of(small[0]) == 32        # charged 9: out of budget
    assert c.clean_last_swblocks == 9 and c.clean_overruns == 0
    assert cleaning_cost_finding(c) is None


def test_a_lone_object_passed_over_below_the_iterator_is_no_liveness_failure(
        vm):
    """Upstream keeps an object's iterator (marker->size) until the walk
    works on another object.  With one object holding swap -- its one
    swblock kept by resident pages -- every later pass goes round the list
    and resumes that object past its last swblock: condfree visits
    nothing, frees nothing, and the per-object offset grows past
    cleanperobj.  The walk is not cut off from the objects (each pass
    reaches the lone one), so it is no liveness finding (it was one, on
    the fixed kernel, when idle meant "visited no swblock").  The swap is
    passed over until the walk works on another object."""
    v = vmview()
    lone = make_file("lone", 32)
    open_gate()
    write_inactive()
    obj = _object_of(lone)
    assert v.vmg.vm_swap_cache_use == 32
    _cleaning_due()
    om = _object_marker_on_list()
    c = _metered_pass(om)               # the swblock, its pages resident
    assert c.clean_last_swblocks == 1 and c.clean_last_freed == 0
    limit = max(LIVENESS_MIN_PASSES,
                LIVENESS_PASSES_PER_OBJECT * (v.vmg.vm_object_count + 1))
    for _ in range(limit):
        c = _metered_pass(om)
        assert (c.clean_last_swblocks, c.clean_last_freed,
                c.clean_pass_condfrees) == (0, 0, 1)
        assert _object_list()[0] == om          # round the list: the head
        assert (v.objects[om].backing_object, v.objects[om].size) == \
            (obj, lib.SWAP_META_PAGES)
    assert v.objects[om].backing_object_offset > swc().cleanperobj
    assert c.clean_idle_streak == 0 and c.clean_idle_max == 0
    assert cleaning_findings(swapcache_status(vm)) == []
    _recycle(lone)                      # freeable now, yet passed over
    _metered_pass(om)
    assert v.vmg.vm_swap_cache_use == 32
    other = make_file("other", 32)      # another object with swap
    write_inactive()
    _recycle(other)
    _metered_pass(om)                   # works on other: lone's iterator
    _metered_pass(om)                   # is reset, and lone is cleaned
    assert v.vmg.vm_swap_cache_use == 0


def test_cleaning_with_no_swap_in_use_is_no_liveness_failure(vm):
    """maxswappct 10 puts the writing mark (SWAPMAX(-10)) at 0: the daemon
    stays CLEANING with no swap cache in use, and its passes reach no
    object with swap because there is none -- no walk cut off from the
    objects (a hunt reported it as liveness on the fixed kernel)."""
    v = vmview()
    make_file("plain", 32)              # an object, no swap
    swc().maxswappct = 10
    assert S.SWAPMAX_WRITING() == 0 and v.vmg.vm_swap_cache_use == 0
    om = _object_marker_on_list()
    limit = max(LIVENESS_MIN_PASSES,
                LIVENESS_PASSES_PER_OBJECT * (v.vmg.vm_object_count + 1))
    for _ in range(limit + 1):
        c = _metered_pass(om)
        assert c.clean_pass_condfrees == 0
    assert c.clean_idle_streak == 0 and c.clean_idle_max == 0
    assert cleaning_findings(swapcache_status(vm)) == []


def test_liveness_needs_swap_kept_over_the_cleaning_mark(vm):
    """A streak of idle passes is stuck for good only with swap over the
    mark where cleaning starts (SWAPMAX(0)); a remainder under it (with
    maxswappct 10 the writing mark is 0, so one page in use keeps the
    daemon CLEANING) is nothing cleaning could be blamed for."""
    st = swapcache_status(vm)
    st["cleaning"].update(idle_max=1000, idle_use=1, idle_mark=0)
    st["swap"]["to_cleaning_above"] = 6
    assert cleaning_findings(st) == []
    st["cleaning"]["idle_use"] = 7
    (f,) = cleaning_findings(st)
    assert f.startswith("liveness: 1000 cleaning passes") and \
        "use 7 pages, writing mark 0, over the cleaning mark 6" in f


@pytest.mark.parametrize("kernel", ["seed", "fixed"])
def test_a_small_budget_behaves_alike_on_both(kernel, request):
    """With a budget of 3 the big object's scan alone ends the pass: the
    seed and fixed agree (so the pinned scenario above needs 12)."""
    request.node.add_marker(pytest.mark.vmconfig(kernel=kernel, npages=1024))
    request.getfixturevalue("vm")
    big, small = _condfree_uncharged_setup()
    om = _object_marker_on_list()
    swc().maxlaunder = 3
    c = _metered_pass(om)
    assert _cache_use_of(small[0]) == 32 and c.clean_overruns == 0


# ---- the daemon on the virtual clock -------------------------------------------

class Daemon:
    """swapcached in its own process; the test owns the clock."""

    def __init__(self, machine, sup):
        self.m = machine
        self.tid = sup.kproc_start("swapcached", S.vm_swapcached_thread)
        self.td = threads(machine.base)[self.tid]
        self.settle()

    def asleep(self):
        td = self.td
        return (td.state == lib.TDS_SLEEPING and
                td.wchan == lib.IDENT_SWAPCACHE and
                td.wake_tick > self.m.hdr.ticks)

    def settle(self):
        wait_for(self.asleep, what="swapcached asleep")

    def iteration(self):
        """Advance to the daemon's timeout and let one loop run."""
        lib.smpvm_clock_advance(self.td.wake_tick - self.m.hdr.ticks)
        wait_for(lambda: not self.asleep() or
                 self.td.wake_tick > self.m.hdr.ticks)
        self.settle()


@pytest.mark.vmconfig(clock="virtual")
def test_polls_at_10hz_enabled_and_5s_disabled_burst_accrual(vm):
    hz = vm.config.hz
    s = swc()
    s.data_enable = s.meta_enable = 0
    with Supervisor(vm) as sup:
        d = Daemon(vm, sup)
        assert d.td.wake_tick - vm.hdr.ticks == hz * 5     # disabled: 5 s
        s.data_enable = 1
        s.accrate = 1000
        s.maxburst = 1_000_000
        s.curburst = 2_000_000                # above maxburst: no accrual
        d.iteration()                          # the 5 s sleep ends
        assert d.td.wake_tick - vm.hdr.ticks == hz // 10  # enabled: 10 Hz
        d.iteration()
        assert s.curburst == 2_000_000
        s.curburst = 999_950
        d.iteration()
        assert s.curburst == 1_000_000         # +accrate/10, capped
        s.curburst = 0
        for k in range(1, 4):
            d.iteration()
            assert s.curburst == 100 * k       # accrate/10 per iteration
        sup.shutdown(hooks=[S.shutdown_swapcache])


@pytest.mark.parametrize("kernel,adj", [("seed", 5), ("fixed", 10)])
def test_state_hysteresis_75_70_or_65(kernel, adj, request):
    """WRITING above SWAPMAX(0) -> CLEANING, back below SWAPMAX(-5) in the
    seed, SWAPMAX(-10) since 08fb7a9da0."""
    request.node.add_marker(pytest.mark.vmconfig(kernel=kernel,
                                                 clock="virtual"))
    vm = request.getfixturevalue("vm")
    v = vmview()
    _cleaning_setup(nfiles=2, npages=32)         # 64 blocks of cache
    s = swc()
    s.accrate = 1
    s.curburst = 0
    s.minburst = 1 << 40
    use = v.vmg.vm_swap_cache_use
    with Supervisor(vm) as sup:
        d = Daemon(vm, sup)
        # cleaning frees nothing: a budget of 0 (and since 0bf8126181,
        # which charges objects to maxscan, a scan budget of 1: with
        # maxlaunder 0 alone condfree still frees a first swblock)
        s.maxlaunder = 0
        s.maxscan = 1
        # ceiling just below the use: WRITING -> CLEANING
        s.maxswappct = 100 * (use - 1) // v.vmg.vm_swap_max
        d.iteration()
        assert s.state == S.SWAPC_CLEANING
        # use is not below SWAPMAX(-adj) yet: stays CLEANING
        s.maxswappct = 100 * use // v.vmg.vm_swap_max + adj
        d.iteration()
        assert s.state == S.SWAPC_CLEANING
        s.maxswappct += 2                      # now below the -adj mark
        d.iteration()
        assert s.state == S.SWAPC_WRITING
        sup.shutdown(hooks=[S.shutdown_swapcache])


@pytest.mark.vmconfig(clock="virtual")
def test_bursting_recovering_and_minburst(vm):
    vp = make_file("br", 64)
    s = swc()
    s.accrate = 10 * PAGE                      # a pass needs 10 pages worth
    s.maxburst = 1 << 40
    s.minburst = 30 * PAGE
    s.curburst = 10 * PAGE                     # accrate: enough for a pass
    with Supervisor(vm) as sup:
        d = Daemon(vm, sup)
        s.hysteresis = 0                       # the daemon set them at start
        vmview().vmg.vm_swapcache_inactive_heuristic = 0
        d.iteration()                          # writes one 16-page cluster
        assert len(swapped(vp)) == 16
        assert s.burst == S.SWAPB_RECOVERING   # curburst <= 0
        got = len(swapped(vp))
        vmview().vmg.vm_swapcache_inactive_heuristic = 0
        before = s.curburst
        while s.burst == S.SWAPB_RECOVERING:
            before = s.curburst
            d.iteration()
            if s.burst == S.SWAPB_RECOVERING:
                assert len(swapped(vp)) == got     # recovering: no writes
                assert s.curburst == before + PAGE  # accrate/10 accrued
        # the pass ran in the iteration whose accrual crossed minburst
        assert before <= s.minburst < before + PAGE
        assert s.burst == S.SWAPB_BURSTING     # wrote in the same iteration
        assert len(swapped(vp)) > got
        sup.shutdown(hooks=[S.shutdown_swapcache])


@pytest.mark.vmconfig(clock="virtual")
def test_shutdown_stops_the_daemon_at_once(vm):
    s = swc()
    with Supervisor(vm) as sup:
        d = Daemon(vm, sup)
        assert d.td.wake_tick - vm.hdr.ticks == vm.config.hz // 10
        killed = sup.shutdown(grace=5, hooks=[S.shutdown_swapcache])
        assert killed == []                    # it returned by itself
    assert s.read_enable == s.data_enable == s.meta_enable == 0


# ---- sysctls --------------------------------------------------------------------

@SEED
def test_sysctls_take_what_the_kernel_takes_and_mark_kernel_defaults(vm):
    """SYSCTL_INT nodes are C ints: any value is taken, wrapped to 32 bits
    (sysctl(8) stores (int)strtol); SYSCTL_QUAD nodes take any int64.  The
    nodes later commits added are not the seed's."""
    assert sysctl.sysctl_get(vm, "vm.swapcache.maxlaunder") == 256
    for name in ("maxscan", "cleanperobj", "min_hysteresis"):
        with pytest.raises(Exception, match="unknown oid"):
            sysctl.sysctl_get(vm, f"vm.swapcache.{name}")
    sysctl.sysctl_set(vm, "vm.swapcache.maxswappct", "101")
    assert swc().maxswappct == 101
    sysctl.sysctl_set(vm, "vm.swapcache.read_enable", "2")
    assert swc().read_enable == 2
    sysctl.sysctl_set(vm, "vm.swapcache.maxlaunder", "-1")
    assert swc().maxlaunder == -1
    sysctl.sysctl_set(vm, "vm.swapcache.hysteresis", str(1 << 31))
    assert swc().hysteresis == -(1 << 31)           # INT_MAX + 1 wraps
    sysctl.sysctl_set(vm, "vm.swapcache.maxlaunder", str((1 << 32) + 7))
    assert swc().maxlaunder == 7
    sysctl.sysctl_set(vm, "vm.swapcache.curburst", str(-(1 << 63)))
    assert swc().curburst == -(1 << 63)
    with pytest.raises(Exception, match="out of range"):   # past strtoq
        sysctl.sysctl_set(vm, "vm.swapcache.curburst", str(1 << 63))
    sysctl.sysctl_set(vm, "vm.swapcache.accrate", "12345")
    assert swc().accrate == 12345
    node = sysctl.lookup("vm.swapcache.accrate")
    assert node.default(vm) == 100000


def test_the_daemon_computes_with_c_ints():
    """SWAPMAX and the accrual divide as C does (truncation), and int
    arithmetic wraps: the values C5 lets a user set."""
    assert S.c_div(-7, 2) == -3 and S.c_div(7, -2) == -3
    assert S.c_int(1 << 31) == -(1 << 31) and S.c_int(-(1 << 31) - 1) == \
        (1 << 31) - 1
    assert S.c_int64((1 << 63) + 5) == -(1 << 63) + 5


@pytest.mark.vmconfig(kernel="seed")
def test_kernel_profile_is_the_seed_exactly(vm):
    S.vm_swapcache_boot(vm, "kernel")
    for k, val in S.KERNEL_DEFAULTS.items():
        assert getattr(swc(), k) == val


# ---- the seed's cleaning defects, provoked at its own preemption point ----------

def _object_of(vp):
    return vmview().vnodes[vp].v_object


def _marker_after_meta():
    """The cleaning marker placed right after the meta device's object, so
    the next object the pass reaches is the first file's."""
    from smpvm.vfs.vnode import vn_meta
    from smpvm.vm.vm_object import (vm_object_list_insert_after,
                                    vm_object_marker)
    om = vm_object_marker()
    lib.lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_insert_after(_object_of(vn_meta()), om)
    lib.lwkt_reltoken(lib.TOK_VMOBJ)
    return om


def _object_list():
    from smpvm.vm.vm_object import vm_object_list_first, vm_object_list_next
    out = []
    lib.lwkt_gettoken(lib.TOK_VMOBJ)
    o = vm_object_list_first()
    while o >= 0 and len(out) < 10000:
        out.append(o)
        o = vm_object_list_next(o)
    lib.lwkt_reltoken(lib.TOK_VMOBJ)
    return out


_victim_objects = []


def _victim_setup():
    vps = _cleaning_setup(nfiles=2, npages=32)
    _victim_objects[:] = [_object_of(vp) for vp in vps]
    for vp in vps:
        sc.sys_close(vp)            # unlink reclaims at once
    return vps


@pytest.mark.vmconfig(kernel="seed")
def test_seed_yield_before_hold_uses_a_freed_object(vm):
    """7.4 (a), the crash fixed by 739be60bf6: the object reached by the
    pass is freed during the yield that precedes the hold."""
    _victim_setup()
    om = _marker_after_meta()
    with KillAtFirstYield("cl0") as k:
        with pytest.raises(Panic, match="use after free"):
            S.vm_swapcache_cleaning(om)
    assert k.fired


def test_fixed_holds_the_object_across_the_yield(vm):
    v = vmview()
    vps = _victim_setup()
    om = _marker_after_meta()
    with KillAtFirstYield("cl0") as k:
        S.vm_swapcache_cleaning(om)
    assert k.fired
    assert _object_of(vps[1]) in _object_list()        # the list is whole
    assert v.vmg.vm_swap_cache_use == 0                 # cl1 was cleaned


@pytest.mark.vmconfig(kernel="seed")
def test_seed_reinserts_the_marker_before_an_unlinked_object(vm):
    """(b), fixed by f5f6d24720: the budget runs out right after the yield
    in which cl0 is unlinked and freed, and the marker goes back in before
    cl0.  TAILQ_INSERT_BEFORE splices through cl0's stale tqe_prev, which
    is the marker itself: the list stays whole, the marker ends linked to
    itself off the list, and no later pass ever reaches an object again.
    (With vm.c's TAILQ_REMOVE resetting the links, this test fails.)"""
    from smpvm.vfs.vnode import vn_meta
    from smpvm.vm.vm_invariants import check_object_list
    v = vmview()
    vps = _victim_setup()
    om = _marker_after_meta()
    swc().maxlaunder = 1
    with KillAtFirstYield("cl0"):
        S.vm_swapcache_cleaning(om)
    assert _object_list() == [_object_of(vn_meta()), _object_of(vps[1])]
    assert v.objects[om].list_next == om == v.objects[om].list_prev
    assert any("linked to itself" in b for b in check_object_list(v))
    swc().maxlaunder = 1000
    _cleaning_due()
    for _ in range(3):
        c = _metered_pass(om)
        assert c.clean_last_swblocks == 0 and c.clean_last_freed == 0
    assert v.vmg.vm_swap_cache_use == 32 and c.clean_idle_streak == 3
    # the use the streak began with, as the liveness finding reports it
    assert c.clean_idle_start_use == 32 == c.clean_idle_use
    assert c.clean_idle_start_mark == S.SWAPMAX_WRITING()


@pytest.mark.vmconfig(kernel="seed", check="all")
def test_seed_marker_reinsert_writes_into_the_freed_object(vm):
    """(b) on a checked machine: the re-insert writes cl0's tqe_prev after
    cl0 was freed -- a use-after-free report."""
    from smpvm.race import report
    _victim_setup()
    om = _marker_after_meta()
    swc().maxlaunder = 1
    with KillAtFirstYield("cl0"):
        S.vm_swapcache_cleaning(om)
    uaf = [r for r in report.reports(vm)
           if r["type_id"] == lib.RR_USE_AFTER_FREE]
    assert uaf and "TAILQ_INSERT_BEFORE of freed object" in uaf[0]["message"]


def test_fixed_reinserts_the_marker_safely(vm):
    """(b) since f5f6d24720: the marker is only ever moved past its own
    successor (vm_swapcache_movemarker), so an object unlinked while the
    tokens were lost leaves it where it was, on the list."""
    from smpvm.vfs.vnode import vn_meta
    from smpvm.vm.vm_invariants import check_object_list
    v = vmview()
    vps = _victim_setup()
    om = _marker_after_meta()
    swc().maxlaunder = 1
    with KillAtFirstYield("cl0"):
        S.vm_swapcache_cleaning(om)
    objs = _object_list()
    assert _object_of(vn_meta()) in objs and _object_of(vps[1]) in objs
    assert om in objs and check_object_list(v) == []
    swc().maxlaunder = 1000
    _metered_pass(om)
    assert v.vmg.vm_swap_cache_use == 0                 # cl1 was cleaned


# (c): the skip path steps from an object that left the list.  In the seed
# kernel (a)'s yield comes first (the object is freed before the hold, see
# above); with (a) fixed -- the yield after the hold -- the object is
# unlinked during the yield, freed at the pass's drop, and its links read.
NO_A = lib.BUGS_SEED & ~lib.BUG_YIELD_BEFORE_HOLD


@pytest.mark.parametrize("bugs", [NO_A, 0])
@pytest.mark.vmconfig(check="all")
def test_the_skip_path_steps_from_an_object_that_left_the_list(vm, bugs):
    """(c), fixed by f5f6d24720: the seed's walk (put back on the fixed
    kernel by its BUG_CLEAN_MARKERS bit) reads TAILQ_NEXT of the freed cl0
    -- a use-after-free report on a checked machine -- and carries on
    along its stale link to cl1.  Fixed: f5f6d24720's walk always reads
    the next object from its marker.  (Make that walk step from the object
    it processed and this test fails.)"""
    from smpvm.race import report
    v = vmview()
    v.raw.vmg.bugs = bugs
    _victim_setup()
    om = _marker_after_meta()
    with KillAtFirstYield("cl0"):
        S.vm_swapcache_cleaning(om)
    # cl1 was cleaned (the seed's range free leaks one block of it: (g))
    assert v.vmg.vm_swap_cache_use == (1 if bugs else 0)
    uaf = [r["message"] for r in report.reports(vm)
           if r["type_id"] == lib.RR_USE_AFTER_FREE]
    assert uaf == (["use after free: TAILQ_NEXT of freed object "
                    f"{_victim_objects[0]}"] if bugs else [])


@pytest.mark.parametrize("kernel", ["seed", "fixed"])
def test_other_markers_are_held_by_the_seed_and_skipped_free_by_fixed(
        kernel, request):
    """(d), fixed by f5f6d24720: the seed holds and drops other threads'
    OBJT_MARKER objects and charges its budget for them; f5f6d24720's walk
    hops over them at no charge (so a budget of 2 still reaches cl0 past
    three markers).  (Drop the skip, or add it to the seed, and this test
    fails.)"""
    request.node.add_marker(pytest.mark.vmconfig(kernel=kernel))
    vm = request.getfixturevalue("vm")
    v = vmview()
    _cleaning_setup(nfiles=1, npages=32)
    om = _marker_after_meta()
    others = _foreign_markers(vm, om, 3)
    held = []
    cb = ffi.callback("void(int, int)", lambda op, lid: held.extend(
        o for o in others if v.raw.objects[o].hold_count))
    swc().maxlaunder = 2
    lib.smpvm_set_hook(cb)
    try:
        S.vm_swapcache_cleaning(om)
    finally:
        lib.smpvm_set_hook(ffi.NULL)
    if kernel == "seed":
        assert held and v.vmg.vm_swap_cache_use == 32
    else:
        assert not held and v.vmg.vm_swap_cache_use == 0


def _foreign_markers(machine, after, n):
    """n object markers of other (pretend) threads, linked after `after`."""
    v = vmview()
    out = []
    lib.lwkt_gettoken(lib.TOK_VMOBJ)
    for k in range(n):
        o = machine.config.nobjects + machine.config.maxthreads - 1 - k
        ob = v.raw.objects[o]
        ob.state, ob.type, ob.handle = 1, lib.OBJT_MARKER, -1
        lib.vm_object_list_insert_after(after, o)
        out.append(o)
    lib.lwkt_reltoken(lib.TOK_VMOBJ)
    return out


@pytest.mark.parametrize("kernel", ["seed", "fixed"])
def test_condfree_runs_with_vmobj_token_held_only_in_the_seed(
        kernel, request, monkeypatch):
    """(f), fixed by 08fb7a9da0 and 27b6ee0313: the seed scans swblocks
    with vmobj_token held (every object-list user waits); fixed releases
    it around condfree.  (Drop the release and this test fails.)"""
    from smpvm.vm import swap_pager
    request.node.add_marker(pytest.mark.vmconfig(kernel=kernel))
    request.getfixturevalue("vm")
    _cleaning_setup(nfiles=1, npages=32)
    om = _object_marker_on_list()
    seen = []
    real = swap_pager.swap_pager_condfree

    def condfree(o, basei, count):
        seen.append(bool(lib.lwkt_token_held(lib.TOK_VMOBJ)))
        return real(o, basei, count)
    monkeypatch.setattr(swap_pager, "swap_pager_condfree", condfree)
    S.vm_swapcache_cleaning(om)
    assert seen and set(seen) == {kernel == "seed"}


@pytest.mark.vmconfig(clock="virtual")
def test_a_pass_needs_curburst_of_at_least_accrate(vm):
    vp = make_file("acc", 32)
    s = swc()
    s.accrate = 100 * PAGE
    s.maxburst = 1 << 40
    s.curburst = 50 * PAGE                 # half a second's worth
    with Supervisor(vm) as sup:
        d = Daemon(vm, sup)
        s.hysteresis = 0
        vmview().vmg.vm_swapcache_inactive_heuristic = 0
        for _ in range(4):                 # +10 pages per iteration: < 100
            d.iteration()
            assert swapped(vp) == [] and vmview().cnt.writing_passes == 0
        s.curburst = 95 * PAGE
        d.iteration()                      # 95 + 10 >= 100: a pass
        assert vmview().cnt.writing_passes == 1 and swapped(vp)
        sup.shutdown(hooks=[S.shutdown_swapcache])
