"""The swap pager's I/O (sys/vm/swap_pager.c) over the SSD file.

Metadata, the block allocator and the accounting are C (csrc/vm.c): the
kernel names below are those entries.  This module does the I/O: putpages
(always synchronous here, as for every thread but pageout, with the
completion run inline) and the read strategy that serves diverted reads.

The swap device is the file `swap.ssd` in the machine's data directory,
nswap pages, created sparse with mode 0600 when the VM boots.
"""
import errno
import os

from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken
from smpvm.layout import ffi, lib
from smpvm.vm.vm_object import vm_object_drop, vm_object_hold
from smpvm.vm.vm_page import (vm_page_busy_wait, vm_page_flag_clear,
                              vm_page_flag_set)
from smpvm.vm.vmview import counter_add, vmview

swp_pager_getswapspace = lib.swp_pager_getswapspace
swp_pager_freeswapspace = lib.swp_pager_freeswapspace
swp_pager_meta_build = lib.swp_pager_meta_build
swp_pager_meta_ctl = lib.swp_pager_meta_ctl
swap_pager_meta_lookup = lib.swap_pager_meta_lookup
swap_pager_unswapped = lib.swap_pager_unswapped
swap_pager_freespace = lib.swap_pager_freespace
swap_pager_freespace_all = lib.swap_pager_freespace_all
swap_pager_condfree = lib.swap_pager_condfree

SWAPDEV_NAME = "swap.ssd"
_NONE = lib.SWAPBLK_NONE
_PAGE = lib.PAGE_SIZE

# Fault injection for the SSD (set by the stress harness): a callable
# (op, blk, npages) -> None | errno | ("short", nbytes) | ("delay", s).
swap_io_fault = {"fn": None}


def swapdev_path(machine):
    return os.path.join(machine.datadir, SWAPDEV_NAME)


def swapdev_create(machine):
    """Create the sparse SSD file (mode 0600) of nswap pages."""
    fd = os.open(swapdev_path(machine), os.O_RDWR | os.O_CREAT | os.O_EXCL,
                 0o600)
    try:
        os.ftruncate(fd, machine.config.nswap * _PAGE)
    finally:
        os.close(fd)


_fds = {}


def swapdev_fd(machine):
    """This process's descriptor of the machine's SSD file."""
    key = id(machine)
    fd = _fds.get(key)
    if fd is None:
        fd = os.open(swapdev_path(machine), os.O_RDWR | os.O_CLOEXEC)
        _fds[key] = fd
        machine.on_close(lambda: os.close(_fds.pop(key)))
    return fd


_fault_rng = {}


def _fault(op, blk, n):
    """The fault to inject into this SSD I/O, if any: from a test's
    swap_io_fault hook, else from vm_globals.faults (seeded per thread)."""
    fn = swap_io_fault["fn"]
    if fn is not None:
        return fn(op, blk, n)
    v = vmview()
    f = v.vmg.faults
    if not (f.eio_ppm or f.short_ppm or f.enospc_ppm or f.delay_ppm):
        return None
    key = (id(v.machine), lib.smpvm_curtid())
    rng = _fault_rng.get(key)
    if rng is None:
        import random
        rng = _fault_rng[key] = random.Random(f.seed * 1000003 + key[1])
    r = rng.randrange(1000000)
    out = None
    if r < f.eio_ppm:
        out = errno.EIO
    elif op == "write" and r < f.eio_ppm + f.enospc_ppm:
        out = errno.ENOSPC
    elif op == "write" and r < f.eio_ppm + f.enospc_ppm + f.short_ppm:
        out = ("short", rng.randrange(n * _PAGE))
    elif rng.randrange(1000000) < f.delay_ppm:
        out = ("delay", f.delay_us / 1e6)
    if out is not None:
        lib.atomic_fetchadd_long(ffi.addressof(f, "injected"), 1)
    return out


