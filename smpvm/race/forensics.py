"""Hang forensics: who waits on what, held by whom, for how long; the
wait-for graph and its cycles; `show locks` / `show tokens` per CPU; the
last events of each thread's trace ring.  Read from the segment by any
process (the supervisor, `smpvm ps`, a test), while the machine runs or
after it panicked.

An *indefinite* wait is one that nothing but another thread can end: a
spinlock, a token, a page busy, a tsleep without timeout.  The kernel warns
about them at 1 s, dumps backtraces at 11 s and panics at 60 s (smpvm's
debug.spin_warn_ms / spin_backtrace_ms / spin_panic_ms give the marks).
"""
import os
import signal

from smpvm.kern.ddb import (format_threads, host_state, host_stopped,
                            lock_name, locks_owned_by)
from smpvm.layout import cstr, ffi, lib, pages, spinlocks, threads, tokens
from smpvm.race.report import race_globals

HOOK_NAMES = {getattr(lib, n): n[5:].lower() for n in dir(lib)
              if n.startswith("HOOK_")}


def _page_of_ident(machine, ident):
    if ident < lib.KVA_PAGES:
        return -1
    m = (ident - lib.KVA_PAGES) // lib.KVA_PAGE_STRIDE
    npg = machine.config.npages + machine.config.maxthreads * \
        lib.VM_MARKERS_PER_THREAD + lib.VM_STATIC_MARKERS
    return m if m < npg else -1


def _busy_tid(machine, m):
    rg = race_globals(machine)
    if rg is None:
        return -1
    arr = ffi.cast("int32_t *", ffi.cast("char *", rg) + rg.off_busytid)
    return int(arr[m])


def waits(machine, now_ns=None):
    """One dict per waiting thread: what it waits on, who holds that (tids),
    for how long, and whether the wait is indefinite."""
    now = now_ns if now_ns is not None else lib.smpvm_nanotime()
    td = threads(machine.base)
    out = []
    for tid in range(machine.config.maxthreads):
        t = td[tid]
        if t.state in (lib.TDS_FREE, lib.TDS_RUNNING, lib.TDS_EXITED):
            continue
        w = {"tid": tid, "name": cstr(t.name), "cpu": int(t.cpu),
             "seconds": max(0, now - int(t.wait_start_ns)) / 1e9,
             "holders": [], "indefinite": True, "note": ""}
        if t.state == lib.TDS_SPINWAIT:
            lid = int(t.wait_id)
            w["kind"], w["on"] = "spin", lock_name(machine, lib.LK_SPIN, lid)
            h = int(spinlocks(machine.base)[lid].counta) - 1
            w["holders"] = [h] if h >= 0 else []
        elif t.state == lib.TDS_TOKWAIT:
            lid = int(t.wait_id)
            w["kind"], w["on"] = "token", lock_name(machine, lib.LK_TOKEN,
                                                     lid)
            h = int(tokens(machine.base)[lid].t_ref) - 1
            w["holders"] = [h] if h >= 0 else []
        elif t.state == lib.TDS_SLEEPING:
            ident = int(t.wchan)
            wmesg = cstr(t.wmesg)
            w["indefinite"] = t.timo == 0 and t.wake_tick == 0
            m = _page_of_ident(machine, ident)
            if m >= 0:
                pg = pages(machine.base)[m]
                w["kind"], w["on"] = "busy", f"page {m} ({wmesg})"
                b = _busy_tid(machine, m)
                if b >= 0:
                    w["holders"] = [b]
                busy = pg.flags & (lib.PG_BUSY | lib.PG_SBUSY)
                w["note"] = (f"flags {pg.flags:#x} busy {pg.busy} object "
                             f"{pg.object} pindex {pg.pindex}")
                if not busy:
                    w["note"] += ("; the page is not busy: its wakeup was "
                                  "lost (or is about to come)")
            else:
                w["kind"] = "sleep"
                w["on"] = f"tsleep '{wmesg}' on {ident:#x}" + (
                    f" timeout {t.timo} ticks" if t.timo else "")
        else:
            continue
        out.append(w)
    return out


