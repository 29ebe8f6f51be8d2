"""Spinlocks and critical sections (sys/sys/spinlock2.h, kern_spinlock.c).

Each kernel name below *is* the C entry point (one cffi call per operation;
see csrc/smpvm.c for the full contracts):

spin_lock(id)        enter a critical section, take spinlock id (TTAS, the
                     seed's algorithm; yields the host CPU every
                     debug.spin_yield_spins loops; warns, dumps backtraces and
                     panics at debug.spin_{warn,backtrace,panic}_ms).  The
                     caller must not hold id: spinlocks do not recurse.
spin_trylock(id)     1 if taken, 0 (and no critical section) otherwise.
spin_unlock(id)      caller must hold id; records hold time; leaves the
                     critical section.
spin_held(id)        1 if this thread holds id.
spin_pool_index(a)   the pool spinlock for emulated address a:
                     ((a >> 5) ^ (a >> 12)) & (spin_pool - 1), so unrelated
                     objects may share a lock, as in the kernel.
crit_enter/crit_exit nest the thread's critical-section count.
"""
from smpvm.layout import lib

spin_lock = lib.spin_lock
spin_trylock = lib.spin_trylock
spin_unlock = lib.spin_unlock
spin_held = lib.spin_held
spin_pool_index = lib.spin_pool_index
crit_enter = lib.crit_enter
crit_exit = lib.crit_exit
