"""Kernel versions (smpvm/vm/versions.py): the registry, the defect bits
each version carries, the per-version rules of the writing pass, the nodes
each version has, the 256 queue locks in the profiler, and the
invariants over the static markers."""
import subprocess
import sys

import pytest

from smpvm.layout import lib
from smpvm.vm import vm_page as P
from smpvm.vm import vm_swapcache as S
from smpvm.vm.bugs import BUGS, DEFECT_FIXED_BY, version_bits
from smpvm.vm.versions import (BY_NAME, VERSIONS, inactive_queues, lookup,
                               since)
from smpvm.vm.vm_init import KERNEL_VERSIONS, KERNELS, kernel_name
from smpvm.vm.vmview import vmview

PAGE = lib.PAGE_SIZE
SMPVM = [sys.executable, "-m", "smpvm.cli"]


def test_the_versions_are_the_ten_commits_in_upstream_order():
    names = [v.name for v in VERSIONS]
    assert names == ["seed", "027193eb61", "51c99c6153", "08fb7a9da0",
                     "27b6ee0313", "739be60bf6", "f5f6d24720", "7a175765de",
                     "0bf8126181", "0301c40799", "64949baad7"]
    dates = [v.date for v in VERSIONS]
    assert dates == sorted(dates)
    assert lookup("0301c4") is BY_NAME["0301c40799"]
    assert lookup("d2d8515bfb3e") is BY_NAME["seed"]
    assert kernel_name("64949baad746") == "64949baad7"
    with pytest.raises(ValueError, match="smpvm kernels"):
        kernel_name("0000")


def test_each_defect_leaves_with_its_fixing_commit():
    """A version carries exactly the seed defects whose fixing commit comes
    after it; H1/H2 stay in every version and only `fixed` drops them."""
    assert KERNELS["seed"] == lib.BUGS_SEED and KERNELS["fixed"] == 0
    assert KERNEL_VERSIONS["fixed"] == KERNEL_VERSIONS["64949baad7"]
    hazards = lib.BUG_WRITE_IGNORES_SWAPINPROG | \
        lib.BUG_RANGE_FREE_INTERLEAVED
    assert KERNELS["64949baad7"] == hazards
    for bit, commit in DEFECT_FIXED_BY.items():
        for v in VERSIONS:
            has = bool(version_bits(v.ordinal) & bit)
            if commit == "smpvm":
                assert has
            else:
                assert has == (v.ordinal < BY_NAME[commit].ordinal), \
                    (hex(bit), v.name)
    # the registry's entries name the commit of their first bit's fix
    for b in BUGS.values():
        if b.origin.startswith("seed"):
            first = b.fixed_by.split(",")[0]
            assert any(DEFECT_FIXED_BY[bit] == first
                       for bit in DEFECT_FIXED_BY if b.bits & bit), b.name


