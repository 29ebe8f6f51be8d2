"""Schedule files, replay and shrinking of deterministic stress runs.

A failing deterministic run (`smpvm stress|race --sched S`) is saved as a
schedule file: the run's options (one seed drives the workload, the faults
and the scheduler) and its recorded choices.  `smpvm replay FILE` runs it
again under the forced strategy, which reproduces the interleaving step for
step, and says whether it failed the same way.  `smpvm replay FILE
--shrink` removes choices (preemptions) and steps for as long as the run
still fails the same way, writes FILE.min.json and prints the interleaving
that remains as a CPU0/CPU1 scenario.
"""
import dataclasses
import json
import re
import time

from smpvm.layout import lib
from smpvm.stress.harness import StressOptions, run
from smpvm.vm.bugs import BUGS

FORMAT = "smpvm-schedule/1"

# The hunting profile of deterministic runs (StressOptions fields): files
# larger than memory, so pages are evicted and read back through the SSD;
# an SSD small enough that cleaning runs all the time; destructive ops not
# rate-limited.  tools/bench_detect.py and the tests use it.
HUNT = dict(gap_scale=0.0, files=3, file_pages=16, npages=64, nswap=96,
            nmeta=32, mix={"read": 20, "write": 10, "unlink": 3,
                           "truncate": 2, "mmap": 2, "xread": 5})


def hunt_profile(bug):
    """StressOptions fields for hunting bug on a deterministic schedule: the
    general profile, with the bug's own (smpvm/vm/bugs.py) over it."""
    return dict(HUNT, **(BUGS[bug].options() if bug else {}))


def signature(result):
    """What a run found, as a set of comparable strings (numbers that vary
    between equivalent runs -- pids, indices -- stripped)."""
    def strip(text):
        return re.sub(r"\d+", "N", text.splitlines()[0])[:120]
    sig = set()
    for r in result.get("races", []):
        sig.add(f"race:{r['type']}:{r.get('field', r['message'][:40])}")
    if result.get("panic"):
        sig.add("panic:" + strip(result["panic"]))
    if result.get("hang"):
        sig.add("hang")
    if result.get("failures") or result.get("workload", {}).get("failures") \
            or result.get("workload", {}).get("zero_fills"):
        sig.add("wrong bytes")
    for v in result.get("violations", [])[:3]:
        sig.add("invariant:" + strip(v.split(": ", 1)[-1]))
    return sig


def detectors(result):
    """Which detectors found something in a run (a sorted list: "race:
    <type>", "assertion panic", "hang forensics", "invariant checker",
    "stress verifier"), and when (seconds into the run, or None)."""
    found, t = set(), None
    for rep in result.get("races", []):
        found.add(f"race: {rep['type']}")
    if result.get("races"):
        t = result.get("first_report_s")
    w = result["workload"]
    if result.get("failures") or w["failures"] or w["zero_fills"]:
        found.add("stress verifier")
        t = t if t is not None else result.get("first_failure_s")
    if result.get("panic"):
        found.add("hang forensics" if "sched: no exit" in result["panic"]
                  or "deadlock" in result["panic"] else "assertion panic")
    if result.get("hang") or result.get("waits"):
        found.add("hang forensics")
    if result.get("violations"):
        found.add("invariant checker")
    if found and t is None:
        t = result.get("first_violation_s", result["seconds"])
    return sorted(found), t


