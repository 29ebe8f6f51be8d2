"""The VM's structural invariants, checked on a stopped world: every
thread parked at a safe point (kern/safepoint.py), so nothing is busy, in
flight or half-moved.  Each check returns violations as one-line strings
naming the page, object or counter.  What the seed's code keeps true
(vm_page.c, vm_object.c, swap_pager.c @seed), and what it does not:

  queues      each page is on exactly the list its `queue` names, once;
              lcnt = non-marker entries; per-class sums = vmstats (HOLD is
              counted as active); markers are not counted
  contents    FREE: no object, valid/dirty 0, no hold/wire; CACHE: object,
              clean, unmapped, unwired; INACTIVE/ACTIVE: an object; wired
              managed pages on no queue
  busy        at rest no page is busy or soft-busy; PG_SBUSY <=> busy > 0;
              no PG_WANTED without BUSY/SBUSY/SWAPINPROG; no SWAPINPROG
  objects     every page of an object is in the object's hash at its
              pindex and resident_page_count matches; pip is 0
  objlist     vm_object_list is consistent, each object once, count
              matches; exactly the objects marked on_list are reachable
              from the head (the seed's (b) breaks this)
  markers     the swapcached marker is on PQ_INACTIVE once, keeps its
              flags and wire_count 1
  swap        swblock_count = nodes; each object's hash chains reach its
              own swblocks only, once; swb_count = non-NONE entries > 0;
              no block twice; none below dmmax
  accounting  entries = cache_use + anon_use = max - size = blist (the
              seed leaks (g), so this fails on the seed: a known bug)
  swapped     a resident page with PG_SWAPPED has metadata (a stale flag
              turns into a silent zero-fill of a diverted read)
  burst       curburst >= -16 pages: a pass checks curburst < 0 before
              each page and flushes at most one cluster
  cleaning    no cleaning pass went on after visiting its budget's worth
              of swblocks (condfree charges each swblock it visits,
              08fb7a9da0; the seed's (e) does not)
"""
from smpvm.layout import lib
from smpvm.vm.vmview import vmview

NONE = lib.SWAPBLK_NONE


def _class_of(q):
    if lib.PQ_FREE <= q < lib.PQ_FREE + lib.PQ_MAXL2_SIZE:
        return "v_free_count"
    if lib.PQ_CACHE <= q < lib.PQ_CACHE + lib.PQ_MAXL2_SIZE:
        return "v_cache_count"
    if q == lib.PQ_INACTIVE:
        return "v_inactive_count"
    return "v_active_count"


def check_queues(v):
    bad = []
    seen = {}
    sums = {"v_free_count": 0, "v_cache_count": 0, "v_inactive_count": 0,
            "v_active_count": 0}
    qs = v.vmg.vm_page_queues
    nall = v.npages + v.vmg.nmarkers
    for q in range(1, lib.PQ_COUNT):
        pq = qs[q]
        m, prev, n = pq.head, -1, 0
        steps = 0
        while m >= 0 and steps <= nall:
            pg = v.pages[m]
            if pg.queue != q:
                bad.append(f"queue {q}: page {m} says queue {pg.queue}")
            if pg.pq_prev != prev:
                bad.append(f"queue {q}: page {m} prev {pg.pq_prev} != {prev}")
            if m in seen:
                bad.append(f"page {m} on queue {q} and {seen[m]}")
            seen[m] = q
            if not pg.flags & lib.PG_MARKER:
                n += 1
            prev, m = m, pg.pq_next
            steps += 1
        if steps > nall:
            bad.append(f"queue {q}: cycle")
        if pq.tail != prev:
            bad.append(f"queue {q}: tail {pq.tail} != last {prev}")
        if pq.lcnt != n:
            bad.append(f"queue {q}: lcnt {pq.lcnt} != {n} entries")
        sums[_class_of(q)] += n
    for k, n in sums.items():
        if getattr(v.vmstats, k) != n:
            bad.append(f"vmstats.{k} {getattr(v.vmstats, k)} != {n} queued")
    for m in range(v.npages):
        if v.pages[m].queue != lib.PQ_NONE and m not in seen:
            bad.append(f"page {m} says queue {v.pages[m].queue} but is on "
                       "no list")
    return bad


