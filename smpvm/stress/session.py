"""One stress or race run, from its options to its Findings.

run(opts) is the whole of it: check the options and every path the run
will write, boot, start the threads, drive them (free-running, or on a
deterministic schedule), finish, collect, write the files the options name
and return the Findings.  Printing is findings.py's.  Ctrl-C, SIGTERM and
--seconds end a run the same way -- the machine shut down, the findings
collected and written -- and the exit code says what was found.  Nothing
outlives a run (the machine, its processes, the signal handlers), so an
in-process caller can make many in a row.

Watching a free run, once a second: the status line, the timeline, the
lockstat samples, the indefinite-wait watchdog, the no-progress hang and
--kill-cpu-at; every --check-every seconds, a stop-the-world invariant
check that never blocks that loop.  A thread that does not reach its safe
point within STOP_SECONDS is a stall, reported with what the host says of
its process (stopped by the host, gone), never an invariant violation.
"""
import contextlib
import dataclasses
import glob
import json
import os
import random
import re
import signal
import sys
import threading
import time

from smpvm import layout
from smpvm.errors import ConfigError, HostError, host_error_of
from smpvm.kern import ddb, sysctl
from smpvm.kern.kproc import Supervisor
from smpvm.kern.safepoint import (restart_the_world, stop_request, unparked,
                                  world_stopped)
from smpvm.layout import lib, threads
from smpvm.race import forensics, report, sched
from smpvm.stress import outputs
from smpvm.stress.findings import Findings
from smpvm.stress.options import option_error, swarm
from smpvm.stress.status import StatusLine, stress_fields
from smpvm.stress.workloads import stress_worker, workload_counters
from smpvm.vm.bugs import wrong_bytes_cause
from smpvm.vm.vm_init import boot_machine, start_kernel_threads, vm_shutdown
from smpvm.vm.vm_invariants import check_all
from smpvm.vm.vm_meter import cleaning_findings, swapcache_status
from smpvm.vm.vmview import vmview

HANG_SECONDS = 30       # no operation completed for this long: a hang
STUCK_SECONDS = 10      # a schedule took no step for this long: a thread
#                         loops (or waits on the host) without a preemption
#                         point -- a hang, named at the step it stopped at
STOP_SECONDS = 10.0     # not at a safe point by then: a stall
CHECK_SHARE = 10        # invariant checks stop the world <= 1/10 of a run
WAKE = (lib.IDENT_SWAPCACHE, lib.IDENT_PAGEDAEMON)


def run(opts, out=None, probe=None, stop=None):
    """Run one stress or race run of opts (StressOptions); return its
    Findings (findings.exit is the exit code).  ConfigError before
    anything starts for bad options or an output path that cannot be
    written; the host failing the run is the findings' host_error.
    probe(machine), if given, is called once every thread is gone, before
    the machine is destroyed; what it returns is findings.probe (smpvm
    history measures the kernel's state with it).
    stop: a callable polled while the run goes on (every 50 ms); when it
    returns true the run ends as if its time were up (ended "stopped"):
    a hunt's deadline, or another run's finding."""
    opts.validate()
    if opts.swarm:
        opts = swarm(opts)
    outputs.check(opts)
    s = Session(opts, out or sys.stdout, stop)
    s.probe = probe
    with interruptible(s):
        try:
            s.boot()
            try:
                s.start()
                if opts.sched != "off":
                    s.drive_scheduled()
                else:
                    s.drive_free()
                s.finish()
                s.collect()
            finally:
                s.teardown()
        except (HostError, OSError) as e:
            he = e if isinstance(e, HostError) else host_error_of(e)
            if he is None:
                raise
            s.findings.host_error, s.findings.ended = str(he), "host error"
    return outputs.write(s.findings)


