#!/usr/bin/env python3
"""Benchmark the swapcache's data path against the raw SSD file, from one
run on one machine.

Measures, each as the median of --reps repetitions (after --warmup
untimed ones), on one machine (ncpus=2, fixed kernel, demo sysctls, no
kernel threads: the passes are called directly by this process, as
tests/test_swapcache.py does):

  1. write bandwidth of the swapcached writing pass, throttle lifted
     (curburst huge, hysteresis 0, inactive heuristic 0, maxlaunder huge:
     open_gate() of the tests), over files whose pages are clean and on the
     INACTIVE queue (sys_write leaves them there); bandwidth = pages
     written (vm counter swap_write_pages) * 4096 / time of
     vm_swapcache_writing(marker).  Against: raw os.pwrite of 64 KiB
     clusters, the same number of bytes, to the same SSD file (its upper
     half, written just before the pass).
  2. diverted-read throughput: the written pages are freed (busy, protect
     NONE, vm_page_free: the swap copy outlives them), then the files are
     read with sys_read in 16 KiB (4-page, buffer-sized) chunks; every page
     must come back diverted (ReadStats.diverted) with the right bytes.
     Against: one raw 4 KiB os.pread per page of the same blocks
     (swap_pager_meta_lookup), in the same order.
  3. pages examined per second by the writing scan: a second writing pass
     over the same queue, whose pages are now all PG_SWAPPED (skipped for
     free); pages = delta of the vm counter pages_scanned.

Before the first repetition the whole SSD file is written once and
fsync'ed (it is created sparse), so that every timed write, raw or not, is
an overwrite of allocated blocks; between timed sections the SSD and the
backing files are fsync'ed, so that writeback of one section does not land
in the next.  Each repetition creates its files, measures, then closes and
unlinks them (which frees their swap), so swap never fills up.

Then prints the ratios (median of the per-repetition ratios, each pairing
the two sides of the same repetition) and whether each goal is met.  The
goals are not assertions: the exit status is 0 either way (130 on Ctrl-C,
1 if the machine panicked or a sanity check failed).

Usage:  python tools/bench_swapcache.py [--reps N] [--pages N]
                                        [--file-pages N] [--warmup N]
                                        [--datadir DIR] [--json FILE]
"""
import argparse
import gc
import json
import os
import platform
import signal
import statistics
import struct
import sys
import tempfile
import time

import cffi

from smpvm.config import MachineConfig
from smpvm.errors import Panic
from smpvm.kern.thread import bound_thread
from smpvm.layout import lib
from smpvm.machine import Machine
from smpvm.vfs import syscalls as sc
from smpvm.vfs.vnode import backing_fd
from smpvm.vm import vm_page as P
from smpvm.vm import vm_swapcache as S
from smpvm.vm.swap_pager import swapdev_path
from smpvm.vm.vm_init import vm_boot
from smpvm.vm.vm_object import resident_pages, vm_object_drop, vm_object_hold
from smpvm.vm.vmview import vmview

PAGE = lib.PAGE_SIZE
INACT = lib.PQ_INACTIVE
CLUSTER = 64 * 1024                 # raw write size: one 16-page cluster
READ_CHUNK = 16 * 1024              # sys_read size: one 4-page buffer
MEM_SLACK = 512                     # npages = pages + this
SWAP_SLACK = 1024                   # nswap = 2 * pages + this

GOAL_WRITE = 0.9                    # writing pass / raw pwrite, at least
GOAL_READ = 0.5                     # diverted read / raw pread, at least
GOAL_SCAN = 500_000                 # pages examined per second, at least

perf_ns = time.perf_counter_ns


class BenchError(RuntimeError):
    """A sanity check failed: the figures would not mean what they say."""


class DeferSigint:
    """Hold Ctrl-C until the block ends, so that a KeyboardInterrupt never
    lands inside a pass holding a queue spinlock or a token (the thread
    would exit holding a lock: a panic).  Re-raised on exit of the block."""

    def __enter__(self):
        self.hit = False
        self.old = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.old)
        if self.hit and exc[0] is None:
            raise KeyboardInterrupt
        return False


class Quiet:
    """DeferSigint and the cyclic GC off for a timed section."""

    def __enter__(self):
        self.ds = DeferSigint().__enter__()
        self.gc = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        if self.gc:
            gc.enable()
        return self.ds.__exit__(*exc)


# ---- helpers over the machine ----------------------------------------------
def swc():
    return vmview().vmg.swapcache