def check_contents_and_busy(v):
    bad = []
    for m in range(v.npages):
        pg = v.pages[m]
        q, f = pg.queue, pg.flags
        base = q - pg.pc
        if base == lib.PQ_FREE:
            if pg.object >= 0 or pg.valid or pg.dirty or pg.hold_count or \
                    pg.wire_count:
                bad.append(f"free page {m}: object {pg.object} valid "
                           f"{pg.valid:#x} dirty {pg.dirty:#x} hold "
                           f"{pg.hold_count} wire {pg.wire_count}")
        elif base == lib.PQ_CACHE:
            if pg.object < 0 or pg.dirty or f & lib.PG_MAPPED or \
                    pg.wire_count or pg.hold_count or pg.busy:
                bad.append(f"cache page {m}: object {pg.object} dirty "
                           f"{pg.dirty:#x} flags {f:#x} wire {pg.wire_count}")
        elif q in (lib.PQ_INACTIVE, lib.PQ_ACTIVE) and pg.object < 0:
            bad.append(f"page {m} on queue {q} belongs to no object")
        elif q == lib.PQ_HOLD and pg.hold_count <= 0:
            bad.append(f"page {m} on PQ_HOLD with hold_count {pg.hold_count}")
        if pg.wire_count and q != lib.PQ_NONE and \
                not f & lib.PG_UNMANAGED:
            bad.append(f"wired page {m} on queue {q}")
        if f & (lib.PG_BUSY | lib.PG_SBUSY | lib.PG_SWAPINPROG) or pg.busy:
            bad.append(f"page {m} busy at rest: flags {f:#x} busy {pg.busy}")
        if bool(f & lib.PG_SBUSY) != (pg.busy > 0):
            bad.append(f"page {m}: PG_SBUSY {bool(f & lib.PG_SBUSY)} but "
                       f"busy {pg.busy}")
        if f & lib.PG_WANTED and not f & (lib.PG_BUSY | lib.PG_SBUSY |
                                          lib.PG_SWAPINPROG):
            bad.append(f"page {m}: PG_WANTED with nothing to wait for")
    return bad


def check_objects(v):
    bad = []
    nobj = v.machine.config.nobjects
    count = [0] * nobj
    for m in range(v.npages):
        o = v.pages[m].object
        if o < 0:
            continue
        if o >= nobj or v.objects[o].state == 0:
            bad.append(f"page {m} in free object slot {o}")
            continue
        count[o] += 1
        ob = v.objects[o]
        k = ob.pghash[int(v.pages[m].pindex) & (lib.OBJ_PGHASH - 1)]
        while k >= 0 and k != m:
            k = v.pages[k].hnext
        if k != m:
            bad.append(f"page {m} (object {o} pindex {v.pages[m].pindex}) "
                       "missing from the object's hash")
    for o in range(nobj):
        ob = v.objects[o]
        if ob.state == 0:
            continue
        if ob.resident_page_count != count[o]:
            bad.append(f"object {o}: resident_page_count "
                       f"{ob.resident_page_count} != {count[o]} pages")
        if ob.paging_in_progress & ~lib.REFCNTF_WAITING:
            bad.append(f"object {o}: paging_in_progress "
                       f"{ob.paging_in_progress} at rest")
    return bad


