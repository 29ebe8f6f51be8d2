"""Lock-contention profiling: what each lock, lock class and call site costs.

The C layer keeps, for every spinlock and token, acquisitions, contended
acquisitions, spin loops, wait and hold time (total, min, max and a log2
histogram each) and bounces (acquired on another thread than last time).
Hold times cost two TSC reads per acquisition, so only acquisitions made
while profiling is on are timed (holds_timed; hold averages are over them).
With profiling on (hdr.prof_enabled) every contention is also recorded
against its call sites: the waiter's site (the Python line that called into
C, plus the C function that took the lock), the holder's site (where it let
the lock go to us), and what each side took the lock for (a page, an
object) -- two different keys on one pool lock are pool aliasing, the
faithful cost of the kernel's hashed lock pools.  Page busy waits and
tsleep channels are recorded the same way (classes page_busy, tsleep).

What the times mean here: an emulated critical section runs partly in
Python, so absolute times are far above a kernel's; compare locks with each
other, not with a real machine.  The profiler's own cost is measured: each
site lookup is counted and timed (observer effect in every report).
"""
import csv
import io
import json
import textwrap
import time

from smpvm.kern import ddb
from smpvm.kern.ddb import prof_sites, site_text
from smpvm.layout import ffi, lib, spinlocks, tokens

SCHEMA_VERSION = 1
_NB = lib.PROF_NBUCKETS


def _prof_arrays(machine):
    sites = prof_sites(machine)
    recs = ffi.cast("struct prof_rec *", sites + lib.PROF_NSITES)
    hist = ffi.cast("struct prof_hist *", recs + lib.PROF_NRECS)
    return sites, recs, hist


def _class_of(machine, kind, lid):
    h = machine.hdr
    for i in range(h.nclasses):
        c = h.classes[i]
        if c.kind == kind and c.first <= lid < c.first + c.count:
            return ffi.string(c.name).decode()
    return {lib.LK_SPIN: "spin", lib.LK_TOKEN: "token"}.get(kind, "?")


def snapshot(machine):
    """Every figure now, as plain data (the --json form)."""
    sites, recs, hist = _prof_arrays(machine)
    cfg = machine.config
    locks = []
    for kind, arr, n, hoff in ((lib.LK_SPIN, spinlocks(machine.base),
                                cfg.nspinlocks, 0),
                               (lib.LK_TOKEN, tokens(machine.base),
                                cfg.ntokens, cfg.nspinlocks)):
        for i in range(n):
            s = arr[i]
            acq = int(s.st_acquisitions)
            if not acq:
                continue
            cont = int(s.st_contended)
            hh = hist[hoff + i]
            hold_hist = [int(hh.hold[b]) for b in range(_NB)]
            # hold times are taken while profiling is on: averaged over
            # the timed holds (one histogram entry each), not over every
            # acquisition since boot
            holds = sum(hold_hist)
            locks.append({
                "kind": "spin" if kind == lib.LK_SPIN else "token",
                "id": i, "name": ddb.lock_name(machine, kind, i),
                "class": _class_of(machine, kind, i),
                "acquisitions": acq, "contended": cont,
                "spins": int(s.st_spins), "bounces": int(s.st_bounces),
                "wait_ns": int(s.st_wait_ns),
                "wait_min_ns": int(s.st_wait_min_ns),
                "wait_max_ns": int(s.st_wait_max_ns),
                "wait_avg_ns": int(s.st_wait_ns) // cont if cont else 0,
                "holds_timed": holds,
                "hold_ns": int(s.st_hold_ns),
                "hold_min_ns": int(s.st_hold_min_ns),
                "hold_max_ns": int(s.st_hold_max_ns),
                "hold_avg_ns": int(s.st_hold_ns) // holds if holds else 0,
                "wait_hist": [int(hh.wait[b]) for b in range(_NB)],
                "hold_hist": hold_hist,
            })
    contentions = []
    for i in range(lib.PROF_NRECS):
        r = recs[i]
        if r.state != 2 or not r.count:
            continue
        kind = int(r.kind)
        if kind in (lib.LK_SPIN, lib.LK_TOKEN):
            name = ddb.lock_name(machine, kind, r.lock)
            cls = _class_of(machine, kind, r.lock)
        elif kind == lib.LK_BUSY:
            name, cls = f"page[{r.lock}]", "page_busy"
        else:
            name = cls = "tsleep"
        contentions.append({
            "kind": {lib.LK_SPIN: "spin", lib.LK_TOKEN: "token",
                     lib.LK_BUSY: "busy", lib.LK_SLEEP: "sleep"}[kind],
            "lock": name, "class": cls,
            "waiter_site": site_text(sites, r.wsite),
            "holder_site": site_text(sites, r.hsite),
            "count": int(r.count), "wait_ns": int(r.wait_ns),
            "wait_max_ns": int(r.wait_max_ns),
            "aliased": bool(r.aliased), "waiter_key": int(r.wkey),
            "holder_key": int(r.hkey)})
    h = machine.hdr
    return {"schema": SCHEMA_VERSION, "machine": machine.name,
            "time": time.time(), "profiling": bool(h.prof_enabled),
            "observer": {"site_lookups": int(h.prof_calls),
                         "site_lookup_ns": int(h.prof_ns)},
            "locks": locks, "classes": by_class(locks, contentions),
            "contentions": contentions,
            "note": "times include Python run inside critical sections: "
                    "compare locks with each other, not with a kernel"}


