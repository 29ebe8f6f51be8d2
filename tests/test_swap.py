"""The swap pager: allocator, metadata, accounting, putpages, invalidation,
condfree, and the seed's swap defects against the fixed variant."""
import os

import pytest

from smpvm.layout import ffi, lib
from smpvm.vm import vm_page as P
from smpvm.vm.swap_pager import swap_pager_putpages, swapdev_path
from smpvm.vm.vm_object import (vm_object_allocate, vm_object_drop,
                                vm_object_hold, vm_object_pip_add)
from smpvm.vm.vmview import vmview

NONE = lib.SWAPBLK_NONE


def accounting_ok():
    """Reference 7.1 item 9: entries == cache+anon == max-size == blist."""
    v = vmview()
    g = v.vmg
    entries = 0
    for s in range(g.nswblocks):
        sb = v.swblocks[s]
        if sb.swb_object >= 0:
            n = sum(1 for i in range(32) if sb.swb_pages[i] != NONE)
            assert n == sb.swb_count
            entries += n
    used = g.vm_swap_max - g.vm_swap_size
    return entries, g.vm_swap_cache_use + g.vm_swap_anon_use, used


@pytest.fixture
def obj(vm):
    o = vm_object_allocate(lib.OBJT_VNODE, 256)
    vm_object_hold(o)
    yield o
    vm_object_drop(o)