def check_object_list(v):
    """vm_object_list: a consistent doubly linked list of allocated slots,
    each object at most once, vm_object_count its non-marker entries, no
    marker twice; the objects reachable from the head are
    exactly those marked on_list (a marker re-inserted before an unlinked
    object is marked linked but unreachable: the seed's (b))."""
    bad = []
    g = v.vmg
    seen, prev, o, n = set(), -1, g.vm_object_list_head, 0
    nslots = g.nobjslots
    while o >= 0:
        if o >= nslots:
            return bad + [f"vm_object_list: bad slot {o} after {prev}"]
        if o in seen:
            return bad + [f"vm_object_list: object {o} linked twice "
                          f"(after {prev})"]
        seen.add(o)
        ob = v.objects[o]
        if ob.state == 0:
            bad.append(f"vm_object_list: free slot {o} on the list")
        if not ob.on_list:
            bad.append(f"vm_object_list: object {o} on the list but "
                       "marked unlinked")
        if ob.list_prev != prev:
            bad.append(f"vm_object_list: object {o} list_prev "
                       f"{ob.list_prev} != {prev}")
        if ob.type != lib.OBJT_MARKER:
            n += 1
        prev, o = o, ob.list_next
    if g.vm_object_list_tail != prev:
        bad.append(f"vm_object_list: tail {g.vm_object_list_tail} != "
                   f"{prev}")
    if g.vm_object_count != n:
        bad.append(f"vm_object_count {g.vm_object_count} != {n} objects "
                   "on the list")
    for o in range(nslots):
        ob = v.objects[o]
        if ob.state and ob.on_list and o not in seen:
            what = "marker" if ob.type == lib.OBJT_MARKER else "object"
            loop = " (linked to itself)" if ob.list_next == o else ""
            bad.append(f"vm_object_list: {what} {o} was inserted but is not "
                       f"reachable from the head{loop}")
    return bad


def check_markers(v, swapcached_tid=None):
    bad = []
    nm = v.vmg.nmarkers
    for k in range(nm):
        m = v.npages + k
        pg = v.pages[m]
        want = lib.PG_BUSY | lib.PG_FICTITIOUS | lib.PG_MARKER
        if pg.flags & want != want or pg.wire_count != 1:
            bad.append(f"marker {m}: flags {pg.flags:#x} wire "
                       f"{pg.wire_count}")
    if swapcached_tid is not None:
        mk = v.npages + swapcached_tid * lib.VM_MARKERS_PER_THREAD
        if v.pages[mk].queue != lib.PQ_INACTIVE:
            bad.append(f"swapcached's marker {mk} not on PQ_INACTIVE "
                       f"(queue {v.pages[mk].queue})")
    return bad


def _swblocks(v):
    """{object: [swblock index]} of live swblocks."""
    out = {}
    for s in range(v.vmg.nswblocks):
        o = v.swblocks[s].swb_object
        if o >= 0:
            out.setdefault(o, []).append(s)
    return out


