"""Workloads CPU processes run.

files_workload: each CPU owns `files` files of `file_pages` pages; it
reads them (mostly) and writes them (sometimes), and checks every read
against what it wrote -- one writer per file, so the truth is exact.  The
working set is sized by the caller to exceed memory, so pages cycle
through INACTIVE, the SSD and back.  Machine-wide counters of the workload
live in the header's scratch words, added atomically once per 64 ops.
"""
import os
import random
import time

from smpvm.kern.thread import curthread
from smpvm.layout import ffi, lib
from smpvm.vfs import syscalls as sc

PAGE = lib.PAGE_SIZE
# header scratch words used by the workload's machine-wide counters
READS, BAD, DIVERTED, WRITES, ZERO_FILLS = range(5)


def counter(machine, k):
    return ffi.cast("uint64_t *", ffi.addressof(machine.hdr, "scratch")) + k


def _add(machine, k, n):
    if n:
        lib.atomic_fetchadd_long(counter(machine, k), n)


def workload_counters(machine):
    s = machine.hdr.scratch
    return {"reads": s[READS], "bad_reads": s[BAD],
            "diverted_pages": s[DIVERTED], "writes": s[WRITES],
            "zero_fills_seen": s[ZERO_FILLS]}


def files_workload(machine, files=8, file_pages=256, write_pct=5,
                   seed=0, seconds=None):
    """Read-heavy verified traffic on this CPU's own files until shutdown
    (or `seconds`)."""
    me = curthread().tid
    rng = random.Random(seed * 1000 + me)
    truth = {}
    for k in range(files):
        name = f"cpu{me}.{k}"
        vp = sc.sys_open(name, create=True)
        block = rng.randbytes(PAGE)
        data = bytearray(block * file_pages)
        sc.sys_write(vp, 0, bytes(data))
        truth[vp] = data
        if machine.shutting_down():
            return
    vps = list(truth)
    t_end = None if seconds is None else time.monotonic() + seconds
    reads = bad = diverted = writes = zf = 0
    while not machine.shutting_down():
        if t_end is not None and time.monotonic() > t_end:
            break
        for _ in range(64):
            vp = rng.choice(vps)
            if rng.randrange(100) < write_pct:
                off = rng.randrange(file_pages * PAGE - 512)
                d = rng.randbytes(rng.randrange(1, 512))
                sc.sys_write(vp, off, d)
                truth[vp][off:off + len(d)] = d
                writes += 1
                continue
            off = rng.randrange(file_pages) * PAGE
            n = min(rng.randrange(1, 5) * PAGE, file_pages * PAGE - off)
            got, st = sc.sys_read(vp, off, n)
            reads += 1
            diverted += len(st.diverted)
            zf += len(st.zero_filled)
            if got != bytes(truth[vp][off:off + n]):
                bad += 1
        _add(machine, READS, reads)
        _add(machine, BAD, bad)
        _add(machine, DIVERTED, diverted)
        _add(machine, WRITES, writes)
        _add(machine, ZERO_FILLS, zf)
        reads = bad = diverted = writes = zf = 0
    for vp in vps:
        sc.sys_close(vp)
    os.sched_yield()
