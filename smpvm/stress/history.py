"""smpvm history: what each upstream commit after the seed says it did,
tested on the emulator.  For every kernel version (vm/versions.py) the
experiment of its commit message's claim runs on the version and on its
parent with the same seeds, and the verdict comes from those measurements
alone: reproduced, not reproduced, or inconclusive (the emulator could not
show it; README "History" says why and what it would take).

Two kinds of experiment:
  runs      stress runs (session.run), free-running or on deterministic
            schedules, with a probe that reads the kernel's state before
            the machine goes: lock statistics, queue occupancy, the swap
            allocator's bitmap
  scenes    a machine booted in this process, set up and driven pass by
            pass with the kernel's own functions (the cleaning pass, the
            writing pass), as tests/test_swapcache.py does: deterministic,
            and a second or two each

run_history(only, quick, progress) returns the rows; format_table,
to_json and plot present them.  Nothing here decides a verdict from a
table of expected results: each claim's judge compares what it measured.
"""
import contextlib
import dataclasses
import json
import statistics
import time

from smpvm.config import MachineConfig
from smpvm.errors import Panic
from smpvm.layout import ffi, lib, spinlocks
from smpvm.vm.versions import BY_NAME, VERSIONS, inactive_queues, parent
from smpvm.vm.vm_init import booted_vm
from smpvm.vm.vmview import vmview

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = ("reproduced", "not reproduced",
                                            "inconclusive")
PAGE = lib.PAGE_SIZE


@dataclasses.dataclass
class Row:
    version: str
    date: str
    claim: str
    metric: str
    parent_kernel: str
    version_kernel: str
    parent: str = ""            # the numbers, as text
    value: str = ""
    verdict: str = INCONCLUSIVE
    why: str = ""               # how the verdict follows from the numbers
    data: dict = dataclasses.field(default_factory=dict)   # raw figures
    plot: tuple = ()            # (label, parent value, version value)
    seconds: float = 0.0


# ---- helpers of the scenes ---------------------------------------------------

@contextlib.contextmanager
def _machine(kernel, npages=1024, nswap=4096, nmeta=64, check="",
             nfiles=256):
    """A booted machine of kernel version `kernel` with this process as its
    thread 'history' (demo sysctls, no kernel threads)."""
    cfg = MachineConfig(ncpus=2, npages=npages, nswap=nswap, nmeta=nmeta,
                        check=check, nvnodes=nfiles, nobjects=nfiles + 64)
    with booted_vm(cfg, kernel, thread="history") as m:
        yield m


def _sc():
    return vmview().vmg.swapcache


def open_gate():
    """The writing pass's gate open: heuristic and hysteresis 0, plenty of
    burst (history's scenes and the tests call the pass directly)."""
    v = vmview()
    _sc().hysteresis = 0
    v.vmg.vm_swapcache_inactive_heuristic = 0
    _sc().curburst = 1 << 40


def _make_file(name, npages, fill=b"h"):
    from smpvm.vfs import syscalls as sc
    vp = sc.sys_open(name, create=True)
    sc.sys_write(vp, 0, fill * (npages * PAGE))
    return vp


def _pages_of(vp):
    from smpvm.vm.vm_object import (resident_pages, vm_object_drop,
                                    vm_object_hold)
    v = vmview()
    obj = v.vnodes[vp].v_object
    vm_object_hold(obj)
    try:
        return {int(v.pages[m].pindex): m for m in resident_pages(obj)}
    finally:
        vm_object_drop(obj)


def _write_inactive(budget=1 << 20):
    """One writing pass over every INACTIVE queue, each from its head with
    swapcached's page_marker[q] (taken off again after): every eligible
    page gets swap.  The gate open and the budgets large."""
    from smpvm.vm import vm_page as P
    from smpvm.vm import vm_swapcache as S
    from smpvm.vm.versions import since
    v = vmview()
    for q in range(inactive_queues()):
        mk = P.vm_page_static_marker(q)
        qq = lib.PQ_INACTIVE + q
        P.vm_page_queues_spin_lock(qq)
        if v.pages[mk].queue != lib.PQ_NONE:
            P.vm_page_marker_remove(qq, mk)
        P.vm_page_marker_insert_head(qq, mk)
        P.vm_page_queues_spin_unlock(qq)
        open_gate()
        if since("64949baad7"):
            S.vm_swapcache_writing(mk, budget, budget)
        else:
            _sc().maxlaunder = budget
            _sc().maxscan = budget
            S.vm_swapcache_writing(mk)
        P.vm_page_queues_spin_lock(qq)
        P.vm_page_marker_remove(qq, mk)
        P.vm_page_queues_spin_unlock(qq)


def _recycle(vp, keep=lambda pindex: False):
    """Free vp's resident pages (their swap outlives them), but those whose
    pindex keep() says to keep."""
    from smpvm.vm import vm_page as P
    for pindex, m in sorted(_pages_of(vp).items()):
        if keep(pindex):
            continue
        P.vm_page_busy_wait(m, True, "hist")
        P.vm_page_protect(m, lib.VM_PROT_NONE)
        P.vm_page_free(m)


def _object_marker(after=None):
    from smpvm.vm.vm_object import (vm_object_list_insert_after,
                                    vm_object_list_insert_head,
                                    vm_object_marker)
    om = vm_object_marker()
    lib.lwkt_gettoken(lib.TOK_VMOBJ)
    if after is None:
        vm_object_list_insert_head(om)
    else:
        vm_object_list_insert_after(after, om)
    lib.lwkt_reltoken(lib.TOK_VMOBJ)
    return om


