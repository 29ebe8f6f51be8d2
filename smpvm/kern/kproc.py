"""Kernel processes: CPU processes and kproc_start'ed kernel threads, each a
real OS process forked with multiprocess, and the supervisor that watches them.

The supervisor notices a dead child at once (process sentinels).  A child
that dies before the machine shuts down -- killed, crashed, or panicked --
is a panic: the report names the thread, how it died, the spinlocks and
tokens whose lock words still name it, and every thread's state.

A write the host refuses (a full disk under the data directory, a quota,
RLIMIT_FSIZE, a read-only or failing disk: errors.HOST_ERRNOS) stops the
machine the same way, but is marked as the host's (hdr.host_error): the
report says so and carries no traceback, and callers class it as a host
error, not as a kernel panic.
"""
import os
import signal
import sys
import time
import traceback

import multiprocess
import multiprocess.connection

from smpvm import machine as machine_mod
from smpvm.errors import HOST_ERRNOS, Panic, Shutdown, SmpvmError
from smpvm.kern import ddb
from smpvm.kern.thread import panic, thread_attach, thread_exit
from smpvm.layout import cstr, lib, threads

# fork: ~2 ms a process (spawn: ~50 ms) and the mapping is inherited
CTX = multiprocess.get_context("fork")
# a kernel process's own exit status after it panicked (not a CLI exit code)
CHILD_EXIT_PANIC = 70


def _thread_main(machine, tid, parent_pid, fn, args):
    """Entry of every kernel process.  Never returns (os._exit)."""
    code = 0
    try:
        lib.smpvm_set_pdeathsig(signal.SIGKILL)     # die with the supervisor
        if os.getppid() != parent_pid:
            os._exit(CHILD_EXIT_PANIC)
        for fd in list(machine_mod.janitor_fds):    # janitors must see EOF
            try:
                os.close(fd)
            except OSError:
                pass
        machine_mod.janitor_fds.clear()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        thread_attach(machine, tid)
        lib.smpvm_noise_attach()        # a noisy free run: its delays
        try:
            fn(machine, *args)
            thread_exit()
        except Shutdown:
            # abandoned mid-operation at shutdown: let go of the tokens the
            # operation held and end the thread (hands the turn on)
            lib.smpvm_thread_exit_shutdown()
        except Panic:
            code = CHILD_EXIT_PANIC
        except BaseException as e:  # a kernel thread may not die: panic
            code = CHILD_EXIT_PANIC
            name = cstr(threads(machine.base)[tid].name)
            try:
                if isinstance(e, OSError) and e.errno in HOST_ERRNOS:
                    lib.panic_host(f"{name}: the host refused a write under "
                                   f"{machine.datadir}: {e}".encode())
                    raise Panic(name)   # if SIGUSR2 did not raise it
                traceback.print_exc()
                panic(f"{name}: unhandled {type(e).__name__}: {e}")
            except Panic:
                pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Supervisor:
    """Starts and watches the kernel processes of one machine."""

    def __init__(self, machine):
        self.machine = machine
        self.procs = {}             # tid -> Process
        self._reaped = set()        # tids whose exit was looked at
        self.report = ""
        self.signalled = ""         # a child killed by a signal: its name
        if lib.smpvm_curtid() < 0:
            lib.smpvm_bind(machine.base, -1)

    def kproc_start(self, name, fn, *args, cpu=-1, kind=lib.TDK_KTHREAD):
        """Run fn(machine, *args) as kernel thread `name` in its own process.

        Returns the thread id.  fn must return when machine.shutting_down().
        """
        tid = lib.smpvm_thread_alloc(self.machine.base, kind, cpu,
                                     name.encode())
        if tid < 0:
            raise SmpvmError(
                f"machine {self.machine.name}: no free thread slot for {name}")
        lib.sched_expect(self.machine.base, tid)    # deterministic mode
        p = CTX.Process(target=_thread_main, name=name,
                        args=(self.machine, tid, os.getpid(), fn, args))
        p.start()
        self.procs[tid] = p
        return tid

    def start_cpus(self, fn, *args):
        """One CPU process per configured CPU, each running fn(machine, *args)."""
        return [self.kproc_start(f"cpu{c}", fn, *args, cpu=c, kind=lib.TDK_CPU)
                for c in range(self.machine.config.ncpus)]

    def sched_go(self):
        """Deterministic mode: every thread to schedule has been started;
        the schedule begins once they have all attached (wait() calls
        this).  A no-op otherwise."""
        lib.sched_go(self.machine.base)

    def live(self):
        return {tid: p for tid, p in self.procs.items() if p.exitcode is None}

    def wait(self, seconds=None, until=None):
        """Watch until `seconds` pass ('timeout'), every child has exited
        cleanly ('exited'), the machine panics ('panic'), or until() turns
        true ('interrupted'; polled every 50 ms).  A child that exits
        non-zero before shutdown is a panic."""
        deadline = None if seconds is None else time.monotonic() + seconds
        self.sched_go()
        while True:
            if self.machine.panicked:
                return self.collect_panic()
            for tid, p in self.procs.items():
                if tid in self._reaped or p.exitcode is None:
                    continue
                self._reaped.add(tid)
                if p.exitcode != 0 and not self.machine.shutting_down():
                    self._child_died(tid, p)
                    return self.collect_panic()
            live = self.live()
            if not live:
                return "exited"
            if until is not None and until():
                return "interrupted"
            timeout = 0.05
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return "timeout"
            multiprocess.connection.wait([p.sentinel for p in live.values()],
                                         timeout)

    def _child_died(self, tid, p):
        name = p.name
        if p.exitcode < 0:
            self.signalled = name
            how = f"killed by {signal.Signals(-p.exitcode).name}"
        else:
            how = f"exited with status {p.exitcode}"
        held = [ddb.lock_name(self.machine, k, i)
                for k, i in ddb.locks_owned_by(self.machine, tid)]
        msg = f"{name} (tid {tid}, pid {p.pid}) {how}"
        if held:
            msg += " holding " + ", ".join(held)
        self.machine.record_panic(msg)

    def collect_panic(self):
        """After the machine panicked: fill self.report (the panic message,
        who panicked, every thread) and return the outcome, 'panic'.  When
        the panic is the host's (Machine.host_panic) the report says so in
        one line and names no thread."""
        machine = self.machine
        if machine.host_panic:
            self.report = (f"{machine.panicstr} (machine {machine.name}: "
                           "the host, not the emulated kernel, failed the "
                           "run)")
            return "panic"
        self.report = (f"panic: {machine.panicstr}\n"
                       f"machine {machine.name}, panicking thread tid "
                       f"{machine.hdr.panic_tid} pid {machine.hdr.panic_pid}\n"
                       + ddb.format_threads(machine))
        return "panic"

    def shutdown(self, grace=3.0, hooks=()):
        """Ask every thread to stop, run the shutdown hooks (each
        hook(machine), as shutdown_pre_sync handlers), wait up to grace
        seconds, then kill.  Returns the tids that had to be killed."""
        self.machine.request_shutdown()
        for hook in hooks:
            hook(self.machine)
        deadline = time.monotonic() + grace
        for p in self.procs.values():
            p.join(max(0.0, deadline - time.monotonic()))
        return self.kill_all()

    def kill_all(self):
        """SIGKILL every child still running and reap them all."""
        killed = []
        for tid, p in self.procs.items():
            if p.exitcode is None:
                killed.append(tid)
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            p.join()
        return killed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill_all()
        return False
