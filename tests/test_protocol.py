"""The protocol checks (checked machines, checker "protocol"): each rule of
the primitives that no lock states is caught at the moment a flag is
published against it -- a purpose-built violation per report type, and the
same steps done right report nothing.  That the fixed kernel breaks none of
them is shown by the checked schedules of test_replay.py and the hunt."""
import pytest

from smpvm.layout import lib
from smpvm.race import report
from smpvm.vm.vmview import addressof, vmview

checked = pytest.mark.vmconfig(check="all")


def _page(vm, busy=False):
    """(object, page): a vnode-like object with one resident page, busied
    (hard) when busy."""
    o = lib.vm_object_allocate(lib.OBJT_DEFAULT, 4)
    lib.vm_object_hold(o)
    m = lib.vm_page_alloc(o, 0, lib.VM_ALLOC_NORMAL)
    if not busy:
        lib.vm_page_wakeup(m)
    lib.vm_object_drop(o)
    return o, m


def _flags(vm, m):
    return addressof(vmview(vm).pages[m], "flags")


def _types(vm):
    return [r["type_id"] for r in report.reports(vm)]


@checked
def test_swap_io_on_a_page_that_is_not_soft_busy(vm):
    o, m = _page(vm, busy=True)
    lib.atomic_set_int(_flags(vm, m), lib.PG_SWAPINPROG)   # no io_start
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_SWAPIO_UNBUSY and r["index"] == m
    assert r["type"] == "protocol: swap I/O without soft busy"
    assert "test_protocol.py" in r["a"]["site"] and \
        "atomic_set_int" in r["a"]["site"]
    assert f"page {m}" in report.format_report(r)
    # done right: soft-busy first
    o2, m2 = _page(vm, busy=True)
    lib.vm_page_io_start(m2)
    lib.atomic_set_int(_flags(vm, m2), lib.PG_SWAPINPROG)
    assert _types(vm) == [lib.RR_SWAPIO_UNBUSY]


@checked
def test_swap_io_on_a_page_with_a_writable_mapping(vm):
    o, m = _page(vm, busy=True)
    lib.pmap_enter(m, 1)
    lib.vm_page_io_start(m)                 # no vm_page_protect(READ)
    lib.atomic_set_int(_flags(vm, m), lib.PG_SWAPINPROG)
    assert _types(vm) == [lib.RR_SWAPIO_WRITABLE]
    # and a writable mapping made while the write is in flight
    o2, m2 = _page(vm, busy=True)
    lib.pmap_enter(m2, 1)
    lib.vm_page_protect(m2, lib.VM_PROT_READ)
    lib.vm_page_io_start(m2)
    lib.atomic_set_int(_flags(vm, m2), lib.PG_SWAPINPROG)  # done right
    assert _types(vm) == [lib.RR_SWAPIO_WRITABLE]
    lib.pmap_enter(m2, 1)
    rs = [r for r in report.reports(vm)
          if r["type_id"] == lib.RR_SWAPIO_WRITABLE]
    assert len(rs) == 2 and rs[1]["index"] == m2
    assert "pmap_enter" in rs[1]["a"]["site"]


@checked
def test_pg_swapped_with_no_swap_block_behind_it(vm):
    o, m = _page(vm, busy=True)
    lib.atomic_set_int(_flags(vm, m), lib.PG_SWAPPED)
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_SWAPPED_NOSWAP and r["index"] == m
    assert "no swap block" in r["message"]
    # done right: the block recorded first
    o2, m2 = _page(vm, busy=True)
    lib.vm_object_hold(o2)
    blk = lib.swp_pager_getswapspace(o2, 1)
    assert blk != lib.SWAPBLK_NONE
    lib.swp_pager_meta_build(o2, 0, blk)
    lib.atomic_set_int(_flags(vm, m2), lib.PG_SWAPPED)
    lib.vm_object_drop(o2)
    assert _types(vm) == [lib.RR_SWAPPED_NOSWAP]


