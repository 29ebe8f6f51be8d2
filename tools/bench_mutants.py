#!/usr/bin/env python3
"""Mutation benchmark: how many plausible concurrency mistakes does `smpvm
hunt` catch, without being told about them?

Generic mutation operators of its own (ConMAn's, for a kernel's
primitives) are applied to the emulated kernel's Python code
(smpvm/vm/*.py and smpvm/vfs/*.py, not the checkers, the registry or the
views), one mutation per mutant, each in a temporary copy of the package --
the source tree is never touched:

  drop-pair          remove an acquire and its matching release (a spinlock,
                     a token, an object or page hold, a pip reference, a
                     soft busy): RCXC/RSB
  drop-recheck       remove a guard (an `if` that leaves the block) that
                     re-reads state within three statements after a
                     blocking point (a token-loss point)
  reorder-publish    swap a store (an attribute or item store, an atomic)
                     with the release or wakeup that follows it: the
                     release now publishes before the store
  swap-around-block  swap a blocking call with the statement before or
                     after it: the statement moves across the token-loss
                     point

Each mutant is first run under a fixed set of deterministic schedules
(EQUIV_RUNS, checked); a mutant whose observables (exit, findings, workload
and swapcache counters) equal the unmutated kernel's in every one changed
no behaviour that can be seen, and counts as equivalent (this includes
mutants in code those runs never reach); how many of those also gave the
very same interleavings (trace hashes) is reported beside.  A dropped
acquisition that may recurse (an object hold, a token) whose lock the
thread already held every time those runs reached it (a probe in the
unmutated code records it) is equivalent too: the outer acquisition
protects the same, only the preemption points differ.  Every other mutant gets a hunt
(`smpvm hunt --minutes M` on the fixed kernel); it is caught if the hunt
finds anything.  The score is caught / non-equivalent, by operator and by
detector.  The mutants are chosen from all that the operators make by
--seed (sorted, then shuffled), so a rerun measures the same ones.

Usage: python tools/bench_mutants.py [--count 40] [--seed 1] [--minutes 2]
       [-n 2] [--operators a,b] [--list] [--json FILE]
"""
import argparse
import ast
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "smpvm")
FILES = ["vm/vm_swapcache.py", "vm/swap_pager.py", "vm/vm_object.py",
         "vm/vm_page.py", "vm/vm_pageout.py", "vfs/vfs_bio.py",
         "vfs/vnode.py", "vfs/syscalls.py"]

# acquire -> its releases (a call's last name; the first argument matches)
PAIRS = {"vm_page_queues_spin_lock": ("vm_page_queues_spin_unlock",),
         "vm_page_spin_lock": ("vm_page_spin_unlock",),
         "spin_lock": ("spin_unlock",),
         "lwkt_gettoken": ("lwkt_reltoken",),
         "vm_object_hold": ("vm_object_drop",),
         "vm_page_hold": ("vm_page_unhold",),
         "vm_object_pip_add": ("vm_object_pip_wakeup",
                               "vm_object_pip_wakeup_n"),
         "vm_page_io_start": ("vm_page_io_finish",)}
# blocking points: the thread may lose its tokens (reference 4.13)
BLOCKING = {"tsleep", "lwkt_yield", "vm_page_busy_wait",
            "vm_page_lookup_busy_wait", "vm_page_sleep_busy",
            "vm_object_hold", "lwkt_gettoken", "vm_wait",
            "vm_object_pip_wait", "io_wait"}
# releases and wakeups: what publishes a store to other threads
RELEASES = {"wakeup", "wakeup_one", "vm_page_wakeup", "vm_page_flash",
            "lwkt_reltoken", "spin_unlock", "vm_page_queues_spin_unlock",
            "vm_page_spin_unlock", "vm_object_drop", "vm_object_pip_wakeup",
            "vm_object_pip_wakeup_n", "vm_page_io_finish"}
STORE_CALLS = {"atomic_set_int", "atomic_clear_int", "atomic_cmpset_int",
               "atomic_fetchadd_int", "atomic_cmpset_long",
               "atomic_fetchadd_long", "_set_flag", "_clear_flag"}
OPERATORS = ("drop-pair", "drop-recheck", "reorder-publish",
             "swap-around-block")