@contextlib.contextmanager
def interruptible(session):
    """Ctrl-C and SIGTERM end the session the way its time limit does: the
    first sets session.interrupted (the run ends at its next poll and keeps
    its findings); a second raises KeyboardInterrupt (teardown still runs).
    The previous handlers come back at the end (main thread only: signals
    go nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if session.interrupted:
            raise KeyboardInterrupt
        session.interrupted = signal.Signals(signum).name

    old = {sig: signal.signal(sig, handler)
           for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


class Session:
    """The phases of one run: boot, start, drive_free or drive_scheduled,
    finish, collect, teardown.  self.findings fills as it goes."""

    def __init__(self, opts, out, stop=None):
        self.opts = opts
        self.stop = stop or (lambda: False)
        self.status = None if opts.quiet else StatusLine(out)
        self.findings = Findings(options=opts)
        self.interrupted = ""           # the signal's name, once one came
        self.machine = self.sup = self.check = self.watchdog = None
        self.kthreads, self.cpus, self.samples = {}, [], []
        self.t0 = time.monotonic()
        self.killed = False             # --kill-cpu-at did its kill
        self.probe = None

    def say(self, text):
        if self.status:
            self.status.message(text)

    def _interrupted(self):
        return bool(self.interrupted) or bool(self.stop())

    def _ended_early(self):
        """How a run that _interrupted() ended: the user's signal, or the
        caller's stop."""
        return "interrupted" if self.interrupted else "stopped"

    # ---- phases -----------------------------------------------------------
    def boot(self):
        """The machine, with the kernel variant, the bug on purpose, the
        stress sysctl profile and the SSD faults given to vm_boot, then the
        --sysctl settings (as sysctl.conf is read at boot)."""
        o = self.opts
        try:
            machine = boot_machine(o.machine_config(), o.kernel, "stress",
                             o.bug_bits(), o.faults())
        except ConfigError as e:
            raise option_error(e) from None
        self.machine = machine
        self.findings.machine = machine.name
        try:
            for name, value in o.sysctls:
                sysctl.sysctl_set(machine, name, str(value))
        except BaseException:
            # a setting this version refuses: the machine goes now (the
            # janitor would say its creator died, a second line)
            self.machine = None
            machine.destroy()
            raise
        if o.lockstat_dir:
            machine.hdr.prof_enabled = 1

    def start(self):
        o, machine = self.opts, self.machine
        self.t0 = time.monotonic()
        self.sup = Supervisor(machine)
        self.kthreads = start_kernel_threads(self.sup)
        self.cpus = self.sup.start_cpus(stress_worker, o.seed, o.mix,
                                        o.files, o.file_pages, None,
                                        o.gap_scale)
        self.watchdog = forensics.Watchdog(machine)
        self.check = InvariantCheck(machine, self.kthreads.get("swapcached"),
                                    self.findings, self.say)
        self.say(f"smpvm {o.command}: {machine.name}, {o.cpus} cpus, kernel "
                 f"{o.kernel}, seed {o.seed}"
                 + (f", bug {o.bug}" if o.bug else "")
                 + (f", {o.sched} schedule" if o.sched != "off" else ""))

    def drive_free(self):
        """Until --seconds, an interruption, a panic, a hang or a stall (or
        the first finding, with --stop-on-detection)."""
        o, f = self.opts, self.findings
        end = self.t0 + o.seconds
        next_tick, next_check = self.t0 + 1.0, self.t0 + o.check_every
        self.last_ops, self.last_t = 0, self.t0
        self.last_progress = self.t0
        while True:
            now = time.monotonic()
            if self._interrupted() or now >= end:
                f.ended = self._ended_early() if self._interrupted() \
                    else "time"
                return
            horizon = min(end, next_tick, now + 0.05 if self.check.active
                          else next_check)
            if o.stop_on_detection:
                horizon = min(horizon, now + 0.25)
            outcome = self.sup.wait(max(0.0, horizon - now),
                                    until=self._interrupted)
            if outcome == "panic":
                return self._panicked()
            if outcome == "exited":     # every thread ended by itself
                f.ended = "exited"
                return
            now = time.monotonic()
            if self.check.active:
                if self.check.poll():
                    # a check stops the world for O(npages) (about 1.5 s
                    # on a 1 GiB machine): never more than 1/CHECK_SHARE
                    # of the run, whatever --check-every asks
                    next_check = time.monotonic() + max(
                        o.check_every, CHECK_SHARE * self.check.last_cost)
            elif now >= next_check:
                self.check.start()
            if now >= next_tick:
                next_tick = now + 1.0
                if self.tick(now):
                    return
            if self.detected(now) and o.stop_on_detection:
                f.ended = "detection"
                return

    def drive_scheduled(self):
        """The scheduler alone drives the threads (the host runs no kernel
        code meanwhile) and asks for shutdown at --steps; wait for every
        thread to exit (--seconds x 10 is only a wall-clock safety limit),
        then check the invariants of the quiet machine.  An interrupted
        schedule is killed: its machine is not checked."""
        o, f, machine, sup = self.opts, self.findings, self.machine, self.sup
        limit = max(o.seconds, 1.0) * 10
        progress = {"step": -1, "since": time.monotonic()}

        def stuck():
            now, step = time.monotonic(), sched.steps(machine)
            if step != progress["step"]:
                progress.update(step=step, since=now)
            return now - progress["since"] > STUCK_SECONDS

        outcome = sup.wait(limit, until=lambda: self._interrupted() or
                           stuck())
        if outcome == "interrupted" and not self._interrupted():
            self._hang(f"the schedule took no step for {STUCK_SECONDS} s "
                       f"of wall time (at step {progress['step']}): a "
                       "thread runs without reaching a preemption point")
            sup.kill_all()
        elif outcome == "interrupted":
            f.ended = self._ended_early()
            sup.kill_all()
        elif outcome == "timeout":
            self._hang(f"the schedule did not finish within {limit:g} s of "
                       f"wall time (step {sched.steps(machine)})")
            sup.shutdown()
        elif outcome == "panic":
            self._panicked()
        else:
            st = sched.sched_state(machine)
            f.ended = "detection" if st.found else "steps"
            self.detected(time.monotonic())
            bad = check_all(machine, None)            # every thread has exited
            f.invariant_checks += 1
            f.violations += [f"final check: {b}" for b in bad[:50]]

    def finish(self):
        """A free run still up: cancel a check in progress, check the
        invariants a last time and shut down in order (a run ended by a
        panic, hang or stall is torn down as it is)."""
        if self.opts.sched != "off":
            return
        self.check.cancel()
        if self.findings.ended in ("panic", "hang", "stall"):
            return
        self.check.final()
        self.sup.shutdown(hooks=[vm_shutdown])
        if self.machine.panicked:
            self.sup.collect_panic()
            self._panicked()

    def collect(self):
        """The findings, read from the segment once every thread is gone."""
        o, f, machine = self.opts, self.findings, self.machine
        self.sup.kill_all()             # reaps (none is left after shutdown)
        f.seconds = round(time.monotonic() - self.t0, 2)
        f.workload = w = workload_counters(machine)
        f.swapcache = st = swapcache_status(machine)
        self._cleaning(st)
        f.failures = _failures(machine)
        f.metrics = {
            "ops_per_second": round(w["ops"] / max(f.seconds, 0.01), 1),
            "hit_ratio": round(w["ssd_pages"] / max(1, w["pages_read"]), 4),
            "ssd_mb_written": round(st["swap_writes"]["pages"]
                                    * lib.PAGE_SIZE / 1e6, 2),
            "cleaning_passes": st["cleaning_passes"],
            "faults_injected": int(vmview(machine).raw.vmg.faults.injected),
        }
        f.locks = ddb.lock_summary(machine)
        f.races = report.reports(machine)
        f.race_summary = report.summary(machine)
        f.coverage = report.coverage(machine)
        td = threads(machine.base)
        f.metrics["noise_delays"] = sum(
            int(td[i].n_noise) for i in range(machine.config.maxthreads))
        if o.sched != "off":
            self._collect_schedule()
        if o.lockstat_dir:
            from smpvm.prof import lockstat
            f.lockstat = (lockstat.snapshot(machine), self.samples)
        if self.probe is not None:
            f.probe = self.probe(machine)

    def teardown(self):
        if self.status:
            self.status.close()
        if self.sup is not None:
            self.sup.kill_all()
        if self.machine is not None:
            self.machine.destroy()

    # ---- watching ---------------------------------------------------------
    def tick(self, now):
        """Once a second: the status line, the timeline, a lockstat sample,
        the watchdog, the no-progress hang, --kill-cpu-at.  True when the
        run must end."""
        o, f, machine = self.opts, self.findings, self.machine
        w, st = workload_counters(machine), swapcache_status(machine)
        dt = now - self.last_t
        ops_s = (w["ops"] - self.last_ops) / dt if dt > 0 else 0.0
        if w["ops"] != self.last_ops:
            self.last_progress = now
        self.last_ops, self.last_t = w["ops"], now
        if self.status:
            self.status.show(stress_fields(now - self.t0, ops_s, w, st,
                                           self.check.active))
        if o.lockstat_dir:
            from smpvm.prof import lockstat
            self.samples.append((now, lockstat.class_waits(
                lockstat.snapshot(machine))))
        self._cleaning(st)
        f.timeline.append({"t": round(now - self.t0, 2), "ops": w["ops"],
                           "curburst": st["curburst"], "state": st["state"],
                           "cache_use": st["swap"]["cache_use"],
                           "write_count": st["write_count"]})
        if now - self.last_progress > HANG_SECONDS:
            return self._hang(f"no operation completed for {HANG_SECONDS} s")
        for event, text in self.watchdog.poll():
            if event == "host":
                self.say(text)
            elif event == "warn":
                f.waits.append(text)
                self.say(text)
            elif event == "backtrace":
                f.forensics = text
            elif event == "stall":
                return self._stall(text)
            elif event == "hang":
                f.hang, f.ended = text, "hang"
                return True
        if o.kill_cpu_at and not self.killed and \
                now - self.t0 >= o.kill_cpu_at:
            self.killed = True
            victim = self.cpus[random.Random(o.seed).randrange(
                len(self.cpus))]
            os.kill(self.sup.procs[victim].pid, signal.SIGKILL)
        return False

    def detected(self, now):
        """Note when the first race report, wrong byte and invariant
        violation (or indefinite wait) appear; True once anything was
        found."""
        f, machine, t = self.findings, self.machine, round(now - self.t0, 2)
        rs = report.race_globals(machine)
        if rs is not None and rs.nreports:
            f.first.setdefault("report", t)
        w = workload_counters(machine)
        if w["failures"] or w["zero_fills"]:
            f.first.setdefault("failure", t)
        if f.violations or f.waits:
            f.first.setdefault("violation", t)
        if f.cleaning:
            f.first.setdefault("cleaning", t)
        return bool(f.first)

    def _cleaning(self, status):
        """Record what the cleaning meter newly shows (its cost against the
        budget, its liveness), the first time it shows it."""
        f = self.findings
        seen = {_kind(c) for c in f.cleaning}
        for c in cleaning_findings(status):
            if _kind(c) not in seen:
                f.cleaning.append(c)
                seen.add(_kind(c))
                self.say("cleaning: " + c)

    def _stall(self, text):
        self.findings.stalls.append(text)
        self.findings.ended = "stall"
        self.say("stall: " + text)
        return True

    def _hang(self, what):
        """A hang -- or, when the host stopped one of the threads, a stall:
        the host's doing, not the kernel's."""
        machine = self.machine
        stalled = forensics.stall_text(machine)
        if stalled:
            return self._stall(f"{what}: {stalled}")
        self.findings.hang = what + "\n" + forensics.hang_report(machine)
        self.findings.ended = "hang"
        forensics.dump_stacks(machine)
        return True

    def _panicked(self):
        """After the supervisor saw the panic (its report is ready)."""
        f, machine = self.findings, self.machine
        if machine.host_panic:
            f.host_error, f.ended = self.sup.report, "host error"
        else:
            f.panic, f.ended = self.sup.report, "panic"
            f.forensics = forensics.hang_report(machine)
            if self.sup.signalled and not self.killed:
                # a signal from outside the run (a user, the OOM killer):
                # no replay of this run sends it again
                f.unreplayable = (f"{self.sup.signalled} was killed from "
                                  "outside the run")

    def _collect_schedule(self):
        o, f, machine = self.opts, self.findings, self.machine
        f.schedule = dataclasses.asdict(sched.recorded_schedule(machine))
        f.sched = sched.summary(machine)
        if o.sched == "pct":
            # PCT's guarantee for a bug of depth d, with n threads
            # scheduled and k steps: 1 / (n k^(d-1)) per run
            n = o.cpus + len(self.kthreads)
            f.sched["pct_bound"] = sched.pct_bound(n, o.steps, o.pct_depth)
            f.sched["pct_n_k_d"] = (n, o.steps, o.pct_depth)
        f.panic_tid = int(machine.hdr.panic_tid) if machine.panicked else -1
        names = _thread_names(machine)
        if f.panic or f.hang:
            f.sched_ring = [
                f"{e.step:>8} {names.get(e.tid, e.tid):>10} "
                + forensics.event_text(
                    machine, sched.OP_NAMES.get(e.op, str(e.op)), e.id)
                for e in sched.trace_ring(machine)[-40:]]
        if o.trace:
            f.trace = [(e.step, e.tid, forensics.event_text(
                machine, sched.OP_NAMES.get(e.op, str(e.op)), e.id))
                for e in sched.trace(machine)]
            f.thread_names = names


