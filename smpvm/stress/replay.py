"""Schedule files, replay and shrinking of deterministic stress runs.

A failing deterministic run (`smpvm stress|race --sched S`) is saved as a
schedule file: the run's options (one seed drives the workload, the faults
and the scheduler) and its recorded choices.  `smpvm replay FILE` runs it
again under the forced strategy, which reproduces the interleaving step for
step, and says whether it failed the same way.  `smpvm replay FILE
--shrink` removes choices (preemptions) and steps for as long as the run
still fails the same way, writes FILE.min.json and prints the interleaving
that remains as a CPU0/CPU1 scenario.

A schedule file is read with a bound (MAX_FILE bytes, regular files only)
and its shape checked before anything runs: any other file is one line.
Format 2 anchors each choice at its thread's decision count (at, tstep);
format 1 files (choices at global steps) are still read and replay as
recorded.
"""
import dataclasses
import json
import os
import stat
import time

from smpvm.errors import ConfigError
from smpvm.layout import lib
from smpvm.stress import outputs
from smpvm.stress.options import StressOptions
from smpvm.stress.session import run

FORMAT = "smpvm-schedule/2"
# choices (step, tid, kind) anchored at global steps: still replayed
FORMATS = (FORMAT, "smpvm-schedule/1")
# a full schedule (SCHED_MAXCHOICES choices) is about 2.5 MB
MAX_FILE = 64 << 20


def save(opts, f, path):
    """Write the schedule file of deterministic run f (its Findings) with
    the options opts; returns path."""
    o = dataclasses.asdict(opts)
    o["schedule"] = [list(c) for c in f.schedule["choices"]]
    for k in ("json_path", "lockstat_dir", "save_schedule", "datadir",
              "quiet"):
        o.pop(k, None)          # where a run wrote, not what it was
    doc = {"format": FORMAT, "options": o,
           "strategy": f.schedule["strategy"],
           "trace_hash": f.sched["trace_hash"],
           "steps": f.sched["steps"],
           "found": sorted(f.signature()),
           "complete": f.schedule["complete"]}
    with open(path, "w") as fp:
        json.dump(doc, fp, indent=1)
    return path


def _not_schedule(path, why):
    raise ConfigError(f"{path}: not a schedule file ({why})")


