"""Bringing the VM up on a machine: files, sysctls, the kernel variant and
its bugs on purpose, the SSD fault parameters, and the kernel threads
(pagedaemon, swapcached) under a supervisor.

Everything a run changes in the kernel's globals at boot is an argument of
vm_boot, so no caller writes kernel globals itself.  Loading this module
loads vm_swapcache, whose vm.swapcache.* sysctl declarations register
themselves as they are read (as SYSCTL_* entries exist once their file is
linked into the kernel): every tool that boots or attaches sees them.
"""
import contextlib

from smpvm.kern.thread import bound_thread
from smpvm.layout import lib
from smpvm.machine import Machine
from smpvm.vfs.vnode import vfs_boot
from smpvm.vm.vm_pageout import vm_pageout_thread
from smpvm.vm.bugs import version_bits
from smpvm.vm.versions import FIXED, NEWEST, VERSIONS, lookup
from smpvm.vm.vm_swapcache import (shutdown_swapcache, vm_swapcache_boot,
                                   vm_swapcached_thread)
from smpvm.vm.vmview import vmview

# --kernel: "seed", each upstream commit after it by short hash
# (smpvm/vm/versions.py), and "fixed" (the newest plus smpvm's own fixes of
# H1 and H2).  KERNELS: name -> the BUG_* bits of its defects;
# KERNEL_VERSIONS: name -> its KV_* ordinal.
KERNELS = {v.name: version_bits(v.ordinal) for v in VERSIONS}
KERNELS[FIXED] = version_bits(NEWEST.ordinal, fixed=True)
KERNEL_VERSIONS = {v.name: v.ordinal for v in VERSIONS}
KERNEL_VERSIONS[FIXED] = NEWEST.ordinal


def kernel_name(name):
    """The canonical --kernel name of name ("seed", a short hash, "fixed";
    a unique prefix of a commit's hash too).  ValueError naming the
    choices if it names none."""
    if name in KERNELS:
        return name
    try:
        return lookup(name).name
    except KeyError:
        raise ValueError(f"kernel {name!r}: seed, fixed or one of "
                         + ", ".join(v.name for v in VERSIONS[1:])
                         + " (smpvm kernels lists them)") from None


# vm.swapcache.* at boot: the seed's exact defaults (swapcache off), the
# demo set (vm_swapcache.demo_sysctls), or the stress set over the demo one
SYSCTL_PROFILES = ("kernel", "demo", "stress")
FAULTS = ("seed", "eio_ppm", "short_ppm", "enospc_ppm", "delay_ppm",
          "delay_us")


def stress_sysctls(machine):
    """The stress profile: the stress workload rewrites pages fast, so
    swapcached may write half the SSD per second (demo: 1/8) and the cache
    fills and cleans within seconds."""
    accrate = machine.config.nswap * lib.PAGE_SIZE // 2
    return {"accrate": accrate, "minburst": accrate,
            "maxburst": 4 * accrate, "curburst": 4 * accrate}


def vm_boot(machine, kernel="fixed", bugs=0, sysctls="demo", faults=None):
    """Create the machine's files and the meta device, choose the kernel
    variant (plus the BUG_* bits of bugs on purpose), set vm.swapcache.*
    to a profile of SYSCTL_PROFILES and the SSD faults (a dict of FAULTS
    fields; none by default).  The caller is a thread of machine (the
    creator) and holds no lock."""
    name = kernel_name(kernel)
    ordinal, bits = KERNEL_VERSIONS[name], KERNELS[name]
    if sysctls not in SYSCTL_PROFILES:
        raise ValueError(f"sysctl profile {sysctls!r}: "
                         + ", ".join(SYSCTL_PROFILES))
    vmg = vmview(machine).raw.vmg
    if lib.vm_set_version(ordinal) != 0:
        raise ValueError(f"kernel {kernel!r}: the machine is in use")
    machine.__dict__.pop("_kernel_version", None)
    vmg.bugs = bits
    vfs_boot(machine)
    vm_swapcache_boot(machine, "kernel" if sysctls == "kernel" else "demo")
    vmg.bugs |= bugs            # after the files: boot is the variant's own
    if sysctls == "stress":
        for name, value in stress_sysctls(machine).items():
            setattr(vmg.swapcache, name, value)
    for name, value in (faults or {}).items():
        if name not in FAULTS:
            raise ValueError(f"fault {name!r}: one of {', '.join(FAULTS)}")
        setattr(vmg.faults, name, value)


def boot_machine(cfg, kernel="fixed", sysctls="demo", bugs=0, faults=None):
    """Create a machine and bring its VM up (vm_boot); the creator plays
    the thread 'init' for the duration.  Returns the Machine (destroy it
    when done)."""
    m = Machine.create(cfg)
    try:
        with bound_thread(m, "init", kind=lib.TDK_KTHREAD):
            vm_boot(m, kernel, bugs, sysctls, faults)
    except BaseException:
        m.destroy()
        raise
    return m


@contextlib.contextmanager
def booted_vm(cfg, kernel="fixed", thread="host", bugs=0, sysctls="demo"):
    """A machine of cfg with its VM up and this process bound as thread
    `thread`, destroyed at the end of the block: the tests' vm fixture and
    the pytest plugin's checked_vm.  No kernel thread runs unless the block
    starts one."""
    with Machine.create(cfg) as m:
        with bound_thread(m, thread):
            vm_boot(m, kernel, bugs, sysctls)
            yield m


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
