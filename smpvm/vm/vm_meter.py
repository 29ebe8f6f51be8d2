"""What an operator wants to see of swapcache on a running machine
(`smpvm stat`): the daemon's state, burst and budget, swap use against the
75/70 % marks, what the writing pass scanned and skipped and why, what the
cleaning passes cost, diverted reads and invalidations.  Read racily from
shared memory, as vmstat does.

Findings (pure functions of the status): cleaning_findings() turns the
cleaning meter (vm_counters.clean_*, kept by swapcached and condfree) into
what went wrong, each named by the defect it comes from:
  cleaning cost  a pass went on after visiting its budget's worth of
                 swblocks ("cleaning pass visited N swblocks on a budget of
                 M"): condfree charged nothing for them, the seed's (e)
  liveness       cleaning passes in a row, each started at or over the
                 writing mark (as the daemon's, in its CLEANING state),
                 that reached no object with swap (no
                 swap_pager_condfree call): the walk is cut off from the
                 objects for good (the seed's orphan marker (b),
                 f5f6d24720's marker stuck at the end of the list).  A
                 pass that reached one is not idle even if condfree
                 visited no swblock there: upstream resumes an object
                 from the marker's iterator until the walk works on
                 another object, so a lone object with swap is passed
                 over while the walk goes round the list (7a175765de on)
"""
from smpvm.layout import lib
from smpvm.vm.bugs import BUGS, version_bits
from smpvm.vm.versions import FIXED, NEWEST, VERSIONS
from smpvm.vm.vmview import vmview

# liveness: a working walk reaches every object within a pass per object
# (a budget of 2 examines one object a pass), so this many idle passes per
# object on the list, and at least LIVENESS_MIN_PASSES, means it is stuck
LIVENESS_PASSES_PER_OBJECT = 4
LIVENESS_MIN_PASSES = 50

STATES = {0: "WRITING", 1: "CLEANING"}
BURSTS = {0: "BURSTING", 1: "RECOVERING"}


def kernel_name(version, bugs):
    """The --kernel name of a machine of KV_* version with BUG_* bits bugs:
    "seed", a commit, "fixed", or one of them "+bugs(0x...)" when bugs on
    purpose were added."""
    name = VERSIONS[version].name
    extra = bugs & ~version_bits(version)
    if version == NEWEST.ordinal and bugs == version_bits(version,
                                                          fixed=True):
        name, extra = FIXED, 0
    elif version == NEWEST.ordinal and not bugs & ~version_bits(
            version, fixed=True) and bugs != version_bits(version):
        extra = bugs
    return name + (f"+bugs({extra:#x})" if extra else "")


