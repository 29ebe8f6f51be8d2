"""What a run found, its exit code, and all the printing of it.

A run (session.run) returns a Findings; nothing here runs anything.  The
exit codes of every smpvm command are the one table below (README "Exit
codes" is this table).  A run's exit code says what it found, in this
order: a race report (the diagnosis, even if a panic followed), a host
error, a panic or hang, a wrong byte or broken invariant, a stall the host
caused, an interruption; else 0.
"""
import dataclasses
import re
from typing import Optional

from smpvm.race import report

EXIT_OK = 0             # the run found nothing (or the command succeeded)
EXIT_FOUND = 1          # a wrong byte, a broken invariant or a race report
EXIT_USAGE = 2          # bad input, or a machine that cannot be used
EXIT_PANIC = 3          # the emulated kernel panicked or hung
EXIT_HOST = 4           # the host failed the run: a full disk, a segment
#                         name taken, a process stopped by the host (stall)
EXIT_DIFFERENT = 5      # replay: the run did not fail the way it was recorded
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM ended the run; nothing found

EXIT_CODES = {
    EXIT_OK: "nothing found",
    EXIT_FOUND: "a wrong byte, a broken invariant or a race report",
    EXIT_USAGE: "bad input, or a machine that cannot be used",
    EXIT_PANIC: "the emulated kernel panicked or hung",
    EXIT_HOST: "the host failed the run (full disk, segment name taken, a "
               "process stopped by the host)",
    EXIT_DIFFERENT: "replay: not the same as recorded",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGTERM) before anything was "
                      "found",
}


