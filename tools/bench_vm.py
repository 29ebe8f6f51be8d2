#!/usr/bin/env python3
"""Host cost of emulated VM work, each path beside its floor, from one run.

Host CPU time (user + system, of this process or of a stress run's whole
process tree) per emulated operation, so that a loaded host changes the
figures less than it changes wall time; every floor is measured in the same
run and every ratio is floor / emulated (1.0 would be the floor itself):

  micro   (one machine, this process its only thread, the seed kernel, the
          demo sysctls, no kernel threads: the passes are called directly;
          the seed's single INACTIVE queue is the one the writing pass is
          called on, as on 95cd202 -- the 256-queue versions spread the
          pages over a queue per page colour)
          sys_read of a resident page (4 KiB reads), of pages from the
          file and of pages diverted to the SSD (16 KiB, buffer-sized
          reads), sys_write of a page; a writing pass per page written and
          per page examined (all PG_SWAPPED: skipped); a cleaning pass per
          swblock freed.  Floors: raw os.pread/os.pwrite of 4 KiB (the
          files', the SSD's), raw os.pwrite of 64 KiB clusters per page (the
          writing pass's I/O; once from one cache-hot buffer, once as
          pwritev of the same pages' memory in the same clusters), the
          bare cffi call (lib.smpvm_noop).
  stress  `smpvm stress` (the defaults, --seed 1, --seconds S): ops/s and
          verified pages/s, and per CPU-second of the run's processes
          (CPUs, kernel threads, supervisor); floor: raw 4 KiB pread.
  scaling the same per-CPU workload (8 files x 64 pages, --npages 224N,
          --nswap 512N, --nmeta 128N) on N = 1, 2, 4 CPU processes: the
          default mix with its cross reads done as own reads (a one-CPU
          run does that with them, so only this mix gives every CPU the
          same work at any N), medians of --scaling-reps alternating
          rounds; then one round of the default mix itself.
  sizes   --npages 448 .. 262144 (a 1 GiB machine), three series: the
          stress defaults (8 files per CPU: the smallest machine pages, the
          larger ones hold them -- two regimes), the same workload at every
          size held in memory (2 files per CPU), and a working set that
          grows with the machine (8 files per CPU per 448 pages, up to
          44800): CPU per verified page, pages brought into memory per
          verified page, CPU per page verified or brought in; and what the
          largest machine costs to create and boot (wall, CPU, segment
          size, this process's resident memory).

It runs on any smpvm tree (it uses only the API every version has), so a
baseline comes from the same session: `cd OLD && .venv/bin/python
NEW/tools/bench_vm.py --json old.json` back to back with the new tree.
Not an assertion: exit 0 (130 on Ctrl-C, 1 if a sanity check failed).

Usage:  python tools/bench_vm.py [--seconds S] [--sections micro,stress,
        scaling,sizes] [--pages N] [--reps N] [--scaling-reps N]
        [--sizes 448,...]
        [--datadir DIR] [--json FILE]
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_swapcache import (Quiet, free_resident, marker_remove,  # noqa
                             marker_to_head, open_gate, swap_blocks)
from smpvm.config import MachineConfig  # noqa: E402
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken  # noqa
from smpvm.kern.thread import bound_thread  # noqa: E402
from smpvm.layout import lib  # noqa: E402
from smpvm.machine import Machine  # noqa: E402
from smpvm.vfs import syscalls as sc  # noqa: E402
from smpvm.vfs.vnode import backing_fd  # noqa: E402
from smpvm.vm import vm_page as P  # noqa: E402
from smpvm.vm import vm_swapcache as S  # noqa: E402
from smpvm.vm.swap_pager import swapdev_path  # noqa: E402
from smpvm.vm.vm_init import vm_boot  # noqa: E402
from smpvm.vm.vmview import vmview  # noqa: E402

PAGE = lib.PAGE_SIZE
CLUSTER = 64 * 1024
BUF = 4 * PAGE
FILE_PAGES = 64
cpu_ns = time.process_time_ns


class BenchError(RuntimeError):
    """A sanity check failed: the figures would not mean what they say."""


def version():
    """The tree's commit (smpvm's own directory), for the report."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(
        sys.modules["smpvm"].__file__)))
    try:
        return subprocess.run(["git", "-C", here, "rev-parse", "--short",
                               "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or here
    except (OSError, subprocess.SubprocessError):
        return here


def timed(fn, n):
    """CPU ns per call of fn() over n calls (the cyclic GC off, Ctrl-C held
    to the end)."""
    with Quiet():
        t0 = cpu_ns()
        fn()
        return (cpu_ns() - t0) / n


def row(name, ns, floor_name, floor_ns, unit="page"):
    return {"path": name, "us": ns / 1e3, "floor": floor_name,
            "floor_us": floor_ns / 1e3, "ratio": floor_ns / ns,
            "per": unit}


# ---- micro: one machine, the paths called directly ---------------------------
def micro(a):
    pages = a.pages // FILE_PAGES * FILE_PAGES
    nfiles = pages // FILE_PAGES
    npages = pages + 512
    nswap = (2 * pages + 1024 + 31) // 32 * 32
    cfg = MachineConfig(ncpus=2, npages=npages, nswap=nswap,
                        datadir_base=a.datadir)
    reps = {}

    def rec(k, v):
        reps.setdefault(k, []).append(v)

    with Machine.create(cfg) as m, bound_thread(m, "bench"):
        vm_boot(m, "seed")      # one INACTIVE queue: see the docstring
        v = vmview()
        ssd = os.open(swapdev_path(m), os.O_RDWR | os.O_CLOEXEC)
        try:
            # the SSD allocated once (it is created sparse)
            zero = bytes(1 << 20)
            for off in range(0, nswap * PAGE, len(zero)):
                os.pwrite(ssd, zero[:min(len(zero), nswap * PAGE - off)],
                          off)
            os.fsync(ssd)
            mk = P.vm_page_marker(0)
            omk = lib.vm_object_marker()
            lwkt_gettoken(lib.TOK_VMOBJ)
            lib.vm_object_list_insert_head(omk)
            lwkt_reltoken(lib.TOK_VMOBJ)
            inserted = False
            for rep in range(a.reps + 1):
                r = micro_rep(m, v, rep, nfiles, pages, ssd, nswap, mk,
                              inserted, omk)
                inserted = True
                if rep:                         # the first is a warm-up
                    for k, x in r.items():
                        rec(k, x)
            marker_remove(mk)
            lwkt_gettoken(lib.TOK_VMOBJ)
            lib.vm_object_list_remove(omk)
            lwkt_reltoken(lib.TOK_VMOBJ)
        finally:
            os.close(ssd)
    med = {k: statistics.median(x) for k, x in reps.items()}
    rows = [
        row("sys_read, resident page (4 KiB reads)", med["read_res"],
            "raw pread 4 KiB, file", med["raw_pread"], "read"),
        row("sys_read, page from the file (16 KiB reads)", med["read_file"],
            "raw pread 4 KiB, file", med["raw_pread"]),
        row("sys_read, page diverted to the SSD (16 KiB reads)",
            med["read_ssd"], "raw pread 4 KiB, SSD", med["raw_pread_ssd"]),
        row("sys_write of a page", med["write"], "raw pwrite 4 KiB, file",
            med["raw_pwrite"]),
        row("writing pass, per page written", med["pass_write"],
            "raw pwrite 64 KiB, SSD, per page", med["raw_cluster"]),
        row("writing pass, per page written", med["pass_write"],
            "the same pages pwritev'd, per page", med["raw_cluster_pages"]),
        row("writing pass, per page examined (skipped)", med["pass_scan"],
            "bare cffi call", med["cffi"], "page examined"),
        row("cleaning pass, per swblock freed", med["clean"],
            "bare cffi call", med["cffi"], "swblock"),
    ]
    return {"pages": pages, "files": nfiles, "npages": npages,
            "nswap": nswap, "reps": a.reps, "rows": rows,
            "medians_ns": med, "all_ns": reps}


def micro_rep(m, v, rep, nfiles, pages, ssd, nswap, mk, inserted, omk):
    r = {}
    data = [bytes([65 + (rep + f) % 26]) * (FILE_PAGES * PAGE)
            for f in range(nfiles)]
    vps = []
    for f in range(nfiles):
        vp = sc.sys_open(f"b{rep}.{f}", create=True)
        sc.sys_write(vp, 0, data[f])
        vps.append(vp)
    fd0 = backing_fd(m, vps[0])
    os.fsync(fd0)

    # floors: the bare cffi call; raw 4 KiB pread/pwrite of a file
    noop = lib.smpvm_noop
    n = 200000

    def loop_noop():
        for _ in range(n):
            noop()
    r["cffi"] = timed(loop_noop, n)
    offs = [p * PAGE for p in range(FILE_PAGES)] * (pages // FILE_PAGES)
    pread, pwrite = os.pread, os.pwrite
    r["raw_pread"] = timed(lambda: [pread(fd0, PAGE, o) for o in offs],
                           len(offs))
    page = bytes(PAGE)
    r["raw_pwrite"] = timed(lambda: [pwrite(fd0, data[0][o:o + PAGE], o)
                                     for o in offs], len(offs))

    # sys_read of resident pages, one page per read
    sys_read = sc.sys_read

    def read_res():
        for vp in vps:
            for p in range(FILE_PAGES):
                sys_read(vp, p * PAGE, PAGE)
    r["read_res"] = timed(read_res, pages)

    # sys_write of a page, over every page (write-through)
    def write_pages():
        for f, vp in enumerate(vps):
            d = data[f]
            for p in range(FILE_PAGES):
                sc.sys_write(vp, p * PAGE, d[p * PAGE:(p + 1) * PAGE])
    r["write"] = timed(write_pages, pages)
    for vp in vps:
        os.fsync(backing_fd(m, vp))

    # the writing pass (throttle lifted), then a pass that skips them all
    cnt = v.cnt
    raw_base = (nswap - pages) // 16 * 16 * PAGE
    buf = page * (CLUSTER // PAGE)
    coffs = [raw_base + i * CLUSTER for i in range(pages * PAGE // CLUSTER)]
    r["raw_cluster"] = timed(lambda: [pwrite(ssd, buf, o) for o in coffs],
                             pages)
    # a second floor: the same pages' own memory written in the same
    # 64 KiB clusters (pwritev, as swap_pager_putpages does): the pass's
    # I/O without the VM; the first floor rewrites one cache-hot buffer
    mems = []
    for vp in vps:
        obj = v.vnodes[vp].v_object
        lib.vm_object_hold(obj)
        try:
            mems += [v.page_bytes(lib.vm_page_lookup(obj, p))
                     for p in range(FILE_PAGES)]
        finally:
            lib.vm_object_drop(obj)
    per = CLUSTER // PAGE
    clusters = [mems[i:i + per] for i in range(0, len(mems), per)]
    r["raw_cluster_pages"] = timed(
        lambda: [os.pwritev(ssd, c, o) for c, o in zip(clusters, coffs)],
        pages)
    os.fsync(ssd)
    open_gate()
    marker_to_head(mk, inserted)
    w0 = cnt.swap_write_pages
    t = timed(lambda: S.vm_swapcache_writing(mk), 1)
    written = cnt.swap_write_pages - w0
    if written != pages:
        raise BenchError(f"the writing pass wrote {written} of {pages}")
    r["pass_write"] = t / written
    os.fsync(ssd)
    open_gate()
    marker_to_head(mk, True)
    s0 = cnt.pages_scanned
    t = timed(lambda: S.vm_swapcache_writing(mk), 1)
    scanned = cnt.pages_scanned - s0
    if cnt.swap_write_pages != w0 + written or scanned < pages:
        raise BenchError("the scan pass wrote pages or missed some")
    r["pass_scan"] = t / scanned

    # diverted reads: the pages freed (their swap copies stay), read back
    for vp in vps:
        free_resident(vp)
    blocks = []
    for vp in vps:
        blocks.extend(swap_blocks(vp, FILE_PAGES))
    got = []

    def read_chunks(out):
        for vp in vps:
            for k in range(FILE_PAGES * PAGE // BUF):
                out.append(sys_read(vp, k * BUF, BUF))
    r["read_ssd"] = timed(lambda: read_chunks(got), pages)
    div = sum(len(st.diverted) for _, st in got)
    if div != pages or b"".join(d for d, _ in got) != b"".join(data):
        raise BenchError(f"diverted reads: {div} of {pages} pages "
                         "diverted, or wrong bytes")
    poffs = [b * PAGE for b in blocks]
    r["raw_pread_ssd"] = timed(lambda: [pread(ssd, PAGE, o) for o in poffs],
                               len(poffs))

    # a cleaning pass frees the swblocks of objects with no resident page
    for vp in vps:
        free_resident(vp)
    objs = [v.vnodes[vp].v_object for vp in vps]
    before = sum(v.raw.objects[o].swblock_count for o in objs)
    sc_ = v.vmg.swapcache
    sc_.maxlaunder = 1 << 30
    t0 = cpu_ns()
    for _ in range(4):              # until the marker went round
        S.vm_swapcache_cleaning(omk)
    t = cpu_ns() - t0
    freed = before - sum(v.raw.objects[o].swblock_count for o in objs)
    if freed <= 0:
        raise BenchError("the cleaning pass freed no swblock")
    r["clean"] = t / freed

    # reads from the file: every page evicted, no swap copy left
    for vp in vps:
        free_resident(vp)
    got = []
    r["read_file"] = timed(lambda: read_chunks(got), pages)
    if b"".join(d for d, _ in got) != b"".join(data) or \
            any(st.diverted for _, st in got):
        raise BenchError("file reads: wrong bytes or diverted")
    for f, vp in enumerate(vps):
        sc.sys_close(vp)
        sc.sys_unlink(f"b{rep}.{f}")
    return r


# ---- stress runs: the whole process tree's CPU ------------------------------
def stress(a, extra=(), seconds=None):
    """One `smpvm stress` run: its counters, wall and CPU seconds."""
    exe = os.path.join(os.path.dirname(sys.executable), "smpvm")
    fd, path = tempfile.mkstemp(prefix="bench_vm-", suffix=".json")
    os.close(fd)
    try:
        cmd = [exe, "stress", "--seed", "1", "--quiet", "--seconds",
               f"{seconds or a.seconds:g}", "--json", path]
        if a.datadir:
            cmd += ["--datadir", a.datadir]
        cmd += list(extra)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        with open(path) as f:
            d = json.load(f)
    finally:
        os.unlink(path)
    if p.returncode not in (0, 1) or not d.get("workload"):
        raise BenchError(f"{' '.join(cmd)}: exit {p.returncode}")
    w = d["workload"]
    cpu = ru.ru_utime + ru.ru_stime
    run_s = d["seconds"]
    return {"args": list(extra), "exit": p.returncode, "wall_s": wall,
            "run_s": run_s, "cpu_s": cpu, "ops": w["ops"],
            "pages": w["pages_read"], "ops_per_s": w["ops"] / run_s,
            "pages_per_s": w["pages_read"] / run_s,
            "ops_per_cpu_s": w["ops"] / cpu,
            "pages_per_cpu_s": w["pages_read"] / cpu,
            "cpu_us_per_page": cpu / max(1, w["pages_read"]) * 1e6,
            # pages brought into memory (older trees do not report it)
            "page_allocs": d.get("swapcache", {}).get("paging", {}).get(
                "page_allocs")}


def same_work_mix():
    """The stress mix with its cross reads (reads of other CPUs' files)
    turned into reads of the CPU's own files, which is what a one-CPU run
    does with them (op_xread): so every CPU does the same work whatever
    their number.  None on a tree without a default mix to fold."""
    try:
        from smpvm.stress.workloads import STRESS_MIX
    except ImportError:
        return None
    mix = dict(STRESS_MIX)
    if "xread" not in mix:
        return None
    mix["read"] = mix.get("read", 0) + mix.pop("xread")
    mix["xread"] = 0
    return ",".join(f"{k}={v}" for k, v in mix.items())


def scaling(a):
    """1, 2 and 4 CPU processes on the same per-CPU workload (the machine,
    swap and metadata grow with them; cross reads folded into own reads),
    --scaling-reps rounds alternating the CPU counts (medians), then one
    round of the default mix, whose cross reads exist only with >= 2
    CPUs."""
    counts = (1, 2, 4)

    def args(n, mix):
        return ["--cpus", str(n), "--npages", str(224 * n), "--nswap",
                str(512 * n), "--nmeta", str(128 * n)] + \
            (["--mix", mix] if mix else [])
    mix = same_work_mix()
    rounds = {n: [] for n in counts}
    for _ in range(a.scaling_reps if mix else 0):
        for n in counts:
            rounds[n].append(stress(a, args(n, mix)))
    same = []
    for n in counts:
        rs = sorted(rounds[n], key=lambda r: r["ops_per_s"])
        if rs:
            r = dict(rs[len(rs) // 2], cpus=n,
                     all_ops_per_s=[x["ops_per_s"] for x in rounds[n]])
            same.append(r)
    default = []
    for n in counts:
        default.append(dict(stress(a, args(n, None)), cpus=n))
    return {"mix": mix, "same_work": same, "default_mix": default}


def raw_pread_floor(a):
    """CPU ns of a raw 4 KiB pread from a warm file (the verified page's
    floor)."""
    with tempfile.TemporaryDirectory(dir=a.datadir or None) as d:
        path = os.path.join(d, "f")
        with open(path, "wb") as f:
            f.write(os.urandom(FILE_PAGES * PAGE))
        fd = os.open(path, os.O_RDONLY)
        try:
            offs = [p * PAGE for p in range(FILE_PAGES)] * 200
            return timed(lambda: [os.pread(fd, PAGE, o) for o in offs],
                         len(offs))
        finally:
            os.close(fd)


# sizes: the files per CPU of the series whose working set fits in every
# machine (2 CPUs x 2 files x 64 pages = 256 of the smallest's 448 pages),
# and the largest machine of the series whose working set grows with it
# (8 files per 448 pages, the defaults' 2.3 pages of files per page of
# memory: its set-up writes them all, 400 MB at 44800 pages)
RESIDENT_FILES = 2
PAGING_MAX = 44800


def size_runs(a, sizes, files):
    """Stress runs on 2 CPUs at each --npages: the default files (None),
    `files` per CPU, or ("scaled") 8 per 448 pages of memory."""
    runs = []
    for n in sizes:
        f = max(1, 8 * n // 448) if files == "scaled" else files
        r = stress(a, ["--cpus", "2", "--npages", str(n)] +
                   (["--files", str(f)] if f else []))
        r["npages"], r["files"] = n, f or 8
        runs.append(r)
    return runs


def boot_cost(a, npages):
    """Create and boot a machine of npages, then tear it down: wall and CPU
    seconds of each, the segment's size, this process's peak RSS."""
    cfg = MachineConfig(ncpus=2, npages=npages, datadir_base=a.datadir)
    t0, c0 = time.monotonic(), cpu_ns()
    with Machine.create(cfg) as m:
        with bound_thread(m, "bench"):
            vm_boot(m, "fixed")
        t1, c1 = time.monotonic(), cpu_ns()
        seg = len(m._mm)
    t2 = time.monotonic()
    return {"npages": npages, "boot_wall_s": t1 - t0,
            "boot_cpu_s": (c1 - c0) / 1e9, "destroy_wall_s": t2 - t1,
            "segment_mb": seg / 2**20 if seg else None,
            "maxrss_mb": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---- report ------------------------------------------------------------------
def print_micro(mi, w):
    w(f"\nmicro: {mi['reps']} reps (+1 warm-up), {mi['files']} files x "
      f"{FILE_PAGES} pages ({mi['pages']} pages), npages {mi['npages']}, "
      f"nswap {mi['nswap']}; CPU us per op, median of reps\n")
    w(f"{'path':<52}{'us':>8}  {'floor':<34}{'us':>7}{'ratio':>8}\n")
    for r in mi["rows"]:
        w(f"{r['path']:<52}{r['us']:>8.2f}  {r['floor']:<34}"
          f"{r['floor_us']:>7.2f}{r['ratio']:>8.3f}\n")


def print_stress(st, w):
    s = st["run"]
    w(f"\nstress (defaults, seed 1, {s['run_s']:.1f} s): "
      f"{s['ops_per_s']:,.0f} ops/s, {s['pages_per_s']:,.0f} verified "
      f"pages/s; {s['cpu_s']:.1f} CPU-s: {s['ops_per_cpu_s']:,.0f} ops and "
      f"{s['pages_per_cpu_s']:,.0f} pages per CPU-second, "
      f"{s['cpu_us_per_page']:.1f} CPU-us per verified page (floor: raw "
      f"pread 4 KiB {st['floor_us']:.2f} us, ratio "
      f"{st['floor_us'] / s['cpu_us_per_page']:.3f})\n")


def print_scaling(sc_, w):
    def table(runs):
        w(f"{'cpus':>5}{'ops/s':>10}{'x 1 cpu':>9}{'pages/s':>10}"
          f"{'ops/CPU-s':>11}{'CPU-s':>7}  rounds (ops/s)\n")
        base = runs[0]["ops_per_s"]
        for r in runs:
            each = ", ".join(f"{x:,.0f}" for x in r.get("all_ops_per_s", []))
            w(f"{r['cpus']:>5}{r['ops_per_s']:>10,.0f}"
              f"{r['ops_per_s'] / base:>9.2f}{r['pages_per_s']:>10,.0f}"
              f"{r['ops_per_cpu_s']:>11,.0f}{r['cpu_s']:>7.1f}  {each}\n")
    if sc_["same_work"]:
        n = len(sc_["same_work"][0]["all_ops_per_s"])
        w(f"\nscaling, the same per-CPU workload (--npages 224N --nswap 512N "
          f"--nmeta 128N;\n--mix {sc_['mix']}:\nthe cross reads done as "
          f"own reads, as one CPU does them); median of {n} alternating "
          f"rounds\n")
        table(sc_["same_work"])
    w("\nscaling, the default mix (its cross reads, 21 % of the ops, read "
      "other CPUs' files:\nwith one CPU they are own reads), one round\n")
    table(sc_["default_mix"])


def print_sizes(sz, w):
    def table(title, runs):
        if not runs:
            return
        w(f"\n{title}\n")
        w(f"{'npages':>8}{'files':>6}{'ops/s':>9}{'pages/s':>10}"
          f"{'CPU-us/page':>13}{'x first':>8}{'allocs':>8}{'handled':>9}"
          f"{'x first':>8}\n")
        base = runs[0]["cpu_us_per_page"]
        hbase = None
        for r in runs:
            line = (f"{r['npages']:>8}{r['files']:>6}{r['ops_per_s']:>9,.0f}"
                    f"{r['pages_per_s']:>10,.0f}"
                    f"{r['cpu_us_per_page']:>13.1f}"
                    f"{r['cpu_us_per_page'] / base:>8.2f}")
            if r.get("page_allocs") is not None:
                handled = r["cpu_s"] / max(1, r["pages"] +
                                           r["page_allocs"]) * 1e6
                hbase = hbase or handled
                line += (f"{r['page_allocs'] / max(1, r['pages']):>8.3f}"
                         f"{handled:>9.2f}{handled / hbase:>8.2f}")
            w(line + "\n")
    w("\nsizes (2 cpus; files per CPU of 64 pages; CPU-us per verified "
      "page; allocs: pages\nbrought into memory per verified page; "
      "handled: CPU-us per page verified or\nbrought in)")
    table("the stress defaults (8 files: the smallest machine pages, the "
          "others hold them)", sz["runs"])
    table(f"the same workload at every size, held in memory "
          f"({RESIDENT_FILES} files)", sz.get("resident"))
    table("a working set that grows with the machine (8 files per 448 "
          "pages; the set-up\nwrites them within the run)",
          sz.get("paging"))
    b = sz["boot"]
    seg = f"{b['segment_mb']:.0f} MiB segment, " if b["segment_mb"] else ""
    w(f"a machine of {b['npages']} pages: created and booted in "
      f"{b['boot_wall_s']:.2f} s ({b['boot_cpu_s']:.2f} CPU-s), destroyed "
      f"in {b['destroy_wall_s']:.2f} s; {seg}peak RSS of this process "
      f"{b['maxrss_mb']:.0f} MiB\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of each stress run (default 10)")
    p.add_argument("--sections", default="micro,stress,scaling,sizes")
    p.add_argument("--pages", type=int, default=2048,
                   help="micro: pages of files (default 2048)")
    p.add_argument("--reps", type=int, default=3,
                   help="micro: repetitions (default 3)")
    p.add_argument("--scaling-reps", type=int, default=3,
                   help="scaling: alternating rounds of the same per-CPU "
                        "workload (default 3)")
    p.add_argument("--sizes", default="448,4480,44800,262144",
                   help="sizes: --npages values")
    p.add_argument("--datadir", default="",
                   help="where machines' data directories go (default "
                        "$TMPDIR)")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args(argv)
    secs = [s for s in a.sections.split(",") if s]
    bad = set(secs) - {"micro", "stress", "scaling", "sizes"}
    if bad or a.pages < FILE_PAGES or a.reps < 1 or a.seconds <= 0 or \
            a.scaling_reps < 1:
        p.error(f"bad --sections {','.join(bad)}" if bad else
                f"--pages >= {FILE_PAGES}, --reps >= 1, --seconds > 0, "
                "--scaling-reps >= 1")
    w = sys.stdout.write
    out = {"tree": version(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "host": {"python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load": os.getloadavg()}}
    w(f"smpvm bench_vm: tree {out['tree']}, {out['date']}, "
      f"{os.cpu_count()} host CPUs, load average "
      f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    try:
        if "micro" in secs:
            out["micro"] = micro(a)
            print_micro(out["micro"], w)
        if "stress" in secs:
            out["stress"] = {"run": stress(a),
                             "floor_us": raw_pread_floor(a) / 1e3}
            print_stress(out["stress"], w)
        if "scaling" in secs:
            out["scaling"] = scaling(a)
            print_scaling(out["scaling"], w)
        if "sizes" in secs:
            sizes = [int(x) for x in a.sizes.split(",") if x]
            out["sizes"] = {"runs": size_runs(a, sizes, None),
                            "resident": size_runs(a, sizes, RESIDENT_FILES),
                            "paging": size_runs(
                                a, [n for n in sizes if n <= PAGING_MAX],
                                "scaled"),
                            "boot": boot_cost(a, max(sizes))}
            print_sizes(out["sizes"], w)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BenchError as e:
        sys.stderr.write(f"bench_vm: {e}\n")
        return 1
    w(f"\nload average at the end: "
      f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