def _cleaning_pass(om):
    """One cleaning pass, metered as swapcached meters it; returns (the
    swblocks it visited, its objects, swapcached CPU ns)."""
    from smpvm.vm import vm_swapcache as S
    v = vmview()
    S.clean_meter_begin(v)
    cpu = time.thread_time_ns()
    S.vm_swapcache_cleaning(om)
    cpu = time.thread_time_ns() - cpu
    S.clean_meter_end(v, cpu)
    return int(v.cnt.clean_last_swblocks), int(v.cnt.clean_last_objects), cpu


def _first_line(text):
    return str(text).strip().splitlines()[0] if text else ""


def _ratio(a, b):
    return a / b if b else float("inf") if a else 1.0


def _fmt(x, unit=""):
    if isinstance(x, float):
        x = f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{x}{unit}"


# ---- the claims --------------------------------------------------------------

class Claim:
    """One commit's claim: `measure(kernel, seeds)` returns a dict of what
    it measured on that kernel, `judge(parent, version)` the verdict, the
    two columns' text, why, and the plot's (label, parent, version)."""
    version = ""
    claim = ""
    metric = ""

    def kernels(self):
        """(parent kernel, version kernel) measured."""
        return parent(BY_NAME[self.version]).name, self.version

    def measure(self, kernel, ctx):
        raise NotImplementedError

    def judge(self, p, v):
        raise NotImplementedError


@dataclasses.dataclass
class Context:
    quick: bool = False
    seeds: tuple = (1, 2)
    progress: object = None

    def say(self, text):
        if self.progress:
            self.progress(text)


def _run(ctx, **opts):
    """One stress run (quiet, no files) with a probe of the kernel at the
    end; returns its Findings (findings.probe)."""
    from smpvm.stress.options import StressOptions
    from smpvm.stress.session import run
    probe = opts.pop("probe", None)
    return run(StressOptions(quiet=True, save_schedule="", **opts),
               probe=probe)


# 027193eb61 ------------------------------------------------------------------

def _queue_locks(machine):
    """Acquisitions, contended acquisitions and wait of the INACTIVE and
    ACTIVE queue spinlocks (every one of the 256 of each class)."""
    sl = spinlocks(machine.base)
    base = machine.hdr.cfg.spin_pool + lib.SPIN_NAMED_QUEUE0
    acq = cont = wait = used = 0
    for first in (lib.PQ_INACTIVE, lib.PQ_ACTIVE):
        for q in range(lib.PQ_MAXL2_SIZE):
            s = sl[base + first + q]
            acq += int(s.st_acquisitions)
            cont += int(s.st_contended)
            wait += int(s.st_wait_ns)
            used += bool(s.st_acquisitions)
    return {"acquisitions": acq, "contended": cont, "wait_ns": wait,
            "locks_used": used}


class Contention(Claim):
    version = "027193eb61"
    claim = ("fan-out of PQ_INACTIVE/PQ_ACTIVE into 256 queues removes the "
             "contention on their spinlocks")
    metric = ("contended acquisitions of the INACTIVE+ACTIVE queue locks per "
              "1000 ops, and their wait per op (stress, free runs)")

    def measure(self, kernel, ctx):
        out = []
        for seed in ctx.seeds:
            f = _run(ctx, kernel=kernel, seed=seed, cpus=4,
                     seconds=4 if ctx.quick else 8, probe=_queue_locks)
            d = dict(f.probe, ops=int(f.workload.get("ops", 0)),
                     panic=_first_line(f.panic))
            out.append(d)
        tot = {k: sum(d[k] for d in out) for k in ("acquisitions",
                                                   "contended", "wait_ns",
                                                   "ops")}
        tot["locks_used"] = max(d["locks_used"] for d in out)
        tot["runs"] = out
        return tot

    def judge(self, p, v):
        def per(d):
            ops = max(1, d["ops"])
            return 1000.0 * d["contended"] / ops, d["wait_ns"] / ops
        pc, pw = per(p)
        vc, vw = per(v)
        text = (lambda c, w, d: f"{c:.3g} contended/1k ops, {w:.3g} ns wait/op"
                f" ({d['contended']} of {d['acquisitions']} acquisitions, "
                f"{d['locks_used']} locks)")
        if p["contended"] < 20:
            verdict = INCONCLUSIVE
            why = (f"the parent's queue locks were contended only "
                   f"{p['contended']} times: too few to compare")
        elif vc * 2 <= pc and vw < pw:
            verdict = REPRODUCED
            why = (f"contention per op fell {_ratio(pc, vc):.3g}x and wait "
                   f"per op {_ratio(pw, vw):.3g}x")
        else:
            verdict = NOT_REPRODUCED
            why = (f"contention per op went from {pc:.3g} to {vc:.3g} per "
                   "1k ops")
        return (verdict, text(pc, pw, p), text(vc, vw, v), why,
                ("contended / 1k ops", pc, vc))


# 51c99c6153 ------------------------------------------------------------------

def _occupancy(machine):
    v = vmview(machine).raw
    qs = v.vmg.vm_page_queues
    return {"inactive_queues": sum(1 for q in range(lib.PQ_MAXL2_SIZE)
                                   if qs[lib.PQ_INACTIVE + q].lcnt),
            "colours": len({int(v.pages[m].pc) for m in range(v.npages)})}


