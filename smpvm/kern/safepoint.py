"""Stop-the-world at safe points, for the invariant checker.

A thread reaches a safe point only where it holds no spinlock, no busied
page and no token it relies on (CPU workloads between operations, kernel
threads at the top of their loops, vm_wait after its sleep).  There it
parks while a check is requested.  The checker (in the supervisor) asks,
waits until every live thread is parked, reads, and lets them go.
"""
import time

from smpvm.kern.kern_synch import tsleep, wakeup
from smpvm.layout import ffi, lib, threads


def safepoint(machine):
    """Park here while a stop-the-world is requested.  Caller holds no
    spinlock and no busied page."""
    h = machine.hdr
    if not h.park_request:
        return
    parked = ffi.addressof(h, "parked")
    lib.atomic_fetchadd_int(parked, 1)
    try:
        while h.park_request and not machine.shutting_down():
            tsleep(lib.IDENT_PARK, 0, "park", max(1, machine.config.hz // 10))
    finally:
        lib.atomic_fetchadd_int(parked, 0xffffffff)     # -1


def _live(machine):
    td = threads(machine.base)
    return [i for i in range(machine.config.maxthreads)
            if td[i].state not in (lib.TDS_FREE, lib.TDS_EXITED)
            and td[i].kind in (lib.TDK_CPU, lib.TDK_KTHREAD)]


def stop_request(machine, wake=()):
    """Ask every thread to park at its next safe point (returns at once;
    poll world_stopped).  wake: idents to wakeup so sleeping daemons reach
    their safe point (idle CPUs, asleep on IDENT_SHUTDOWN, always are)."""
    machine.hdr.park_request = 1
    world_stopped(machine, wake)


def world_stopped(machine, wake=()):
    """Wake the sleepers again; True once every live thread is parked."""
    for ident in set(wake) | {lib.IDENT_SHUTDOWN}:
        wakeup(ident)
    return not unparked(machine) and \
        machine.hdr.parked == len(_live(machine))


def unparked(machine):
    """The live threads (tids) not parked at a safe point yet."""
    td = threads(machine.base)
    return [i for i in _live(machine)
            if not (td[i].state == lib.TDS_SLEEPING
                    and td[i].wchan == lib.IDENT_PARK)]


def stop_the_world(machine, timeout=10.0, wake=()):
    """Request parking and wait until every live thread is parked.
    Returns True when stopped; False on timeout, panic or shutdown (the
    request is withdrawn)."""
    stop_request(machine, wake)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if world_stopped(machine, wake):
            return True
        if machine.panicked or machine.shutting_down():
            break
        time.sleep(0.002)
    restart_the_world(machine)
    return False


def restart_the_world(machine):
    machine.hdr.park_request = 0
    wakeup(lib.IDENT_PARK)