class InvariantCheck:
    """A stop-the-world invariant check that never blocks the run's loop:
    start() asks every thread to park at its safe point; poll(), called
    every 50 ms, checks once all are parked and lets them go -- or, after
    STOP_SECONDS, lets them go and reports the threads that did not park,
    with what the host says of their processes, as a stall."""

    def __init__(self, machine, swapcached, findings, say):
        self.machine, self.swapcached = machine, swapcached
        self.findings, self.say = findings, say
        self.since = None
        self.last = []          # the last check's violations
        self.last_cost = 0.0    # seconds the last check stopped the world

    @property
    def active(self):
        return self.since is not None

    def start(self):
        stop_request(self.machine, WAKE)
        self.since = time.monotonic()

    def cancel(self):
        if self.active:
            restart_the_world(self.machine)
            self.since = None

    def poll(self):
        """True when this check is over (checked, stalled or abandoned)."""
        machine, f = self.machine, self.findings
        if machine.panicked or machine.shutting_down():
            self.cancel()
            return True
        if world_stopped(machine, WAKE):
            try:
                bad = self.last = check_all(machine, self.swapcached)
            finally:
                restart_the_world(machine)
                self.last_cost = time.monotonic() - self.since
                self.since = None
            f.invariant_checks += 1
            f.violations += [f"check {f.invariant_checks}: {b}"
                             for b in bad[:50]]
            return True
        if time.monotonic() - self.since < STOP_SECONDS:
            return False
        text = self._laggards()
        self.cancel()
        f.stalls.append(text)
        self.say("stall: " + text)
        return True

    def final(self):
        """One check now, waiting for it (at most STOP_SECONDS)."""
        self.start()
        while not self.poll():
            time.sleep(0.005)

    def _laggards(self):
        """Who did not park, and why: the threads the host stopped (the
        others most likely wait behind them), else what each one does."""
        rows = {r["tid"]: r for r in ddb.thread_rows(self.machine)}
        late = [rows[t] for t in unparked(self.machine) if t in rows]
        held = [r for r in late if r["host"]]
        out = [f"{r['name']} (pid {r['pid']}) did not reach a safe point in "
               f"{STOP_SECONDS:g} s: " + (r["host"] or (
                   f"it is {r['state']}" + (f" ({r['waiting']})"
                                            if r["waiting"] else "")))
               for r in (held or late)]
        if held and len(late) > len(held):
            out.append(f"{len(late) - len(held)} other thread(s) waiting "
                       "behind it")
        return "; ".join(out) or "the world did not stop"