def io_wait():
    """A synchronous bio wait is a blocking point: the thread loses its
    tokens while the I/O runs and owns them again after (lwkt_yield)."""
    if lib.smpvm_curtid() >= 0:
        lib.lwkt_yield()


def _swap_write(v, run, blk):
    """pwritev the pages of run to blocks blk..; 0 or an errno.

    The device takes the pages' contents when the write is issued (the DMA
    of the kernel's async write), then the thread waits for the I/O (a
    token-loss point): a page modified meanwhile is newer than its swap copy
    (hazard H1), which is what a write that ignores soft busy gets."""
    try:
        return _swap_pwritev(v, run, blk)
    finally:
        io_wait()


def _swap_pwritev(v, run, blk):
    f = _fault("write", blk, len(run))
    bufs = [v.page_bytes(m) for m in run]
    want = len(run) * _PAGE
    try:
        if isinstance(f, int):
            raise OSError(f, os.strerror(f))
        if isinstance(f, tuple) and f[0] == "short":
            n = os.pwritev(swapdev_fd(v.machine), bufs, blk * _PAGE)
            n = min(n, f[1])
        else:
            if isinstance(f, tuple) and f[0] == "delay":
                import time
                time.sleep(f[1])
            n = os.pwritev(swapdev_fd(v.machine), bufs, blk * _PAGE)
    except OSError as e:
        return e.errno or errno.EIO
    return 0 if n == want else errno.EIO


def swap_pager_putpages(obj, marray, sync, rtvals):
    """Write the pages of marray (all in obj) to newly assigned swap.

    Caller's duties (swap_pager.c @seed): every page is in obj and soft-busied
    (vm_page_io_start), its hard busy released, and vm_object_pip_add(obj,
    count) taken.  Every caller but pageout is synchronous, so the
    completion runs inline.  rtvals[i] becomes VM_PAGER_PEND for every page
    whose I/O was issued and VM_PAGER_FAIL for pages that got no swap (the
    caller finishes those: busy, io_finish, wakeup, pip_wakeup).
    """
    v = vmview()
    o = v.objects[obj]
    vm_object_hold(obj)
    if o.type == lib.OBJT_DEFAULT:
        o.type = lib.OBJT_SWAP
    count = len(marray)
    i = 0
    while i < count:
        n = min(lib.SWAP_META_PAGES, count - i, lib.NSW_CLUSTER_MAX)
        # vm_token across the allocation, its retries and the stripe trim
        # (the inner takes are recursive: one blocking point per chunk)
        lwkt_gettoken(lib.TOK_VM)
        blk = swp_pager_getswapspace(obj, n)
        while blk == _NONE and n > 4:
            n >>= 1
            blk = swp_pager_getswapspace(obj, n)
        if blk == _NONE:
            for j in range(i, i + n):
                rtvals[j] = lib.VM_PAGER_FAIL
            lwkt_reltoken(lib.TOK_VM)
            i += n
            continue
        # a run may not cross a dmmax stripe: give back the tail
        inside = blk & (lib.SWB_DMMAX - 1)
        if inside + n > lib.SWB_DMMAX:
            j = lib.SWB_DMMAX - inside
            swp_pager_freeswapspace(obj, blk + j, n - j)
            n = j
        lwkt_reltoken(lib.TOK_VM)
        run = marray[i:i + n]
        for j, m in enumerate(run):
            pg = v.pages[m]
            # frees the page's previous block at once, if it had one
            swp_pager_meta_build(obj, pg.pindex, blk + j)
            if o.type == lib.OBJT_SWAP:
                lib.vm_page_dirty(m)
            vm_page_flag_set(m, lib.PG_SWAPINPROG)
        error = _swap_write(v, run, blk)
        for j in range(i, i + n):
            rtvals[j] = lib.VM_PAGER_PEND
        swp_pager_async_iodone(obj, run, error)
        i += n
    vm_object_drop(obj)