class Pageout(Claim):
    version = "51c99c6153"
    claim = ("all 256 queues carry pages; the pagedaemon no longer stalls "
             "long when memory is low (per-queue maxscan)")
    metric = ("INACTIVE queues holding pages; pages the pagedaemon visits in "
              "its longest pass; allocation stalls (vm_wait) per 1k ops "
              "(stress, free runs, memory low)")

    def measure(self, kernel, ctx):
        out = []
        for seed in ctx.seeds:
            f = _run(ctx, kernel=kernel, seed=seed, cpus=2, npages=1024,
                     nswap=2048, files=8, file_pages=160,
                     seconds=4 if ctx.quick else 8, probe=_occupancy)
            po = f.swapcache["pageout"]
            out.append({"queues": f.probe["inactive_queues"],
                        "colours": f.probe["colours"],
                        "max_pdpages": po["max_pdpages"],
                        "max_pass_ms": po["max_ns"] / 1e6,
                        "scans": po["scans"], "vm_waits": po["vm_waits"],
                        "vm_wait_ms": po["vm_wait_ns"] / 1e6,
                        "ops": int(f.workload.get("ops", 0)),
                        "panic": _first_line(f.panic)})
        agg = {"queues": max(d["queues"] for d in out),
               "colours": max(d["colours"] for d in out),
               "max_pdpages": max(d["max_pdpages"] for d in out),
               "max_pass_ms": max(d["max_pass_ms"] for d in out),
               "ops": sum(d["ops"] for d in out),
               "vm_waits": sum(d["vm_waits"] for d in out),
               "vm_wait_ms": sum(d["vm_wait_ms"] for d in out)}
        agg["runs"] = out
        return agg

    def judge(self, p, v):
        def stalls(d):
            return 1000.0 * d["vm_waits"] / max(1, d["ops"])

        def text(d):
            return (f"{d['queues']} queues, longest pass {d['max_pdpages']} "
                    f"pages ({d['max_pass_ms']:.3g} ms), {stalls(d):.3g} "
                    f"stalls/1k ops")
        fanned = p["queues"] <= 64 < v["queues"]
        shorter = v["max_pdpages"] * 2 <= p["max_pdpages"]
        fewer = stalls(v) * 2 <= stalls(p)
        if fanned and (shorter or fewer):
            verdict = REPRODUCED
            why = (f"pages on {v['queues']} queues (parent {p['queues']}); "
                   + ("the longest pass visits "
                      f"{_ratio(p['max_pdpages'], v['max_pdpages']):.3g}x "
                      "fewer pages" if shorter else "")
                   + ("; " if shorter and fewer else "")
                   + (f"allocations stall {_ratio(stalls(p), stalls(v)):.3g}"
                      "x less often" if fewer else "")
                   + ("" if shorter else
                      " (the pagedaemon's own longest pass is longer: it "
                      "now frees a share of every one of 256 queues)"))
        else:
            verdict = NOT_REPRODUCED
            why = (f"queues {p['queues']} -> {v['queues']}, longest pass "
                   f"{p['max_pdpages']} -> {v['max_pdpages']} pages, stalls "
                   f"{stalls(p):.3g} -> {stalls(v):.3g}/1k ops")
        return verdict, text(p), text(v), why, ("INACTIVE queues in use",
                                                p["queues"], v["queues"])


# 08fb7a9da0, 27b6ee0313 --------------------------------------------------------

def _uncharged_scene(nobj, npages_obj):
    """nobj files of npages_obj pages whose swblocks (32 pages) all keep
    one resident page, so condfree visits them and frees nothing; the
    object marker at the head of vm_object_list."""
    for k in range(nobj):
        vp = _make_file(f"big{k}", npages_obj)
        _write_inactive()
        _recycle(vp, keep=lambda p: p % lib.SWAP_META_PAGES == 0)
    return _object_marker()


class CondfreeCharge(Claim):
    version = "08fb7a9da0"
    claim = ("swapcached no longer eats CPU when max swap use is reached "
             "(condfree charges the swblocks it visits)")
    metric = ("cleaning passes over swblocks kept by resident pages "
              "(maxlaunder 16): swblocks visited and swapcached CPU per pass")

    def kernels(self):
        # 08fb7a9da0 alone panics at its first condfree (its release of
        # vmobj_token is out of order: the next row); its change is
        # measured as 27b6ee0313 completed it
        return "51c99c6153", "27b6ee0313"

    def measure(self, kernel, ctx):
        passes = 4 if ctx.quick else 10
        with _machine(kernel, npages=1024, nswap=4096):
            om = _uncharged_scene(4 if ctx.quick else 6, 512)
            _sc().maxlaunder = 16
            swb, cpu = [], []
            try:
                for _ in range(passes):
                    s, _, c = _cleaning_pass(om)
                    swb.append(s)
                    cpu.append(c)
                panic = ""
            except Panic as e:
                panic = _first_line(e)
            over = int(vmview().cnt.clean_overruns)
        return {"swblocks_per_pass": statistics.mean(swb) if swb else 0,
                "cpu_ms_per_pass": statistics.mean(cpu) / 1e6 if cpu else 0,
                "overruns": over, "passes": len(swb), "panic": panic}

    def judge(self, p, v):
        def text(d):
            if d["panic"]:
                return "panic: " + d["panic"]
            return (f"{d['swblocks_per_pass']:.3g} swblocks, "
                    f"{d['cpu_ms_per_pass']:.3g} ms CPU a pass; "
                    f"{d['overruns']}/{d['passes']} over budget")
        if p["panic"] or v["panic"]:
            return (INCONCLUSIVE, text(p), text(v), "a pass panicked",
                    ("swblocks / pass", p["swblocks_per_pass"],
                     v["swblocks_per_pass"]))
        r = _ratio(p["swblocks_per_pass"], v["swblocks_per_pass"])
        if r >= 2 and p["cpu_ms_per_pass"] > v["cpu_ms_per_pass"]:
            verdict = REPRODUCED
            why = (f"a pass visits {r:.3g}x fewer swblocks and takes "
                   f"{_ratio(p['cpu_ms_per_pass'], v['cpu_ms_per_pass']):.3g}"
                   "x less CPU; measured on 27b6ee0313, since 08fb7a9da0 alone"
                   " panics at its first condfree (next row)")
        else:
            verdict = NOT_REPRODUCED
            why = f"swblocks per pass {r:.3g}x fewer on the version"
        return verdict, text(p), text(v), why, (
            "swblocks / cleaning pass", p["swblocks_per_pass"],
            v["swblocks_per_pass"])


