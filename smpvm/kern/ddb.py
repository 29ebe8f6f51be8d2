"""show threads / show locks: who holds and waits on what, from any process
that maps the machine (ddb's `show locks`, `ps`).  Where the host's view
differs from the machine's -- a thread's process stopped (SIGSTOP, a
debugger) or gone, a creator that died -- the text says so."""
import os

from smpvm.layout import (LOCK_KINDS, MACHINE_STATES, THREAD_KINDS,
                          THREAD_STATES, cstr, ffi, lib, spinlocks, threads,
                          tokens)

# /proc/PID/stat states that are not the machine's to explain
HOST_STATES = {"T": "stopped by the host", "t": "stopped by a tracer",
               "Z": "dead", "X": "dead"}


def host_state(pid):
    """What the host says of process pid: '' when it runs or sleeps as
    usual, else 'stopped by the host', 'stopped by a tracer', 'dead' or
    'gone' (read from /proc/PID/stat)."""
    if pid <= 0:
        return ""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
    return HOST_STATES.get(state, "")


def host_stopped(machine):
    """[(tid, name, pid, host state)] of the threads whose process the host
    stopped or lost."""
    td = threads(machine.base)
    out = []
    for tid in range(machine.config.maxthreads):
        t = td[tid]
        if t.state in (lib.TDS_FREE, lib.TDS_EXITED) or t.pid <= 0:
            continue
        hs = host_state(t.pid)
        if hs:
            out.append((tid, cstr(t.name), int(t.pid), hs))
    return out


def prof_sites(machine):
    """The call-site table (REG_PROF), shared by profiling and checking."""
    base = ffi.cast("char *", machine.base) + \
        machine.hdr.region_off[lib.REG_PROF]
    return ffi.cast("struct prof_site *", base)


def site_text(sites, i):
    """The text of site id i ("file:line:function > cfunc")."""
    if i <= 0 or i >= lib.PROF_NSITES or sites[i].state != 2:
        return "(unknown)"
    return ffi.string(sites[i].text).decode("utf-8", "replace")


def lock_name(machine, kind, lid):
    """'vm_token', 'spin_pool[17]', 'pool_token[12]' -- by the class table."""
    h = machine.hdr
    for i in range(h.nclasses):
        c = h.classes[i]
        if c.kind == kind and c.first <= lid < c.first + c.count:
            name = cstr(c.name)
            return name if c.count == 1 else f"{name}[{lid - c.first}]"
    return f"{LOCK_KINDS.get(kind, '?')}#{lid}"


def locks_owned_by(machine, tid):
    """[(kind, id)] whose lock word names tid as holder (authoritative)."""
    kinds = ffi.new("int[256]")
    ids = ffi.new("int[256]")
    n = lib.smpvm_locks_owned_by(machine.base, tid, kinds, ids, 256)
    return [(kinds[i], ids[i]) for i in range(n)]


def thread_rows(machine):
    """One dict per live thread slot."""
    rows = []
    td = threads(machine.base)
    for tid in range(machine.config.maxthreads):
        t = td[tid]
        if t.state == lib.TDS_FREE:
            continue
        wait = ""
        if t.state == lib.TDS_SLEEPING:
            wait = f"tsleep '{cstr(t.wmesg)}' on {t.wchan:#x}"
            wait += _page_wait(machine, int(t.wchan))
        elif t.state in (lib.TDS_SPINWAIT, lib.TDS_TOKWAIT) and t.wait_id >= 0:
            holder = _holder(machine, t.wait_kind, t.wait_id)
            wait = (f"{lock_name(machine, t.wait_kind, t.wait_id)}"
                    + (f" (held by tid {holder})" if holder >= 0 else ""))
        held = [lock_name(machine, k, i) for k, i in locks_owned_by(machine, tid)]
        toks = [lock_name(machine, lib.LK_TOKEN, t.td_toks[i])
                for i in range(t.td_toks_stop)]
        rows.append({
            "tid": tid, "name": cstr(t.name), "pid": t.pid, "cpu": t.cpu,
            "kind": THREAD_KINDS.get(t.kind, "?"),
            "state": THREAD_STATES.get(t.state, "?"), "waiting": wait,
            "host": host_state(t.pid) if t.state != lib.TDS_EXITED else "",
            "holds": held, "token_stack": toks, "critcount": t.td_critcount,
            "spinlocks": t.gd_spinlocks_wr, "sleeps": t.n_sleeps,
            "switches": t.n_switches})
    return rows


