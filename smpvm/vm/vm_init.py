"""Bringing the VM up on a machine: files, sysctls, the kernel variant,
and the kernel threads (pagedaemon, swapcached) under a supervisor."""
from smpvm.kern.thread import bound_thread
from smpvm.layout import lib
from smpvm.machine import Machine
from smpvm.vfs.vnode import vfs_boot
from smpvm.vm.vm_pageout import vm_pageout_thread
from smpvm.vm.vm_swapcache import (shutdown_swapcache, vm_swapcache_boot,
                                   vm_swapcached_thread)
from smpvm.vm.vmview import vmview

KERNELS = {"seed": lib.BUGS_SEED, "fixed": 0}

def vm_boot(machine, kernel="fixed", sysctls="demo"):
    """Create the machine's files and the meta device, choose the kernel
    variant and set vm.swapcache.* ('kernel' defaults or the 'demo' set).
    The caller is a thread of machine (the creator)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel {kernel!r}: seed or fixed")
    vmview(machine).raw.vmg.bugs = KERNELS[kernel]
    vfs_boot(machine)
    vm_swapcache_boot(machine, sysctls)


def boot_machine(cfg, kernel="fixed", sysctls="demo"):
    """Create a machine and bring its VM up; the creator plays the thread
    'init' for the duration.  Returns the Machine (destroy it when done)."""
    m = Machine.create(cfg)
    try:
        with bound_thread(m, "init", kind=lib.TDK_KTHREAD):
            vm_boot(m, kernel, sysctls)
    except BaseException:
        m.destroy()
        raise
    return m


def start_kernel_threads(sup, swapcached=True, pageout=True):
    """kproc_start the pagedaemon, then swapcached (SI_ORDER_FIRST, then
    SECOND: pageout's targets are set before swapcached reads them)."""
    tids = {}
    if pageout:
        tids["pagedaemon"] = sup.kproc_start("pagedaemon", vm_pageout_thread)
    if swapcached:
        tids["swapcached"] = sup.kproc_start("swapcached",
                                             vm_swapcached_thread)
    return tids


def vm_shutdown(machine):
    """shutdown_pre_sync: stop swapcache I/O, then wake the daemons."""
    shutdown_swapcache(machine)
    lib.wakeup(lib.IDENT_PAGEDAEMON)