def test_smpvm_kernels_and_kernel_list_print_every_version():
    r = subprocess.run(SMPVM + ["kernels"], capture_output=True, text=True,
                       timeout=60, cwd="/")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) == len(VERSIONS) + 1
    assert lines[5].startswith("739be60bf6  2011-11-19  kernel - Fix "
                               "swapcache related crash")
    r2 = subprocess.run(SMPVM + ["stress", "--kernel", "list"],
                        capture_output=True, text=True, timeout=60, cwd="/")
    assert r2.returncode == 0 and r2.stdout == r.stdout
    bad = subprocess.run(SMPVM + ["boot", "--kernel", "bogus"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("vm", ["seed", "027193eb61", "51c99c6153"],
                         indirect=True)
def test_the_layouts_of_the_queues(vm):
    """One segment layout for all: the seed's single INACTIVE queue,
    027193eb61's 256 of which 64 carry pages, 51c99c6153's 256 in use."""
    v = vmview()
    want = {"seed": (1, 64), "027193eb61": (256, 64),
            "51c99c6153": (256, 256)}[
        [k for k, o in KERNEL_VERSIONS.items() if o == v.vmg.version][0]]
    assert (inactive_queues(), int(v.vmg.pq_l2_size)) == want
    assert {int(v.pages[m].pc) for m in range(v.npages)} == \
        set(range(want[1]))


def _files_on_inactive(n, npages):
    from smpvm.vfs import syscalls as sc
    return [sc.sys_write(sc.sys_open(f"f{k}", create=True), 0,
                         b"v" * npages * PAGE) for k in range(n)]


def _static_markers_at_head():
    ms = [P.vm_page_static_marker(q) for q in range(inactive_queues())]
    for q, mk in enumerate(ms):
        P.vm_page_queues_spin_lock(lib.PQ_INACTIVE + q)
        P.vm_page_marker_insert_head(lib.PQ_INACTIVE + q, mk)
        P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE + q)
    return ms


@pytest.mark.vmconfig(npages=2048, nswap=4096)
@pytest.mark.parametrize("vm", ["7a175765de", "0bf8126181"], indirect=True)
def test_maxscan_bounds_a_queue_scan_since_0bf8126181(vm):
    """0bf8126181: every page visited costs maxscan (PG_SWAPPED ones too),
    and maxlaunder only counts flushes; before it a swapped page is free
    and a scan goes on to the end of its queue."""
    v = vmview()
    _files_on_inactive(2, 256)
    ms = _static_markers_at_head()
    v.vmg.swapcache.hysteresis = 0
    v.vmg.vm_swapcache_inactive_heuristic = 0
    v.vmg.swapcache.curburst = 1 << 40
    v.vmg.swapcache.maxlaunder = 1 << 20
    v.vmg.swapcache.maxscan = 1 << 20
    S._writing_pass(v, ms)              # everything gets swap (the pass
    #                                     of swapcached's loop: every queue)
    for q, mk in enumerate(ms):         # and scanned again from the head
        P.vm_page_queues_spin_lock(lib.PQ_INACTIVE + q)
        P.vm_page_marker_remove(lib.PQ_INACTIVE + q, mk)
        P.vm_page_marker_insert_head(lib.PQ_INACTIVE + q, mk)
        P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE + q)
    v.vmg.vm_swapcache_inactive_heuristic = 0
    v.vmg.swapcache.maxscan = 1
    s0 = int(v.cnt.pages_scanned)
    S.vm_swapcache_writing(ms[0])
    scanned = int(v.cnt.pages_scanned) - s0
    if since("0bf8126181"):
        assert scanned == 1
    else:
        queue0 = int(v.vmg.vm_page_queues[lib.PQ_INACTIVE].lcnt)
        assert scanned == queue0 > 1


@pytest.mark.vmconfig(npages=1024, nswap=2048)
@pytest.mark.parametrize("vm", ["seed"], indirect=True)
def test_writing_pass_meters_count_every_visit(vm):
    """smpvm's meters of a writing pass (kept in locals, stored once when
    its loop ends) count every page it visits: 64 pages in four aligned
    clusters of 16 -- the head of each flushed, the other 15 found
    PG_SWAPPED (skip_free), at most 16 visited under one queue hold; a
    second pass skips all 64 under one hold."""
    v = vmview()
    c = v.cnt
    _files_on_inactive(1, 64)
    (mk,) = _static_markers_at_head()
    v.vmg.swapcache.hysteresis = 0
    v.vmg.vm_swapcache_inactive_heuristic = 0
    v.vmg.swapcache.curburst = 1 << 40
    v.vmg.swapcache.maxlaunder = 1 << 20
    c.writing_max_held = 0
    for skipped, held, written in ((60, 16, 64), (64, 64, 0)):
        s0, w0 = int(c.pages_scanned), int(c.writing_pass_scanned)
        f0, p0 = int(c.skip_free), int(c.swap_write_pages)
        S.vm_swapcache_writing(mk)
        assert int(c.pages_scanned) - s0 == 64
        assert int(c.writing_pass_scanned) - w0 == 64
        assert int(c.skip_free) - f0 == skipped
        assert int(c.swap_write_pages) - p0 == written
        assert c.writing_max_held == held
        P.vm_page_queues_spin_lock(lib.PQ_INACTIVE)
        P.vm_page_marker_remove(lib.PQ_INACTIVE, mk)
        P.vm_page_marker_insert_head(lib.PQ_INACTIVE, mk)
        P.vm_page_queues_spin_unlock(lib.PQ_INACTIVE)


@pytest.mark.vmconfig(npages=1024, nswap=2048)
@pytest.mark.parametrize("vm", ["0301c40799", "64949baad7"], indirect=True)
def test_the_end_of_one_queue_stops_the_others_until_64949baad7(vm):
    """64949baad7: the heuristic is reset only when every queue reached its
    end (and each queue gets maxlaunder / PQ_L2_SIZE + 2); before it the
    first queue to reach its end closed the gate for all the others."""
    v = vmview()
    _files_on_inactive(1, 512)
    ms = _static_markers_at_head()
    v.vmg.swapcache.hysteresis = 8
    v.vmg.vm_swapcache_inactive_heuristic = 0
    v.vmg.swapcache.curburst = 1 << 40
    if since("64949baad7"):
        assert S.vm_swapcache_writing_heuristic()
        ends = S._writing_pass(v, ms, 1 << 20, 1 << 20)
        assert ends == inactive_queues() == 256
    else:
        v.vmg.swapcache.maxlaunder = 1 << 20
        ends = S._writing_pass(v, ms)
        assert ends == 1            # queue 0's end closed the gate
        assert v.vmg.vm_swapcache_inactive_heuristic < 0