class TokenSwap(Claim):
    version = "27b6ee0313"
    claim = ("fix the bug of 08fb7a9da0: vmobj_token released while the "
             "object's token is on top of it")
    metric = "a cleaning pass that reaches condfree: does it panic?"

    def measure(self, kernel, ctx):
        with _machine(kernel, npages=1024, nswap=4096):
            om = _uncharged_scene(1, 64)
            try:
                s, _, _ = _cleaning_pass(om)
                return {"panic": "", "swblocks": s}
            except Panic as e:
                return {"panic": _first_line(e), "swblocks": 0}

    def judge(self, p, v):
        def text(d):
            return ("panic: " + d["panic"] if d["panic"] else
                    f"no panic ({d['swblocks']} swblocks visited)")
        token = "out of order" in p["panic"]
        if token and not v["panic"]:
            verdict, why = REPRODUCED, ("the parent's pass panics on the "
                                        "token release; the version's does "
                                        "not")
        else:
            verdict, why = NOT_REPRODUCED, "see the two runs"
        return verdict, text(p), text(v), why, ("panicked passes",
                                                int(bool(p["panic"])),
                                                int(bool(v["panic"])))


# 739be60bf6 ----------------------------------------------------------------------

class KillAtFirstYield:
    """A preemption hook: at the cleaning pass's first lwkt_yield another
    thread unlinks file `name` (its object is terminated, and freed at its
    last drop)."""

    def __init__(self, name):
        self.name = name
        self.fired = False
        self.cb = ffi.callback("void(int, int)", self.hook)

    def hook(self, op, lid):
        from smpvm.vfs import syscalls as sc
        if op != lib.HOOK_YIELD or self.fired:
            return
        self.fired = True
        lib.smpvm_set_hook(ffi.NULL)
        sc.sys_unlink(self.name)

    def __enter__(self):
        lib.smpvm_set_hook(self.cb)
        return self

    def __exit__(self, *exc):
        lib.smpvm_set_hook(ffi.NULL)


def _victim_scene():
    """Two files cl0, cl1 with swap and no resident page, closed (unlink
    reclaims at once); the cleaning marker right after the meta device's
    object, so the pass reaches cl0 first."""
    from smpvm.vfs import syscalls as sc
    from smpvm.vfs.vnode import vn_meta
    vps = []
    for k in range(2):
        vp = _make_file(f"cl{k}", 32)
        vps.append(vp)
    _write_inactive()
    for vp in vps:
        _recycle(vp)
        sc.sys_close(vp)
    return _object_marker(after=vmview().vnodes[vn_meta()].v_object)


def _directed_unlink(kernel, maxlaunder=None, check=""):
    """The interleaving of the seed's cleaning defects, forced: cl0 is
    unlinked at the pass's first yield.  Returns what went wrong: a panic,
    the race reports, broken object-list invariants."""
    from smpvm.race import report
    from smpvm.vm.vm_invariants import check_object_list
    from smpvm.vm import vm_swapcache as S
    with _machine(kernel, npages=512, nswap=1024, check=check) as m:
        om = _victim_scene()
        if maxlaunder is not None:
            _sc().maxlaunder = maxlaunder
        panic = ""
        with KillAtFirstYield("cl0"):
            try:
                S.vm_swapcache_cleaning(om)
            except Panic as e:
                panic = _first_line(e)
        reps = [r["message"] for r in report.reports(m)] if check else []
        bad = [] if panic else check_object_list(vmview().raw)
    return {"panic": panic, "reports": reps, "objlist": bad}


def _schedule_runs(ctx, kernel, bug_profile, seeds, steps=300000):
    """Deterministic stress runs of the hunting profile of a seed defect
    (vm/bugs.py), without the bug on purpose: the kernel's own defects
    only.  Returns [(seed, signature)]."""
    from smpvm.stress.options import hunt_profile
    out = []
    for seed in seeds:
        f = _run(ctx, **dict(hunt_profile(bug_profile), kernel=kernel,
                             cpus=2, seconds=60, sched="random", seed=seed,
                             steps=steps, check="all"))
        out.append((seed, sorted(f.signature())))
    return out


def _is_uaf_hold(sig):
    return any("vm_object_hold" in s and "free" in s for s in sig)


class HoldBeforeYield(Claim):
    version = "739be60bf6"
    claim = ("the crash when the cache fills and cleaning starts: the object "
             "is held before lwkt_yield(), not after")
    metric = ("cleaning pass with the object unlinked at its yield (forced),"
              " and deterministic stress schedules: crashes found")

    def measure(self, kernel, ctx):
        d = _directed_unlink(kernel)
        seeds = () if ctx.quick else tuple(range(1, 9))
        runs = _schedule_runs(ctx, kernel, "yield-before-hold", seeds)
        return {"forced": d["panic"], "schedules": len(runs),
                "crashed": [s for s, sig in runs if _is_uaf_hold(sig)]}

    def judge(self, p, v):
        def text(d):
            t = ("crash: " + d["forced"]) if d["forced"] else "no crash"
            if d["schedules"]:
                t += (f"; {len(d['crashed'])}/{d['schedules']} schedules "
                      "crashed")
            return t
        found = bool(p["forced"]) or bool(p["crashed"])
        never = not v["forced"] and not v["crashed"]
        if found and never:
            verdict, why = REPRODUCED, ("the crash is found on the parent "
                                        "and never on the version")
        elif not found:
            verdict, why = INCONCLUSIVE, "the parent never crashed"
        else:
            verdict, why = NOT_REPRODUCED, "the version crashed too"
        np_ = int(bool(p["forced"])) + len(p["crashed"])
        nv = int(bool(v["forced"])) + len(v["crashed"])
        return verdict, text(p), text(v), why, ("crashes found", np_, nv)