def _page_wait(machine, ident):
    """For a sleep on a page's address: which page and its busy state."""
    m = (ident - lib.KVA_PAGES) // lib.KVA_PAGE_STRIDE
    if ident < lib.KVA_PAGES or m >= machine.config.npages:
        return ""
    from smpvm.layout import pages
    pg = pages(machine.base)[m]
    return (f" = page {m} (object {pg.object} pindex {pg.pindex} queue "
            f"{pg.queue} flags {pg.flags:#x} busy {pg.busy})")


def _holder(machine, kind, lid):
    if kind == lib.LK_SPIN:
        v = spinlocks(machine.base)[lid].counta
    else:
        v = tokens(machine.base)[lid].t_ref
    return int(v) - 1


def format_threads(machine):
    """The `show threads` text: one line per thread, then its locks."""
    lines = [f"{'tid':>3} {'name':<14} {'kind':<7} {'cpu':>3} {'pid':>7} "
             f"{'state':<9} waiting / holding"]
    for r in thread_rows(machine):
        host = f"[{r['host']}] " if r["host"] else ""
        lines.append(f"{r['tid']:>3} {r['name']:<14} {r['kind']:<7} "
                     f"{r['cpu']:>3} {r['pid']:>7} {r['state']:<9} "
                     f"{host}{r['waiting']}")
        if r["holds"]:
            lines.append(f"{'':>4}holds: {', '.join(r['holds'])}")
        if r["token_stack"]:
            lines.append(f"{'':>4}token stack: {', '.join(r['token_stack'])}")
    return "\n".join(lines)


def format_machine(machine):
    """`smpvm ps` of one machine: its state (a leftover whose creator died
    says so), size, creator, data directory, panic, then its threads."""
    h = machine.hdr
    state = MACHINE_STATES.get(h.state, "?")
    creator = f"creator pid {h.creator_pid}"
    if not os.path.exists(f"/proc/{h.creator_pid}"):
        state = f"leftover ({state} when its creator died)"
        creator += " (dead: `smpvm clean` removes the machine)"
    lines = [f"{machine.name}: {state}, {h.cfg.ncpus} cpus, {creator}, "
             f"data {cstr(h.datadir)}"]
    if machine.panicked:
        lines.append(f"  panic: {cstr(h.panicstr)}")
    lines.append(format_threads(machine))
    return "\n".join(lines)


def lock_summary(machine, top=5):
    """A few lines: totals and the locks that cost the most wait time.
    (The full profiler is `smpvm lockstat`; this is the boot epilogue.)"""
    rows = []
    tot_acq = tot_cont = 0
    for kind, arr, n in ((lib.LK_SPIN, spinlocks(machine.base),
                          machine.config.nspinlocks),
                         (lib.LK_TOKEN, tokens(machine.base),
                          machine.config.ntokens)):
        for i in range(n):
            s = arr[i]
            if s.st_acquisitions == 0:
                continue
            tot_acq += s.st_acquisitions
            tot_cont += s.st_contended
            if s.st_contended:
                rows.append((s.st_wait_ns, lock_name(machine, kind, i),
                             s.st_acquisitions, s.st_contended,
                             s.st_wait_max_ns))
    rows.sort(reverse=True)
    lines = [f"locks: {tot_acq} acquisitions, {tot_cont} contended"]
    for wait, name, acq, cont, wmax in rows[:top]:
        lines.append(f"  {name:<20} acq {acq:>9} contended {cont:>7} "
                     f"wait {wait / 1e6:9.3f} ms (max {wmax / 1e3:.1f} us)")
    return "\n".join(lines)
