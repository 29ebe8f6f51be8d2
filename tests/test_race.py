"""The race checkers: each catches a purpose-built violation with the fields
a kernel engineer needs (field, index, CPU/thread, locks held, protector,
sites), and the fixed kernel is silent under a checked stress run."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import wait_for
from smpvm.config import MachineConfig
from smpvm.kern.kproc import Supervisor
from smpvm.kern.thread import bound_thread
from smpvm.layout import ffi, lib
from smpvm.machine import Machine
from smpvm.race import forensics, report
from smpvm.vm.vm_invariants import check_all
from smpvm.vm.vm_page import vm_page_busy_wait
from smpvm.vm.vmview import addressof, field_table, vmview

pytest_plugins = ["pytester"]
checked = pytest.mark.vmconfig(check="all")


def _object_with_page(v):
    """An object with one resident, unbusied page; returns (o, m)."""
    o = lib.vm_object_allocate(lib.OBJT_DEFAULT, 4)
    lib.vm_object_hold(o)
    m = lib.vm_page_alloc(o, 0, lib.VM_ALLOC_NORMAL)
    lib.vm_page_wakeup(m)
    lib.vm_object_drop(o)
    return o, m


def test_the_table_of_protection_covers_every_field():
    t = field_table()
    for s in ("vm_page", "vm_object", "vnode", "swblock", "vpgqueues"):
        declared = {name for name, _ in ffi.typeof(f"struct {s}").fields
                    if not name.startswith("pad")}
        assert set(t[s]) == declared, s
    q = t["vm_page"]["queue"][1]
    assert q.wr_all == lib.PROT_PAGE_SPIN | lib.PROT_QUEUE_SPIN
    assert t["vm_page"]["flags"][1].kind == lib.PROT_ATOMIC
    assert t["vm_object"]["list_next"][1].rd_any == lib.PROT_VMOBJ_TOKEN


@checked
def test_an_unlocked_field_write_is_reported_with_who_where_and_what(vm):
    v = vmview(vm)
    o, m = _object_with_page(v)
    v.objects[o].generation = 7                     # no object token
    lib.vm_object_hold(o)
    v.objects[o].generation = 8                     # correct: no report
    lib.vm_object_drop(o)
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_UNPROTECTED
    assert r["field"] == "vm_object.generation" and r["index"] == o
    assert r["required"] == ["obj_token"]
    a = r["a"]
    assert a["name"] == "host" and a["write"] and a["value"] == 7
    assert a["site"].startswith("test_race.py:") and \
        "test_an_unlocked_field_write" in a["site"]
    text = report.format_report(r, "REPLAY")
    for want in ("vm_object.generation of object", "obj_token",
                 "locks held none", "REPLAY"):
        assert want in text


@checked
def test_a_c_primitive_called_without_its_protector_is_reported(vm):
    v = vmview(vm)
    o, m = _object_with_page(v)
    lib.vm_page_undirty(m)          # dirty needs PG_BUSY or the object token
    (r,) = report.reports(vm)
    assert r["field"] == "vm_page.dirty" and r["index"] == m
    assert set(r["required"]) == {"busy", "obj_token"}
    # the Python caller and the C function both appear
    assert "test_race.py" in r["a"]["site"] and \
        "vm_page_undirty" in r["a"]["site"]


@checked
def test_a_plain_store_to_an_atomic_field_is_reported(vm):
    v = vmview(vm)
    o, m = _object_with_page(v)
    v.pages[m].flags = v.pages[m].flags | lib.PG_REFERENCED
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_PLAIN_STORE
    assert r["field"] == "vm_page.flags" and r["required"] == ["atomic"]


@checked
def test_an_inverted_lock_pair_closes_a_cycle_with_both_sites(vm):
    qa, qi = lib.PQ_ACTIVE, lib.PQ_INACTIVE
    lib.vm_page_queues_spin_lock(qa)
    lib.vm_page_queues_spin_lock(qi)                # learns active -> inactive
    lib.vm_page_queues_spin_unlock(qi)
    lib.vm_page_queues_spin_unlock(qa)
    assert report.reports(vm) == []
    lib.vm_page_queues_spin_lock(qi)
    lib.vm_page_queues_spin_lock(qa)                # inactive -> active: cycle
    lib.vm_page_queues_spin_unlock(qa)
    lib.vm_page_queues_spin_unlock(qi)
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_ORDER
    assert [e["class"] for e in r["cycle"]] == ["pq_inactive", "pq_active"]
    sites = [e["site"] for e in r["cycle"]]
    assert all("test_race.py" in s for s in sites) and sites[0] != sites[1]
    assert r["a"]["locks"] == ["pq_inactive[0]"]
    text = report.format_report(r)
    assert "CPU0" in text and "lock(pq_inactive);" in text and \
        "*** DEADLOCK ***" in text


@checked
def test_a_declared_order_reversal_is_reported_not_a_panic(vm):
    v = vmview(vm)
    o, m = _object_with_page(v)
    lib.vm_page_queues_spin_lock(lib.PQ_INACTIVE)
    lib.vm_page_spin_lock(m)            # page spin after a queue spin
    lib.vm_page_spin_unlock(m)
    lib.vm_page_queues_spin_unlock(lib.PQ_INACTIVE)
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_ORDER and "declared order" in r["message"]
    assert r["a"]["locks"] == ["pq_inactive[0]"]
    assert not vm.panicked


@checked
def test_a_token_taken_under_a_spinlock_is_reported(vm):
    lib.vm_page_queues_spin_lock(lib.PQ_ACTIVE)
    lib.lwkt_gettoken(lib.TOK_VNODE)        # uncontended, but it may block
    lib.lwkt_reltoken(lib.TOK_VNODE)
    lib.vm_page_queues_spin_unlock(lib.PQ_ACTIVE)
    (r,) = report.reports(vm)
    assert r["type_id"] == lib.RR_SLEEP_SPIN
    assert r["acquiring"] == "vnode_token"


def _write_generation(m, o, value, use_token, order):
    """Write objects[o].generation once, optionally under its token; `order`
    is the turn to wait for (hdr.scratch[0], a plain word: no sync).  Both
    writers first wait until both run (scratch[3], [4], plain words): a
    writer that wrote and exited before the supervisor allocated the other
    one's thread would hand it its own freed slot, and a thread's accesses
    are ordered with each other -- no race to find."""
    v = vmview(m)
    m.hdr.scratch[3 + order] = 1
    while not (m.hdr.scratch[3] and m.hdr.scratch[4]):
        time.sleep(0.001)
    while m.hdr.scratch[0] != order:
        time.sleep(0.001)
    if use_token:
        lib.vm_object_hold(o)
    v.objects[o].generation = value
    if use_token:
        lib.vm_object_drop(o)
    m.hdr.scratch[0] = order + 1


@pytest.mark.parametrize("use_token", [False, True])
def test_an_unordered_write_pair_is_a_data_race(use_token):
    with Machine.create(MachineConfig(ncpus=2, npages=128, check="hb")) as m:
        with bound_thread(m, "host"):
            o = lib.vm_object_allocate(lib.OBJT_DEFAULT, 1)
            with Supervisor(m) as sup:
                sup.kproc_start("writer0", _write_generation, o, 1,
                                use_token, 0)
                sup.kproc_start("writer1", _write_generation, o, 2,
                                use_token, 1)
                wait_for(lambda: m.hdr.scratch[0] == 2, what="writers")
                sup.shutdown()
            found = report.reports(m)
    if use_token:
        assert found == []              # the token orders them
        return
    (r,) = found
    assert r["type_id"] == lib.RR_RACE and r["field"] == "vm_object.generation"
    a, b = r["a"], r["b"]
    assert (a["name"], b["name"]) == ("writer1", "writer0")
    assert a["write"] and b["write"] and (a["value"], b["value"]) == (2, 1)
    assert "_write_generation" in a["site"] and \
        "_write_generation" in b["site"]
    assert "earlier" in report.format_report(r)


@checked
def test_a_corrupted_queue_count_is_an_invariant_violation(vm):
    assert check_all(vm) == []
    vmview(vm).raw.vmg.vm_page_queues[lib.PQ_INACTIVE].lcnt += 1
    bad = check_all(vm)
    assert any(f"queue {lib.PQ_INACTIVE}: lcnt" in b for b in bad)


def _wait_busy(m, page):
    vm_page_busy_wait(page, 0, "lostwk")
    lib.vm_page_wakeup(page)


@checked
def test_a_lost_wakeup_hang_is_named_by_the_forensics(vm):
    v = vmview(vm)
    o, m = _object_with_page(v)
    assert lib.vm_page_busy_try(m, 0) == 0          # host busies m
    with Supervisor(vm) as sup:
        tid = sup.kproc_start("waiter", _wait_busy, m)
        wait_for(lambda: v.raw.pages[m].flags & lib.PG_WANTED,
                 what="the waiter to sleep")
        # the bug: PG_BUSY released without vm_page_wakeup's wakeup
        lib.atomic_clear_int(addressof(v.raw.pages[m], "flags"),
                             lib.PG_BUSY | lib.PG_WANTED)
        time.sleep(1.1)
        (w,) = forensics.indefinite(vm, 1.0)
        assert w["tid"] == tid and w["kind"] == "busy"
        assert w["on"] == f"page {m} (lostwk)" and "wakeup was lost" in \
            w["note"]
        assert w["holders"] == [0] or w["holders"]      # the last busier
        text = forensics.hang_report(vm, 1.0)
        for want in ("indefinite waits:", f"page {m} (lostwk)",
                     "wait-for graph", "show locks", "last events",
                     "waiter (tid"):
            assert want in text, want
        lib.wakeup(lib.vm_page_kva(m))              # let it finish
        sup.shutdown()


def test_race_cli_is_clean_on_the_fixed_kernel_and_prints_the_replay():
    r = subprocess.run([sys.executable, "-m", "smpvm.cli", "race",
                        "--seconds", "6", "--seed", "5", "--json"],
                       capture_output=True, text=True, timeout=120,
                       cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["reports"] == [] and out["violations"] == []
    s = out["summary"]
    assert s["accesses_checked"] > 10000 and s["hb_checked"] > 1000
    assert s["order_edges"] >= 1
    assert out["replay"].startswith("smpvm race --seed 5")
    bad = subprocess.run([sys.executable, "-m", "smpvm.cli", "race",
                          "--check", "bogus", "--seconds", "1"],
                         capture_output=True, text=True, timeout=60,
                         cwd="/")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_the_plugin_fails_a_test_on_a_report_and_shows_the_replay(pytester):
    pytester.makepyfile(test_user="""
        import pytest
        from smpvm.layout import lib
        from smpvm.vm.vmview import vmview

        @pytest.mark.smpvm(check="fields")
        def test_clean(checked_vm):
            o = lib.vm_object_allocate(lib.OBJT_DEFAULT, 1)
            lib.vm_object_hold(o)
            vmview(checked_vm).objects[o].generation = 1
            lib.vm_object_drop(o)

        def test_racy(checked_vm):
            o = lib.vm_object_allocate(lib.OBJT_DEFAULT, 1)
            vmview(checked_vm).objects[o].generation = 1
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=2, errors=1)     # test_racy errs at teardown
    out = res.stdout.str()
    assert "vm_object.generation" in out and \
        "replay     pytest 'test_user.py::test_racy'" in out
    assert not [e for e in os.listdir("/dev/shm")
                if e.startswith("smpvm-") and str(os.getpid()) in e]