# f5f6d24720 ----------------------------------------------------------------------

def _swap_extents(machine):
    """The swap allocator's free space: free blocks, free extents (runs of
    free blocks), the mean and largest extent."""
    v = vmview(machine).raw
    nswap = machine.config.nswap
    base = ffi.cast("char *", machine.base) + \
        machine.hdr.region_off[lib.REG_OBJECTS] + v.vmg.off_blist
    words = ffi.cast("uint32_t *", base)
    runs, cur, free = [], 0, 0
    for b in range(lib.SWB_DMMAX, nswap):
        if words[b // 32] >> (b % 32) & 1:
            if cur:
                runs.append(cur)
            cur = 0
        else:
            cur += 1
            free += 1
    if cur:
        runs.append(cur)
    c = v.cnt
    return {"free": free, "extents": len(runs),
            "mean_extent": free / len(runs) if runs else 0.0,
            "largest": max(runs) if runs else 0,
            "cluster": int(c.swap_write_pages) / max(1, int(
                c.swap_write_clusters))}


def _fragmentation_scene(kernel, quick):
    """Swap filled past the cleaning mark by files whose pages were written
    together (the writing pass goes queue by queue, so the files' blocks
    are interleaved in the allocator, as pages of many files are in a
    kernel's INACTIVE queue), every page then recycled; cleaning passes as
    the daemon runs them, while use is at or over the writing mark; then
    the allocator's free space, and the clusters a new file's writes get.
    The demo sysctls (cleanperobj scaled to 64 pages)."""
    from smpvm.vm import vm_swapcache as S
    nfiles, pages = (6, 96) if quick else (8, 96)
    with _machine(kernel, npages=1024, nswap=1024) as m:
        v = vmview()
        vps = [_make_file(f"f{k}", pages) for k in range(nfiles)]
        _write_inactive()
        for vp in vps:
            _recycle(vp)
        used = int(v.vmg.vm_swap_cache_use)
        # clean down to about half of what was written: the writing mark
        # (SWAPMAX(-10), SWAPMAX(-5) before 08fb7a9da0) at used / 2
        adj = 10 if S.SWAPMAX_WRITING() == S.SWAPMAX(-10) else 5
        _sc().maxswappct = 100 * used // 2 // int(v.vmg.vm_swap_max) + adj
        _sc().maxlaunder = 32       # 256 of a kernel, scaled to this swap
        om = _object_marker()
        passes = 0
        while passes < 400 and v.vmg.vm_swap_cache_use >= \
                S.SWAPMAX_WRITING():
            _cleaning_pass(om)
            passes += 1
        left = int(v.vmg.vm_swap_cache_use)
        after = _swap_extents(m)
        c0, p0 = int(v.cnt.swap_write_clusters), int(v.cnt.swap_write_pages)
        _make_file("later", 128, fill=b"l")
        _write_inactive()
        clusters = int(v.cnt.swap_write_clusters) - c0
        written = int(v.cnt.swap_write_pages) - p0
    return dict(after, written_before=used, passes=passes,
                cleaned=used - left,
                later_pages=written,
                later_cluster=written / clusters if clusters else 0.0)


class Fragmentation(Claim):
    version = "f5f6d24720"
    claim = ("cleaning no longer fragments swap (whole objects cleaned), and"
             " no bad object is reached through the object list")
    metric = ("swap filled by interleaved files, then cleaned to the writing"
              " mark: free extents of the allocator, and the mean cluster a "
              "new file's writes get; the object unlinked at the pass's "
              "yield (forced, checked)")

    def measure(self, kernel, ctx):
        frag = _fragmentation_scene(kernel, ctx.quick)
        c = _directed_unlink(kernel, check="all")
        b = _directed_unlink(kernel, maxlaunder=1, check="all")
        bad = [r for r in c["reports"] + b["reports"] if "free" in r] + \
            b["objlist"][:1] + c["objlist"][:1]
        return dict(frag, bad_object=bad)

    def judge(self, p, v):
        def text(d):
            return (f"{d['cleaned']} blocks cleaned in {d['passes']} passes:"
                    f" {d['extents']} free extents of {d['mean_extent']:.3g}"
                    f" blocks (largest {d['largest']}); later writes in "
                    f"clusters of {d['later_cluster']:.3g}; "
                    + (f"bad object: {d['bad_object'][0][:60]}"
                       if d["bad_object"] else "no bad object"))
        bad_fixed = bool(p["bad_object"]) and not v["bad_object"]
        ext_r = _ratio(v["mean_extent"], p["mean_extent"])
        clu_r = _ratio(v["later_cluster"], p["later_cluster"])
        # a deterministic scene: any difference is the versions'; a tenth
        # either way is called no change
        if not p["cleaned"] or not v["cleaned"]:
            frag, fragtext = INCONCLUSIVE, "nothing was cleaned"
        elif ext_r >= 1.1 and clu_r >= 1.0:
            frag, fragtext = REPRODUCED, "less fragmented"
        elif ext_r <= 1 / 1.1 or clu_r < 1 / 1.1:
            frag, fragtext = NOT_REPRODUCED, "more fragmented"
        else:
            frag, fragtext = INCONCLUSIVE, ("no change: both clean each "
                                            "object whole, from where the "
                                            "last pass stopped (README)")
        nums = (f"free extents {ext_r:.3g}x as long, later clusters "
                f"{clu_r:.3g}x as long on the version")
        if bad_fixed and frag == REPRODUCED:
            verdict = REPRODUCED
            why = nums + "; the bad object is reached on the parent only"
        elif bad_fixed:
            verdict = frag if frag == NOT_REPRODUCED else INCONCLUSIVE
            why = (f"the bad object: reached on the parent only (reproduced);"
                   f" fragmentation: {nums}: {fragtext}")
        else:
            verdict = NOT_REPRODUCED
            why = "the bad object: " + ("also on the version" if
                                        v["bad_object"] else
                                        "not found on the parent")
        return verdict, text(p), text(v), why, (
            "mean free extent (blocks)", p["mean_extent"], v["mean_extent"])


# 7a175765de ----------------------------------------------------------------------

class MarkerAtEnd(Claim):
    version = "7a175765de"
    claim = ("the cleaning marker no longer gets stuck at the end of the "
             "object list")
    metric = ("cleaning passes, as the daemon runs them (while use is over "
              "the writing mark), after the walk reached the end and swap "
              "was written again: pages freed, and the liveness finding")

    def measure(self, kernel, ctx):
        from smpvm.vm import vm_swapcache as S
        from smpvm.vm.vm_meter import cleaning_findings, swapcache_status
        with _machine(kernel, npages=512, nswap=512) as m:
            v = vmview()
            vps = [_make_file(f"e{k}", 64) for k in range(3)]
            _write_inactive()
            for vp in vps:
                _recycle(vp)
            om = _object_marker()
            for _ in range(6):              # clean it all: the walk ends
                _cleaning_pass(om)
            for k, vp in enumerate(vps):    # written again (WRITING)
                _make_file(f"e{k}", 64, fill=b"i")
            _write_inactive()
            for vp in vps:
                _recycle(vp)
            again = int(v.vmg.vm_swap_cache_use)
            # CLEANING again: the ceiling just below the use; the daemon
            # cleans while use is at or over SWAPMAX(-10) (SWAPMAX(-5)
            # before 08fb7a9da0)
            _sc().maxswappct = 100 * (again - 1) // int(v.vmg.vm_swap_max)
            passes = 0
            while passes < 80 and v.vmg.vm_swap_cache_use >= \
                    S.SWAPMAX_WRITING():
                _cleaning_pass(om)
                passes += 1
            left = int(v.vmg.vm_swap_cache_use)
            found = [f for f in cleaning_findings(swapcache_status(m))
                     if f.startswith("liveness")]
        return {"written_again": again, "left": left, "passes": passes,
                "liveness": found[0] if found else ""}

    def judge(self, p, v):
        def text(d):
            return (f"{d['written_again'] - d['left']} of "
                    f"{d['written_again']} pages freed in {d['passes']} "
                    "passes; " + ("liveness finding" if d["liveness"] else
                                  "no liveness finding"))
        stuck = p["left"] == p["written_again"] and p["liveness"]
        if stuck and not v["liveness"] and v["left"] < v["written_again"]:
            verdict, why = REPRODUCED, ("the parent's walk stays at the end:"
                                        " nothing more is cleaned (liveness)"
                                        "; the version's wraps to the head")
        elif not stuck:
            verdict, why = NOT_REPRODUCED, "the parent's walk did not stick"
        else:
            verdict, why = NOT_REPRODUCED, "the version stuck too"
        return verdict, text(p), text(v), why, (
            "pages left uncleaned", p["left"], v["left"])


# 0bf8126181 ----------------------------------------------------------------------

class MaxScan(Claim):
    version = "0bf8126181"
    claim = ("with PQ_INACTIVE full of swapcached pages the writing pass no "
             "longer hogs the CPU (vm.swapcache.maxscan)")
    metric = ("writing passes over queues of swapcached pages with a page "
              "the pass rejects at each queue's tail: pages examined under "
              "one hold of a queue spinlock, pages and CPU per pass "
              "(maxscan scaled to the queues: 4)")

    def measure(self, kernel, ctx):
        from smpvm.vm import vm_page as P
        from smpvm.vm import vm_swapcache as S
        from smpvm.vm.versions import since
        passes = 3 if ctx.quick else 6
        with _machine(kernel, npages=4096, nswap=8192):
            v = vmview()
            vps = [_make_file(f"s{k}", 512) for k in range(6)]
            _write_inactive()                    # all PG_SWAPPED, resident
            # a dirty page at the tail of every queue: rejected (it costs
            # maxlaunder), so no scan reaches the end of its queue
            dirty = _make_file("dirty", 256)
            for m in _pages_of(dirty).values():
                P.vm_page_busy_wait(m, False, "hist")
                P.vm_page_dirty(m)
                P.vm_page_wakeup(m)
            nq = inactive_queues()
            markers = [P.vm_page_static_marker(q) for q in range(nq)]
            for q, mk in enumerate(markers):
                P.vm_page_queues_spin_lock(lib.PQ_INACTIVE + q)
                P.vm_page_marker_insert_head(lib.PQ_INACTIVE + q, mk)
                P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE + q)
            _sc().maxlaunder = 1
            if since("0bf8126181"):
                _sc().maxscan = 4
            per_pass, cpu = [], []
            c = v.cnt
            c.writing_max_held = 0
            for _ in range(passes):
                open_gate()
                for q, mk in enumerate(markers):    # back to the head
                    P.vm_page_queues_spin_lock(lib.PQ_INACTIVE + q)
                    P.vm_page_marker_remove(lib.PQ_INACTIVE + q, mk)
                    P.vm_page_marker_insert_head(lib.PQ_INACTIVE + q, mk)
                    P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE + q)
                s0 = int(c.pages_scanned)
                t = time.thread_time_ns()
                S._writing_pass(v, markers)
                cpu.append(time.thread_time_ns() - t)
                per_pass.append(int(c.pages_scanned) - s0)
            held = int(c.writing_max_held)
            del vps
        return {"held": held, "per_pass": statistics.mean(per_pass),
                "cpu_ms": statistics.mean(cpu) / 1e6}

    def judge(self, p, v):
        def text(d):
            return (f"{d['per_pass']:.4g} pages examined, {d['cpu_ms']:.3g} ms"
                    f" CPU a pass; {d['held']} under one queue lock hold")
        r = _ratio(p["per_pass"], v["per_pass"])
        if r >= 2 and v["cpu_ms"] < p["cpu_ms"]:
            verdict = REPRODUCED
            why = (f"a pass examines {r:.3g}x fewer pages in "
                   f"{_ratio(p['cpu_ms'], v['cpu_ms']):.3g}x less CPU, the "
                   f"longest stretch under a queue spinlock "
                   f"{_ratio(p['held'], v['held']):.3g}x shorter")
        else:
            verdict = NOT_REPRODUCED
            why = f"a pass examines {r:.3g}x fewer pages"
        return verdict, text(p), text(v), why, (
            "pages examined / writing pass", p["per_pass"], v["per_pass"])


