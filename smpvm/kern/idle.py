"""What CPU processes run when no workload is given.

cpu_idle_loop sleeps until shutdown.  lock_exercise_loop hammers spinlocks,
tokens (nested, pool-aliased, LIFO), token-loss points and tsleep/wakeup --
a smoke load that makes `smpvm ps` and the lock statistics show something.
"""
import random

from smpvm.kern.kern_synch import tsleep, wakeup
from smpvm.kern.safepoint import safepoint
from smpvm.kern.lwkt_token import (lwkt_gettoken, lwkt_reltoken,
                                   lwkt_token_pool_lookup, lwkt_yield)
from smpvm.kern.spinlock import spin_lock, spin_pool_index, spin_unlock
from smpvm.layout import lib


def cpu_idle_loop(machine):
    """Sleep on the shutdown ident until the machine shuts down."""
    while not machine.shutting_down():
        tsleep(lib.IDENT_SHUTDOWN, 0, "idle", machine.config.hz)
        safepoint(machine)


def lock_exercise_loop(machine, seed=0):
    """Random lock traffic until shutdown (seeded per CPU)."""
    rng = random.Random(seed * 1000 + lib.smpvm_curtid())
    hz = machine.config.hz
    n = 0
    while not machine.shutting_down():
        safepoint(machine)
        for _ in range(200):
            op = rng.random()
            addr = rng.randrange(64) * lib.PAGE_SIZE
            if op < 0.5:
                s = spin_pool_index(addr)
                spin_lock(s)
                spin_unlock(s)
            elif op < 0.9:
                toks = [lib.TOK_VM] if rng.random() < 0.2 else []
                toks += [lwkt_token_pool_lookup(addr + k * lib.PAGE_SIZE)
                         for k in range(rng.randint(1, 3))]
                for t in toks:
                    lwkt_gettoken(t)
                if rng.random() < 0.05:
                    lwkt_yield()
                for t in reversed(toks):
                    lwkt_reltoken(t)
            elif op < 0.995:
                wakeup(0x1000 + rng.randrange(8))
            else:
                tsleep(0x1000 + rng.randrange(8), 0, "exer", 1)
        n += 1
        if n % 64 == 0:
            tsleep(lib.IDENT_SHUTDOWN, 0, "breathe", max(1, hz // 100))