# the deterministic runs that decide equivalence: (strategy, seed), each on
# a small machine that writes, cleans, truncates and unlinks
EQUIV_RUNS = (("random", 1), ("pct", 2), ("bounded", 3))
EQUIV_SCRIPT = r"""
import json, sys
from smpvm.stress.options import StressOptions
from smpvm.stress.session import run
out = []
for strategy, seed in %r:
    f = run(StressOptions(cpus=2, quiet=True, seconds=60, sched=strategy,
        seed=seed, steps=60000, check="all", files=3, file_pages=8,
        npages=64, nswap=64, nmeta=32, gap_scale=0.0, tick_steps=20,
        mix={"read": 10, "write": 6, "mmap": 2, "truncate": 2, "unlink": 2,
             "xread": 3, "seqread": 1, "chflags": 1, "sysctl": 1,
             "meta": 2},
        sysctls=(("vm.swapcache.maxlaunder", "16"),)))
    def timeless(d):
        # the meters' host times (cpu_ns, ns, max_ns...) differ from run
        # to run of the same schedule: not observables
        return {k: timeless(v) if isinstance(v, dict) else v
                for k, v in d.items() if k != "ns" and not k.endswith("_ns")}
    sc = timeless(f.swapcache)
    sc.pop("machine", None)
    out.append({"exit": f.exit, "found": sorted(f.signature()),
                "workload": f.workload, "swapcache": sc,
                "detectors": f.detectors()[0],
                "trace": f.sched["trace_hash"] if f.sched else ""})
print(json.dumps(out, sort_keys=True, default=str))
"""


# ---- the operators ------------------------------------------------------------

def _name(call):
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else \
        f.id if isinstance(f, ast.Name) else ""


def _call(stmt):
    """The call of an expression statement or of an assignment's value."""
    v = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
    return v if isinstance(v, ast.Call) else None


def _arg0(call):
    return ast.unparse(call.args[0]) if call.args else ""


def _calls_in(node):
    return {_name(n) for n in ast.walk(node) if isinstance(n, ast.Call)}


