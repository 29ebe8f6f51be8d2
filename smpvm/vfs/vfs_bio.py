"""The buffer-level I/O path (sys/kern/vfs_bio.c, vfs/vnode pager).

smpvm has no long-lived buffer cache: a buffer (struct Buf) is the run of
pages of one read or write.  getblk/allocbuf busies each page and wires it,
as the seed's allocbuf does; while the buffer holds its pages they stay
wired (off the page queues: pageout and the swapcache writing pass cannot
see them, and vm_swapcache_test refuses them).  The buffer's lock is its
pages' hard busy (smpvm's: one buffer per read, no BUF_LOCK to take); brelse
gives it up and then destroys the buffer as the seed's brelse does with
B_RELBUF: vfs_vmio_release busies each page again, unwires it -- to the
INACTIVE tail (the swapcache heuristic counts it) or, for a buffer whose
pages were very active, to ACTIVE -- unmaps it and unbusies it.

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

from smpvm.layout import lib
from smpvm.vm.swap_pager import (io_wait, swap_pager_strategy_read,
                                 swap_pager_unswapped)
from smpvm.vm.vm_page import (pmap_clear_modify, vm_page_alloc,
                              vm_page_busy_wait, vm_page_deactivate,
                              vm_page_dirty, vm_page_flag_set,
                              vm_page_lookup, vm_page_lookup_busy_wait,
                              vm_page_protect, vm_page_undirty,
                              vm_page_unwire, vm_page_wakeup, vm_page_wire,
                              vm_wait)
from smpvm.vfs.vnode import backing_fd
from smpvm.vm.vmview import addressof, counter_add, vmview

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


# vfs.vm_cycle_point @seed: a buffer whose pages' act_count reaches it
# releases them to ACTIVE instead of INACTIVE
VM_CYCLE_POINT = 40


class Buf:
    """A buffer: its pages (busied and wired while it holds them) and
    b_act_count."""
    __slots__ = ("pages", "act_count")

    def __init__(self, pages):
        self.pages = pages
        self.act_count = lib.ACT_INIT


def busy_pages(obj, start, n, also_m_busy=False):
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


def getblk(obj, start, n, also_m_busy=False):
    """The buffer over pages [start, start+n) of obj (obj held): each page
    busied (busy_pages) and wired, as allocbuf does, which takes it off its
    queue; b_act_count is the largest act_count of its pages.  Returns the
    Buf, or None when memory ran out (nothing held)."""
    pages = busy_pages(obj, start, n, also_m_busy)
    if pages is None:
        return None
    bp = Buf(pages)
    v = vmview()
    for m in pages:
        vm_page_wire(m)
        if bp.act_count < v.pages[m].act_count:
            bp.act_count = v.pages[m].act_count
    return bp


def brelse(bp):
    """Release buffer bp and destroy it: its lock (the pages' busy) goes,
    then vfs_vmio_release gives the pages back to the queues."""
    for m in bp.pages:
        vm_page_wakeup(m)
    vfs_vmio_release(bp)


def vfs_vmio_release(bp):
    """Give a destroyed buffer's pages back to the VM (vfs_bio.c @seed):
    each is busied, unwired to the INACTIVE tail (ACTIVE if b_act_count
    reached vfs.vm_cycle_point), unmapped and unbusied.  (B_NOTMETA would
    set PG_NOTMETA: smpvm has no filesystem that sets it.)  The seed then
    tests "(m->flags & PG_BUSY) || m->busy", which is always true right
    after its own vm_page_busy_wait: every page takes that branch, and the
    act_count and cache code after it never runs."""
    activate = bp.act_count >= VM_CYCLE_POINT
    for m in bp.pages:
        vm_page_busy_wait(m, False, "vmiopg")
        vm_page_unwire(m, activate)
        vm_page_protect(m, lib.VM_PROT_NONE)
        vm_page_wakeup(m)
    bp.pages = []


def fault_release(pages):
    """Release pages a fault busied (not a buffer: never wired): a page on
    no queue, or still on CACHE, goes to the INACTIVE tail, the others are
    marked referenced."""
    v = vmview()
    for m in pages:
        pg = v.pages[m]
        q = pg.queue
        if q == lib.PQ_NONE or q - pg.pc == lib.PQ_CACHE:
            vm_page_deactivate(m)
        else:
            vm_page_flag_set(m, lib.PG_REFERENCED)
        vm_page_wakeup(m)


def swapcache_read_enabled():
    return vmview().vmg.swapcache.read_enable != 0


def vn_cache_strategy(vp, obj, pages, stats):
    """Divert a read of pages (busied by the caller, consecutive,
    page-aligned, not a pbuf) to swap when every page is PG_SWAPPED and
    read_enable is set (vfs_bio.c vn_cache_strategy @seed).  The caller
    holds obj.  Returns True when diverted."""
    if not swapcache_read_enabled() or not pages:
        return False
    v = vmview()
    for m in pages:
        pg = v.pages[m]
        if not (pg.flags & lib.PG_SWAPPED) or pg.valid:
            return False
    zeroed, error = swap_pager_strategy_read(obj, pages)
    if error:
        # The kernel fails the read with EIO.  smpvm counts the error and
        # lets the caller read the file instead, so that an SSD fault is
        # never a wrong byte (or a spurious EIO in a stress run).
        counter_add("swap_read_errors")
        stats.error = error
        return False
    counter_add("diverted_reads")
    counter_add("diverted_pages", len(pages))
    stats.diverted.extend(v.pages[m].pindex for m in pages)
    stats.zero_filled.extend(zeroed)
    return True


def vnode_pager_getpages(vp, pages):
    """Read the invalid pages among pages (busied by the caller, which
    holds their object) from vp's backing file; bytes past EOF read as zero.
    Each contiguous run is one I/O wait: tokens are lost there.  (The
    seed's vnode_pager_generic_getpages soft-busies the pages around the
    read; smpvm keeps them hard-busied, see brelse.)"""
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
    counter_add("vnode_reads")


def vn_strategy_read(vp, obj, pages, stats):
    """Fill the invalid pages of a busied buffer (obj held): from the SSD
    if vn_cache_strategy diverts it, else from the file.  All pages end
    valid.  Blocks (I/O waits)."""
    v = vmview()
    if not all(v.pages[m].valid == _ALL for m in pages):
        if not vn_cache_strategy(vp, obj, pages, stats):
            vnode_pager_getpages(vp, pages)
    for m in pages:
        v.pages[m].valid = _ALL


def bread(vp, obj, start, n, stats):
    """The buffer [start, start+n) of obj, made valid (obj held).  Returns
    the Buf; the caller brelse()s it."""
    while True:
        bp = getblk(obj, start, n)
        if bp is not None:
            break
        vm_wait()
    vn_strategy_read(vp, obj, bp.pages, stats)
    return bp


def vnode_pager_putpage(vp, m):
    """Clean page m to vp's backing file: the write half of a buffer write
    (vfs_busy_pages + the write).  The caller holds m busy and m's object.
    Write-protect folds pte-modified bits into dirty, the swap copy is
    released (vfs_busy_pages unswaps a page it writes), the page is written
    up to EOF (an I/O wait: tokens are lost) and then is clean."""
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
    counter_add("vnode_writes")


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
    """Write data at byte off of page pindex of vp, through a one-page
    buffer.  obj held.  Extends the file if needed."""
    v = vmview()
    also = write_waits_for_swap_io()
    partial = off != 0 or len(data) != _PAGE
    while True:
        bp = getblk(obj, pindex, 1, also_m_busy=also)
        if bp is not None:
            break
        vm_wait()
    m = bp.pages[0]
    pg = v.pages[m]
    if partial and pg.valid != _ALL:
        vn_strategy_read(vp, obj, bp.pages, stats)
    lib.vm_page_copyin(m, off, data, len(data))
    pg.valid = _ALL
    vm_page_dirty(m)
    extend_size(vp, pindex * _PAGE + off + len(data))
    vnode_pager_putpage(vp, m)
    brelse(bp)
