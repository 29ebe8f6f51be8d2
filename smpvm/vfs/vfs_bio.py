"""The buffer-level I/O path (sys/kern/vfs_bio.c, vfs/vnode pager).

smpvm has no long-lived buffer cache: a buffer is the run of pages of one
read, busied for the I/O and released to the page queues afterwards, as
vfs_vmio_release does (a page that was on no queue goes to the INACTIVE
tail, bumping the swapcache heuristic; others are marked referenced).

Reads go through vn_strategy: vn_cache_strategy diverts a buffer to the
swap device when vm.swapcache.read_enable is set, the buffer is
page-aligned and not a pbuf, and every page of it is PG_SWAPPED and none is
already valid (a valid page would be a bogus_page).  Otherwise the vnode
pager reads the invalid pages from the backing file.

Writes are write-through, page by page, as bwrite: the page is filled, then
vfs_busy_pages write-protects it (folding pte-modified bits), unswaps it
(swap_pager_unswapped), writes it to the backing file and cleans it.
"""
import os

from smpvm.layout import ffi, lib
from smpvm.vm.swap_pager import (io_wait, swap_pager_strategy_read,
                                 swap_pager_unswapped)
from smpvm.vm.vm_page import (pmap_clear_modify, vm_page_alloc,
                              vm_page_deactivate, vm_page_dirty,
                              vm_page_lookup, vm_page_lookup_busy_wait,
                              vm_page_protect, vm_page_undirty,
                              vm_page_unqueue_nowakeup, vm_page_wakeup,
                              vm_wait)
from smpvm.vfs.vnode import backing_fd
from smpvm.vm.vmview import addressof, vmview

BUF_PAGES = 4           # a buffer is 16 KiB: 4 pages, aligned
_PAGE = lib.PAGE_SIZE
_ALL = lib.VM_PAGE_BITS_ALL


class ReadStats:
    """What one read did, for the verifier: pages served from the SSD and
    pages the swap pager zero-filled (a coherence failure)."""
    __slots__ = ("diverted", "zero_filled", "error")

    def __init__(self):
        self.diverted = []
        self.zero_filled = []
        self.error = 0


def getpages(obj, start, n, also_m_busy=False):
    """Busy pages [start, start+n) of obj, allocating absent ones.

    obj is held by the caller.  Pages are busied in ascending pindex order
    (so two buffers never deadlock), with also_m_busy FALSE as allocbuf
    does: a soft-busy (in-flight swap write) page is taken anyway.  Returns
    the pages, or None after releasing them when memory ran out (the caller
    vm_wait()s and retries).
    """
    pages = []
    for pindex in range(start, start + n):
        while True:
            m = vm_page_lookup_busy_wait(obj, pindex, also_m_busy, "getblk")
            if m >= 0:
                pg = vmview().pages[m]
                if pg.queue - pg.pc == lib.PQ_CACHE:
                    # allocbuf wires it, which takes it off PQ_CACHE
                    vm_page_unqueue_nowakeup(m)
                break
            m = vm_page_alloc(obj, pindex,
                              lib.VM_ALLOC_NORMAL | lib.VM_ALLOC_NULL_OK)
            if m >= 0:
                break
            if vm_page_lookup(obj, pindex) >= 0:
                continue            # lost an insert race: look again
            for p in pages:
                vm_page_wakeup(p)
            return None
        pages.append(m)
    return pages


def brelse(pages):
    """Release a buffer's pages: unbusy, and requeue as vfs_vmio_release."""
    v = vmview()
    for m in pages:
        pg = v.pages[m]
        q = pg.queue
        if q == lib.PQ_NONE or q - pg.pc == lib.PQ_CACHE:
            vm_page_deactivate(m)
        else:
            lib.atomic_set_int(addressof(pg, "flags"), lib.PG_REFERENCED)
        vm_page_wakeup(m)


def swapcache_read_enabled():
    return vmview().vmg.swapcache.read_enable != 0


def vn_cache_strategy(vp, obj, pages, stats):
    """Divert a read of pages (busied, consecutive, page-aligned, not a
    pbuf) to swap when every page is PG_SWAPPED and read_enable is set.
    Returns True when diverted."""
    if not swapcache_read_enabled() or not pages:
        return False
    v = vmview()
    for m in pages:
        pg = v.pages[m]
        if not (pg.flags & lib.PG_SWAPPED) or pg.valid:
            return False
    zeroed, error = swap_pager_strategy_read(obj, pages)
    c = v.cnt
    if error:
        # The kernel fails the read with EIO.  smpvm counts the error and
        # lets the caller read the file instead, so that an SSD fault is
        # never a wrong byte (or a spurious EIO in a stress run).
        lib.atomic_fetchadd_long(ffi.addressof(c, "swap_read_errors"), 1)
        stats.error = error
        return False
    lib.atomic_fetchadd_long(ffi.addressof(c, "diverted_reads"), 1)
    lib.atomic_fetchadd_long(ffi.addressof(c, "diverted_pages"), len(pages))
    stats.diverted.extend(v.pages[m].pindex for m in pages)
    stats.zero_filled.extend(zeroed)
    return True


