"""The swap pager's I/O (sys/vm/swap_pager.c) over the SSD file.

Metadata, the block allocator and the accounting are C (csrc/vm.c): the
kernel names below are those entries.  The I/O is C too (csrc/bio.c):
putpages (always synchronous here, as for every thread but pageout, with
the completion run inline) and the read strategy that serves diverted
reads.  This module is their face, and decides the SSD's injected faults
(_fault, which C calls back only while a fault can come).

The swap device is the file `swap.ssd` in the machine's data directory,
nswap pages, created sparse with mode 0600 when the VM boots.
"""
import errno
import os

from smpvm.layout import ffi, lib
from smpvm.vm.vmview import vmview

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
_PAGE = lib.PAGE_SIZE

class _FaultHook(dict):
    """{"fn": callable or None}: setting it tells C (csrc/bio.c) to ask
    _fault about every SSD I/O."""

    def __setitem__(self, key, fn):
        super().__setitem__(key, fn)
        lib.bio_fault_hook(1 if fn is not None else 0)


# Fault injection for the SSD (set by the tests): a callable
# (op, blk, npages) -> None | errno | ("short", nbytes) | ("delay", s).
swap_io_fault = _FaultHook(fn=None)


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


def _fault_cb_error(exc, value, tb):
    """An exception in the fault hook (a Panic signalled meanwhile, a
    test's hook failing) is re-raised when the C call returns."""
    _pending[0] = value


_pending = [None]


@ffi.callback("bio_fault_fn", onerror=_fault_cb_error)
def _fault_cb(op, blk, n, nbytes):
    """C's question (csrc/bio.c io_fault): the fault of one SSD I/O, as
    _fault decides it.  A delayed write sleeps here, before it is issued
    (a read's delay is not modelled)."""
    f = _fault("read" if op == lib.BIO_READ else "write", blk, n)
    if f is None:
        return 0
    if isinstance(f, int):
        return f
    if f[0] == "short":
        nbytes[0] = f[1]
        return -1
    if f[0] == "delay" and op == lib.BIO_WRITE:
        import time
        time.sleep(f[1])
    return 0


lib.bio_set_fault_fn(_fault_cb)


def raise_host_error(e=None):
    """After a C I/O call: raise what it could not (an exception of the
    fault hook; a host I/O error of the backing files, as os.pwrite and
    os.preadv raised it: errno e, or the one C recorded)."""
    exc = _pending[0]
    if exc is not None:
        _pending[0] = None
        raise exc
    if e is None:
        e = lib.bio_take_host_errno()
    if e:
        raise OSError(e, os.strerror(e))


def swap_pager_putpages(obj, marray, sync, rtvals):
    """Write the pages of marray (all in obj) to newly assigned swap
    (csrc/bio.c).

    Caller's duties (swap_pager.c @seed): every page is in obj and soft-busied
    (vm_page_io_start), its hard busy released, and vm_object_pip_add(obj,
    count) taken.  Every caller but pageout is synchronous, so the
    completion runs inline.  rtvals[i] becomes VM_PAGER_PEND for every page
    whose I/O was issued and VM_PAGER_FAIL for pages that got no swap (the
    caller finishes those: busy, io_finish, wakeup, pip_wakeup).

    In chunks of at most NSW_CLUSTER_MAX pages: swap is allocated under
    vm_token (halved down to 4 pages while none is free; a run crossing a
    dmmax stripe gives its tail back), each page's metadata built (the old
    block freed), PG_SWAPINPROG set; the device takes the pages' contents
    when the write is issued, then the thread waits for the I/O (a
    token-loss point: a page modified meanwhile is newer than its swap
    copy, hazard H1); then swp_pager_async_iodone: on error the assignment
    is destroyed (SWM_FREE) and PG_SWAPPED cleared (a SWAP object's page is
    dirtied and activated), on success a SWAP object's page is undirtied
    and PG_SWAPPED set (deactivated under a severe shortage); each page is
    busied ("swadpg"), io_finish'ed and unbusied, then one pip release per
    page and vm_token around the pbuf's release.
    """
    n = len(marray)
    rt = ffi.new("int[]", n)               # C sets every entry
    lib.swap_pager_putpages(obj, marray, n, swapdev_fd(vmview().machine), rt)
    rtvals[0:n] = ffi.unpack(rt, n)
    raise_host_error()
