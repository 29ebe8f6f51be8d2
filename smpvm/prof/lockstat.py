"""Lock-contention profiling: what each lock, lock class and call site costs.

The C layer keeps, for every spinlock and token, acquisitions, contended
acquisitions, spin loops, wait and hold time (total, min, max and a log2
histogram each) and bounces (acquired on another thread than last time).
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
                "hold_ns": int(s.st_hold_ns),
                "hold_min_ns": int(s.st_hold_min_ns),
                "hold_max_ns": int(s.st_hold_max_ns),
                "hold_avg_ns": int(s.st_hold_ns) // acq,
                "wait_hist": [int(hh.wait[b]) for b in range(_NB)],
                "hold_hist": [int(hh.hold[b]) for b in range(_NB)],
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
              "wait_max_ns", "hold_ns", "hold_min_ns", "hold_avg_ns",
              "hold_max_ns")


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


def format_table(snap, top=20):
    """The human report: top locks by total wait, classes, call sites,
    pool aliasing, and what the numbers mean."""
    from rich.console import Console
    from rich.table import Table

    con = Console(record=True, width=140)
    with con.capture() as cap:
        t = Table(title=f"smpvm lockstat {snap['machine']}: top locks by "
                        "total wait (times in us)")
        for c in ("lock", "class", "acq", "contended", "spins", "bounces",
                  "wait total", "wait avg", "wait max", "hold avg",
                  "hold max"):
            t.add_column(c, justify="left" if c in ("lock", "class")
                         else "right")
        for lk in sorted(snap["locks"], key=lambda x: -x["wait_ns"])[:top]:
            t.add_row(lk["name"], lk["class"], str(lk["acquisitions"]),
                      str(lk["contended"]), str(lk["spins"]),
                      str(lk["bounces"]), f"{lk['wait_ns'] / 1e3:.1f}",
                      f"{lk['wait_avg_ns'] / 1e3:.2f}",
                      f"{lk['wait_max_ns'] / 1e3:.1f}",
                      f"{lk['hold_avg_ns'] / 1e3:.2f}",
                      f"{lk['hold_max_ns'] / 1e3:.1f}")
        con.print(t)
        c = Table(title="by class")
        for col in ("class", "locks", "acq", "contended", "wait total us",
                    "wait max us", "hold total us", "aliased"):
            c.add_column(col, justify="left" if col == "class" else "right")
        for name, v in sorted(snap["classes"].items(),
                              key=lambda kv: -kv[1]["wait_ns"]):
            c.add_row(name, str(v["locks"]), str(v["acquisitions"]),
                      str(v["contended"]), f"{v['wait_ns'] / 1e3:.1f}",
                      f"{v['wait_max_ns'] / 1e3:.1f}",
                      f"{v['hold_ns'] / 1e3:.1f}",
                      str(v["aliased_contentions"]))
        con.print(c)
        s = Table(title="contended call sites (waiter -> holder)")
        for col in ("lock", "waiter site", "holder site", "count",
                    "wait us", "aliased"):
            s.add_column(col, justify="right" if col in ("count", "wait us")
                         else "left")
        for r in sorted(snap["contentions"],
                        key=lambda x: -x["wait_ns"])[:top]:
            alias = (f"{r['waiter_key']} vs {r['holder_key']}"
                     if r["aliased"] else "")
            s.add_row(r["lock"], r["waiter_site"], r["holder_site"],
                      str(r["count"]), f"{r['wait_ns'] / 1e3:.1f}", alias)
        con.print(s)
    text = cap.get()
    alias = [r for r in snap["contentions"] if r["aliased"]]
    if alias:
        text += "\npool aliasing: " + "; ".join(
            f"{r['lock']}: {'page' if r['kind'] == 'spin' else 'object'} "
            f"{r['waiter_key']} waited for unrelated "
            f"{'page' if r['kind'] == 'spin' else 'object'} "
            f"{r['holder_key']} ({r['count']}x)" for r in alias[:8]) + "\n"
    ob = snap["observer"]
    text += (f"\nobserver effect: {ob['site_lookups']} call-site lookups, "
             f"{ob['site_lookup_ns'] / 1e6:.1f} ms in them (contended paths "
             f"only).\n{snap['note']}.\n")
    return text


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
    txt and (with matplotlib) png."""
    import os
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "lockstat.json"), "w") as f:
        f.write(to_json(snap))
    with open(os.path.join(directory, "lockstat.csv"), "w") as f:
        f.write(to_csv(snap))
    with open(os.path.join(directory, "lockstat.folded"), "w") as f:
        f.write(to_folded(snap))
    with open(os.path.join(directory, "lockstat.txt"), "w") as f:
        f.write(format_table(snap))
    if samples:
        plot(samples, os.path.join(directory, "lockstat.png"))