def swapcache_status(machine):
    """Every figure of the status, as a dict (the --json form)."""
    v = vmview(machine).raw    # statistics, read racily
    g, sc, c, s = v.vmg, v.vmg.swapcache, v.cnt, v.vmstats
    smax = int(g.vm_swap_max)

    def mark(adj):
        return smax * (int(sc.maxswappct) + adj) // 100
    return {
        "machine": machine.name,
        "kernel": kernel_name(int(g.version), int(g.bugs)),
        "ticks": int(lib.smpvm_ticks()),
        "state": STATES.get(int(sc.state), "?"),
        "burst": BURSTS.get(int(sc.burst), "?"),
        "curburst": int(sc.curburst), "maxburst": int(sc.maxburst),
        "minburst": int(sc.minburst), "accrate": int(sc.accrate),
        "write_count": int(sc.write_count),
        "enables": {"data": int(sc.data_enable), "meta": int(sc.meta_enable),
                    "read": int(sc.read_enable)},
        "swap": {"max": smax, "free": int(g.vm_swap_size),
                 "cache_use": int(g.vm_swap_cache_use),
                 "anon_use": int(g.vm_swap_anon_use),
                 "to_cleaning_above": mark(0),
                 "to_writing_below": mark(
                     -10 if g.version >= lib.KV_08FB7A9DA0 else -5)},
        "heuristic": int(g.vm_swapcache_inactive_heuristic),
        "hysteresis": int(sc.hysteresis),
        "loops": int(c.swapcache_loops),
        "writing_passes": int(c.writing_passes),
        "cleaning_passes": int(c.cleaning_passes),
        "heuristic_waits": int(c.heuristic_waits),
        "scanned": int(c.pages_scanned),
        "skipped": {"swapped_or_marker": int(c.skip_free),
                    "busy": int(c.skip_busy), "object": int(c.skip_object),
                    "test": int(c.skip_test), "notmeta": int(c.skip_notmeta),
                    "disabled": int(c.skip_disabled),
                    "maxfilesize": int(c.skip_maxfilesize)},
        "swap_writes": {"pages": int(c.swap_write_pages),
                        "clusters": int(c.swap_write_clusters),
                        "errors": int(c.swap_write_errors),
                        "alloc_failures": int(c.swap_alloc_fail)},
        "reads": {"diverted_buffers": int(c.diverted_reads),
                  "diverted_pages": int(c.diverted_pages),
                  "zero_fills": int(c.zero_fills),
                  "vnode_reads": int(c.vnode_reads)},
        "paging": {"page_allocs": int(c.page_allocs),
                   "page_frees": int(c.page_frees),
                   "page_caches": int(c.page_caches),
                   "pageout_scans": int(c.pageout_scans),
                   "vnode_writes": int(c.vnode_writes)},
        "invalidations": {"unswapped": int(c.unswapped),
                          "range_freed": int(c.range_freed)},
        "cleaning": {
            "last": {"objects": int(c.clean_last_objects),
                     "swblocks": int(c.clean_last_swblocks),
                     "budget": int(c.clean_last_budget),
                     "freed": int(c.clean_last_freed),
                     "cpu_ns": int(c.clean_last_cpu_ns)},
            "swblocks": int(c.clean_swblocks),
            "cpu_ns": int(c.clean_cpu_ns),
            "max_cpu_ns": int(c.clean_max_cpu_ns),
            "overruns": int(c.clean_overruns),
            "worst_swblocks": int(c.clean_worst_swblocks),
            "worst_objects": int(c.clean_worst_objects),
            "worst_budget": int(c.clean_worst_budget),
            "idle_streak": int(c.clean_idle_streak),
            "idle_max": int(c.clean_idle_max),
            "idle_use": int(c.clean_idle_use),
            "idle_mark": int(c.clean_idle_mark),
            "objects": int(g.vm_object_count),
            "marker_orphans": _looped_markers(machine, v)},
        "writing": {"max_pages": int(c.writing_max_pages),
                    "max_budget": int(c.writing_max_budget),
                    "max_scanned": int(c.writing_max_scanned),
                    "cpu_ns": int(c.writing_cpu_ns),
                    "max_cpu_ns": int(c.writing_max_cpu_ns),
                    "scanning_passes": int(c.writing_scanning_passes),
                    "max_held": int(c.writing_max_held)},
        "pageout": {"scans": int(c.pageout_scans),
                    "pdpages": int(c.pageout_pdpages),
                    "max_pdpages": int(c.pageout_max_pdpages),
                    "ns": int(c.pageout_ns),
                    "max_ns": int(c.pageout_max_ns),
                    "deactivated": int(c.pageout_deactivated),
                    "cached": int(c.pageout_cached),
                    "vm_waits": int(c.vm_waits),
                    "vm_wait_ns": int(c.vm_wait_ns)},
        "queues": _queue_occupancy(v),
        "memory": {"pages": int(s.v_page_count), "free": int(s.v_free_count),
                   "cache": int(s.v_cache_count),
                   "inactive": int(s.v_inactive_count),
                   "active": int(s.v_active_count),
                   "wired": int(s.v_wire_count)},
    }


def _queue_occupancy(v):
    """How many INACTIVE and ACTIVE queues hold a page now (the seed has
    one of each; 027193eb61 256, of which 64 carry pages until
    51c99c6153)."""
    qs = v.vmg.vm_page_queues
    return {name: sum(1 for q in range(lib.PQ_MAXL2_SIZE)
                      if qs[base + q].lcnt > 0)
            for name, base in (("inactive", lib.PQ_INACTIVE),
                               ("active", lib.PQ_ACTIVE))}


def _looped_markers(machine, v):
    """Object markers linked to themselves: a marker re-inserted before an
    object that had left the list (the seed's (b))."""
    out = []
    for o in range(machine.config.nobjects, int(v.vmg.nobjslots)):
        ob = v.objects[o]
        if ob.state and ob.type == lib.OBJT_MARKER and ob.list_next == o:
            out.append(o)
    return out


def _defect(name, letter=None):
    b = BUGS[name]
    return (f"the seed's defect {letter or b.origin[5:]}, fixed by "
            f"{b.fixed_by.split(',')[0]}")


def cleaning_cost_finding(c):
    """The cleaning-cost finding of the meter counters c (vm_counters, or
    an object with the same clean_* attributes), or None: some pass went
    on after visiting its budget's worth of swblocks."""
    if not c.clean_overruns:
        return None
    return (f"cleaning pass visited {int(c.clean_worst_swblocks)} swblocks on "
            f"a budget of {int(c.clean_worst_budget)} (in "
            f"{int(c.clean_worst_objects)} objects; {int(c.clean_overruns)} "
            f"passes went on after the objects and swblocks they visited had"
            f" used their budget up: condfree charged nothing for the "
            f"swblocks it visited without freeing, "
            f"{_defect('condfree-uncharged', '(e)')})")