def test_first_dmmax_blocks_are_never_allocated(vm, obj):
    got = [lib.swp_pager_getswapspace(obj, 16) for _ in range(4)]
    assert all(b >= lib.SWB_DMMAX for b in got)
    assert all(b // 32 == (b + 15) // 32 for b in got)   # inside one leaf
    for b in got:
        lib.swp_pager_freeswapspace(obj, b, 16)


def test_meta_build_ctl_and_accounting(vm, obj):
    v = vmview()
    b1 = lib.swp_pager_getswapspace(obj, 1)
    lib.swp_pager_meta_build(obj, 5, b1)
    assert v.objects[obj].swblock_count == 1
    assert lib.swap_pager_meta_lookup(obj, 5) == b1
    b2 = lib.swp_pager_getswapspace(obj, 1)
    lib.swp_pager_meta_build(obj, 5, b2)             # frees b1 at once
    assert lib.swap_pager_meta_lookup(obj, 5) == b2
    e, u, used = accounting_ok()
    assert e == u == used == 1
    assert v.vmg.vm_swap_cache_use == 1              # a VNODE object
    assert lib.swp_pager_meta_ctl(obj, 5, lib.SWM_POP) == b2
    assert v.objects[obj].swblock_count == 0         # emptied: destroyed
    lib.swp_pager_freeswapspace(obj, b2, 1)
    assert accounting_ok() == (0, 0, 0)


def test_meta_ctl_free_returns_none(vm, obj):
    b = lib.swp_pager_getswapspace(obj, 1)
    lib.swp_pager_meta_build(obj, 40, b)
    assert lib.swp_pager_meta_ctl(obj, 40, lib.SWM_FREE) == NONE
    assert accounting_ok() == (0, 0, 0)


def _fill(obj, first, n):
    blk = lib.swp_pager_getswapspace(obj, n)
    for i in range(n):
        lib.swp_pager_meta_build(obj, first + i, blk + i)


def test_fixed_kernel_frees_every_block_of_a_range(vm, obj):
    _fill(obj, 0, 16)
    _fill(obj, 32, 8)
    lib.swap_pager_freespace(obj, 0, 64)
    assert accounting_ok() == (0, 0, 0)
    assert vmview().vmg.cnt.range_freed == 24


@pytest.mark.vmconfig(kernel="seed")
def test_seed_leaks_the_last_block_of_each_emptied_swblock(vm, obj):
    """7.4 (g), fixed by 0301c40799: entries are gone but one block per
    emptied swblock stays allocated and counted in vm_swap_cache_use."""
    _fill(obj, 0, 16)
    _fill(obj, 32, 8)
    lib.swap_pager_freespace(obj, 0, 64)
    entries, use, used = accounting_ok()
    assert entries == 0
    assert use == used == 2                           # two swblocks emptied


def _swap_out(obj, pindexes):
    """Write pages of obj at pindexes to swap as swapcached would: busy,
    soft-busy, release hard busy, pip, putpages."""
    v = vmview()
    pages = []
    for p in pindexes:
        m = P.vm_page_alloc(obj, p, lib.VM_ALLOC_NORMAL)
        v.page_bytes(m)[:] = bytes([p % 251]) * lib.PAGE_SIZE
        v.pages[m].valid = lib.VM_PAGE_BITS_ALL
        P.vm_page_io_start(m)
        P.vm_page_wakeup(m)
        pages.append(m)
    vm_object_pip_add(obj, len(pages))
    rtvals = [0] * len(pages)
    swap_pager_putpages(obj, pages, False, rtvals)
    return pages, rtvals


def test_putpages_writes_sets_swapped_and_releases_everything(vm, obj):
    v = vmview()
    pages, rtvals = _swap_out(obj, range(16))
    assert rtvals == [lib.VM_PAGER_PEND] * 16
    assert v.objects[obj].paging_in_progress == 0
    fd = os.open(swapdev_path(vm), os.O_RDONLY)
    try:
        for p, m in enumerate(pages):
            pg = v.pages[m]
            assert pg.flags & lib.PG_SWAPPED
            assert not pg.flags & (lib.PG_SWAPINPROG | lib.PG_SBUSY |
                                   lib.PG_BUSY)
            blk = lib.swap_pager_meta_lookup(obj, p)
            assert os.pread(fd, lib.PAGE_SIZE, blk * lib.PAGE_SIZE) == \
                bytes([p % 251]) * lib.PAGE_SIZE
    finally:
        os.close(fd)
    assert v.cnt.swap_write_pages == 16 and v.cnt.swap_write_clusters == 1


def test_putpages_never_crosses_a_stripe(vm, obj):
    # leave blocks 32..39 allocated so the next 16-run would straddle 64
    hole = lib.swp_pager_getswapspace(obj, 8)
    assert hole == 32
    _swap_out(obj, range(16))
    blks = [lib.swap_pager_meta_lookup(obj, p) for p in range(16)]
    for a, b in zip(blks, blks[1:]):
        if b == a + 1:
            assert b % 32 != 0
    lib.swp_pager_freeswapspace(obj, hole, 8)
    e, u, used = accounting_ok()
    assert e == u == used == 16


def test_write_error_destroys_the_swap_copy(vm, obj):
    from smpvm.vm import swap_pager
    swap_pager.swap_io_fault["fn"] = lambda op, blk, n: 5 if op == "write" \
        else None
    try:
        pages, rtvals = _swap_out(obj, range(4))
    finally:
        swap_pager.swap_io_fault["fn"] = None
    v = vmview()
    assert rtvals == [lib.VM_PAGER_PEND] * 4
    for p, m in enumerate(pages):
        assert not v.pages[m].flags & lib.PG_SWAPPED
        assert lib.swap_pager_meta_lookup(obj, p) == NONE
    assert accounting_ok() == (0, 0, 0)
    assert v.cnt.swap_write_errors == 1


def test_unswapped_releases_only_when_swapped(vm, obj):
    v = vmview()
    pages, _ = _swap_out(obj, [3])
    m = pages[0]
    P.vm_page_busy_wait(m, False, "t")
    lib.swap_pager_unswapped(m)
    assert not v.pages[m].flags & lib.PG_SWAPPED
    assert lib.swap_pager_meta_lookup(obj, 3) == NONE
    assert v.cnt.unswapped == 1
    # metadata without PG_SWAPPED (in-flight write): unswapped does nothing
    b = lib.swp_pager_getswapspace(obj, 1)
    lib.swp_pager_meta_build(obj, 3, b)
    lib.swap_pager_unswapped(m)
    assert lib.swap_pager_meta_lookup(obj, 3) == b
    P.vm_page_wakeup(m)


def _condfree_setup(obj):
    """Three swblocks: 0..31 has a resident page, 32..63 and 64..95 not."""
    pages, _ = _swap_out(obj, range(0, 32))
    for m in pages[1:]:
        P.vm_page_busy_wait(m, True, "t")
        P.vm_page_free(m)
    _fill(obj, 32, 16)
    _fill(obj, 64, 16)
    return pages[0]


def test_condfree_frees_whole_non_resident_swblocks(vm, obj):
    keep = _condfree_setup(obj)
    basei = ffi.new("uint64_t *", 0)
    n = lib.swap_pager_condfree(obj, basei, 100)
    assert n == 32                                   # pages freed
    assert basei[0] == 96
    assert lib.swap_pager_meta_lookup(obj, 0) != NONE  # resident: kept
    assert lib.swap_pager_meta_lookup(obj, 40) == NONE
    assert vmview().pages[keep].flags & lib.PG_SWAPPED


def test_condfree_budget_fixed_never_returns_less_than_one(vm, obj):
    _condfree_setup(obj)
    basei = ffi.new("uint64_t *", 0)
    # count 0: swblock budget 0 runs out at once
    assert lib.swap_pager_condfree(obj, basei, 0) >= 1


@pytest.mark.vmconfig(kernel="seed")
def test_seed_condfree_returns_minus_one_when_swblock_budget_runs_out(
        vm, obj):
    """7.4 (e), fixed by 08fb7a9da0: the caller then ADDS to its budget."""
    _condfree_setup(obj)
    basei = ffi.new("uint64_t *", 0)
    assert lib.swap_pager_condfree(obj, basei, 0) == -1