@pytest.mark.parametrize("vm", ["seed", "f5f6d24720", "64949baad7"],
                         indirect=True)
def test_each_version_has_its_own_sysctl_nodes(vm):
    from smpvm.errors import SysctlError
    from smpvm.kern import sysctl
    v = vmview()
    have = {n: since(c) for n, c in S.SYSCTL_SINCE.items()}
    for name, present in have.items():
        if present:
            sysctl.sysctl_get(vm, f"vm.swapcache.{name}")
        else:
            with pytest.raises(SysctlError, match="unknown oid"):
                sysctl.sysctl_get(vm, f"vm.swapcache.{name}")
    if since("64949baad7"):
        with pytest.raises(SysctlError, match="read only"):
            sysctl.sysctl_set(vm, "vm.swapcache.hysteresis", "5")
        assert S.kernel_defaults(vm)["maxlaunder"] == 256 * 4
    else:
        sysctl.sysctl_set(vm, "vm.swapcache.hysteresis", "5")
        assert v.vmg.swapcache.hysteresis == 5


@pytest.mark.vmconfig(kernel="51c99c6153")
def test_the_profiler_names_each_queue_lock_and_sums_the_class(vm):
    from smpvm.prof import lockstat
    _files_on_inactive(1, 32)
    snap = lockstat.snapshot(vm)
    names = {lk["name"] for lk in snap["locks"] if lk["class"] ==
             "pq_inactive"}
    assert len(names) >= 16 and all(n.startswith("pq_inactive[")
                                    for n in names)
    per_lock = sum(lk["acquisitions"] for lk in snap["locks"]
                   if lk["class"] == "pq_inactive")
    assert snap["classes"]["pq_inactive"]["acquisitions"] == per_lock


@pytest.mark.parametrize("kernel", ["seed", "64949baad7"])
def test_swapcached_keeps_one_marker_per_queue_and_the_invariants_check_them(
        kernel, request):
    """The daemon puts page_marker[q] on each INACTIVE queue it scans (one
    in the seed, 256 since 027193eb61); the invariant checker knows where
    each must be, and says so when one is not."""
    from conftest import wait_for
    from smpvm.kern.kproc import Supervisor
    from smpvm.layout import threads
    from smpvm.vm.vm_invariants import check_markers
    request.node.add_marker(pytest.mark.vmconfig(kernel=kernel))
    vm = request.getfixturevalue("vm")
    v = vmview()
    with Supervisor(vm) as sup:
        tid = sup.kproc_start("swapcached", S.vm_swapcached_thread)
        td = threads(vm.base)[tid]
        wait_for(lambda: td.state == lib.TDS_SLEEPING, what="asleep")
        nq = inactive_queues()
        on = [q for q in range(lib.VM_STATIC_MARKERS)
              if v.raw.pages[P.vm_page_static_marker(q)].queue ==
              lib.PQ_INACTIVE + q]
        assert on == list(range(nq))
        assert check_markers(v.raw, tid) == []
        sup.shutdown(hooks=[S.shutdown_swapcache])
    # gone with the daemon: now each of them is misplaced
    assert len(check_markers(v.raw, tid)) == nq


def test_a_deterministic_run_of_the_default_machine_ends_at_its_shutdown():
    """On the 256-queue versions a CPU writes its files for more than
    20000 steps; --steps counts the workload's steps after that set-up
    (issue 15), and the run then shuts down within the scheduler's limit
    (before, a shutdown in the set-up ended in "sched: no exit ... after
    the shutdown")."""
    from smpvm.stress.options import StressOptions
    from smpvm.stress.session import run
    r = run(StressOptions(kernel="fixed", sched="pct", seed=1, steps=20000,
                          cpus=2, quiet=True, seconds=60))
    assert r.exit == 0 and not r.panic, r.panic
    assert r.ended == "steps" and r.sched["workload_steps"] >= 20000
    assert r.sched["steps"] < r.sched["setup_steps"] + 2 * 20000
