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

The path is C (csrc/bio.c: the same primitives in the same order, the
checked views' field checks and preemption points kept); this module is its
face, with the kernel's names, plus what stays Python: vm_wait when a
buffer finds no memory, and which file descriptor backs a vnode.
"""
from smpvm.layout import ffi, lib
from smpvm.vm.swap_pager import _pending, raise_host_error, swapdev_fd
from smpvm.vm.vm_page import vm_wait
from smpvm.vfs.vnode import backing_fd
from smpvm.vm.vmview import addressof, vmview

_vfs_read = lib.vfs_read
_bwrite_page = lib.bwrite_page
BUF_PAGES = lib.BUF_PAGES       # a buffer is 16 KiB: 4 pages, aligned
VM_CYCLE_POINT = lib.VM_CYCLE_POINT
_PAGE = lib.PAGE_SIZE


class ReadStats:
    """What one read did, for the verifier: pages served from the SSD and
    pages the swap pager zero-filled (a coherence failure)."""
    __slots__ = ("diverted", "zero_filled", "error")

    def __init__(self):
        self.diverted = []
        self.zero_filled = []
        self.error = 0

    def add(self, st):
        """Take in what C recorded in st (a struct bio_stats), and empty
        it."""
        if st.ndiverted:
            self.diverted.extend(st.diverted[0:st.ndiverted])
            st.ndiverted = 0
        if st.nzero:
            self.zero_filled.extend(st.zero[0:st.nzero])
            st.nzero = 0
        if st.error:
            self.error = st.error
            st.error = 0


_free_st = []           # struct bio_stats to reuse (each left empty)


def _get_st():
    return _free_st.pop() if _free_st else ffi.new("struct bio_stats *")


def _done(st, stats):
    """After a C call that recorded in st: raise what it could not (a host
    I/O error, an exception of the fault hook), take in its records, give
    st back."""
    try:
        e = lib.bio_take_host_errno()
        if e or _pending[0] is not None:
            raise_host_error(e)
    finally:
        if st.ndiverted or st.nzero or st.error:
            stats.add(st)
        st.held = 0
        _free_st.append(st)


class Buf:
    """A buffer: its pages (busied and wired while it holds them) and
    b_act_count, in a struct buf."""
    __slots__ = ("b",)

    def __init__(self):
        self.b = ffi.new("struct buf *")

    @property
    def pages(self):
        return list(self.b.b_pages[0:self.b.b_npages])

    @property
    def act_count(self):
        return self.b.b_act_count


def busy_pages(obj, start, n, also_m_busy=False):
    """Busy pages [start, start+n) of obj, allocating absent ones.

    obj is held by the caller.  Pages are busied in ascending pindex order
    (so two buffers never deadlock), with also_m_busy FALSE as allocbuf
    does: a soft-busy (in-flight swap write) page is taken anyway.  Returns
    the pages, or None after releasing them when memory ran out (the caller
    vm_wait()s and retries).
    """
    out = ffi.new("int[]", n)
    if lib.bio_busy_pages(obj, start, n, also_m_busy, out) < 0:
        return None
    return list(out)


def getblk(obj, start, n, also_m_busy=False):
    """The buffer over pages [start, start+n) of obj (obj held): each page
    busied (busy_pages) and wired, as allocbuf does, which takes it off its
    queue; b_act_count is the largest act_count of its pages.  Returns the
    Buf, or None when memory ran out (nothing held)."""
    bp = Buf()
    if lib.getblk(obj, start, n, also_m_busy, bp.b) < 0:
        return None
    return bp


def brelse(bp):
    """Release buffer bp and destroy it: its lock (the pages' busy) goes,
    then vfs_vmio_release gives the pages back to the queues."""
    lib.brelse(bp.b)


def vfs_vmio_release(bp):
    """Give a destroyed buffer's pages back to the VM (vfs_bio.c @seed):
    each is busied, unwired to the INACTIVE tail (ACTIVE if b_act_count
    reached vfs.vm_cycle_point), unmapped and unbusied.  (B_NOTMETA would
    set PG_NOTMETA: smpvm has no filesystem that sets it.)  The seed then
    tests "(m->flags & PG_BUSY) || m->busy", which is always true right
    after its own vm_page_busy_wait: every page takes that branch, and the
    act_count and cache code after it never runs."""
    lib.vfs_vmio_release(bp.b)


def fault_release(pages):
    """Release pages a fault busied (not a buffer: never wired): a page on
    no queue, or still on CACHE, goes to the INACTIVE tail, the others are
    marked referenced."""
    lib.fault_release(pages, len(pages))


def vn_strategy_read(vp, obj, pages, stats):
    """Fill the invalid pages of a busied buffer (obj held): from the SSD
    if vn_cache_strategy diverts it (every page PG_SWAPPED, none valid,
    vm.swapcache.read_enable set; a failed SSD read is counted and the file
    read instead, where the kernel fails the read with EIO), else from the
    file (vnode_pager_getpages: each contiguous run of invalid pages one
    I/O wait, bytes past EOF zero).  All pages end valid.  Blocks (I/O
    waits: tokens are lost)."""
    v = vmview()
    st = _get_st()
    try:
        lib.vn_strategy_read(obj, pages, len(pages),
                             backing_fd(v.machine, vp),
                             swapdev_fd(v.machine), st)
    finally:
        _done(st, stats)


def vfs_read(machine, vp, obj, offset, length, npages_file, dst, stats):
    """Read [offset, offset+length) of vp (all before EOF; obj its object,
    npages_file its size in pages) into dst (a char *): bread, copy out and
    brelse buffer by buffer, obj held throughout (csrc/bio.c vfs_read).
    vm_wait()s while memory is short, obj held as the kernel's bread
    holds it.  No locks held on entry."""
    st = _free_st.pop() if _free_st else ffi.new("struct bio_stats *")
    fd, swapfd = backing_fd(machine, vp), swapdev_fd(machine)
    r = _vfs_read(vp, obj, offset, length, npages_file, fd, swapfd, dst, st)
    if not r and _pending[0] is None and not (st.ndiverted or st.nzero
                                              or st.error):
        _free_st.append(st)             # the common case: nothing to say
        return
    try:
        while r:
            if r == 1:
                stats.add(st)
            elif r == -1:
                try:
                    vm_wait()
                except BaseException:
                    lib.vm_object_drop(obj)
                    raise
            else:
                break
            r = _vfs_read(vp, obj, offset, length, npages_file, fd,
                          swapfd, dst, st)
    finally:
        _done(st, stats)


def vnode_pager_putpage(vp, m):
    """Clean page m to vp's backing file: the write half of a buffer write
    (vfs_busy_pages + the write).  The caller holds m busy and m's object.
    Write-protect folds pte-modified bits into dirty, the swap copy is
    released (vfs_busy_pages unswaps a page it writes), the page is written
    up to EOF (an I/O wait: tokens are lost) and then is clean.

    The write is clipped at EOF as it is issued: the size is read after the
    bio wait (which loses the object's token), so a truncation that ran
    during the wait -- it holds the object while it shrinks the file --
    cannot be undone by an old page written past the new EOF (found by the
    stress verifier: the seed's vnode lock serialises the two; the
    object's token does here)."""
    lib.vnode_pager_putpage(vp, m, backing_fd(vmview().machine, vp))
    raise_host_error()


def set_size(vp, size):
    """vn.size = size, atomically (it is also grown by CAS in extend_size)."""
    p = addressof(vmview().vnodes[vp], "size")
    while not lib.atomic_cmpset_long(p, p[0], size):
        pass


def write_waits_for_swap_io():
    """The fixed kernel's buffer write waits for an in-flight swap write
    (soft busy) before it modifies a page; the seed does not (H1)."""
    return not (vmview().vmg.bugs & lib.BUG_WRITE_IGNORES_SWAPINPROG)


def bwrite_page(vp, obj, pindex, off, data, stats, fds=None):
    """Write data (bytes) at byte off of page pindex of vp, through a
    one-page buffer (obj held), write-through: getblk (waiting for an
    in-flight swap write unless the kernel ignores it, H1), a partial write
    of an invalid page reads it first, copy, dirty, extend the file (vn.size
    and the object's size, by CAS: appends race), vnode_pager_putpage,
    brelse.  vm_wait()s while memory is short.  fds: (vp's backing file,
    the SSD) if the caller has them."""
    if fds is None:
        machine = vmview().machine
        fds = backing_fd(machine, vp), swapdev_fd(machine)
    st, n = _get_st(), len(data)
    try:
        r = _bwrite_page(vp, obj, pindex, off, data, n, fds[0], fds[1], st)
        while r == -1:
            vm_wait()
            r = _bwrite_page(vp, obj, pindex, off, data, n, fds[0],
                             fds[1], st)
    finally:
        _done(st, stats)