# 0301c40799 ----------------------------------------------------------------------

class SwapLeak(Claim):
    version = "0301c40799"
    claim = "the swap space leak: the last block of an emptied swblock"
    metric = ("files with swap truncated, then the swap accounting "
              "invariant (entries = use = allocator)")

    def measure(self, kernel, ctx):
        from smpvm.vfs import syscalls as sc
        from smpvm.vm.vm_invariants import check_swap
        with _machine(kernel, npages=512, nswap=2048):
            vps = [_make_file(f"t{k}", 64) for k in range(4)]
            _write_inactive()
            for vp in vps:
                _recycle(vp)
            for vp in vps:
                sc.sys_truncate(vp, 8 * PAGE)       # a range free
            bad, _ = check_swap(vmview().raw)
        acct = [b for b in bad if b.startswith("swap accounting")]
        return {"violation": acct[0] if acct else "",
                "leaked": _leaked(acct[0]) if acct else 0}

    def judge(self, p, v):
        def text(d):
            return (f"violation, {d['leaked']} blocks leaked"
                    if d["violation"] else "accounting holds")
        if p["violation"] and not v["violation"]:
            verdict, why = REPRODUCED, ("the parent leaks blocks at each "
                                        "emptied swblock; the version none")
        elif not p["violation"]:
            verdict, why = NOT_REPRODUCED, "no leak on the parent"
        else:
            verdict, why = NOT_REPRODUCED, "the version leaks too"
        return verdict, text(p), text(v), why, ("blocks leaked",
                                                p["leaked"], v["leaked"])


