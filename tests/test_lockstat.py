"""Lock profiling: a scripted contention gives exactly its counts, sites
and histograms; pool aliasing is named; the JSON, CSV and folded outputs
parse and agree; the PNG is written; `smpvm lockstat` reads a running
machine."""
import csv
import io
import json
import os
import time

import pytest

from conftest import wait_for
from smpvm.kern.kproc import Supervisor
from smpvm.kern.spinlock import spin_lock, spin_unlock
from smpvm.layout import lib, threads
from smpvm.prof import lockstat as L
from smpvm.vm import vm_page as P

from test_locks import _hold_spin_while_told

K = 4


def test_scripted_contention_counts_sites_and_histograms(machine, host):
    machine.hdr.prof_enabled = 1
    lock = 21
    with Supervisor(machine) as sup:
        tid = sup.kproc_start("contender", _hold_spin_while_told, lock, K)
        td = threads(machine.base)[tid]
        for i in range(K):
            spin_lock(lock)
            machine.hdr.scratch[0] = i + 1
            wait_for(lambda: td.state == lib.TDS_SPINWAIT)
            time.sleep(0.01)
            spin_unlock(lock)
            wait_for(lambda: machine.hdr.scratch[1] == i + 1)
        assert sup.wait(10) == "exited", sup.report
    snap = L.snapshot(machine)
    lk = next(x for x in snap["locks"] if x["kind"] == "spin" and
              x["id"] == lock)
    assert lk["acquisitions"] == 2 * K and lk["contended"] == K
    assert sum(lk["wait_hist"]) == K and sum(lk["hold_hist"]) == 2 * K
    assert 0 < lk["wait_min_ns"] <= lk["wait_avg_ns"] <= lk["wait_max_ns"]
    recs = [r for r in snap["contentions"] if r["lock"] == lk["name"]]
    assert sum(r["count"] for r in recs) == K
    assert all("_hold_spin_while_told" in r["waiter_site"] for r in recs)
    # who we waited for: the host, where it let go
    assert any("test_scripted_contention" in r["holder_site"] for r in recs)
    assert snap["observer"]["site_lookups"] >= K


def _take_page(m, page):
    wait_for(lambda: m.hdr.scratch[0] == 1)
    P.vm_page_spin_lock(page)
    P.vm_page_spin_unlock(page)


@pytest.mark.vmconfig(spin_pool=64)
def test_pool_aliasing_is_reported(vm):
    """Two unrelated pages hashing to one pool spinlock: contention
    between them is reported as aliasing, with both pages."""
    idx = {}
    for m in range(vm.config.npages):
        i = lib.vm_page_spin_index(m)
        if i in idx:
            a, b = idx[i], m
            break
        idx[i] = m
    vm.hdr.prof_enabled = 1
    with Supervisor(vm) as sup:
        tid = sup.kproc_start("other", _take_page, b)
        td = threads(vm.base)[tid]
        P.vm_page_spin_lock(a)
        vm.hdr.scratch[0] = 1
        wait_for(lambda: td.state == lib.TDS_SPINWAIT)
        P.vm_page_spin_unlock(a)
        assert sup.wait(10) == "exited", sup.report
    snap = L.snapshot(vm)
    r = next(r for r in snap["contentions"] if r["aliased"])
    assert (r["waiter_key"], r["holder_key"]) == (b, a)
    assert r["class"] == "spin_pool"
    assert f"page {b} waited for unrelated page {a}" in L.format_table(snap)
    assert snap["classes"]["spin_pool"]["aliased_contentions"] == 1


def test_outputs_parse_agree_and_the_png_is_written(machine, host, tmp_path):
    machine.hdr.prof_enabled = 1
    for i in range(50):
        spin_lock(i)
        spin_unlock(i)
    snap = L.snapshot(machine)
    d = json.loads(L.to_json(snap))
    rows = list(csv.DictReader(io.StringIO(
        L.to_csv(snap).split("\n", 1)[1])))
    assert L.to_csv(snap).startswith("# smpvm lockstat schema 1")
    assert len(rows) == len(d["locks"])
    assert sum(int(r["acquisitions"]) for r in rows) == \
        sum(x["acquisitions"] for x in d["locks"]) >= 50
    folded = L.to_folded(snap)
    assert sum(int(line.rsplit(" ", 1)[1]) for line in folded.splitlines()) \
        == sum(r["wait_ns"] for r in d["contentions"])
    samples = [(0.0, {"spin_pool": 0}), (1.0, {"spin_pool": 2000000})]
    png = tmp_path / "w.png"
    L.plot(samples, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    L.write_all(snap, samples, str(tmp_path / "dir"))
    assert sorted(os.listdir(tmp_path / "dir")) == [
        "lockstat.csv", "lockstat.folded", "lockstat.json", "lockstat.png",
        "lockstat.txt"]


def test_a_deterministic_run_follows_the_same_schedule_with_lockstat(
        tmp_path):
    """The profiler observes a schedule, never changes it: the same seed
    gives the same trace hash with --lockstat and without (a site lookup
    that was a preemption point gave this seed a deadlock: a thread that
    went to sleep was switched away from while still owning a token)."""
    from test_replay import SMALL
    from smpvm.stress.options import StressOptions
    from smpvm.stress.session import run
    opts = dict(SMALL, sched="random", seed=4, steps=20000)
    plain = run(StressOptions(**opts))
    profiled = run(StressOptions(**dict(opts, lockstat_dir=str(
        tmp_path / "ls"))))
    assert plain.exit == profiled.exit == 0, profiled.panic
    assert profiled.sched["trace_hash"] == plain.sched["trace_hash"]
    snap = json.loads((tmp_path / "ls" / "lockstat.json").read_text())
    assert snap["observer"]["site_lookups"] > 0     # it did profile