class _Meter:
    def __init__(self, d):
        for k, val in d.items():
            setattr(self, "clean_" + k, val)


def cleaning_findings(status):
    """What the cleaning meter of a swapcache_status() shows went wrong: a
    list of one-line findings, each named by what it is ("cleaning pass
    visited N swblocks on a budget of M", "liveness: ...") and by the
    defect it comes from.  Empty when cleaning behaved."""
    c = status["cleaning"]
    out = []
    cost = cleaning_cost_finding(_Meter(c))
    if cost:
        out.append(cost)
    limit = max(LIVENESS_MIN_PASSES,
                LIVENESS_PASSES_PER_OBJECT * (c["objects"] + 1))
    # stuck for good means swap kept over the mark where cleaning starts
    # (SWAPMAX(0)), not a remainder cleaning may leave: with maxswappct 10
    # the writing mark is 0 and a page or two in use keeps the daemon
    # CLEANING with nothing it could free
    cleaning_mark = status["swap"]["to_cleaning_above"]
    if c["idle_max"] >= limit and c["idle_use"] > cleaning_mark:
        why = ""
        if c["marker_orphans"]:
            why = (f": the object marker {c['marker_orphans'][0]} is linked "
                   f"to itself, off vm_object_list ({_defect('clean-markers')}"
                   ")")
        out.append(f"liveness: {c['idle_max']} cleaning passes in a row, "
                   f"each started at or over the writing mark, reached no "
                   f"object with swap (no swap_pager_condfree call) and "
                   f"freed nothing (the first started with swap cache use "
                   f"{c['idle_use']} pages, writing mark {c['idle_mark']}, "
                   f"over the cleaning mark {cleaning_mark})"
                   f"{why}")
    return out


def _mb(n):
    return f"{n / 1e6:.1f} MB"


def format_status(d):
    sw = d["swap"]
    pct = 100.0 * sw["cache_use"] / sw["max"] if sw["max"] else 0.0
    sk = d["skipped"]
    lines = [
        f"{d['machine']}  kernel {d['kernel']}  tick {d['ticks']}",
        f"swapcache  {d['state']} / {d['burst']}   curburst "
        f"{_mb(d['curburst'])} (min {_mb(d['minburst'])}, max "
        f"{_mb(d['maxburst'])}, +{_mb(d['accrate'])}/s)   written "
        f"{_mb(d['write_count'])}",
        f"swap       cache {sw['cache_use']} pages = {pct:.1f}% of "
        f"{sw['max']}; CLEANING above {sw['to_cleaning_above']}, WRITING "
        f"below {sw['to_writing_below']}; anon {sw['anon_use']}",
        f"passes     {d['writing_passes']} writing, {d['cleaning_passes']} "
        f"cleaning, {d['loops']} loops; heuristic {d['heuristic']} "
        f"(hysteresis {d['hysteresis']}, {d['heuristic_waits']} waits)",
        f"scanned    {d['scanned']} pages; skipped: "
        f"{sk['swapped_or_marker']} swapped/marker, {sk['busy']} busy, "
        f"{sk['object']} object, {sk['test']} test, {sk['notmeta']} notmeta,"
        f" {sk['disabled']} disabled, {sk['maxfilesize']} maxfilesize",
        f"ssd        {d['swap_writes']['pages']} pages written in "
        f"{d['swap_writes']['clusters']} clusters, "
        f"{d['swap_writes']['errors']} errors, "
        f"{d['swap_writes']['alloc_failures']} allocation failures",
        f"reads      {d['reads']['diverted_pages']} pages diverted to the "
        f"SSD in {d['reads']['diverted_buffers']} buffers, "
        f"{d['reads']['vnode_reads']} file reads, "
        f"{d['reads']['zero_fills']} zero-fills",
        f"invalid.   {d['invalidations']['unswapped']} unswapped, "
        f"{d['invalidations']['range_freed']} freed by range",
        "memory     " + ", ".join(f"{k} {v}" for k, v in d["memory"].items()),
    ]
    cl = d["cleaning"]
    last = cl["last"]
    lines.insert(-2, (
        f"cleaning   last pass {last['objects']} objects, {last['swblocks']} "
        f"swblocks on a budget of {last['budget']}, {last['freed']} pages "
        f"freed, {last['cpu_ns'] / 1e6:.1f} ms CPU; worst {cl['max_cpu_ns'] / 1e6:.1f}"
        f" ms; {cl['overruns']} overran; idle streak {cl['idle_streak']} "
        f"(max {cl['idle_max']})"))
    for f in cleaning_findings(d):
        lines.append("FINDING    " + f)
    return "\n".join(lines)