def save(opts, result, path):
    """Write the schedule file of a deterministic run."""
    o = dataclasses.asdict(opts)
    o["schedule"] = [list(c) for c in result["schedule"]["choices"]]
    doc = {"format": FORMAT, "options": o,
           "strategy": result["schedule"]["strategy"],
           "trace_hash": result["sched"]["trace_hash"],
           "steps": result["sched"]["steps"],
           "found": sorted(signature(result)),
           "complete": result["schedule"]["complete"]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


def load(path):
    """(StressOptions replaying the file under the forced strategy, doc)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a schedule file ({e})") from None
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a schedule file (format "
                         f"{doc.get('format')!r})")
    o = dict(doc["options"])
    o["schedule"] = tuple(tuple(c) for c in o["schedule"])
    o["sysctls"] = tuple(tuple(c) for c in o.get("sysctls", ()))
    o["sched"] = "forced"
    o["quiet"] = True
    o["json_path"] = ""
    o["lockstat_dir"] = ""
    o["stop_on_detection"] = False
    known = {f.name for f in dataclasses.fields(StressOptions)}
    opts = StressOptions(**{k: v for k, v in o.items() if k in known})
    return opts, doc


def replay(path, trace=0):
    """Run the file's schedule again: (exit code, result, same) where same
    says the interleaving is the recorded one (same trace hash) and it
    failed the same way (a finding in common; after a panic the other
    threads stop at host speed, so secondary reports may differ)."""
    opts, doc = load(path)
    opts.trace = trace
    code, result = run(opts)
    found = signature(result)
    same = (result["sched"]["trace_hash"] == doc["trace_hash"]
            and (bool(found & set(doc["found"])) or found == set(doc["found"])))
    return code, result, same


def _fails_like(opts, want):
    code, result = run(opts)
    return bool(signature(result) & want), result


def shrink(path, max_runs=80, max_seconds=600.0, log=None):
    """Reduce the file's schedule to the fewest choices and steps that still
    fail the same way.  Returns (StressOptions, result of the last failing
    run, runs made)."""
    opts, doc = load(path)
    want = set(doc["found"])
    if not want:
        raise ValueError(f"{path}: the recorded run found nothing to shrink")
    t0, runs = time.monotonic(), 0
    ok, best = _fails_like(opts, want)
    runs += 1
    if not ok:
        raise ValueError(f"{path}: the schedule no longer fails the same way")

    def budget():
        return runs < max_runs and time.monotonic() - t0 < max_seconds

    def attempt(**change):
        nonlocal runs, best, opts
        trial = dataclasses.replace(opts, **change)
        ok, res = _fails_like(trial, want)
        runs += 1
        if ok:
            opts, best = trial, res
            if log:
                log(f"  shrink: {len(opts.schedule)} choices, "
                    f"{opts.steps} steps: still fails")
        return ok

    # steps: the run need not go past the step where it failed
    last = best["sched"]["steps"]
    if last < opts.steps and budget():
        attempt(steps=max(1, last + 1))
    # preemptions first (the current thread was runnable): when there are
    # few, each one the failure does not need goes, latest first
    pre = [c for c in opts.schedule if c[2] == lib.SCHED_CH_PREEMPT]
    if len(pre) <= 32:
        for c in reversed(pre):
            if not budget():
                break
            attempt(schedule=tuple(x for x in opts.schedule if x != c))
    # then every choice: ddmin -- drop chunks, halving the chunk size
    n = 2
    while len(opts.schedule) and budget():
        ch = list(opts.schedule)
        size = max(1, len(ch) // n)
        removed = False
        for i in range(0, len(ch), size):
            if not budget():
                break
            keep = tuple(ch[:i] + ch[i + size:])
            if attempt(schedule=keep):
                removed = True
                break
        if removed:
            n = max(2, n - 1)
        elif size == 1:
            break
        else:
            n = min(len(ch), n * 2)
    # steps again: binary search down to the shortest failing prefix
    lo, hi = 1, opts.steps
    while lo < hi and budget():
        mid = (lo + hi) // 2
        if attempt(steps=mid):
            hi = opts.steps
        else:
            lo = mid + 1
    return opts, best, runs


def scenario(result, context=3, width=36, last=14):
    """The interleaving of a traced deterministic run as a CPU0/CPU1 table:
    one row per stretch of one thread between switches, with its last few
    operations (lock names where the event names a lock); the `last`
    stretches before the end (the failure), 0 for all."""
    names = {int(k): v for k, v in result.get("thread_names", {}).items()}
    ev = result.get("trace") or []
    if not ev:
        return "(no trace: run with trace > 0)"
    pt = result.get("panic_tid", -1)
    if pt is not None and pt >= 0:
        # the scenario ends where the panicking thread stopped
        ends = [i for i, e in enumerate(ev) if e[1] == pt]
        if ends:
            ev = ev[:ends[-1] + 1]
    runs = []           # [tid, first step, last step, [ops]]
    for step, tid, text in ev:
        if not runs or runs[-1][0] != tid:
            runs.append([tid, step, step, []])
        r = runs[-1]
        r[2] = step
        r[3].append(text)
    total = len(runs)
    if last:
        runs = runs[-last:]
    tids = sorted({r[0] for r in runs if r[0] >= 0})
    cols = {t: i for i, t in enumerate(tids)}
    head = "".join(f"{names.get(t, f'tid {t}'):<{width}}" for t in tids)
    lines = [f"{'steps':>13}  " + head,
             f"{'':>13}  " + "".join(f"{'-' * (width - 2):<{width}}"
                                     for _ in tids)]
    for tid, a, b, ops in runs:
        if tid < 0:
            continue
        text = ", ".join(ops[-context:])
        if len(ops) > context:
            text = f"({len(ops) - context} more) " + text
        pad = " " * (width * cols[tid])
        lines.append(f"{a:>6}-{b:<6}  {pad}{text}")
    lines.append(f"(the last {len(runs)} of {total} stretches; {len(ev)} "
                 f"steps, {total - 1} switches)")
    return "\n".join(lines)




def decisions(result):
    """The schedule as the few decisions that matter: each recorded choice
    (where the run departs from the default policy -- keep the running
    thread, else the lowest runnable one) with the operation the switch
    happened at, then how the run ended.  Needs a traced run."""
    names = {int(k): v for k, v in result.get("thread_names", {}).items()}
    at = {}
    for step, tid, text in result.get("trace") or []:
        at.setdefault(step, (tid, text))
    kinds = {lib.SCHED_CH_PREEMPT: "preempts", lib.SCHED_CH_SWITCH:
             "runs next"}
    lines = [f"{len(result['schedule']['choices'])} scheduling decisions; "
             "every other step follows the default policy (the running "
             "thread goes on until it blocks, then the lowest runnable one)"]
    for step, tid, kind in result["schedule"]["choices"]:
        was, text = at.get(step, (-1, "?"))
        lines.append(f"  step {step:>7}: {names.get(was, f'tid {was}')} at "
                     f"{text}; {names.get(tid, f'tid {tid}')} "
                     f"{kinds.get(kind, kind)}")
    if result.get("panic"):
        lines.append("  then: " + result["panic"].splitlines()[0])
    for r in result.get("races", [])[:3]:
        lines.append(f"  then: {r['type']}: {r['message']}")
    return "\n".join(lines)