def swp_pager_async_iodone(obj, run, error):
    """Completion of a swap write of run (swap_pager.c @seed).  Called
    inline by swap_pager_putpages, which holds obj.

    Error: the assignment is destroyed (SWM_FREE), PG_SWAPPED cleared (a
    SWAP object's page is dirtied and activated; a vnode page is not: its
    file is the backing store), PG_SWAPINPROG cleared.  Success: a SWAP
    object's page is undirtied, PG_SWAPINPROG cleared, PG_SWAPPED set, and
    under a severe memory shortage the page is deactivated.  Each page is
    busied ("swadpg", not waiting for its own soft busy), io_finish'ed and
    unbusied; then one pip release per page, and vm_token is taken and
    released around the pbuf's release (a blocking point in the seed).
    """
    v = vmview()
    o = v.objects[obj]
    for m in run:
        pg = v.pages[m]
        vm_page_busy_wait(m, False, "swadpg")
        if error:
            swp_pager_meta_ctl(obj, pg.pindex, lib.SWM_FREE)
            vm_page_flag_clear(m, lib.PG_SWAPPED)
            if o.type == lib.OBJT_SWAP:
                lib.vm_page_dirty(m)
                lib.vm_page_activate(m)
            vm_page_flag_clear(m, lib.PG_SWAPINPROG)
        else:
            if o.type == lib.OBJT_SWAP:
                lib.vm_page_undirty(m)
            vm_page_flag_clear(m, lib.PG_SWAPINPROG)
            vm_page_flag_set(m, lib.PG_SWAPPED)
            if lib.vm_page_count_severe():
                lib.vm_page_deactivate(m)
            pg.swap_writes += 1
        lib.vm_page_io_finish(m)
        if v.vmg.bugs & lib.BUG_LOST_IO_WAKEUP:     # broken on purpose
            vm_page_flag_clear(m, lib.PG_BUSY | lib.PG_WANTED)
        else:
            lib.vm_page_wakeup(m)
    if error:
        counter_add("swap_write_errors")
    else:
        counter_add("swap_write_pages", len(run))
        counter_add("swap_write_clusters")
    lib.vm_object_pip_wakeup_n(obj, len(run))
    lwkt_gettoken(lib.TOK_VM)           # relpbuf(bp, &nsw_wcount_sync)
    lwkt_reltoken(lib.TOK_VM)


def swap_pager_strategy_read(obj, marray):
    """Read the pages of marray (busied, consecutive pindexes of obj) from
    swap: the read half of swap_pager_strategy.

    Holds obj while it looks up each page's block.  Contiguous blocks are
    read with one preadv.  A page with no block is zero-filled silently,
    as the kernel does -- and smpvm counts it (vm_counters.zero_fills) and
    returns the pindexes so that the stress verifier reports it.  Returns
    (zero_filled_pindexes, error).
    """
    v = vmview()
    vm_object_hold(obj)
    try:
        pidx = [v.pages[m].pindex for m in marray]
        blks = [swap_pager_meta_lookup(obj, p) for p in pidx]
    finally:
        vm_object_drop(obj)
    zeroed = []
    error = 0
    i = 0
    fd = swapdev_fd(v.machine)
    while i < len(marray):
        if blks[i] == _NONE:
            v.page_bytes(marray[i])[:] = bytes(_PAGE)
            zeroed.append(pidx[i])
            i += 1
            continue
        j = i + 1
        while (j < len(marray) and blks[j] == blks[j - 1] + 1
               and blks[j] & (lib.SWB_DMMAX - 1)):
            j += 1
        io_wait()
        f = _fault("read", blks[i], j - i)
        try:
            if isinstance(f, int):
                raise OSError(f, os.strerror(f))
            n = os.preadv(fd, [v.page_bytes(m) for m in marray[i:j]],
                          blks[i] * _PAGE)
            if n != (j - i) * _PAGE:
                error = errno.EINVAL
        except OSError as e:
            error = e.errno or errno.EIO
        i = j
    if zeroed:
        counter_add("zero_fills", len(zeroed))
    return zeroed, error