@checked
def test_a_range_free_takes_the_block_from_under_a_pg_swapped_page(vm):
    """The other side of the rule: a range free (truncation, condfree)
    clears the block of a page still resident with PG_SWAPPED (H2: the
    page was inserted while the free blocked)."""
    o, m = _page(vm, busy=True)
    lib.vm_object_hold(o)
    lib.swp_pager_meta_build(o, 0, lib.swp_pager_getswapspace(o, 1))
    lib.atomic_set_int(_flags(vm, m), lib.PG_SWAPPED)
    assert _types(vm) == []
    lib.swap_pager_freespace(o, 0, 4)
    lib.vm_object_drop(o)
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_SWAPPED_NOSWAP and r["index"] == m
    assert "range free" in r["message"] and \
        "swp_pager_meta_free" in r["a"]["site"]
    # done right: the page unswapped first; a block with no page is freed
    o2, m2 = _page(vm, busy=True)
    lib.vm_object_hold(o2)
    lib.swp_pager_meta_build(o2, 0, lib.swp_pager_getswapspace(o2, 1))
    lib.swp_pager_meta_build(o2, 1, lib.swp_pager_getswapspace(o2, 1))
    lib.atomic_set_int(_flags(vm, m2), lib.PG_SWAPPED)
    lib.swap_pager_unswapped(m2)
    lib.swap_pager_freespace(o2, 0, 4)
    lib.vm_object_drop(o2)
    assert _types(vm) == [lib.RR_SWAPPED_NOSWAP]


@checked
def test_pg_wanted_cleared_and_no_wakeup_before_blocking(vm):
    o, m = _page(vm, busy=True)
    lib.atomic_set_int(_flags(vm, m), lib.PG_WANTED)
    lib.atomic_clear_int(_flags(vm, m), lib.PG_BUSY | lib.PG_WANTED)
    assert _types(vm) == []                 # not yet: a wakeup may follow
    lib.lwkt_yield()                        # blocks owing it
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_LOST_WAKEUP and r["index"] == m
    assert "lwkt_yield came first" in r["message"]
    assert "atomic_clear_int" in r["a"]["site"]
    # done right: the wakeup follows the clear
    o2, m2 = _page(vm, busy=True)
    lib.atomic_set_int(_flags(vm, m2), lib.PG_WANTED)
    lib.atomic_clear_int(_flags(vm, m2), lib.PG_BUSY | lib.PG_WANTED)
    lib.wakeup(lib.vm_page_kva(m2))
    lib.lwkt_yield()
    assert _types(vm) == [lib.RR_LOST_WAKEUP]


@pytest.mark.vmconfig(check="fields,witness,hb")
def test_the_protocol_checker_can_be_left_out(vm):
    o, m = _page(vm, busy=True)
    lib.atomic_set_int(_flags(vm, m), lib.PG_SWAPINPROG | lib.PG_SWAPPED)
    assert report.reports(vm) == []


@checked
def test_coverage_counts_alias_pairs_and_checked_accesses(vm):
    """Two threads' accesses to one field instance make an alias pair; the
    checked accesses are counted by site."""
    from smpvm.kern.kproc import Supervisor

    o, m = _page(vm)
    v = vmview(vm)
    lib.vm_object_hold(o)
    v.objects[o].generation = 1
    lib.vm_object_drop(o)
    with Supervisor(vm) as sup:
        sup.kproc_start("other", _bump_generation, o)
        assert sup.wait(10) == "exited"
    cov = report.coverage(vm)
    pairs = [k for k in cov["alias_pairs"]
             if k[0] == "vm_object.generation"]
    assert pairs and pairs[0][1] in ("w>w", "w>r")
    assert "test_protocol.py" in pairs[0][2] and "_bump_generation" in \
        pairs[0][3]
    assert any("test_coverage_counts" in s for s in cov["points"])


def _bump_generation(machine, o):
    v = vmview(machine)
    lib.vm_object_hold(o)
    v.objects[o].generation += 1
    lib.vm_object_drop(o)
