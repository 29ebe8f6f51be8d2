"""A system-call-like API for CPU processes: open/create, read, write,
truncate, unlink, chflags, and loads/stores through a mapping.

These are the workloads' entry points into the emulated kernel.  Each takes
and releases its own locks; none may be called with a lock held.  Reads go
through the strategy path (and so may be served from the SSD); writes dirty
pages and invalidate swap as the kernel does.
"""
from smpvm.layout import lib
from smpvm.vfs import vnode
from smpvm.vfs.vfs_bio import (BUF_PAGES, ReadStats, bread, brelse,
                               busy_pages, bwrite_page, fault_release,
                               set_size, vn_strategy_read,
                               vnode_pager_putpage)
from smpvm.vfs.vnode import VfsError
from smpvm.vm.swap_pager import swap_pager_unswapped, swp_pager_meta_ctl
from smpvm.vm.vm_object import (resident_pages, vm_object_drop,
                                vm_object_hold, vm_object_page_remove)
from smpvm.vm.vm_page import (pmap_enter, pmap_store,
                              vm_page_busy_wait, vm_page_lookup,
                              vm_page_lookup_busy_wait, vm_page_protect,
                              vm_page_test_dirty, vm_page_unqueue_nowakeup,
                              vm_page_wakeup, vm_wait)
from smpvm.vm.vmview import vmview
import os

_PAGE = lib.PAGE_SIZE

sys_open = vnode.vn_open
sys_close = vnode.vn_close
sys_unlink = vnode.vn_unlink
sys_chflags = vnode.vn_chflags


def _obj(vp):
    return vmview().vnodes[vp].v_object


def file_size(vp):
    return vmview().vnodes[vp].size


def sys_read(vp, offset, length):
    """Read up to length bytes at offset.  Returns (data, ReadStats)."""
    v = vmview()
    stats = ReadStats()
    size = v.vnodes[vp].size
    if offset >= size or length <= 0:
        return b"", stats
    length = min(length, size - offset)
    obj = _obj(vp)
    npages_file = (size + _PAGE - 1) // _PAGE
    out = bytearray()
    vm_object_hold(obj)
    try:
        first = offset // _PAGE
        last = (offset + length - 1) // _PAGE
        lblk = first - first % BUF_PAGES
        while lblk <= last:
            n = min(BUF_PAGES, npages_file - lblk)
            bp = bread(vp, obj, lblk, n, stats)
            try:
                for k, m in enumerate(bp.pages):
                    pidx = lblk + k
                    if pidx < first or pidx > last:
                        continue
                    lo = offset - pidx * _PAGE if pidx == first else 0
                    hi = (offset + length - pidx * _PAGE if pidx == last
                          else _PAGE)
                    out += v.page_bytes(m)[lo:hi]
            finally:
                brelse(bp)
            lblk += BUF_PAGES
    finally:
        vm_object_drop(obj)
    return bytes(out), stats


def sys_write(vp, offset, data):
    """Write data at offset (write-through, page by page, as bwrite)."""
    stats = ReadStats()
    obj = _obj(vp)
    vm_object_hold(obj)
    try:
        pos = 0
        while pos < len(data):
            off = (offset + pos) % _PAGE
            n = min(_PAGE - off, len(data) - pos)
            bwrite_page(vp, obj, (offset + pos) // _PAGE, off,
                        data[pos:pos + n], stats)
            pos += n
    finally:
        vm_object_drop(obj)
    return stats