def _is_store(stmt):
    if isinstance(stmt, (ast.Assign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) \
            else [stmt.target]
        return any(isinstance(t, (ast.Attribute, ast.Subscript))
                   for t in targets)
    c = _call(stmt)
    return c is not None and _name(c) in STORE_CALLS


def _simple(stmt):
    """An expression statement or an assignment (not a docstring)."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return False
    return isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign))


def _blocks(tree):
    """Every statement list inside a function: (list, function name)."""
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                b = getattr(node, field, None)
                if isinstance(b, list) and b and isinstance(b[0], ast.stmt):
                    yield b, fn.name
            for h in getattr(node, "handlers", []) or []:
                yield h.body, fn.name


def mutations(path, tree):
    """(operator, line, what, edits) for one file; edits: ("del", stmts)
    or ("swap", a, b)."""
    seen = set()
    for block, fn in _blocks(tree):
        if id(block) in seen:
            continue
        seen.add(id(block))
        for i, st in enumerate(block):
            c = _call(st)
            name = _name(c) if c is not None else ""
            # drop-pair
            if isinstance(st, ast.Expr) and name in PAIRS:
                rel = _release_of(block, i, name, _arg0(c))
                if rel is not None:
                    yield ("drop-pair", st.lineno,
                           f"{fn}: no {name}({_arg0(c)}) / "
                           f"{_name(_call(rel))}", ("del", [st, rel]),
                           _held_probe(st, name, _arg0(c)))
            # drop-recheck
            if isinstance(st, ast.If) and st.body and isinstance(
                    st.body[-1], (ast.Continue, ast.Break, ast.Return,
                                  ast.Raise)) and \
                    any(isinstance(n, ast.Attribute)
                        for n in ast.walk(st.test)):
                before = block[max(0, i - 3):i]
                if any(_calls_in(b) & BLOCKING for b in before):
                    yield ("drop-recheck", st.lineno,
                           f"{fn}: no `if {ast.unparse(st.test)[:60]}`",
                           ("del", [st]), None)
            # reorder-publish
            if i + 1 < len(block) and _is_store(st):
                nc = _call(block[i + 1])
                if isinstance(block[i + 1], ast.Expr) and nc is not None \
                        and _name(nc) in RELEASES:
                    yield ("reorder-publish", st.lineno,
                           f"{fn}: {_name(nc)} before "
                           f"`{ast.unparse(st)[:50]}`",
                           ("swap", st, block[i + 1]), None)
            # swap-around-block
            if c is not None and name in BLOCKING and _simple(st):
                for j in (i - 1, i + 1):
                    if 0 <= j < len(block) and _simple(block[j]):
                        a, b = (block[j], st) if j < i else (st, block[j])
                        yield ("swap-around-block", st.lineno,
                               f"{fn}: `{ast.unparse(block[j])[:50]}` "
                               f"moved {'after' if j < i else 'before'} "
                               f"{name}", ("swap", a, b), None)


# acquisitions that may recurse: dropping one taken while the thread
# already holds the lock changes no protection (the outer one covers it)
RECURSIVE = {"vm_object_hold": "L.lwkt_token_held(L.vm_object_token({}))",
             "lwkt_gettoken": "L.lwkt_token_held({})"}
PROBE = ("(lambda h: open(__import__('os').environ['SMPVM_PROBE'], 'a')"
         ".write('%d\\n' % h))({held}); ")


def _held_probe(st, name, arg):
    """For a recursive kind of acquisition: (line, column, code to put in
    front of it that records whether the lock was already held)."""
    if name not in RECURSIVE or not arg:
        return None
    held = "(lambda L: " + RECURSIVE[name].format(arg) + \
        ")(__import__('smpvm.layout', fromlist=['lib']).lib)"
    return (st.lineno, st.col_offset, PROBE.format(held=held))


def _release_of(block, i, name, arg):
    """The matching release of block[i] (acquire name on arg): a later
    statement of the block, or in the finally of the try that follows."""
    def match(s):
        c = _call(s)
        return isinstance(s, ast.Expr) and c is not None and \
            _name(c) in PAIRS[name] and _arg0(c) == arg
    for s in block[i + 1:]:
        if match(s):
            return s
        if isinstance(s, ast.Try):
            for f in s.finalbody:
                if match(f):
                    return f
            break
    return None


def apply(text, edit):
    """The mutated source: statements replaced by `pass` (deleted) or two
    statements' lines exchanged; the other lines keep their numbers."""
    lines = text.splitlines(keepends=True)
    if edit[0] == "del":
        for st in sorted(edit[1], key=lambda s: -s.lineno):
            ind = " " * st.col_offset
            n = st.end_lineno - st.lineno + 1
            lines[st.lineno - 1:st.end_lineno] = \
                [ind + "pass\n"] + ["\n"] * (n - 1)
    else:
        a, b = edit[1], edit[2]
        la = lines[a.lineno - 1:a.end_lineno]
        mid = lines[a.end_lineno:b.lineno - 1]
        lb = lines[b.lineno - 1:b.end_lineno]
        lines[a.lineno - 1:b.end_lineno] = lb + mid + la
    return "".join(lines)


def all_mutants(operators):
    out = []
    for rel in FILES:
        path = os.path.join(PKG, rel)
        text = open(path).read()
        tree = ast.parse(text)
        for op, line, what, edit, probe in mutations(path, tree):
            if op not in operators:
                continue
            new = apply(text, edit)
            try:
                ast.parse(new)
            except SyntaxError:
                continue
            m = {"file": rel, "operator": op, "line": line, "what": what,
                 "source": new}
            if probe:
                lines = text.splitlines(keepends=True)
                ln, col, code = probe
                lines[ln - 1] = lines[ln - 1][:col] + code + \
                    lines[ln - 1][col:]
                m["probe"] = "".join(lines)
            out.append(m)
    # one mutant per distinct result
    uniq = {}
    for m in out:
        uniq.setdefault((m["file"], m["source"]), m)
    return sorted(uniq.values(), key=lambda m: (m["file"], m["line"],
                                                m["operator"], m["what"]))


# ---- running them -------------------------------------------------------------

def _copy_package(dst, src=PKG):
    shutil.copytree(src, os.path.join(dst, "smpvm"),
                    ignore=shutil.ignore_patterns("__pycache__"))


def _env(pkgdir, state):
    env = dict(os.environ)
    env["PYTHONPATH"] = pkgdir + (os.pathsep + env["PYTHONPATH"]
                                  if env.get("PYTHONPATH") else "")
    env["XDG_STATE_HOME"] = state
    env.pop("PYTEST_ADDOPTS", None)
    return env


def observe(pkgdir, state, probe=""):
    """The equivalence runs' observables in the package at pkgdir."""
    env = _env(pkgdir, state)
    if probe:
        env["SMPVM_PROBE"] = probe
    r = subprocess.run([sys.executable, "-c", EQUIV_SCRIPT % (EQUIV_RUNS,)],
                       capture_output=True, text=True, cwd=pkgdir,
                       env=env, timeout=900)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _always_recursive(d, m, state):
    """Run the equivalence runs on the unmutated code with a probe at the
    dropped acquisition: was the lock already held every time it ran?"""
    with open(os.path.join(d, "smpvm", m["file"]), "w") as fp:
        fp.write(m["probe"])
    path = os.path.join(d, "probe.txt")
    try:
        observe(d, state, probe=path)
        seen = open(path).read().split() if os.path.exists(path) else []
        return bool(seen) and set(seen) == {"1"}
    finally:
        with open(os.path.join(d, "smpvm", m["file"]), "w") as fp:
            fp.write(m["source"])


def _strip(obs, observables=True):
    """The observables of the equivalence runs (without the trace hashes),
    or only the trace hashes."""
    if "error" in obs:
        return obs
    if observables:
        return [{k: v for k, v in o.items() if k != "trace"} for o in obs]
    return [o["trace"] for o in obs]


def hunt(pkgdir, state, a):
    os.makedirs(state, exist_ok=True)
    out = os.path.join(state, "hunt.json")
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "smpvm.cli", "hunt", "--minutes",
         str(a.minutes), "--kernel", "fixed", "--seed", str(a.hunt_seed),
         "-n", str(a.n), "--quiet", "--no-shrink", "--json", out,
         "--save-schedule", os.path.join(state, "schedules") + os.sep],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=pkgdir, env=_env(pkgdir, state))
    try:
        _, err = p.communicate(timeout=a.minutes * 60 + 300)
    except BaseException:
        # Ctrl-C or the timeout: the hunt ends as on SIGTERM (its verdict,
        # its workers and directory gone), not SIGKILLed with them left
        p.terminate()
        p.communicate()
        raise
    r = subprocess.CompletedProcess(p.args, p.returncode, "", err)
    wall = time.monotonic() - t0
    if not os.path.exists(out) or not os.path.getsize(out):
        # the mutated package could not even run a hunt (an import-time
        # error): no verdict, reported apart
        return {"caught": False, "error": (r.stderr.strip().splitlines()
                                           or ["?"])[-1], "wall": wall}
    d = json.load(open(out))
    f = d["finding"]
    return {"caught": bool(f), "at": f["at"] if f else None,
            "detectors": f["detectors"] if f else [],
            "by": f["label"] if f else "", "runs": len(d["runs"]),
            "wall": round(wall, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=40,
                   help="mutants to measure (default 40)")
    p.add_argument("--seed", type=int, default=1,
                   help="which mutants (default 1)")
    p.add_argument("--minutes", type=float, default=2.0,
                   help="each mutant's hunt (default 2)")
    p.add_argument("--hunt-seed", type=int, default=1)
    p.add_argument("-n", default="2", help="the hunts' xdist workers")
    p.add_argument("--operators", default=",".join(OPERATORS))
    p.add_argument("--list", action="store_true",
                   help="list the chosen mutants and exit")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    ops = [o for o in a.operators.split(",") if o]
    bad = [o for o in ops if o not in OPERATORS]
    if bad:
        p.error(f"unknown operators {bad} (choose among {OPERATORS})")
    every = all_mutants(ops)        # read from the tree now, once
    chosen = list(every)
    random.Random(a.seed).shuffle(chosen)
    chosen = chosen[:a.count]
    per_op = {o: sum(m["operator"] == o for m in every) for o in ops}
    print(f"{len(every)} mutants from {len(FILES)} files "
          f"({', '.join(f'{o} {n}' for o, n in per_op.items())}); "
          f"measuring {len(chosen)} (seed {a.seed})", flush=True)
    if a.list:
        for m in chosen:
            print(f"  {m['operator']:<18} {m['file']}:{m['line']}  "
                  f"{m['what']}")
        return 0
    work = tempfile.mkdtemp(prefix="smpvm-mutants-")
    results = []
    try:
        # one snapshot of the package: every mutant is made from it, so an
        # edit of the tree while the benchmark runs changes nothing
        base = os.path.join(work, "base")
        os.makedirs(base)
        _copy_package(base)
        snapshot = os.path.join(base, "smpvm")
        reference = observe(base, os.path.join(work, "state-base"))
        if "error" in reference:
            print(f"the unmutated package fails: {reference['error']}")
            return 1
        for k, m in enumerate(chosen, 1):
            d = os.path.join(work, f"m{k}")
            os.makedirs(d)
            _copy_package(d, snapshot)
            with open(os.path.join(d, "smpvm", m["file"]), "w") as fp:
                fp.write(m["source"])
            state = os.path.join(d, "state")
            obs = observe(d, state)
            res = {k2: m[k2] for k2 in ("file", "operator", "line",
                                        "what")}
            # the same interleaving, or only the same observables
            res["same_trace"] = _strip(obs, False) == _strip(reference,
                                                              False)
            if _strip(obs) == _strip(reference):
                res["verdict"] = "equivalent"
            elif "probe" in m and _always_recursive(d, m, state):
                res["verdict"] = "equivalent"
                res["recursive"] = True
            else:
                res.update(hunt(d, state, a))
                res["verdict"] = "error" if "error" in res else \
                    "caught" if res["caught"] else "missed"
            results.append(res)
            print(f"[{k}/{len(chosen)}] {res['verdict']:<10} "
                  f"{m['operator']:<18} {m['file']}:{m['line']} "
                  f"{m['what']}"
                  + (f"  -> {', '.join(res.get('detectors', []))} at "
                     f"{res['at']:.1f} s" if res.get("caught") and
                     res.get("at") is not None else ""), flush=True)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, ops, a)
    if a.json:
        with open(a.json, "w") as fp:
            json.dump({"seed": a.seed, "count": a.count,
                       "minutes": a.minutes, "results": results}, fp,
                      indent=1)
    return 0