def indefinite(machine, min_seconds):
    """The indefinite waits older than min_seconds."""
    return [w for w in waits(machine) if w["indefinite"]
            and w["seconds"] >= min_seconds]


def waitfor_cycles(ws):
    """Cycles of the wait-for graph (tid -> holder tid): deadlocks."""
    edges = {w["tid"]: w["holders"] for w in ws}
    cycles, seen = [], set()
    for start in edges:
        path, cur = [], start
        while cur in edges and cur not in path:
            path.append(cur)
            nxt = edges[cur]
            if not nxt:
                break
            cur = nxt[0]
        if cur in path:
            cyc = path[path.index(cur):]
            key = frozenset(cyc)
            if key not in seen:
                seen.add(key)
                cycles.append(cyc)
    return cycles


def trace_ring(machine, tid, last=12):
    """The last events of tid's trace ring (checked machines only)."""
    rg = race_globals(machine)
    if rg is None:
        return []
    rt = rg.thr[tid]
    n = min(int(rt.trace_pos), lib.RACE_TRACE_LEN)
    evs = []
    for k in range(int(rt.trace_pos) - n, int(rt.trace_pos)):
        e = rt.ring[k % lib.RACE_TRACE_LEN]
        evs.append((int(e.ns), HOOK_NAMES.get(e.op, str(e.op)), int(e.id)))
    return evs[-last:]


def event_text(machine, op, lid):
    """A trace event as text, naming the lock or page it concerns."""
    if op in ("spin_lock", "spin_unlock") and lid >= 0:
        return f"{op} {lock_name(machine, lib.LK_SPIN, lid)}"
    if op in ("token_get", "token_rel") and lid >= 0:
        return f"{op} {lock_name(machine, lib.LK_TOKEN, lid)}"
    if op in ("atomic", "wakeup") and lid >= 0:
        return f"{op} page {lid}"
    if op == "access" and 0 <= lid < lib.smpvm_nfields():
        f = lib.smpvm_field(lid)
        return f"access {cstr(f.sname)}.{cstr(f.name)}"
    return op


def hang_report(machine, min_seconds=0.0):
    """The forensics text: indefinite waits, the wait-for graph and its
    cycles, every thread's locks and tokens, and the trace rings."""
    ws = waits(machine)
    names = {w["tid"]: w["name"] for w in ws}
    td = threads(machine.base)
    lines = ["indefinite waits:"]
    long_ = [w for w in ws if w["indefinite"] and w["seconds"] >= min_seconds]
    for w in long_ or []:
        held = ", ".join(f"{cstr(td[h].name)} (tid {h})" for h in
                         w["holders"]) or "nobody known"
        lines.append(f"  {w['name']} (tid {w['tid']}, cpu {w['cpu']}) "
                     f"{w['kind']} wait on {w['on']} for "
                     f"{w['seconds']:.2f} s; held by {held}")
        if w["note"]:
            lines.append(f"      {w['note']}")
    if not long_:
        lines.append("  none")
    lines.append("wait-for graph: " + (", ".join(
        f"{w['tid']}->{h}" for w in ws for h in w["holders"]) or "no edges"))
    for cyc in waitfor_cycles(ws):
        lines.append("  DEADLOCK cycle: " + " -> ".join(
            f"{names.get(t, t)}" for t in cyc + cyc[:1]))
    lines.append("show locks / show tokens:")
    for tid in range(machine.config.maxthreads):
        t = td[tid]
        if t.state == lib.TDS_FREE:
            continue
        held = [lock_name(machine, k, i) for k, i in
                locks_owned_by(machine, tid)]
        stack = [lock_name(machine, lib.LK_TOKEN, t.td_toks[i])
                 for i in range(t.td_toks_stop)]
        lines.append(f"  {cstr(t.name)} (tid {tid}): holds "
                     f"{', '.join(held) or 'nothing'}; token stack "
                     f"{', '.join(stack) or 'empty'}")
        ring = trace_ring(machine, tid)
        if ring:
            t_end = ring[-1][0]
            lines.append("      last events: " + "; ".join(
                f"-{(t_end - ns) / 1e3:.0f}us {event_text(machine, op, i)}"
                for ns, op, i in ring))
    lines.append(format_threads(machine))
    return "\n".join(lines)