def check_swblock_chains(v, by_obj):
    """Each object's swblock hash chains reach exactly its own live
    swblocks, each once, in the right bucket, with no cycle (a swblock
    freed and reused under a range free that blocked -- the seed's zfree
    race -- breaks this)."""
    bad = []
    nswb = v.vmg.nswblocks
    for o in range(v.vmg.nobjslots):
        ob = v.objects[o]
        seen = set()
        for b in range(lib.OBJ_SWBHASH):
            s, steps = ob.swbhash[b], 0
            while s >= 0:
                if s >= nswb or steps > nswb:
                    bad.append(f"object {o}: swblock chain {b} broken at "
                               f"{s}")
                    break
                sb = v.swblocks[s]
                if sb.swb_object != o:
                    bad.append(f"object {o}: chain {b} reaches swblock {s} "
                               f"of object {sb.swb_object}")
                elif (sb.swb_index // lib.SWAP_META_PAGES) % \
                        lib.OBJ_SWBHASH != b:
                    bad.append(f"object {o}: swblock {s} in chain {b}, "
                               f"index {sb.swb_index}")
                if s in seen:
                    bad.append(f"object {o}: swblock {s} chained twice")
                    break
                seen.add(s)
                s, steps = sb.swb_next, steps + 1
        for s in by_obj.get(o, ()):
            if s not in seen:
                bad.append(f"object {o}: swblock {s} not in its chains")
    return bad


def check_swap(v):
    """Swap metadata and accounting."""
    bad = []
    blocks = {}
    entries = 0
    by_obj = _swblocks(v)
    bad += check_swblock_chains(v, by_obj)
    for o, sbs in by_obj.items():
        ob = v.objects[o]
        if ob.swblock_count != len(sbs):
            bad.append(f"object {o}: swblock_count {ob.swblock_count} != "
                       f"{len(sbs)} swblocks")
        for s in sbs:
            sb = v.swblocks[s]
            if sb.swb_index % lib.SWAP_META_PAGES:
                bad.append(f"swblock {s}: index {sb.swb_index} unaligned")
            n = 0
            for i in range(lib.SWAP_META_PAGES):
                b = sb.swb_pages[i]
                if b == NONE:
                    continue
                n += 1
                if b < lib.SWB_DMMAX:
                    bad.append(f"object {o} pindex {sb.swb_index + i}: "
                               f"reserved block {b}")
                if b in blocks:
                    bad.append(f"block {b} assigned twice: object {o} pindex "
                               f"{sb.swb_index + i} and {blocks[b]}")
                blocks[b] = (o, int(sb.swb_index) + i)
            if sb.swb_count != n or n == 0:
                bad.append(f"swblock {s} of object {o}: swb_count "
                           f"{sb.swb_count}, {n} entries")
            entries += n
    g = v.vmg
    used = g.vm_swap_max - g.vm_swap_size
    use = g.vm_swap_cache_use + g.vm_swap_anon_use
    allocated = sum(bin(_blist_word(v, w)).count("1")
                    for w in range((v.machine.config.nswap + 31) // 32))
    allocated -= lib.SWB_DMMAX + (-v.machine.config.nswap) % 32
    if not entries == use == used == allocated:
        why = ""
        if g.bugs & lib.BUG_SWBLOCK_LEAK and entries < use == used == \
                allocated:
            why = (f": {use - entries} blocks allocated and counted with no "
                   "swap metadata, as the seed's meta_free leaks them "
                   "(defect (g), fixed by 0301c40799)")
        bad.append(f"swap accounting: {entries} entries, cache+anon use "
                   f"{use}, max-size {used}, blist {allocated}{why}")
    return bad, blocks


def _blist_word(v, w):
    from smpvm.layout import ffi
    base = ffi.cast("char *", v.machine.base) + \
        v.machine.hdr.region_off[lib.REG_OBJECTS] + v.vmg.off_blist
    return ffi.cast("uint32_t *", base)[w]


def check_swapped_flags(v, blocks):
    """At rest a resident page with PG_SWAPPED has metadata."""
    bad = []
    have = {ob for ob in blocks.values()}
    for m in range(v.npages):
        pg = v.pages[m]
        if pg.flags & lib.PG_SWAPPED and pg.object >= 0 and \
                (pg.object, int(pg.pindex)) not in have:
            bad.append(f"page {m} (object {pg.object} pindex {pg.pindex}) "
                       "PG_SWAPPED without swap metadata")
    return bad


def check_all(machine, swapcached_tid=None):
    """Every check; returns the violations (empty when all hold)."""
    v = vmview(machine).raw    # the world is stopped
    bad = []
    bad += check_queues(v)
    bad += check_contents_and_busy(v)
    bad += check_objects(v)
    bad += check_object_list(v)
    bad += check_markers(v, swapcached_tid)
    swap_bad, blocks = check_swap(v)
    bad += swap_bad
    bad += check_swapped_flags(v, blocks)
    floor = -lib.SWAPCACHE_META_PAGES * lib.PAGE_SIZE
    if v.vmg.swapcache.curburst < floor:
        bad.append(f"curburst {v.vmg.swapcache.curburst} < {floor}: a "
                   "pass flushed after curburst went negative")
    return bad
