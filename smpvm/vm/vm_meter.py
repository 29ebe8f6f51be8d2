"""What an operator wants to see of swapcache on a running machine
(`smpvm stat`): the daemon's state, burst and budget, swap use against the
75/70 % marks, what the writing pass scanned and skipped and why, diverted
reads and invalidations.  Read racily from shared memory, as vmstat does."""
from smpvm.layout import lib
from smpvm.vm.vmview import vmview

STATES = {0: "WRITING", 1: "CLEANING"}
BURSTS = {0: "BURSTING", 1: "RECOVERING"}


def kernel_name(bugs):
    if bugs == lib.BUGS_SEED:
        return "seed"
    return "fixed" if bugs == 0 else f"custom({bugs:#x})"


def swapcache_status(machine):
    """Every figure of the status, as a dict (the --json form)."""
    v = vmview(machine).raw    # statistics, read racily
    g, sc, c, s = v.vmg, v.vmg.swapcache, v.cnt, v.vmstats
    smax = int(g.vm_swap_max)

    def mark(adj):
        return smax * (int(sc.maxswappct) + adj) // 100
    return {
        "machine": machine.name,
        "kernel": kernel_name(g.bugs),
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
                 "to_writing_below": mark(-5)},
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
        "invalidations": {"unswapped": int(c.unswapped),
                          "range_freed": int(c.range_freed)},
        "memory": {"pages": int(s.v_page_count), "free": int(s.v_free_count),
                   "cache": int(s.v_cache_count),
                   "inactive": int(s.v_inactive_count),
                   "active": int(s.v_active_count),
                   "wired": int(s.v_wire_count)},
    }


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
    return "\n".join(lines)