def by_class(locks, contentions=()):
    """Per class: sums, maxima, and the waits of page_busy/tsleep."""
    out = {}
    for lk in locks:
        c = out.setdefault(lk["class"], {
            "locks": 0, "acquisitions": 0, "contended": 0, "spins": 0,
            "bounces": 0, "wait_ns": 0, "wait_max_ns": 0, "hold_ns": 0,
            "hold_max_ns": 0, "aliased_contentions": 0})
        c["locks"] += 1
        for k in ("acquisitions", "contended", "spins", "bounces",
                  "wait_ns", "hold_ns"):
            c[k] += lk[k]
        c["wait_max_ns"] = max(c["wait_max_ns"], lk["wait_max_ns"])
        c["hold_max_ns"] = max(c["hold_max_ns"], lk["hold_max_ns"])
    for r in contentions:
        if r["kind"] in ("busy", "sleep"):
            c = out.setdefault(r["class"], {
                "locks": 0, "acquisitions": 0, "contended": 0, "spins": 0,
                "bounces": 0, "wait_ns": 0, "wait_max_ns": 0, "hold_ns": 0,
                "hold_max_ns": 0, "aliased_contentions": 0})
            c["contended"] += r["count"]
            c["wait_ns"] += r["wait_ns"]
            c["wait_max_ns"] = max(c["wait_max_ns"], r["wait_max_ns"])
        elif r["aliased"]:
            out[r["class"]]["aliased_contentions"] += r["count"]
    return out


def filtered(snap, klass=None, site=None, contended_only=False):
    """The snapshot restricted to a class, a site substring, contention."""
    s = dict(snap)
    locks = [lk for lk in snap["locks"]
             if (not klass or lk["class"] == klass) and
             (not contended_only or lk["contended"])]
    cont = [r for r in snap["contentions"]
            if (not klass or r["class"] == klass) and
            (not site or site in r["waiter_site"] or site in r["holder_site"])]
    if site:
        names = {r["lock"] for r in cont}
        locks = [lk for lk in locks if lk["name"] in names]
    s["locks"], s["contentions"] = locks, cont
    s["classes"] = by_class(locks, cont)
    return s


# ---- output forms ------------------------------------------------------------

def to_json(snap):
    return json.dumps(snap, indent=2)


CSV_FIELDS = ("kind", "id", "name", "class", "acquisitions", "contended",
              "spins", "bounces", "wait_ns", "wait_min_ns", "wait_avg_ns",
              "wait_max_ns", "holds_timed", "hold_ns", "hold_min_ns",
              "hold_avg_ns", "hold_max_ns")


def to_csv(snap):
    """One row per lock, times in ns; the first line names the schema."""
    out = io.StringIO()
    out.write(f"# smpvm lockstat schema {SCHEMA_VERSION}, times in ns\n")
    w = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for lk in sorted(snap["locks"], key=lambda x: -x["wait_ns"]):
        w.writerow(lk)
    return out.getvalue()


def to_folded(snap):
    """Wait-time stacks for flame-graph tools: one line per contention
    kind, `waiter site;class;lock;holder site <ns>`."""
    lines = []
    for r in sorted(snap["contentions"], key=lambda x: -x["wait_ns"]):
        frames = [r["waiter_site"], r["class"], r["lock"]]
        if r["kind"] in ("spin", "token"):
            frames.append("held at " + r["holder_site"])
        frames = [f.replace(";", ",").replace(" ", "_") for f in frames]
        lines.append(";".join(frames) + f" {r['wait_ns']}")
    return "\n".join(lines) + ("\n" if lines else "")