def open_gate():
    """The throttle lifted, as open_gate() of the tests, and maxlaunder
    huge: one pass writes every eligible page of the queue."""
    s = swc()
    s.hysteresis = 0
    vmview().vmg.vm_swapcache_inactive_heuristic = 0
    s.curburst = 1 << 40
    s.maxlaunder = 1 << 30


def marker_to_head(mk, inserted):
    """(Re)insert this thread's marker at the head of INACTIVE."""
    P.vm_page_queues_spin_lock(INACT)
    try:
        if inserted:
            P.vm_page_marker_remove(INACT, mk)
        P.vm_page_marker_insert_head(INACT, mk)
    finally:
        P.vm_page_queues_spin_unlock(INACT)


def marker_remove(mk):
    P.vm_page_queues_spin_lock(INACT)
    try:
        P.vm_page_marker_remove(INACT, mk)
    finally:
        P.vm_page_queues_spin_unlock(INACT)


def page_tag(rep, f, p):
    """The contents of page p of file f of repetition rep: a 16-byte tag
    repeated, so that a page read from the wrong block is caught."""
    return struct.pack("<QQ", (rep << 32) | f, p) * (PAGE // 16)


def file_bytes(rep, f, npages):
    return b"".join(page_tag(rep, f, p) for p in range(npages))


def free_resident(vp):
    """Free vp's resident pages as _cleaning_setup does; the swap copy of
    each stays.  Returns how many were freed."""
    obj = vmview().vnodes[vp].v_object
    vm_object_hold(obj)
    try:
        ms = resident_pages(obj)
        for m in ms:
            P.vm_page_busy_wait(m, True, "bench")
            P.vm_page_protect(m, lib.VM_PROT_NONE)
            P.vm_page_free(m)
    finally:
        vm_object_drop(obj)
    return len(ms)


def swap_blocks(vp, npages):
    obj = vmview().vnodes[vp].v_object
    vm_object_hold(obj)
    try:
        return [lib.swap_pager_meta_lookup(obj, p) for p in range(npages)]
    finally:
        vm_object_drop(obj)


def prefill(fd, nbytes):
    """Write every byte of the (sparse) SSD file once and fsync it."""
    chunk = bytes(1 << 20)
    off = 0
    while off < nbytes:
        n = min(len(chunk), nbytes - off)
        os.pwrite(fd, chunk[:n] if n < len(chunk) else chunk, off)
        off += n
    os.fsync(fd)


def fs_of(path):
    """(device, fstype) of the mount holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("?", "?", "")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, typ = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                        and len(mnt) > len(best[2]):
                    best = (dev, typ, mnt)
    except OSError:
        pass
    return best[0], best[1]


# ---- one repetition ---------------------------------------------------------
def one_rep(m, rep, args, ssd_fd, raw_base, mk, mk_inserted):
    v = vmview()
    cnt = v.cnt
    nfiles, fpages = args.pages // args.file_pages, args.file_pages
    pages = nfiles * fpages
    r = {}

    # files: clean pages on the INACTIVE tail, their bytes on the disk
    vps = []
    for f in range(nfiles):
        vp = sc.sys_open(f"r{rep}f{f}", create=True)
        sc.sys_write(vp, 0, file_bytes(rep, f, fpages))
        vps.append(vp)
    for vp in vps:
        os.fsync(backing_fd(m, vp))
    if v.vmg.vm_swap_cache_use != 0:
        raise BenchError(f"swap in use before rep {rep}: "
                         f"{v.vmg.vm_swap_cache_use} blocks")

    # 1a. raw pwrite of 64 KiB clusters, as many bytes as the pass writes
    buf = page_tag(rep, 0xffff, 0) * (CLUSTER // PAGE)
    nclusters = pages * PAGE // CLUSTER
    offs = [raw_base + i * CLUSTER for i in range(nclusters)]
    pwrite = os.pwrite
    with Quiet():
        t0 = perf_ns()
        for off in offs:
            pwrite(ssd_fd, buf, off)
        r["raw_write_ns"] = perf_ns() - t0
    r["raw_write_bytes"] = nclusters * CLUSTER
    os.fsync(ssd_fd)

    # 1b. the writing pass, throttle lifted
    open_gate()
    marker_to_head(mk, mk_inserted)
    w0, c0, e0 = (cnt.swap_write_pages, cnt.swap_write_clusters,
                  cnt.swap_write_errors)
    s0 = cnt.pages_scanned
    with Quiet():
        t0 = perf_ns()
        S.vm_swapcache_writing(mk)
        r["write_ns"] = perf_ns() - t0
    r["write_pages"] = cnt.swap_write_pages - w0
    r["write_clusters"] = cnt.swap_write_clusters - c0
    r["write_scanned"] = cnt.pages_scanned - s0
    errs = cnt.swap_write_errors - e0
    if errs or r["write_pages"] != pages:
        raise BenchError(f"rep {rep}: the writing pass wrote "
                         f"{r['write_pages']} of {pages} pages "
                         f"({errs} write errors)")
    os.fsync(ssd_fd)

    # 3. a second pass over the same queue: every page is PG_SWAPPED now
    open_gate()
    marker_to_head(mk, True)
    s0, f0, w0 = cnt.pages_scanned, cnt.skip_free, cnt.swap_write_pages
    with Quiet():
        t0 = perf_ns()
        S.vm_swapcache_writing(mk)
        r["scan_ns"] = perf_ns() - t0
    r["scan_pages"] = cnt.pages_scanned - s0
    r["scan_skip_free"] = cnt.skip_free - f0
    if cnt.swap_write_pages != w0 or r["scan_pages"] < pages:
        raise BenchError(f"rep {rep}: the scan pass wrote "
                         f"{cnt.swap_write_pages - w0} pages and examined "
                         f"{r['scan_pages']} (expected 0 and >= {pages})")

    # 2. free the pages (the swap copies stay), then read them back
    freed = sum(free_resident(vp) for vp in vps)
    if freed != pages or v.vmg.vm_swap_cache_use != pages:
        raise BenchError(f"rep {rep}: freed {freed} pages, swap cache use "
                         f"{v.vmg.vm_swap_cache_use}, expected {pages}")
    blocks = []
    for vp in vps:
        blocks.extend(swap_blocks(vp, fpages))
    if lib.SWAPBLK_NONE in blocks:
        raise BenchError(f"rep {rep}: a written page has no swap block")
    r["read_runs"] = 1 + sum(1 for a, b in zip(blocks, blocks[1:])
                             if b != a + 1)

    chunks_per_file = fpages * PAGE // READ_CHUNK
    sys_read = sc.sys_read
    got = []
    diverted = zero = err = 0
    with Quiet():
        t0 = perf_ns()
        for vp in vps:
            for k in range(chunks_per_file):
                data, st = sys_read(vp, k * READ_CHUNK, READ_CHUNK)
                got.append(data)
                diverted += len(st.diverted)
                zero += len(st.zero_filled)
                err = err or st.error
        r["read_ns"] = perf_ns() - t0
    r["read_pages"] = pages
    r["read_diverted"] = diverted
    if diverted != pages or zero or err:
        raise BenchError(f"rep {rep}: {diverted} of {pages} pages diverted, "
                         f"{zero} zero-filled, error {err}")
    want = b"".join(file_bytes(rep, f, fpages) for f in range(nfiles))
    if b"".join(got) != want:
        raise BenchError(f"rep {rep}: diverted reads returned wrong bytes")
    del got

    poffs = [b * PAGE for b in blocks]
    pread = os.pread
    raw = []
    with Quiet():
        t0 = perf_ns()
        for off in poffs:
            raw.append(pread(ssd_fd, PAGE, off))
        r["raw_read_ns"] = perf_ns() - t0
    if b"".join(raw) != want:
        raise BenchError(f"rep {rep}: raw preads of the swap blocks returned "
                         "other bytes than the files'")
    del raw, want

    # clean up: the last close of an unlinked file frees its pages and swap
    for f, vp in enumerate(vps):
        sc.sys_close(vp)
        sc.sys_unlink(f"r{rep}f{f}")
    if v.vmg.vm_swap_cache_use != 0:
        raise BenchError(f"rep {rep}: {v.vmg.vm_swap_cache_use} swap blocks "
                         "still in use after unlink")
    os.fsync(ssd_fd)

    # derived
    r["write_MBps"] = r["write_pages"] * PAGE / r["write_ns"] * 1e3
    r["raw_write_MBps"] = r["raw_write_bytes"] / r["raw_write_ns"] * 1e3
    r["read_MBps"] = pages * PAGE / r["read_ns"] * 1e3
    r["raw_read_MBps"] = pages * PAGE / r["raw_read_ns"] * 1e3
    r["scan_pps"] = r["scan_pages"] / r["scan_ns"] * 1e9
    r["ratio_write"] = r["write_MBps"] / r["raw_write_MBps"]
    r["ratio_read"] = r["read_MBps"] / r["raw_read_MBps"]
    return r


def run(args):
    pages = args.pages // args.file_pages * args.file_pages
    npages = pages + MEM_SLACK
    nswap = (2 * pages + SWAP_SLACK + 31) // 32 * 32
    cfg = MachineConfig(ncpus=2, npages=npages, nswap=nswap,
                        datadir_base=args.datadir)
    res = {"warmup": [], "reps": []}
    with Machine.create(cfg) as m:
        res["machine"] = m.name
        res["npages"], res["nswap"] = npages, nswap
        with bound_thread(m, "bench"):
            vm_boot(m, "fixed")
            path = swapdev_path(m)
            res["ssd"] = path
            res["ssd_fs"] = fs_of(path)
            ssd_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                t0 = perf_ns()
                prefill(ssd_fd, nswap * PAGE)
                res["prefill_s"] = (perf_ns() - t0) / 1e9
                # raw writes go to the upper half of the SSD, whole clusters
                raw_base = (nswap - pages) // 16 * 16 * PAGE
                mk = P.vm_page_marker(0)
                inserted = False
                for i in range(args.warmup + args.reps):
                    r = one_rep(m, i, args, ssd_fd, raw_base, mk, inserted)
                    inserted = True
                    (res["warmup"] if i < args.warmup
                     else res["reps"]).append(r)
                if inserted:
                    marker_remove(mk)
            finally:
                os.close(ssd_fd)
    return res


# ---- report -----------------------------------------------------------------
def stats(vals):
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "reps": vals}


def derive(res):
    reps = res["reps"]
    d = {}
    for k in ("write_MBps", "raw_write_MBps", "read_MBps", "raw_read_MBps",
              "scan_pps", "ratio_write", "ratio_read"):
        d[k] = stats([r[k] for r in reps])
    d["us_per_page_write"] = stats([r["write_ns"] / r["write_pages"] / 1e3
                                    for r in reps])
    d["us_per_page_raw_write"] = stats(
        [r["raw_write_ns"] / (r["raw_write_bytes"] // PAGE) / 1e3
         for r in reps])
    d["us_per_page_read"] = stats([r["read_ns"] / r["read_pages"] / 1e3
                                   for r in reps])
    d["us_per_page_raw_read"] = stats([r["raw_read_ns"] / r["read_pages"]
                                       / 1e3 for r in reps])
    d["ns_per_page_scan"] = stats([r["scan_ns"] / r["scan_pages"]
                                   for r in reps])
    d["goal_write"], d["goal_read"], d["goal_scan"] = (GOAL_WRITE, GOAL_READ,
                                                       GOAL_SCAN)
    d["goal_write_met"] = d["ratio_write"]["median"] >= GOAL_WRITE
    d["goal_read_met"] = d["ratio_read"]["median"] >= GOAL_READ
    d["goal_scan_met"] = d["scan_pps"]["median"] >= GOAL_SCAN
    return d


def print_report(args, res, d):
    w = sys.stdout.write
    r0 = res["reps"][0]
    pages = r0["read_pages"]
    nfiles = pages // args.file_pages
    dev, fst = res["ssd_fs"]
    w(f"smpvm swapcache: {args.reps} reps (+{args.warmup} warm-up) x "
      f"{pages} pages ({nfiles} files x {args.file_pages} pages, "
      f"{pages * PAGE / 2**20:.0f} MiB), median (min..max) of reps\n")
    w(f"machine {res['machine']}, ncpus=2, npages={res['npages']}, "
      f"nswap={res['nswap']}, fixed kernel, no kernel threads\n")
    w(f"SSD {res['ssd']} on {dev} ({fst}), prefilled and fsync'ed "
      f"in {res['prefill_s']:.2f} s\n")
    w(f"python {platform.python_version()}, cffi {cffi.__version__}, "
      f"{os.cpu_count()} host CPUs, {platform.machine()}\n\n")

    rows = [
        ("1 writing pass, throttle lifted", "write_MBps", "MB/s",
         "us_per_page_write", "us/page"),
        ("  raw os.pwrite, 64 KiB clusters", "raw_write_MBps", "MB/s",
         "us_per_page_raw_write", "us/page"),
        ("2 diverted sys_read, 16 KiB chunks", "read_MBps", "MB/s",
         "us_per_page_read", "us/page"),
        ("  raw os.pread, 4 KiB per page", "raw_read_MBps", "MB/s",
         "us_per_page_raw_read", "us/page"),
        ("3 writing scan, all PG_SWAPPED", "scan_pps", "pages/s",
         "ns_per_page_scan", "ns/page"),
    ]
    lw = max(len(r[0]) for r in rows) + 2

    def num(x):
        return f"{x:,.0f}" if x >= 10000 else f"{x:.1f}"

    w(f"{'measurement':<{lw}}{'median':>11}{'min':>11}{'max':>11}  "
      f"{'unit':<8}{'per page':>10}\n")
    w("-" * (lw + 61) + "\n")
    for label, key, unit, pk, punit in rows:
        s, ps = d[key], d[pk]
        w(f"{label:<{lw}}{num(s['median']):>11}{num(s['min']):>11}"
          f"{num(s['max']):>11}  {unit:<8}{ps['median']:>10.2f} {punit}\n")
    wc = statistics.median(r["write_clusters"] for r in res["reps"])
    runs = statistics.median(r["read_runs"] for r in res["reps"])
    w(f"\n1: {r0['write_pages']} pages written per pass in {wc:.0f} "
      f"clusters (vm counter swap_write_pages); raw: the same bytes\n"
      f"2: {r0['read_diverted']} of {pages} pages diverted per rep, bytes "
      f"checked; the blocks form {runs:.0f} contiguous run(s)\n"
      f"3: {r0['scan_pages']} pages examined per pass (vm counter "
      f"pages_scanned), {r0['scan_skip_free']} skipped for free, "
      f"0 written\n\n")

    def goal(met):
        return "goal met" if met else "goal missed"

    rows = [
        ("1 writing pass / raw pwrite", "ratio_write", f">= {GOAL_WRITE}",
         d["goal_write_met"], "{:.3f}"),
        ("2 diverted read / raw pread", "ratio_read", f">= {GOAL_READ}",
         d["goal_read_met"], "{:.3f}"),
        ("3 pages examined per second", "scan_pps", f">= {GOAL_SCAN:,}",
         d["goal_scan_met"], "{:,.0f}"),
    ]
    rw = max(len(r[0]) for r in rows) + 2
    w(f"{'ratio':<{rw}}{'median':>11}{'min':>11}{'max':>11}   "
      f"{'goal':<11}verdict\n")
    w("-" * (rw + 33 + 3 + 11 + 11) + "\n")
    for label, key, g, met, fmt in rows:
        s = d[key]
        w(f"{label:<{rw}}{fmt.format(s['median']):>11}"
          f"{fmt.format(s['min']):>11}{fmt.format(s['max']):>11}   "
          f"{g:<11}{goal(met)}\n")
    w("\nratios: per rep, emulated / raw of the same rep; the verdict is "
      "on their median\n")
    sys.stdout.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3,
                   help="repetitions; the median is reported (default 3)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed repetitions first (default 1)")
    p.add_argument("--pages", type=int, default=16384,
                   help="pages written and read per repetition, rounded "
                        "down to whole files (default 16384: 64 MiB)")
    p.add_argument("--file-pages", type=int, default=256,
                   help="pages per file, a multiple of 16 up to 4096 "
                        "(default 256)")
    p.add_argument("--datadir", default=tempfile.gettempdir(),
                   help="where the machine's data directory (and so the SSD "
                        "file) goes; put it on a real disk, not /dev/shm "
                        "(default %(default)s)")
    p.add_argument("--json", metavar="FILE",
                   help="also write every figure to FILE as JSON")
    args = p.parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    if args.file_pages < 16 or args.file_pages % 16 or \
            args.file_pages > 4096:
        p.error("--file-pages must be a multiple of 16 in 16..4096")
    if args.pages < args.file_pages:
        p.error("--pages must be at least --file-pages")
    if args.pages // args.file_pages > 200:
        p.error("at most 200 files per repetition (nvnodes is 256): "
                "raise --file-pages")
    if not os.path.isdir(args.datadir):
        p.error(f"--datadir {args.datadir}: not a directory")
    try:
        res = run(args)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except (Panic, BenchError) as e:
        sys.stderr.write(f"bench_swapcache: {type(e).__name__}: {e}\n")
        return 1
    d = derive(res)
    print_report(args, res, d)
    if args.json:
        doc = {
            "units": "MB/s = 1e6 bytes/s; pages of 4096 bytes; ns in *_ns",
            "params": {"reps": args.reps, "warmup": args.warmup,
                       "pages": res["reps"][0]["read_pages"],
                       "file_pages": args.file_pages,
                       "datadir": args.datadir, "ncpus": 2,
                       "npages": res["npages"], "nswap": res["nswap"],
                       "raw_write_size": CLUSTER, "read_chunk": READ_CHUNK},
            "host": {"python": platform.python_version(),
                     "cffi": cffi.__version__,
                     "cpus": os.cpu_count(),
                     "machine": platform.machine(),
                     "platform": platform.platform(),
                     "ssd_device": res["ssd_fs"][0],
                     "ssd_fstype": res["ssd_fs"][1]},
            "prefill_s": res["prefill_s"],
            "measurements": res["reps"],
            "warmup": res["warmup"],
            "derived": d,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
