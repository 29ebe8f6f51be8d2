"""`smpvm boot`: create a machine and run it -- pagedaemon, swapcached and
a workload on every CPU -- until Ctrl-C, SIGTERM or --seconds, then shut it
down and print its swapcache status and lock summary.

While it runs, the indefinite-wait watchdog (the same as a stress run's)
says on stderr when a thread waits on something only another thread can
end, and when the host stops a thread's process; at debug.spin_panic_ms
the run ends: a hang (exit 3), or a stall when the host holds a thread
stopped (exit 4).
"""
import sys
import time

from smpvm.errors import HostError, host_error_of
from smpvm.kern import ddb
from smpvm.kern.idle import cpu_idle_loop, lock_exercise_loop
from smpvm.kern.kproc import Supervisor
from smpvm.race.forensics import Watchdog
from smpvm.stress.findings import EXIT_FOUND, EXIT_HOST, EXIT_OK, EXIT_PANIC
from smpvm.stress.session import interruptible
from smpvm.stress.workloads import files_workload, workload_counters
from smpvm.vm.vm_init import boot_machine, start_kernel_threads, vm_shutdown
from smpvm.vm.vm_meter import format_status, swapcache_status

WORKLOADS = {"files": files_workload, "locks": lock_exercise_loop,
             "idle": cpu_idle_loop}


class _State:
    interrupted = ""


def boot(cfg, kernel="fixed", sysctls="demo", workload="files",
         seconds=None, quiet=False, out=None, err=None):
    """Run a machine of cfg (a validated MachineConfig); returns the exit
    code.  The machine's name is the first line on out."""
    out, err = out or sys.stdout, err or sys.stderr
    state = _State()
    with interruptible(state):
        try:
            machine = boot_machine(cfg, kernel, sysctls)
        except OSError as e:
            raise host_error_of(e) or e
        sup = Supervisor(machine)
        try:
            start_kernel_threads(sup)
            if workload == "files":
                # per CPU: enough files that the working set exceeds memory
                per_cpu = max(4, 2 * cfg.npages // (cfg.ncpus * 256))
                sup.start_cpus(files_workload, per_cpu, 256)
            else:
                sup.start_cpus(WORKLOADS[workload])
            print(machine.name, file=out, flush=True)
            outcome, text = _watch(machine, sup, seconds, state, err)
            if outcome not in ("panic", "hang", "stall"):
                sup.shutdown(hooks=[vm_shutdown])
                if machine.panicked:
                    outcome = sup.collect_panic()
            if outcome == "panic":
                if machine.host_panic:
                    raise HostError(sup.report)
                err.write(sup.report + "\n")
                return EXIT_PANIC
            if outcome in ("hang", "stall"):
                err.write(f"{outcome.upper()}: {text}\n")
                return EXIT_PANIC if outcome == "hang" else EXIT_HOST
            w = workload_counters(machine)
            if not quiet:
                print(f"{machine.name}: {outcome}, shut down cleanly",
                      file=out)
                print(format_status(swapcache_status(machine)), file=out)
                if workload == "files":
                    print("workload   " + ", ".join(
                        f"{k} {v}" for k, v in w.items()), file=out)
                print(ddb.lock_summary(machine), file=out, flush=True)
            return EXIT_FOUND if w["failures"] or w["zero_fills"] \
                else EXIT_OK
        finally:
            sup.kill_all()
            machine.destroy()


def _watch(machine, sup, seconds, state, err):
    """Supervise until seconds pass ('timeout'), an interruption, a panic,
    or the watchdog's end ('hang', 'stall'): (outcome, text)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    dog = Watchdog(machine)
    while True:
        step = 1.0 if deadline is None else \
            min(1.0, max(0.0, deadline - time.monotonic()))
        outcome = sup.wait(step, until=lambda: bool(state.interrupted))
        if outcome == "interrupted" or (outcome == "exited"):
            return outcome, ""
        if outcome == "panic":
            return outcome, ""
        for event, text in dog.poll():
            if event in ("host", "warn"):
                err.write(text + "\n")
                err.flush()
            elif event in ("hang", "stall"):
                return event, text
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout", ""