@dataclasses.dataclass
class Findings:
    """One run: what it found, what it did, and how it ended."""
    options: object                     # the StressOptions as run
    machine: str = ""
    seconds: float = 0.0
    # why the run ended: time, steps (a deterministic run's end), exited,
    # detection (--stop-on-detection), interrupted, stopped (the caller's
    # stop: a hunt's deadline), panic, hang, stall, host error
    ended: str = ""
    races: list = dataclasses.field(default_factory=list)
    race_summary: dict = dataclasses.field(default_factory=dict)
    violations: list = dataclasses.field(default_factory=list)
    # what the cleaning meter shows went wrong (smpvm.vm.vm_meter):
    # "cleaning pass visited N swblocks on a budget of M", "liveness: ..."
    cleaning: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)  # wrong bytes
    panic: Optional[str] = None
    hang: Optional[str] = None
    stalls: list = dataclasses.field(default_factory=list)
    host_error: Optional[str] = None
    waits: list = dataclasses.field(default_factory=list)
    forensics: Optional[str] = None
    first: dict = dataclasses.field(default_factory=dict)  # seconds in
    invariant_checks: int = 0
    timeline: list = dataclasses.field(default_factory=list)
    workload: dict = dataclasses.field(default_factory=dict)
    swapcache: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    locks: str = ""
    # deterministic runs
    sched: Optional[dict] = None
    schedule: Optional[dict] = None
    panic_tid: int = -1
    sched_ring: list = dataclasses.field(default_factory=list)
    trace: list = dataclasses.field(default_factory=list)
    thread_names: dict = dataclasses.field(default_factory=dict)
    # what the run exercised (checked machines): race.report.coverage
    coverage: Optional[dict] = dataclasses.field(default=None, repr=False)
    # where the run's files went
    schedule_file: str = ""
    unreplayable: str = ""              # why no command replays the run
    outputs: list = dataclasses.field(default_factory=list)
    lockstat: Optional[tuple] = dataclasses.field(default=None, repr=False)
    # what session.run's probe measured of the machine at the end
    probe: Optional[dict] = dataclasses.field(default=None, repr=False)

    @property
    def wrong_bytes(self):
        w = self.workload
        return bool(self.failures or w.get("failures") or
                    w.get("zero_fills"))

    @property
    def exit(self):
        """The exit code (EXIT_CODES) of what the run found."""
        if self.races:
            return EXIT_FOUND
        if self.host_error:
            return EXIT_HOST
        if self.panic or self.hang:
            return EXIT_PANIC
        if self.wrong_bytes or self.violations or self.cleaning:
            return EXIT_FOUND
        if self.stalls:
            return EXIT_HOST
        if self.ended == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_OK

    @property
    def replay(self):
        """The command that replays the run: its schedule file when one was
        saved, else its options."""
        if self.schedule_file:
            return f"smpvm replay {self.schedule_file}"
        return self.options.replay_command()

    def signature(self):
        """What the run found, as a set of comparable strings (numbers that
        vary between equivalent runs -- pids, indices -- stripped)."""
        def strip(text):
            return re.sub(r"\d+", "N", text.splitlines()[0])[:120]
        sig = set()
        for r in self.races:
            sig.add(f"race:{r['type']}:{r.get('field', r['message'][:40])}")
        if self.panic:
            sig.add("panic:" + strip(self.panic))
        if self.hang:
            sig.add("hang")
        if self.wrong_bytes:
            sig.add("wrong bytes")
        for v in self.violations[:3]:
            sig.add("invariant:" + strip(v.split(": ", 1)[-1]))
        for c in self.cleaning:
            sig.add("cleaning:" + strip(c))
        return sig

    def detectors(self):
        """Which detectors found something (a sorted list: "race: <type>",
        "assertion panic", "hang forensics", "invariant checker", "stress
        verifier", "cleaning cost", "liveness"), and when (seconds into the
        run, or None)."""
        found, t = set(), None
        for rep in self.races:
            found.add(f"race: {rep['type']}")
        if self.races:
            t = self.first.get("report")
        if self.wrong_bytes:
            found.add("stress verifier")
            t = t if t is not None else self.first.get("failure")
        if self.panic:
            found.add("hang forensics" if "sched: no exit" in self.panic
                      or "deadlock" in self.panic else "assertion panic")
        if self.hang or self.waits:
            found.add("hang forensics")
        if self.violations:
            found.add("invariant checker")
        for c in self.cleaning:
            found.add("liveness" if c.startswith("liveness:")
                      else "cleaning cost")
        if found and t is None:
            t = self.first.get("violation", self.first.get("cleaning",
                                                           self.seconds))
        return sorted(found), t

    def as_dict(self):
        """Every figure, as plain data (the --json document)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("options", "first", "lockstat", "coverage")}
        if self.coverage is not None:
            d["coverage"] = coverage_json(self.coverage)
        d["options"] = dataclasses.asdict(self.options)
        d["seed"] = self.options.seed
        for k, v in self.first.items():
            d[f"first_{k}_s"] = v
        d["replay"] = self.replay
        d["exit"] = self.exit
        d["exit_meaning"] = EXIT_CODES[self.exit]
        return d


def coverage_json(cov):
    """race.report.coverage as plain JSON: the alias pairs as a list."""
    return {"alias_pairs": [list(k) + [n] for k, n in
                            sorted(cov["alias_pairs"].items())],
            "points": cov["points"], "alias_dropped": cov["alias_dropped"]}


# ---- printing ---------------------------------------------------------------

def _findings_text(f, replay):
    """The findings in detail: wrong bytes, invariants, stalls, host error,
    panic, hang, race reports."""
    text = ""
    for x in f.failures[:10]:
        text += (f"\nFAILURE cpu{x['cpu']} op {x['op']} {x['what']} "
                 f"{x['file']} offset {x['offset']}:\n"
                 f"  expected {x['expected']}\n  found    {x['found']}\n"
                 f"  served from the SSD: {x['served_from_ssd']}; "
                 f"zero-filled pages: {x['zero_filled']}\n"
                 + (f"  cause: {x['cause']} (it leaves {x['shape']} data)\n"
                    if x.get("cause") else
                    f"  cause: nothing this kernel is known to have leaves "
                    f"{x.get('shape', 'such')} data\n")
                 + f"  last ops: {x['recent_ops'][-8:]}\n")
    for v in f.violations[:20]:
        text += f"\nINVARIANT {v}"
    for c in f.cleaning:
        text += f"\nCLEANING {c}"
    for s in f.stalls[:5]:
        text += f"\nSTALL {s}"
    if f.host_error:
        text += f"\nHOST ERROR {f.host_error}"
    if f.panic:
        text += "\n" + f.panic
    if f.hang:
        text += "\nHANG: " + f.hang
    for r in f.races:
        text += "\n" + report.format_report(r, replay)
    return text


def findings_text(f, max_lines=60):
    """What f found, in detail (at most max_lines lines), with its replay
    command in each race report."""
    lines = _findings_text(f, f.replay).strip("\n").splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more "
                                     "lines)"]
    return "\n".join(lines)


def _ending(f):
    """The last lines: how the run ended, the exit code and, when the
    kernel was found wrong, the replay command."""
    code = f.exit
    lines = []
    if f.ended == "interrupted":
        lines.append("interrupted: the findings so far")
    lines.append(f"exit {code}: {EXIT_CODES[code]}")
    if code in (EXIT_FOUND, EXIT_PANIC):
        lines.append(f"replay: none ({f.unreplayable})" if f.unreplayable
                     else f"replay: {f.replay}")
    return "\n".join(lines) + "\n"


def format_summary(f, width=80):
    """`smpvm stress`'s report: a summary table, then the findings, the
    exit code and the replay command."""
    from rich.console import Console
    from rich.table import Table

    w, s, mt = f.workload, f.swapcache, f.metrics
    t = Table(title=f"smpvm stress: seed {f.options.seed}, kernel "
                    f"{s.get('kernel', f.options.kernel)}, {f.seconds} s"
                    + (", interrupted" if f.ended == "interrupted" else ""))
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = []
    if w:
        rows += [
            ("operations", w["ops"]), ("ops/s", mt["ops_per_second"]),
            ("reads verified", w["reads_verified"]),
            ("pages read", w["pages_read"]),
            ("pages served by the SSD", w["ssd_pages"]),
            ("hit ratio", mt["hit_ratio"]),
            ("SSD MB written", mt["ssd_mb_written"]),
            ("swapcache state", f"{s['state']} / {s['burst']}"),
            ("writing / cleaning passes",
             f"{s['writing_passes']} / {s['cleaning_passes']}"),
            ("invalidations (unswapped / range)",
             f"{s['invalidations']['unswapped']} / "
             f"{s['invalidations']['range_freed']}"),
            ("writes / mmap / truncates / unlinks",
             f"{w['writes']} / {w['mmap_ops']} / {w['truncates']} / "
             f"{w['unlinks']}"),
            ("chflags / sysctl flips / meta / cross reads",
             f"{w['chflags']} / {w['sysctl_flips']} / {w['meta_ops']} / "
             f"{w['cross_reads']}"),
            ("SSD faults injected", mt["faults_injected"]),
        ]
    rows += [("invariant checks", f.invariant_checks),
             ("violations", len(f.violations)),
             ("data failures", len(f.failures) or w.get("failures", 0)),
             ("zero fills", w.get("zero_fills", 0))]
    if f.stalls:
        rows.append(("stalls (the host)", len(f.stalls)))
    sc = f.sched
    if sc:
        rows.append(("schedule", f"{sc['strategy']} seed {sc['seed']}: "
                     f"{sc['steps']} steps, {sc['switches']} switches"))
        rows.append(("trace hash", sc["trace_hash"]))
        if "pct_bound" in sc:
            n, k, d = sc["pct_n_k_d"]
            rows.append(("PCT bound 1/(n k^(d-1))",
                         f"{sc['pct_bound']:.3g} (n={n}, k={k}, d={d})"))
    rs = f.race_summary
    if rs.get("checked"):
        rows.append(("race reports / accesses checked",
                     f"{len(f.races)} / {rs['accesses_checked']}"))
    for k, val in rows:
        t.add_row(k, str(val))
    con = Console(record=True, width=width)
    with con.capture() as cap:
        con.print(t)
    text = cap.get() + _findings_text(f, f.replay)
    for o in f.outputs:
        text += f"\nwrote {o}"
    return text.rstrip("\n") + "\n" + _ending(f)


def race_json(f):
    """`smpvm race --json`: the reports and what else the run found."""
    return {"exit": f.exit, "exit_meaning": EXIT_CODES[f.exit],
            "ended": f.ended, "replay": f.replay, "seed": f.options.seed,
            "summary": f.race_summary, "reports": f.races, "sched": f.sched,
            "panic": f.panic, "hang": f.hang, "stalls": f.stalls,
            "host_error": f.host_error, "forensics": f.forensics,
            "waits": f.waits, "violations": f.violations,
            "cleaning": f.cleaning,
            "ops_per_second": f.metrics.get("ops_per_second", 0.0),
            "schedule_file": f.schedule_file}


def format_race(f):
    """`smpvm race`'s report: every race report with the command that
    replays it, the other findings, the checkers' figures."""
    lines = [report.format_report(r, f.replay) for r in f.races]
    lines += [f"invariant violation: {v}" for v in f.violations]
    lines += [f"cleaning: {c}" for c in f.cleaning]
    lines += f.waits
    if f.forensics and not f.hang:
        lines.append(f.forensics)
    lines += [f"stall: {s}" for s in f.stalls]
    if f.host_error:
        lines.append(f"host error: {f.host_error}")
    if f.panic:
        lines.append(f.panic)
    if f.hang:
        lines.append("HANG: " + f.hang)
    s = f.race_summary
    lines.append(f"smpvm race: {len(f.races)} reports; "
                 f"{s.get('accesses_checked', 0)} accesses checked "
                 f"({s.get('hb_checked', 0)} happens-before), "
                 f"{s.get('order_edges', 0)} lock-order edges learned, "
                 f"{f.metrics.get('ops_per_second', 0.0)} ops/s")
    if f.sched:
        sc = f.sched
        lines.append(f"schedule: {sc['strategy']} seed {sc['seed']}, "
                     f"{sc['steps']} steps, trace {sc['trace_hash']}"
                     + (f", PCT bound {sc['pct_bound']:.3g}"
                        if "pct_bound" in sc else ""))
    lines += [f"wrote {o}" for o in f.outputs]
    lines.append(_ending(f).rstrip("\n"))
    return "\n".join(lines)


def format_replay(f, same, path, scenario=""):
    """`smpvm replay FILE`'s report; returns (text, exit code): the run's
    own code when it failed the same way, EXIT_DIFFERENT when not."""
    replay = f"smpvm replay {path}"
    text = _findings_text(f, replay).lstrip("\n")
    if scenario:
        text += "\n" + scenario
    code = f.exit if same else EXIT_DIFFERENT
    sc = f.sched or {}
    text += (f"\nsmpvm replay: {sc.get('steps', 0)} steps, trace "
             f"{sc.get('trace_hash', '?')}; found "
             f"{sorted(f.signature()) or 'nothing'}; "
             + ("the same as recorded" if same else
                "NOT the same as recorded")
             + f"\nexit {code}: {EXIT_CODES[code]}")
    return text.lstrip("\n"), code