def stall_text(machine):
    """One line per thread the host stopped or lost, or '' if none."""
    return "\n".join(f"{name} (tid {tid}, pid {pid}) is {hs}"
                     for tid, name, pid, hs in host_stopped(machine))


def dump_stacks(machine):
    """Hang forensics: every thread process prints its Python stacks
    (faulthandler on SIGUSR1) to stderr."""
    td = threads(machine.base)
    for i in range(machine.config.maxthreads):
        if td[i].state != lib.TDS_FREE and td[i].pid > 0:
            try:
                os.kill(td[i].pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass


class Watchdog:
    """The kernel's marks for indefinite waits (spinlock, token, busy,
    tsleep without timeout), from the debug.spin_*_ms sysctls: a warning at
    the first, backtraces and forensics at the second, the end of the run
    at the third.  A wait that the host caused -- the holder's process is
    stopped (SIGSTOP, a debugger) -- is said to be the host's: its end is a
    stall, not a hang.  poll() once a second or so; it reads the segment
    only (the host runs no kernel code)."""

    def __init__(self, machine):
        self.machine = machine
        self.marks = {}         # (tid, kind, on) -> marks reached
        self.stopped = {}       # tid -> (name, pid, what the host says)

    def _held_by(self, w):
        td = threads(self.machine.base)
        out = []
        for h in w["holders"]:
            if 0 <= h < self.machine.config.maxthreads:
                hs = host_state(td[h].pid)
                out.append(f"{cstr(td[h].name)} (tid {h})"
                           + (f", {hs}" if hs else ""))
        return f"; held by {', '.join(out)}" if out else ""

    def poll(self):
        """[(event, text)]: ('host', one line) when the host stops a
        thread's process or lets it go again; for an indefinite wait
        ('warn', one line) at the first mark, ('backtrace', forensics) at
        the second (stacks dumped to stderr unless the host stopped a
        thread), then ('hang', report) or ('stall', report) at the third:
        the run must end."""
        machine = self.machine
        k = machine.hdr.kern
        warn_s, bt_s, end_s = (k.spin_warn_ms / 1e3,
                               k.spin_backtrace_ms / 1e3,
                               k.spin_panic_ms / 1e3)
        events = []
        now = {tid: (name, pid, hs) for tid, name, pid, hs in
               host_stopped(machine)}
        for tid, (name, pid, hs) in now.items():
            if self.stopped.get(tid) != (name, pid, hs):
                events.append(("host", f"{name} (tid {tid}, pid {pid}) is "
                                       f"{hs}"))
        for tid in set(self.stopped) - set(now):
            name, pid, _ = self.stopped[tid]
            events.append(("host", f"{name} (tid {tid}, pid {pid}) runs "
                                   "again"))
        self.stopped = now
        for w in indefinite(machine, warn_s):
            marks = self.marks.setdefault((w["tid"], w["kind"], w["on"]),
                                          set())
            if "warn" not in marks:
                marks.add("warn")
                events.append(("warn", (
                    f"indefinite wait: {w['name']} (tid {w['tid']}) "
                    f"{w['kind']} wait on {w['on']} for {w['seconds']:.1f} "
                    f"s{self._held_by(w)}")))
            stalled = stall_text(machine)
            if w["seconds"] >= bt_s and "backtrace" not in marks:
                marks.add("backtrace")
                if not stalled:
                    dump_stacks(machine)
                events.append(("backtrace", hang_report(machine, warn_s)))
            if end_s and w["seconds"] >= end_s:
                if stalled:
                    events.append(("stall", (
                        f"{w['name']} waited {w['seconds']:.1f} s on "
                        f"{w['on']} while the host held a thread "
                        f"stopped:\n{stalled}")))
                else:
                    events.append(("hang", (
                        f"indefinite wait for {w['seconds']:.1f} s\n"
                        + hang_report(machine, warn_s))))
                return events
        return events