def sys_truncate(vp, size):
    """Set the file size (vnode_pager_setsize, vnode_pager.c @seed).
    Shrinking sets the object's size first, then frees the pages past the
    new EOF and the swap over the range (vm_object_page_remove: a range
    free, where the seed leaks (g)), then zeroes the partial last page past
    EOF.

    smpvm's modelling choice for that partial page: its swap copy is
    released at once -- swap_pager_unswapped if the page is resident, the
    metadata entry (SWM_FREE) if not.  In the seed this happens later, when
    the filesystem rewrites the buffer of the last block (nvtruncbuf:
    bdwrite, then vfs_busy_pages unswaps); the outcome is the same, and
    without a buffer cache there is no later rewrite to do it."""
    v = vmview()
    vn = v.vnodes[vp]
    obj = _obj(vp)
    vm_object_hold(obj)
    try:
        old = vn.size
        oobjsize = v.objects[obj].size
        set_size(vp, size)
        os.ftruncate(vnode.backing_fd(v.machine, vp), size)
        nobjsize = (size + _PAGE - 1) // _PAGE
        v.objects[obj].size = nobjsize
        if size < old:
            if nobjsize < oobjsize:
                vm_object_page_remove(obj, nobjsize, oobjsize)
            if size % _PAGE:
                p = size // _PAGE
                m = vm_page_lookup_busy_wait(obj, p, True, "vsetsz")
                if m >= 0:
                    if v.pages[m].valid:
                        v.page_bytes(m)[size % _PAGE:] = bytes(
                            _PAGE - size % _PAGE)
                        vm_page_protect(m, lib.VM_PROT_NONE)
                    swap_pager_unswapped(m)
                    vm_page_wakeup(m)
                else:
                    swp_pager_meta_ctl(obj, p, lib.SWM_FREE)
    finally:
        vm_object_drop(obj)


def vm_fault(vp, obj, pindex, write, stats):
    """Fault page pindex of vp's mapping in (obj held): busy it waiting for
    soft busy too (faults wait for in-flight I/O), take it off PQ_CACHE,
    read it if invalid, and enter it in the pmap, writable for a write fault
    (a normal write fault: the hardware sets the modified bit later).  The
    page is not a buffer's: it is never wired."""
    v = vmview()
    while True:
        pages = busy_pages(obj, pindex, 1, also_m_busy=True)
        if pages is not None:
            break
        vm_wait()
    pg = v.pages[pages[0]]
    if pg.queue - pg.pc == lib.PQ_CACHE:
        vm_page_unqueue_nowakeup(pages[0])
    vn_strategy_read(vp, obj, pages, stats)
    pmap_enter(pages[0], 1 if write else 0)
    fault_release(pages)


def _mapped_chunks(vp, offset, n):
    size = file_size(vp)
    if offset < 0 or offset + n > size:
        raise VfsError(14, f"mapping access [{offset}, {offset + n}) past "
                       f"EOF {size}")                   # EFAULT (SIGBUS)
    pos = 0
    while pos < n:
        off = (offset + pos) % _PAGE
        k = min(_PAGE - off, n - pos)
        yield (offset + pos) // _PAGE, off, pos, k
        pos += k


def mmap_store(vp, offset, data):
    """Stores through a shared mapping: only the pte modified bit is set;
    the VM folds it into `dirty` at protect/test_dirty time."""
    stats = ReadStats()
    obj = _obj(vp)
    for pidx, off, pos, k in _mapped_chunks(vp, offset, len(data)):
        while True:
            vm_object_hold(obj)
            try:
                m = vm_page_lookup(obj, pidx)
                if m >= 0 and pmap_store(m, obj, pidx, off,
                                         data[pos:pos + k]):
                    break
                vm_fault(vp, obj, pidx, True, stats)
            finally:
                vm_object_drop(obj)
    return stats


def sys_msync(vp):
    """vm_object_page_clean: write every dirty (or pte-modified) resident
    page of vp back to its file."""
    obj = _obj(vp)
    vm_object_hold(obj)
    try:
        for m in resident_pages(obj):
            vm_page_busy_wait(m, True, "msync")
            pg = vmview().pages[m]
            if pg.object == obj:
                vm_page_test_dirty(m)
                if pg.dirty:
                    vnode_pager_putpage(vp, m)
            vm_page_wakeup(m)
    finally:
        vm_object_drop(obj)