def _leaked(text):
    import re
    m = re.search(r": (\d+) blocks allocated", text)
    return int(m.group(1)) if m else -1


# 64949baad7 ----------------------------------------------------------------------

class QueueEnd(Claim):
    version = "64949baad7"
    claim = ("with 256 queues eligible pages are no longer left unwritten, "
             "and a pass no longer launders more than its budget")
    metric = ("one writing pass over queues of clean pages: share of the "
              "eligible INACTIVE pages written; pages a pass flushes against"
              " maxlaunder")

    def measure(self, kernel, ctx):
        from smpvm.vm import vm_page as P
        from smpvm.vm import vm_swapcache as S
        from smpvm.vm.versions import pq_l2_size, since
        out = {}
        # one-page files: a flush writes exactly the page it is given (no
        # cluster of neighbours from other queues), so what a pass writes
        # is what its budgets allow.  (1) two pages a queue, a budget that
        # does not run out: does every queue get its turn?  (2) eight a
        # queue, maxlaunder 256 (the parent's default, one page a queue),
        # the end-of-queue reset left out: does a pass stay near its
        # budget?
        for what, per_queue, maxlaunder in (("share", 2, 1024),
                                            ("budget", 8, 256)):
            nfiles = 256 * per_queue
            with _machine(kernel, npages=nfiles + 512, nswap=2 * nfiles,
                          nfiles=nfiles + 16):
                v = vmview()
                for k in range(nfiles):
                    _make_file(f"q{k}", 1)
                eligible = sum(1 for m in range(v.npages)
                               if v.pages[m].queue - v.pages[m].pc ==
                               lib.PQ_INACTIVE and not
                               v.pages[m].flags & lib.PG_SWAPPED)
                nq = inactive_queues()
                markers = [P.vm_page_static_marker(q) for q in range(nq)]
                for q, mk in enumerate(markers):
                    P.vm_page_queues_spin_lock(lib.PQ_INACTIVE + q)
                    P.vm_page_marker_insert_head(lib.PQ_INACTIVE + q, mk)
                    P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE + q)
                open_gate()
                # (1): a reset at a queue's end closes the gate, as it
                # does in a kernel; (2): it leaves it open (hysteresis 0),
                # so that the budget alone ends each queue's scan
                _sc().hysteresis = 64 if what == "share" else 0
                _sc().maxlaunder = maxlaunder
                w0 = int(v.cnt.swap_write_pages)
                if since("64949baad7"):
                    count = S.c_div(maxlaunder, pq_l2_size()) + 2
                    scount = S.c_div(_sc().maxscan, pq_l2_size()) + 2
                    if S.vm_swapcache_writing_heuristic():
                        S._writing_pass(v, markers, count, scount)
                else:
                    S._writing_pass(v, markers)
                written = int(v.cnt.swap_write_pages) - w0
                out[what] = {"eligible": eligible, "written": written,
                             "budget": maxlaunder}
        return out

    def judge(self, p, v):
        def share(d):
            return d["share"]["written"] / max(1, d["share"]["eligible"])

        def text(d):
            return (f"{100 * share(d):.3g}% of {d['share']['eligible']} "
                    f"eligible pages written; a pass flushed "
                    f"{d['budget']['written']} on a budget of "
                    f"{d['budget']['budget']}")
        more = share(v) >= 2 * share(p)
        # the version's count is maxlaunder / PQ_L2_SIZE + 2 a queue: "a
        # bit of slop" lets it pass its budget, by less than half the
        # parent's excess
        over = [d["budget"]["written"] - d["budget"]["budget"]
                for d in (p, v)]
        fewer = over[0] > 0 and over[1] * 2 <= over[0]
        if more and fewer:
            verdict = REPRODUCED
            why = (f"{_ratio(share(v), share(p)):.3g}x the share written; "
                   f"a pass on the same budget flushes {over[1]} pages over "
                   f"it (the +2 a queue of slop) instead of {over[0]}")
        else:
            verdict = NOT_REPRODUCED
            why = (f"share {share(p):.3g} -> {share(v):.3g}; flushed "
                   f"{p['budget']['written']} -> {v['budget']['written']}")
        return verdict, text(p), text(v), why, (
            "share of eligible pages written (%)", 100 * share(p),
            100 * share(v))