def report(results, ops, a):
    for r in results:
        if r["verdict"] == "error":
            print(f"  no verdict (the mutant cannot run a hunt: "
                  f"{r['error']}): {r['operator']} {r['file']}:{r['line']}")
    results = [r for r in results if r["verdict"] != "error"]
    live = [r for r in results if r["verdict"] != "equivalent"]
    caught = [r for r in live if r["verdict"] == "caught"]
    print(f"\nmutation score: {len(caught)}/{len(live)} non-equivalent "
          f"mutants caught"
          + (f" ({100 * len(caught) / len(live):.0f} %)" if live else "")
          + f" within {a.minutes:g} min each; "
          f"{len(results) - len(live)} equivalent of {len(results)} "
          f"({sum(r['same_trace'] for r in results)} with the very same "
          f"interleavings, {sum(bool(r.get('recursive')) for r in results)}"
          f" recursive acquisitions; seed {a.seed}, hunt seed "
          f"{a.hunt_seed}, -n {a.n})")
    print("| operator | mutants | equivalent | caught | missed | score |")
    print("|---|---|---|---|---|---|")
    for o in ops:
        rs = [r for r in results if r["operator"] == o]
        lv = [r for r in rs if r["verdict"] != "equivalent"]
        c = sum(r["verdict"] == "caught" for r in lv)
        print(f"| {o} | {len(rs)} | {len(rs) - len(lv)} | {c} | "
              f"{len(lv) - c} | "
              + (f"{100 * c / len(lv):.0f} %" if lv else "-") + " |")
    by = {}
    for r in caught:
        for d in r["detectors"]:
            by[d] = by.get(d, 0) + 1
    print("caught by detector (a mutant may be caught by several): "
          + ", ".join(f"{d} {n}" for d, n in sorted(by.items(),
                                                     key=lambda x: -x[1])))
    times = [r["at"] for r in caught if r.get("at") is not None]
    if times:
        print(f"time to catch: median {statistics.median(times):.1f} s, "
              f"max {max(times):.1f} s")
    for r in live:
        if r["verdict"] == "missed":
            print(f"  missed: {r['operator']} {r['file']}:{r['line']} "
                  f"{r['what']}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("bench_mutants: interrupted\n")
        sys.exit(130)