def known_classes(machine):
    """The lock class names a --class filter may name: the machine's class
    table, plus the page_busy and tsleep waits."""
    h = machine.hdr
    return sorted({ffi.string(h.classes[i].name).decode()
                   for i in range(h.nclasses)} | {"page_busy", "tsleep"})


def _fit(title, columns, rows, width, keep, clip=()):
    """A rich Table with the columns that fit width: columns is [(name,
    right-justified?)] in display order, rows their values, keep the column
    names by priority (first kept longest), clip the columns whose text may
    be shortened (call sites) before a column is dropped.  No row wraps."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    wide = Console(width=1 << 16)       # measures without squeezing
    names = list(keep)
    while True:
        idx = [i for i, (c, _) in enumerate(columns) if c in names]
        for cap in (None, 60, 48, 36, 28, 20):
            t = Table(title=title, title_justify="left")
            for i in idx:
                c, right = columns[i]
                t.add_column(c, justify="right" if right else "left",
                             no_wrap=True, overflow="ellipsis")
            for r in rows:
                t.add_row(*(_clip(r[i], cap) if cap and columns[i][0] in clip
                            else r[i] for i in idx))
            if Measurement.get(wide, wide.options, t).maximum <= width:
                return t
            if not any(columns[i][0] in clip for i in idx):
                break
        if len(names) <= 2:
            return t
        names.pop()


def _hold(lk, key, fmt):
    """A hold time in us, or '-' for a lock none of whose holds was timed
    (taken and released while profiling was off)."""
    return format(lk[key] / 1e3, fmt) if lk["holds_timed"] else "-"


def _clip(text, n):
    """text in n columns: a call site keeps its file:line:function."""
    return text if len(text) <= n else text[:n - 3] + "..."


def format_table(snap, top=20, width=None, sections=("locks", "classes",
                                                     "sites")):
    """The human report: top locks by total wait, classes, call sites,
    pool aliasing, and what the numbers mean.  Fitted to width columns
    (default: the terminal's): the least telling columns go first and no
    row wraps."""
    from rich.console import Console

    width = width or Console().width
    con = Console(record=True, width=width)
    with con.capture() as cap:
        if "locks" in sections:
            rows = [(lk["name"], lk["class"], str(lk["acquisitions"]),
                     str(lk["contended"]), str(lk["spins"]),
                     str(lk["bounces"]), f"{lk['wait_ns'] / 1e3:.1f}",
                     f"{lk['wait_avg_ns'] / 1e3:.2f}",
                     f"{lk['wait_max_ns'] / 1e3:.1f}",
                     _hold(lk, "hold_avg_ns", ".2f"),
                     _hold(lk, "hold_max_ns", ".1f"))
                    for lk in sorted(snap["locks"],
                                     key=lambda x: -x["wait_ns"])[:top]]
            cols = [("lock", 0), ("class", 0), ("acq", 1),
                    ("contended", 1), ("spins", 1), ("bounces", 1),
                    ("wait total", 1), ("wait avg", 1), ("wait max", 1),
                    ("hold avg", 1), ("hold max", 1)]
            con.print(_fit(f"smpvm lockstat {snap['machine']}: top locks "
                           "by total wait (us)", cols, rows, width,
                           ("lock", "wait total", "contended", "class",
                            "wait max", "acq", "wait avg", "hold avg",
                            "hold max", "spins", "bounces")))
        if "classes" in sections:
            rows = [(name, str(v["locks"]), str(v["acquisitions"]),
                     str(v["contended"]), f"{v['wait_ns'] / 1e3:.1f}",
                     f"{v['wait_max_ns'] / 1e3:.1f}",
                     f"{v['hold_ns'] / 1e3:.1f}",
                     str(v["aliased_contentions"]))
                    for name, v in sorted(snap["classes"].items(),
                                          key=lambda kv: -kv[1]["wait_ns"])]
            cols = [("class", 0), ("locks", 1), ("acq", 1),
                    ("contended", 1), ("wait total us", 1),
                    ("wait max us", 1), ("hold total us", 1),
                    ("aliased", 1)]
            con.print(_fit("by class", cols, rows, width,
                           ("class", "wait total us", "contended",
                            "wait max us", "acq", "aliased",
                            "hold total us", "locks")))
        if "sites" in sections:
            rows = [(r["lock"], r["waiter_site"], r["holder_site"],
                     str(r["count"]),
                     f"{r['wait_ns'] / 1e3:.1f}",
                     f"{r['waiter_key']} vs {r['holder_key']}"
                     if r["aliased"] else "")
                    for r in sorted(snap["contentions"],
                                    key=lambda x: -x["wait_ns"])[:top]]
            cols = [("lock", 0), ("waiter site", 0), ("holder site", 0),
                    ("count", 1), ("wait us", 1), ("aliased", 0)]
            con.print(_fit("contended call sites (waiter -> holder)", cols,
                           rows, width, ("lock", "waiter site", "wait us",
                                         "count", "holder site",
                                         "aliased"),
                           clip=("waiter site", "holder site")))
    text = cap.get()
    if "sites" not in sections:
        return text
    alias = [r for r in snap["contentions"] if r["aliased"]]
    if alias:
        text += "\npool aliasing:\n" + "".join(_clip(
            f"  {r['lock']}: {'page' if r['kind'] == 'spin' else 'object'} "
            f"{r['waiter_key']} waited for unrelated "
            f"{'page' if r['kind'] == 'spin' else 'object'} "
            f"{r['holder_key']} ({r['count']}x)", width) + "\n"
            for r in alias[:8])
    ob = snap["observer"]
    text += "\n" + textwrap.fill(
        f"observer effect: {ob['site_lookups']} call-site lookups, "
        f"{ob['site_lookup_ns'] / 1e6:.1f} ms in them (contended paths "
        f"only).  {snap['note']}.", width - 1) + "\n"
    return text


def watch(machine, interval=1.0, seconds=None, live=False, once=False,
          klass="", site="", contended_only=False, console=None):
    """Sample the machine's lock statistics: once (one snapshot now), or
    every interval seconds for `seconds` -- without seconds, until Ctrl-C
    when live and for one interval otherwise.  live: a table refreshing in
    place, fitted to the terminal's width and height.  Returns (the last
    snapshot, the samples [(time, {class: wait_ns})]); Ctrl-C ends the
    watch and keeps both."""
    samples = []

    def snap():
        s = filtered(snapshot(machine), klass, site, contended_only)
        samples.append((time.time(), class_waits(s)))
        return s

    s = snap()
    if once:
        return s, samples
    deadline = None if seconds is None else time.monotonic() + seconds
    live_view = None
    try:
        if live:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text
            con = console or Console()

            def render(s):
                top = max(3, (con.height - 16) // 2)
                return Text.from_ansi(format_table(
                    s, top=top, width=con.width,
                    sections=("locks", "classes")))
            live_view = Live(render(s), console=con, refresh_per_second=4,
                             vertical_overflow="crop")
            live_view.start()
        while deadline is None or time.monotonic() < deadline:
            left = interval if deadline is None else \
                min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(left)
            s = snap()
            if live_view is not None:
                live_view.update(render(s))
            elif deadline is None:
                break           # no --seconds: one interval's worth
    except KeyboardInterrupt:
        pass
    finally:
        if live_view is not None:
            live_view.stop()
    return s, samples


def plot(samples, path):
    """Wait per class over time (samples: [(t, {class: wait_ns})]) as a
    PNG, with matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({c for _, d in samples for c in d})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    t0 = samples[0][0] if samples else 0.0
    for c in classes:
        xs, ys, prev = [], [], None
        for t, d in samples:
            v = d.get(c, 0)
            if prev is not None:
                xs.append(t - t0)
                ys.append(max(0, v - prev) / 1e6)
            prev = v
        if any(ys):
            ax.plot(xs, ys, label=c)
    ax.set_yscale("symlog", linthresh=0.01)  # tsleep dwarfs the spinlocks
    ax.set_xlabel("seconds")
    ax.set_ylabel("wait per interval (ms, symlog)")
    ax.set_title("smpvm lockstat: wait time per lock class")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_waits(snap):
    return {k: v["wait_ns"] for k, v in snap["classes"].items()}


def write_all(snap, samples, directory):
    """The files `smpvm stress --lockstat DIR` leaves: json, csv, folded,
    txt (132 columns: a file, not a terminal) and (with matplotlib) png."""
    import os
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "lockstat.json"), "w") as f:
        f.write(to_json(snap))
    with open(os.path.join(directory, "lockstat.csv"), "w") as f:
        f.write(to_csv(snap))
    with open(os.path.join(directory, "lockstat.folded"), "w") as f:
        f.write(to_folded(snap))
    with open(os.path.join(directory, "lockstat.txt"), "w") as f:
        f.write(format_table(snap, width=132))
    if samples:
        plot(samples, os.path.join(directory, "lockstat.png"))