def check_running(machine):
    """`smpvm check`: stop a running machine's world at safe points (from
    outside it), check its invariants, let it go.  Returns (violations,
    stall): stall is '' or the threads that did not reach a safe point."""
    lib.smpvm_bind(machine.base, -1)    # wakeups need the machine bound
    td = threads(machine.base)
    swapcached = next((i for i in range(machine.config.maxthreads)
                       if td[i].state != lib.TDS_FREE and
                       layout.cstr(td[i].name) == "swapcached"), None)
    f = Findings(options=None)
    check = InvariantCheck(machine, swapcached, f, lambda text: None)
    check.final()
    return check.last, "; ".join(f.stalls)


def _kind(finding):
    """A cleaning finding's kind, its words before the first number (the
    numbers grow as a run goes on: one finding of each kind is enough)."""
    return re.split(r"\d", finding, 1)[0]


def _thread_names(machine):
    td = threads(machine.base)
    return {i: layout.cstr(td[i].name)
            for i in range(machine.config.maxthreads)
            if td[i].name[0] != b"\0"}


def _failures(machine):
    """The wrong bytes the CPUs recorded (a torn last line is skipped: the
    disk may have filled), each named by the kernel's defect that leaves
    its shape, if the kernel has one."""
    bits = int(vmview(machine).raw.vmg.bugs)
    out = []
    for path in sorted(glob.glob(os.path.join(machine.datadir, "failures",
                                              "*.jsonl"))):
        with open(path) as fp:
            for line in fp:
                try:
                    x = json.loads(line)
                except ValueError:
                    continue
                x["cause"] = wrong_bytes_cause(bits, x.get("shape", ""))
                out.append(x)
    return out
