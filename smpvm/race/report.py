"""The race checkers' reports, read from REG_RACE of any machine (running
or just stopped) and rendered as text in the manner of lockdep, WITNESS and
KCSAN, or as plain data for --json.

A report names the field (or the lock classes), the page/object index, the
CPU and thread, the locks held, the protector that was required, the
Python and C call sites, and -- given the run's seed -- how to replay it.
"""
from smpvm.kern.ddb import lock_name, prof_sites, site_text
from smpvm.layout import cstr, ffi, lib, threads

TYPES = {lib.RR_UNPROTECTED: "unprotected access",
         lib.RR_PLAIN_STORE: "plain store to an atomic/immutable field",
         lib.RR_ORDER: "lock order",
         lib.RR_SLEEP_SPIN: "blocking with a spinlock held",
         lib.RR_RACE: "data race",
         lib.RR_INFLIGHT: "write during I/O",
         lib.RR_USE_AFTER_FREE: "use after free",
         lib.RR_SWAPIO_UNBUSY: "protocol: swap I/O without soft busy",
         lib.RR_SWAPIO_WRITABLE: "protocol: swap I/O on a writable page",
         lib.RR_SWAPPED_NOSWAP: "protocol: PG_SWAPPED without swap",
         lib.RR_LOST_WAKEUP: "protocol: lost wakeup"}
# the protocol checks: a page's flag published against the primitives' rules
PROTOCOL = (lib.RR_SWAPIO_UNBUSY, lib.RR_SWAPIO_WRITABLE,
            lib.RR_SWAPPED_NOSWAP, lib.RR_LOST_WAKEUP)
ALIAS_KINDS = {lib.ALIAS_WR: "w>r", lib.ALIAS_WW: "w>w", lib.ALIAS_RW: "r>w"}
PROTECTORS = {getattr(lib, n): n[5:].lower() for n in dir(lib)
              if n.startswith("PROT_")}
ENTITY = {lib.SK_PAGE: "page", lib.SK_PQ: "queue", lib.SK_OBJECT: "object",
          lib.SK_SWBLOCK: "swblock", lib.SK_VNODE: "vnode",
          lib.SK_VMG: "vm_globals"}


def race_globals(machine):
    """struct race_globals * of machine, or None if it is not checked."""
    h = machine.hdr
    if h.region_len[lib.REG_RACE] == 0:
        return None
    return ffi.cast("struct race_globals *",
                    ffi.cast("char *", machine.base)
                    + h.region_off[lib.REG_RACE])


def prot_names(mask):
    return [n for bit, n in sorted(PROTECTORS.items()) if mask & bit]


def _lock(machine, word):
    kind, lid = word >> 24, word & 0xffffff
    if kind == lib.LK_BUSY:
        return f"busy(page {lid})"
    return lock_name(machine, kind, lid)


def _thread(machine, tid):
    if tid < 0 or tid >= machine.config.maxthreads:
        return {"tid": tid, "name": "?", "cpu": -1}
    t = threads(machine.base)[tid]
    return {"tid": tid, "name": cstr(t.name), "cpu": t.cpu}


def _side(machine, sites, s):
    d = _thread(machine, s.tid)
    d.update({"site": site_text(sites, s.site), "write": bool(s.write),
              "value": int(s.value), "clock": int(s.clock),
              "locks": [_lock(machine, s.locks[i])
                        for i in range(min(s.nlocks, lib.RACE_NLOCKS))]})
    return d


def _class_name(machine, c):
    h = machine.hdr
    return cstr(h.classes[c].name) if 0 <= c < h.nclasses else f"class#{c}"


def reports(machine):
    """Every published report as a dict, oldest first."""
    rg = race_globals(machine)
    if rg is None:
        return []
    sites = prof_sites(machine)
    out = []
    for i in range(lib.RACE_NREPORTS):
        r = rg.reports[i]
        if r.state != 2:
            continue
        d = {"seq": int(r.seq), "type": TYPES.get(r.type, str(r.type)),
             "type_id": int(r.type), "count": int(r.count),
             "message": cstr(r.msg), "a": _side(machine, sites, r.a)}
        if r.type == lib.RR_INFLIGHT or r.type in PROTOCOL:
            d["index"] = int(r.index)
        if r.field >= 0:
            f = lib.smpvm_field(r.field)
            d["field"] = f"{cstr(f.sname)}.{cstr(f.name)}"
            d["entity"] = ENTITY.get(f.skind, "?")
            d["index"] = int(r.index)
            d["required"] = prot_names(r.required)
        if r.type == lib.RR_RACE:
            d["b"] = _side(machine, sites, r.b)
        if r.type in (lib.RR_ORDER, lib.RR_SLEEP_SPIN):
            d["acquiring"] = _lock(machine, int(r.a.value))
        if r.ncycle:
            d["cycle"] = [{"class": _class_name(machine, r.cycle_class[k]),
                           "site": ("declared (smpvm.h / vm.c)"
                                    if r.cycle_tid[k] == -2 else
                                    site_text(sites, r.cycle_site[k])),
                           "tid": int(r.cycle_tid[k])}
                          for k in range(min(r.ncycle, lib.RACE_MAXCYCLE))]
        out.append(d)
    out.sort(key=lambda d: d["seq"])
    return out


