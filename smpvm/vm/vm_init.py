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

# Bugs on purpose: named wrong variants of the kernel code, selectable with
# --bug NAME on top of either kernel.  name: (BUG_* bits, what is wrong,
# where it comes from).  The fixed kernel carries none of them; the seed
# kernel carries the first five (its own defects).
BUGS = {
    "yield-before-hold": (lib.BUG_YIELD_BEFORE_HOLD, "cleaning: lwkt_yield "
                          "before vm_object_hold (the object may be freed)",
                          "seed 7.4(a)"),
    # (b)-(d) need (a)'s yield: it is the blocking point that lets the
    # object the marker goes back in front of be unlinked
    "clean-markers": (lib.BUG_CLEAN_MARKERS | lib.BUG_YIELD_BEFORE_HOLD,
                      "cleaning: holds other threads' markers, re-inserts "
                      "its marker before an object reached after blocking "
                      "(with (a)'s yield)", "seed 7.4(b)-(d)"),
    "condfree-neg": (lib.BUG_CONDFREE_NEG, "condfree returns -1 when its "
                     "swblock budget runs out (cleaning overruns)",
                     "seed 7.4(e)"),
    "swblock-leak": (lib.BUG_SWBLOCK_LEAK, "meta_free leaks the last block "
                     "of an emptied swblock, and frees a range entry by "
                     "entry, blocking in between (hazard H2)",
                     "seed 7.4(g), H2"),
    "write-ignores-swapinprog": (lib.BUG_WRITE_IGNORES_SWAPINPROG,
                                 "a buffer write does not wait for an "
                                 "in-flight swap write", "hazard H1"),
    "skip-unswap-on-write": (lib.BUG_SKIP_UNSWAP_ON_WRITE, "a buffer write "
                             "keeps the stale swap copy", "classic"),
    "no-object-recheck": (lib.BUG_NO_OBJECT_RECHECK, "writing pass: "
                          "m->object read before the page is busied and "
                          "not rechecked after the hold", "classic"),
    "no-object-hold": (lib.BUG_NO_OBJECT_HOLD, "writing pass: the object "
                       "is used without vm_object_hold", "classic"),
    "no-pip": (lib.BUG_NO_PIP, "flush: pages written without "
               "vm_object_pip_add", "classic"),
    "flush-unbusied": (lib.BUG_FLUSH_UNBUSIED, "flush: the page is "
                       "unbusied before its I/O is set up", "classic"),
    "inverted-locks": (lib.BUG_INVERTED_LOCKS, "writing pass: page "
                       "spinlock taken under the queue spinlock", "classic"),
    "lost-io-wakeup": (lib.BUG_LOST_IO_WAKEUP, "swap iodone clears busy "
                       "without waking the sleepers", "classic"),
    "marker-unlocked": (lib.BUG_MARKER_UNLOCKED, "writing pass: the marker "
                        "is moved without the queue spinlock", "classic"),
}


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