def _read(path):
    """The JSON document at path, read with a bound."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            _not_schedule(path, "not a regular file")
        if st.st_size > MAX_FILE:
            _not_schedule(path, f"{st.st_size} bytes; a schedule file has "
                                f"at most {MAX_FILE}")
        with open(path, "rb") as fp:
            data = fp.read(MAX_FILE + 1)
    except OSError as e:
        _not_schedule(path, e.strerror)
    if len(data) > MAX_FILE:
        _not_schedule(path, f"more than {MAX_FILE} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        _not_schedule(path, str(e).splitlines()[0])
    except RecursionError:              # [[[[... deeper than Python goes
        _not_schedule(path, "JSON nested deeper than a schedule is")


def load(path):
    """(StressOptions replaying the file under the forced strategy, doc);
    ConfigError (one line) for anything that is not a sound schedule
    file."""
    doc = _read(path)
    if not isinstance(doc, dict):
        _not_schedule(path, f"a JSON {type(doc).__name__}, not an object")
    if doc.get("format") not in FORMATS:
        _not_schedule(path, f"format {doc.get('format')!r}, not "
                            f"{' or '.join(map(repr, FORMATS))}")
    o = doc.get("options")
    if not isinstance(o, dict):
        _not_schedule(path, "no options")
    for key, kind in (("trace_hash", str), ("found", list)):
        if not isinstance(doc.get(key), kind):
            _not_schedule(path, f"no {key}")
    if not isinstance(o.get("schedule"), list):
        _not_schedule(path, "no schedule in its options")
    width = 5 if doc["format"] == FORMAT else 3
    if any(not isinstance(c, list) or len(c) != width
           for c in o["schedule"]):
        _not_schedule(path, f"{doc['format']} has choices of {width} "
                            "numbers")
    o = dict(o)
    o["schedule"] = tuple(tuple(c) if isinstance(c, list) else c
                          for c in o["schedule"])
    o["sysctls"] = tuple(tuple(c) if isinstance(c, list) else c
                         for c in o.get("sysctls", ()))
    # stop_on_detection stays: a deterministic run that stopped at its
    # finding ends at that step, and so must its replay.  A schedule whose
    # choices overflowed the record (SCHED_MAXCHOICES: a long random run)
    # replays from its strategy and seed, which give the same interleaving
    strategy = "forced"
    if doc.get("complete") is False:
        strategy = doc.get("strategy")
        if strategy not in ("random", "pct", "bounded"):
            _not_schedule(path, "incomplete, and no strategy to replay")
    o.update(sched=strategy, quiet=True, json_path="", lockstat_dir="",
             save_schedule="", datadir="")
    known = {f.name for f in dataclasses.fields(StressOptions)}
    opts = StressOptions(**{k: v for k, v in o.items() if k in known})
    opts.validate()
    return opts, doc


def replay(path, trace=0):
    """Run the file's schedule again: (Findings, same) where same says the
    interleaving is the recorded one (same trace hash) and it failed the
    same way (a finding in common; after a panic the other threads stop at
    host speed, so secondary reports may differ)."""
    opts, doc = load(path)
    opts = dataclasses.replace(opts, trace=trace)
    opts.validate()
    f = run(opts)
    found = f.signature()
    same = (f.sched is not None
            and f.sched["trace_hash"] == doc["trace_hash"]
            and (bool(found & set(doc["found"]))
                 or found == set(doc["found"])))
    return f, same


def _fails_like(opts, want):
    f = run(opts)
    if f.ended == "interrupted":
        raise KeyboardInterrupt
    return bool(f.signature() & want), f


def shrink(path, max_runs=80, max_seconds=600.0, log=None):
    """Reduce the file's schedule to the fewest choices and steps that still
    fail the same way.  Returns (StressOptions, Findings of the last
    failing run, runs made)."""
    opts, doc = load(path)
    want = set(doc["found"])
    if not want:
        raise ConfigError(f"{path}: the recorded run found nothing to "
                          "shrink")
    if opts.sched != "forced":
        raise ConfigError(f"{path}: more scheduling choices than the record "
                          f"holds ({lib.SCHED_MAXCHOICES}): it replays from "
                          f"its seed ({opts.sched}) but cannot be shrunk")
    if max_runs < 1:
        raise ConfigError(f"--max-runs {max_runs}: must be >= 1")
    t0, runs = time.monotonic(), 0
    ok, best = _fails_like(opts, want)
    runs += 1
    if not ok:
        raise ConfigError(f"{path}: the schedule no longer fails the same "
                          "way")

    def budget():
        return runs < max_runs and time.monotonic() - t0 < max_seconds

    def attempt(**change):
        nonlocal runs, best, opts
        trial = dataclasses.replace(opts, **change)
        ok, res = _fails_like(trial, want)
        runs += 1
        if ok:
            # keep the choices that took (a forced pick of a thread that
            # was not runnable, or of the default's own pick, is no choice)
            opts, best = dataclasses.replace(trial, schedule=tuple(
                tuple(c) for c in res.schedule["choices"])), res
            if log:
                log(f"  shrink: {len(opts.schedule)} choices, "
                    f"{opts.steps} steps: still fails")
        return ok

    # the recorded choices of that run: the same interleaving, anchored at
    # each thread's decision count (a format 1 file's global steps become
    # these), without the forced picks that did not take
    opts = dataclasses.replace(opts, schedule=tuple(
        tuple(c) for c in best.schedule["choices"]))
    # steps: the run need not go past the step where it failed (the
    # budget counts the workload's steps, after the set-up)
    last = best.sched["workload_steps"]
    if last < opts.steps and budget():
        attempt(steps=max(1, last + 1))
    # a run fails near its end, so the choices it needs are most likely its
    # last ones: keep only the last 0, 1, 2, 4, ... (the decisions before
    # them fall back on the default policy) until such a suffix still fails
    n = 0
    while n < len(opts.schedule) // 2 and budget():
        if attempt(schedule=opts.schedule[len(opts.schedule) - n:]):
            break
        n = 2 * n or 1
    # then the choices, by delta debugging: drop chunks of them, from half
    # the list down to one choice at a time.  A dropped choice's decision
    # falls back on the default policy (keep the running thread); every
    # other choice stays anchored at its own thread's decision count, so a
    # dropped chunk moves only the threads it touched, where a global step
    # anchor moved every later choice
    size = len(opts.schedule)
    while opts.schedule and budget():
        size = max(1, min(size, len(opts.schedule)) // 2) \
            if size > 1 else 1
        removed, i = False, 0
        while i < len(opts.schedule) and budget():
            ch = opts.schedule
            if attempt(schedule=ch[:i] + ch[i + size:]):
                removed = True          # the next chunk is now at i
            else:
                i += size
        if size == 1 and not removed:
            break       # no single choice can go (at size 1: again until)
    # steps again: binary search down to the shortest failing prefix
    lo, hi = 1, opts.steps
    while lo < hi and budget():
        mid = (lo + hi) // 2
        if attempt(steps=mid):
            hi = opts.steps
        else:
            lo = mid + 1
    return opts, best, runs


def shrink_file(path, max_runs=60, log=None, max_seconds=600.0):
    """`smpvm replay FILE --shrink`: shrink, run the result once more with
    the whole trace, save it beside FILE (a new name, never over an earlier
    one).  Returns (report text, exit code)."""
    recorded, _ = load(path)
    small, best, runs = shrink(path, max_runs=max_runs, log=log,
                               max_seconds=max_seconds)
    # trace all of the run: its set-up, its budget and its shutdown (the
    # last failing run's steps, and as many again)
    f = run(dataclasses.replace(small, trace=min(
        1 << 24, 2 * max(best.sched["steps"], small.steps) + 64)))
    stem = os.path.basename(path)
    stem = (stem[:-5] if stem.endswith(".json") else stem) + ".min"
    out = save(small, f, outputs.new_file(
        os.path.dirname(os.path.abspath(path)), stem))
    text = "\n".join([
        scenario(f), decisions(f),
        f"smpvm replay --shrink: {len(recorded.schedule)} -> "
        f"{len(small.schedule)} choices, {recorded.steps} -> {small.steps} "
        f"steps in {runs} runs; "
        f"still found {sorted(f.signature())}",
        f"replay: smpvm replay {out}"])
    return text, f.exit


def scenario(f, context=3, width=36, last=14):
    """The interleaving of a traced deterministic run (Findings f) as a
    CPU0/CPU1 table: one row per stretch of one thread between switches,
    with its last few operations (lock names where the event names a
    lock); the `last` stretches before the end (the failure), 0 for all."""
    names = {int(k): v for k, v in f.thread_names.items()}
    ev = f.trace or []
    if not ev:
        return "(no trace: run with trace > 0)"
    pt = f.panic_tid
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


def decisions(f):
    """The schedule as the few decisions that matter: each recorded choice
    (where the run departs from the default policy -- keep the running
    thread, else the lowest runnable one) with the operation the switch
    happened at, then how the run ended.  Needs a traced run."""
    names = {int(k): v for k, v in f.thread_names.items()}
    at = {}
    for step, tid, text in f.trace or []:
        at.setdefault(step, (tid, text))
    kinds = {lib.SCHED_CH_PREEMPT: "preempts", lib.SCHED_CH_SWITCH:
             "runs next", lib.SCHED_CH_TOKLOSS: "loses its tokens"}
    lines = [f"{len(f.schedule['choices'])} scheduling decisions; "
             "every other step follows the default policy (the running "
             "thread goes on until it blocks, then the lowest runnable one)"]
    for step, tid, kind, *_ in f.schedule["choices"]:
        was, text = at.get(step, (-1, "?"))
        lines.append(f"  step {step:>7}: {names.get(was, f'tid {was}')} at "
                     f"{text}; {names.get(tid, f'tid {tid}')} "
                     f"{kinds.get(kind, kind)}")
    if f.panic:
        lines.append("  then: " + f.panic.splitlines()[0])
    for r in f.races[:3]:
        lines.append(f"  then: {r['type']}: {r['message']}")
    return "\n".join(lines)