def summary(machine):
    """Counters of the checkers: accesses checked, edges, reports."""
    rg = race_globals(machine)
    if rg is None:
        return {"checked": False}
    n = machine.config.maxthreads
    return {"checked": True, "checkers": int(rg.flags),
            "accesses_checked": sum(int(rg.thr[t].checks) for t in range(n)),
            "hb_checked": sum(int(rg.thr[t].hb_checks) for t in range(n)),
            "sample": int(rg.sample),
            "order_edges": int(rg.edges), "reports": int(rg.nreports),
            "dropped": int(rg.dropped)}


def coverage(machine):
    """What the run exercised, from the checkers' shadow state: the alias
    pairs (field, kind, earlier site, later site by another thread) with
    their counts -- KRACE's alias coverage -- and the checked accesses (each
    a preemption point) per site.  Sites are texts, so runs of different
    machines compare.  None on an unchecked machine."""
    rg = race_globals(machine)
    if rg is None:
        return None
    sites = prof_sites(machine)
    pairs = {}
    for i in range(lib.RACE_NALIAS):
        a = rg.alias[i]
        if a.state != 2:
            continue
        f = lib.smpvm_field(a.field)
        key = (f"{cstr(f.sname)}.{cstr(f.name)}",
               ALIAS_KINDS.get(a.kind, str(a.kind)),
               site_text(sites, a.site_a), site_text(sites, a.site_b))
        pairs[key] = pairs.get(key, 0) + int(a.count)
    points = {}
    for sid in range(lib.RACE_NPOINTS):
        n = int(rg.points[sid])
        if n:
            t = site_text(sites, sid)
            points[t] = points.get(t, 0) + n
    return {"alias_pairs": pairs, "points": points,
            "alias_dropped": int(rg.alias_dropped)}


def _who(s):
    return f"CPU {s['cpu']} {s['name']} (tid {s['tid']})"


def _held(s):
    return ", ".join(s["locks"]) if s["locks"] else "none"


def format_report(d, replay=None):
    """One report as text."""
    bar = "=" * 72
    out = [bar, f"smpvm race: {d['type']}: {d['message']}"
           + (f"  (seen {d['count']} times)" if d["count"] > 1 else "")]
    a = d["a"]
    if d["type_id"] in (lib.RR_UNPROTECTED, lib.RR_PLAIN_STORE):
        out.append(f"  field      {d['field']} of {d['entity']} "
                   f"{d['index']}")
        what = "needs all of" if a["write"] else "needs one of"
        if d["type_id"] == lib.RR_PLAIN_STORE:
            what = "is"
        out.append(f"  protector  {what} {' + '.join(d['required'])}")
        out.append(f"  access     {'write' if a['write'] else 'read'} "
                   f"(value {a['value']:#x}) by {_who(a)}")
        out.append(f"  at         {a['site']}")
        out.append(f"  locks held {_held(a)}")
    elif d["type_id"] == lib.RR_RACE:
        b = d["b"]
        out.append(f"  field      {d['field']} of {d['entity']} "
                   f"{d['index']} (protector: "
                   f"{' + '.join(d['required'])})")
        for tag, s in (("this", a), ("earlier", b)):
            out.append(f"  {tag:<8} {'write' if s['write'] else 'read '} "
                       f"by {_who(s)} at {s['site']}")
            out.append(f"  {'':<8} locks held: {_held(s)}"
                       + (f"; value {s['value']:#x}" if s["write"] else ""))
        out.append("  the two accesses are not ordered by any lock release/"
                   "acquire, busy hand-off or wakeup")
    elif d["type_id"] == lib.RR_INFLIGHT or d["type_id"] in PROTOCOL:
        out.append(f"  page       {d['index']} (flags {a['value']:#x})")
        out.append(f"  write by   {_who(a)}")
        out.append(f"  at         {a['site']}")
        out.append(f"  locks held {_held(a)}")
    elif d["type_id"] == lib.RR_ORDER and d.get("cycle"):
        cyc = d["cycle"]
        out.append(f"  {_who(a)} is trying to acquire {d['acquiring']}")
        out.append(f"    at {a['site']}")
        out.append(f"  while holding {_held(a)}")
        out.append("  which closes the cycle (each edge with the site that "
                   "first made it):")
        for k, e in enumerate(cyc):
            nxt = cyc[(k + 1) % len(cyc)]["class"]
            who = "" if e["tid"] < 0 else f" [tid {e['tid']}]"
            out.append(f"    {e['class']} -> {nxt}: {e['site']}{who}")
        first, second = cyc[0]["class"], cyc[1]["class"]
        out.append("  chain exists of: " + " --> ".join(
            e["class"] for e in cyc) + f" --> {first}")
        out.append("  possible unsafe locking scenario:")
        out.append(f"        {'CPU0':<28}{'CPU1'}")
        out.append(f"        {'----':<28}{'----'}")
        out.append(f"        lock({first});")
        out.append(f"        {'':<28}lock({second});")
        out.append(f"        {'':<28}lock({first});")
        out.append(f"        lock({second});")
        out.append("        *** DEADLOCK ***")
    else:
        out.append(f"  {_who(a)} acquiring {d.get('acquiring', '?')}")
        out.append(f"  at         {a['site']}")
        out.append(f"  locks held {_held(a)}")
    if replay:
        out.append(f"  replay     {replay}")
    return "\n".join(out)

