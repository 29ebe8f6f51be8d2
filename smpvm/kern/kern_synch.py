"""tsleep / wakeup (sys/kern/kern_synch.c) on futexes in the segment.

tsleep_interlock(ident)  queue the thread on ident before publishing a
                         "waiting" bit (PG_WANTED...), so no wakeup is lost.
tsleep(ident, flags, wmesg, timo)
                         sleep until wakeup(ident) or timo ticks (0: no
                         timeout).  Releases every token while asleep and owns
                         them again on return.  Returns 0 when woken,
                         EWOULDBLOCK on timeout.  Panics with a spinlock held.
wakeup(ident)            wake every sleeper on ident; never blocks.
wakeup_one(ident)        wake one sleeper on ident.
Spurious wakeups are possible in the kernel; every sleeper re-checks.
"""
from smpvm.layout import lib

PCATCH = lib.PCATCH
PINTERLOCKED = lib.PINTERLOCKED
EWOULDBLOCK = lib.SMPVM_EWOULDBLOCK

tsleep_interlock = lib.tsleep_interlock
wakeup = lib.wakeup
wakeup_one = lib.wakeup_one
_tsleep = lib.tsleep


def tsleep(ident, flags, wmesg, timo):
    """See the module docstring.  wmesg is a short str (as in the kernel)."""
    return _tsleep(ident, flags, wmesg.encode(), timo)
