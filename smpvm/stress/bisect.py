"""smpvm bisect: the first kernel version where a run's finding disappears
(or appears), as git bisect finds a commit -- but a version is tested by
running the command on K seeds, since a schedule (or a free run's timing)
does not carry over from one version to the next.

A finding is a line of Findings.signature() ("panic:vm_object_hold: object
N is free ...", "invariant:swap accounting: ...", "cleaning:liveness: ...",
"race:use after free:..."); with --finding TEXT, a run has it when TEXT is
in its signature or in the full text of a race message, panic, violation
or cleaning finding (where the defect is named).  The old version's runs
say which finding is tracked (the one most of its seeds found) and whether
it is to disappear; if the old version shows nothing, the new one's
finding is tracked to where it appears.  A version whose every run ended
in another panic or hang before the finding could show is untestable and
skipped (git bisect skip): the verdict then names the range of versions
the change may lie in.

A version is called absent when none of its K runs shows the finding, so
a finding that a seed shows only now and then needs a K large enough
that missing it on every seed is unlikely (README "Bisect").
"""
import collections
import dataclasses

from smpvm.vm.versions import FIXED, NEWEST, VERSIONS, lookup

PRESENT, ABSENT, SKIP = "present", "absent", "untestable"


@dataclasses.dataclass
class Step:
    version: str
    status: str
    found: int          # seeds that found it
    seeds: int
    other: str = ""     # what ended the runs that did not


@dataclasses.dataclass
class Result:
    finding: str
    mode: str           # "disappears" or "appears"
    steps: list
    first: str = ""     # the first version where the change is seen
    candidates: tuple = ()      # when skipped versions leave a range
    verdict: str = ""


def _texts(f):
    """What a run found, as lines to look for a finding in: its signature
    (numbers stripped, cut at 120 characters) and the full first lines of
    its race reports, panic, violations and cleaning findings (where the
    defect is named: "... linked to itself, off vm_object_list")."""
    lines = set(f.signature())
    lines.update(r.get("message", "") for r in f.races)
    if f.panic:
        lines.add(f.panic.strip().splitlines()[0])
    lines.update(f.violations)
    lines.update(f.cleaning)
    return lines


def _matches(f, finding):
    return any(finding in s for s in _texts(f))


def _other_end(f):
    """What ended a run early (another panic, a hang), or ''."""
    if f.panic:
        return f.panic.strip().splitlines()[0][:100]
    if f.hang:
        return "hang"
    return ""


def test_version(opts, version, seeds, finding, run):
    """Run opts on kernel `version` with each seed; a Step."""
    found, others = 0, []
    for seed in seeds:
        f = run(dataclasses.replace(opts, kernel=version, seed=seed))
        if _matches(f, finding):
            found += 1
        else:
            others.append(_other_end(f))
    if found:
        status = PRESENT
    elif others and all(others):
        status = SKIP
    else:
        status = ABSENT
    return Step(version, status, found, len(seeds),
                other=next((o for o in others if o), ""))


def choose_finding(opts, version, seeds, run, wanted=""):
    """The finding the old version's runs show most often (or the first
    signature line containing `wanted`) and on how many of the seeds it
    showed; ('', 0) if none."""
    counts = collections.Counter()
    for seed in seeds:
        f = run(dataclasses.replace(opts, kernel=version, seed=seed))
        if wanted:
            counts[wanted] += bool(_matches(f, wanted))
        else:
            counts.update(set(f.signature()))
    counts = +counts                    # drop the zero counts
    return counts.most_common(1)[0] if counts else ("", 0)


def bisect(opts, old, new, k=3, finding="", run=None, say=print):
    """Bisect opts (StressOptions) between kernel versions old and new (old
    before new; "fixed" stands for the newest version), k seeds per
    version from opts.seed on.  Returns a Result; say() gets each step as
    a line."""
    if run is None:
        from smpvm.stress.session import run as _run

        def run(o):
            return _run(dataclasses.replace(o, quiet=True))
    lo, hi = (NEWEST.ordinal if name == FIXED else lookup(name).ordinal
              for name in (old, new))
    if lo >= hi:
        raise ValueError(f"{old} is not older than {new}")
    seeds = tuple(range(opts.seed, opts.seed + k))
    mode = "disappears"
    span = f"seeds {seeds[0]}..{seeds[-1]}"
    tracked, shown = choose_finding(opts, VERSIONS[lo].name, seeds, run,
                                    finding)
    if tracked:
        say(f"{VERSIONS[lo].name}: finds {tracked!r} on {shown}/{k} "
            f"{span}")
    else:
        tracked, shown = choose_finding(opts, VERSIONS[hi].name, seeds,
                                        run, finding)
        if not tracked:
            return Result(finding or "", "", [], verdict=(
                f"neither {old} nor {new} finds anything"
                + (f" matching {finding!r}" if finding else "")
                + f" on {span}"))
        mode = "appears"
        say(f"{VERSIONS[lo].name}: finds nothing on {span}; "
            f"{VERSIONS[hi].name} finds {tracked!r} on {shown}/{k}: where "
            f"does it appear?")
    res = Result(tracked, mode, [])
    want_lo = PRESENT if mode == "disappears" else ABSENT
    want_hi = ABSENT if mode == "disappears" else PRESENT

    def check(ordinal):
        st = test_version(opts, VERSIONS[ordinal].name, seeds, tracked, run)
        res.steps.append(st)
        say(f"step {len(res.steps)}: {st.version} "
            f"({VERSIONS[ordinal].date}): {st.found}/{st.seeds} seeds find "
            f"it: {st.status}"
            + (f" (runs ended: {st.other})" if st.status == SKIP else ""))
        return st.status

    end = check(hi)
    if end != want_hi:
        res.verdict = (f"{VERSIONS[hi].name} is {end}: the finding does not "
                       f"{'disappear' if mode == 'disappears' else 'appear'}"
                       f" by {VERSIONS[hi].name}")
        return res
    skipped = set()
    while True:
        todo = [o for o in range(lo + 1, hi) if o not in skipped]
        if not todo:
            break
        # the middle of the versions left, skipping the untestable ones
        mid = todo[len(todo) // 2]
        st = check(mid)
        if st == SKIP:
            skipped.add(mid)
        elif st == want_lo:
            lo = mid
        else:
            hi = mid
    cands = tuple(VERSIONS[o].name for o in range(lo + 1, hi + 1))
    res.first, res.candidates = VERSIONS[hi].name, cands
    v = VERSIONS[hi]
    verb = "disappears" if mode == "disappears" else "appears"
    if len(cands) == 1:
        res.verdict = (f"{tracked!r} {verb} at {v.name} ({v.date}, "
                       f"\"{v.title}\")")
    else:
        res.verdict = (f"{tracked!r} {verb} at one of {', '.join(cands)}: "
                       + ", ".join(c for c in cands[:-1])
                       + " could not be tested (every run ended before the "
                       "finding could show); the first testable version "
                       f"without it is {v.name} ({v.date}, \"{v.title}\")"
                       if mode == "disappears" else
                       f"{tracked!r} {verb} at one of {', '.join(cands)}")
    return res