CLAIMS = (Contention(), Pageout(), CondfreeCharge(), TokenSwap(),
          HoldBeforeYield(), Fragmentation(), MarkerAtEnd(), MaxScan(),
          SwapLeak(), QueueEnd())
assert [c.version for c in CLAIMS] == [v.name for v in VERSIONS[1:]]


# ---- running and presenting -------------------------------------------------

def run_history(only=(), quick=False, seeds=(1, 2), progress=None):
    """Run the experiment of each claim (or those of the versions in
    `only`) on parent and version; returns the Rows."""
    ctx = Context(quick=quick, seeds=tuple(seeds)[:1] if quick else
                  tuple(seeds), progress=progress)
    rows = []
    todo = [c for c in CLAIMS if not only or c.version in only]
    for i, c in enumerate(todo, 1):
        ver = BY_NAME[c.version]
        pk, vk = c.kernels()
        row = Row(version=c.version, date=ver.date, claim=c.claim,
                  metric=c.metric, parent_kernel=pk, version_kernel=vk)
        t0 = time.monotonic()
        ctx.say(f"[{i}/{len(todo)}] {c.version}: {c.claim}")
        ctx.say(f"    on {pk} (parent) ...")
        p = c.measure(pk, ctx)
        ctx.say(f"    on {vk} ...")
        v = c.measure(vk, ctx)
        (row.verdict, row.parent, row.value, row.why,
         row.plot) = c.judge(p, v)
        row.data = {"parent": p, "version": v}
        row.seconds = round(time.monotonic() - t0, 1)
        ctx.say(f"    {row.verdict}: {row.why} ({row.seconds:g} s)")
        rows.append(row)
    return rows


def format_table(rows, width=None):
    """The history table (rich), one row per version."""
    import io
    from rich.console import Console
    from rich.table import Table
    from rich import box
    t = Table(title="smpvm history: each commit's claim, on its parent and "
              "on it", box=box.SIMPLE_HEAVY, show_lines=True)
    for col in ("version", "date", "claim", "metric", "parent", "version ",
                "verdict"):
        t.add_column(col, overflow="fold")
    for r in rows:
        pk = f"[{r.parent_kernel}] " if r.parent_kernel else ""
        vk = f"[{r.version_kernel}] " if r.version_kernel != r.version \
            else ""
        t.add_row(r.version, r.date, r.claim, r.metric, pk + r.parent,
                  vk + r.value, f"{r.verdict}: {r.why}")
    buf = io.StringIO()
    Console(file=buf, width=width or 200, force_terminal=False).print(t)
    return buf.getvalue()


def to_markdown(rows):
    """The history table as markdown (README)."""
    def cell(t):
        return str(t).replace("|", "/").replace("\n", " ")
    out = ["| version | date | claim | metric | parent | version | verdict |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(cell(x) for x in (
            f"`{r.version}`", r.date, r.claim, r.metric,
            f"`{r.parent_kernel}`: {r.parent}",
            (f"`{r.version_kernel}`: " if r.version_kernel != r.version
             else "") + r.value,
            f"**{r.verdict}**: {r.why}")) + " |")
    return "\n".join(out) + "\n"


def to_json(rows):
    return json.dumps([dataclasses.asdict(r) for r in rows], indent=2,
                      default=str)


def plot(rows, path):
    """A PNG: per version, its claim's metric on the parent and on it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(rows)
    cols = min(5, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows),
                             squeeze=False)
    for ax, r in zip([a for row in axes for a in row], rows):
        label, pv, vv = r.plot if r.plot else ("", 0, 0)
        bars = ax.bar([r.parent_kernel[:7], r.version_kernel[:7]],
                      [float(pv), float(vv)],
                      color=["#b0b0b0", {"reproduced": "#3a8f3a",
                                         "not reproduced": "#b03a3a"}.get(
                                             r.verdict, "#c8a030")])
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_title(f"{r.version} ({r.verdict})", fontsize=8)
        ax.set_ylabel(label, fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in [a for row in axes for a in row][n:]:
        ax.axis("off")
    fig.suptitle("smpvm history: each claim's metric, parent vs version",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