def vnode_pager_getpages(vp, pages):
    """Read the invalid pages among pages from vp's backing file (bytes
    past EOF read as zero)."""
    v = vmview()
    fd = backing_fd(v.machine, vp)
    i = 0
    while i < len(pages):
        if v.pages[pages[i]].valid == _ALL:
            i += 1
            continue
        j = i + 1
        while j < len(pages) and v.pages[pages[j]].valid != _ALL:
            j += 1
        bufs = [v.page_bytes(m) for m in pages[i:j]]
        io_wait()
        n = os.preadv(fd, bufs, v.pages[pages[i]].pindex * _PAGE)
        if n < (j - i) * _PAGE:                 # past EOF: zero the rest
            for k, b in enumerate(bufs):
                lo = max(0, n - k * _PAGE)
                if lo < _PAGE:
                    b[lo:] = bytes(_PAGE - lo)
        i = j
    lib.atomic_fetchadd_long(ffi.addressof(v.cnt, "vnode_reads"), 1)


def vn_strategy_read(vp, obj, pages, stats):
    """Fill the invalid pages of a busied buffer: from the SSD if
    vn_cache_strategy diverts it, else from the file.  All pages end
    valid."""
    v = vmview()
    if not all(v.pages[m].valid == _ALL for m in pages):
        if not vn_cache_strategy(vp, obj, pages, stats):
            vnode_pager_getpages(vp, pages)
    for m in pages:
        v.pages[m].valid = _ALL


def bread(vp, obj, start, n, stats):
    """Busy the buffer [start, start+n) of obj and make it valid.  obj held.
    Returns its pages (busied); the caller brelse()s them."""
    while True:
        pages = getpages(obj, start, n)
        if pages is not None:
            break
        vm_wait()
    vn_strategy_read(vp, obj, pages, stats)
    return pages


def vnode_pager_putpage(vp, m):
    """Clean page m (busied) to its file: the write half of a buffer write
    (vfs_busy_pages + the write).  Write-protect folds pte-modified bits
    into dirty, the swap copy is released (C4), the page is written up to
    EOF and then is clean."""
    v = vmview()
    pg = v.pages[m]
    vm_page_protect(m, lib.VM_PROT_READ)
    if not v.vmg.bugs & lib.BUG_SKIP_UNSWAP_ON_WRITE:
        swap_pager_unswapped(m)
    # The write is clipped at EOF as it is issued: the size is read after
    # the bio wait (which loses o's token), so a truncation that ran during
    # the wait -- it holds o while it shrinks the file -- cannot be undone
    # by an old page written past the new EOF (found by the stress verifier:
    # the seed's vnode lock serialises the two; o's token does here).
    io_wait()
    size = v.vnodes[vp].size
    off = pg.pindex * _PAGE
    n = min(_PAGE, max(0, size - off))
    if n:
        os.pwrite(backing_fd(v.machine, vp), v.page_bytes(m)[:n], off)
    vm_page_undirty(m)
    pmap_clear_modify(m)
    lib.atomic_fetchadd_long(ffi.addressof(v.cnt, "vnode_writes"), 1)


def set_size(vp, size):
    """vn.size = size, atomically (it is also grown by CAS in extend_size)."""
    p = addressof(vmview().vnodes[vp], "size")
    while not lib.atomic_cmpset_long(p, p[0], size):
        pass


def extend_size(vp, end):
    """vn.size = max(vn.size, end), atomically (concurrent appends); the
    object's size in pages follows (vnode_pager_setsize)."""
    v = vmview()
    p = addressof(v.vnodes[vp], "size")
    while True:
        cur = p[0]
        if end <= cur:
            return
        if lib.atomic_cmpset_long(p, cur, end):
            break
    o = addressof(v.objects[v.vnodes[vp].v_object], "size")
    pages = (end + _PAGE - 1) // _PAGE
    while True:
        cur = o[0]
        if pages <= cur or lib.atomic_cmpset_long(o, cur, pages):
            return


def write_waits_for_swap_io():
    """The fixed kernel's buffer write waits for an in-flight swap write
    (soft busy) before it modifies a page; the seed does not (H1)."""
    return not (vmview().vmg.bugs & lib.BUG_WRITE_IGNORES_SWAPINPROG)


def bwrite_page(vp, obj, pindex, off, data, stats):
    """Write data at byte off of page pindex of vp, through the page.
    obj held.  Extends the file if needed."""
    v = vmview()
    also = write_waits_for_swap_io()
    partial = off != 0 or len(data) != _PAGE
    while True:
        pages = getpages(obj, pindex, 1, also_m_busy=also)
        if pages is not None:
            break
        vm_wait()
    m = pages[0]
    pg = v.pages[m]
    if partial and pg.valid != _ALL:
        vn_strategy_read(vp, obj, pages, stats)
    lib.vm_page_copyin(m, off, data, len(data))
    pg.valid = _ALL
    vm_page_dirty(m)
    extend_size(vp, pindex * _PAGE + off + len(data))
    vnode_pager_putpage(vp, m)
    brelse(pages)
