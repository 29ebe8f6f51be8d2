"""curthread: this process as one thread of a machine.

A process is bound to at most one machine and plays at most one thread.  The
binding lives in the C layer (process-local pointers set by smpvm_bind), so
every lock operation is one cffi call with no Python bookkeeping.

Panics: the C layer records the panic in the machine and sends the calling
process SIGUSR2; the handler installed here raises Panic, which Python
delivers right after the C call returns.  SIGUSR1 dumps every Python stack
of the process (faulthandler): the spinlock code uses it to show the waiter
and the holder of a lock held too long.
"""
import contextlib
import faulthandler
import signal

from smpvm.errors import Panic, SmpvmError
from smpvm.layout import ffi, lib, threads

_bound = {"machine": None}


def _on_panic_signal(signum, frame):
    if lib.smpvm_panic_pending():
        m = _bound["machine"]
        raise Panic(m.panicstr if m is not None and not m.closed else "panic")


_SKIP_FILES = ("kern_synch.py", "vm_page.py", "lwkt_token.py", "spinlock.py")
_site_cache = {}


def _site_error(exc_type, exc, tb):
    """cffi's onerror of _site_fn.  A panic signalled while the lookup runs
    is delivered inside the callback, where cffi could only print it as a
    traceback: the panic is the machine's already (panicstr, reported by
    the supervisor), so it is dropped here quietly (site 0).  Anything else
    is printed as cffi would."""
    if exc_type is not None and issubclass(exc_type, Panic):
        return 0
    import traceback
    traceback.print_exception(exc_type, exc, tb)
    return None


@ffi.callback("smpvm_site_fn", onerror=_site_error)
def _site_fn(cfunc):
    """The call site of the Python code that called into C (file:line:
    function, plus the C function that took the lock): for the lock
    profiler, called on contended paths only (and by the race checkers'
    reports).  Its atomics are preemption points only for the race reports:
    C turns the hook off around the lock profiler's lookups.  Thin
    kernel-named wrappers are skipped so the site is the caller of the
    kernel function."""
    import os
    import sys
    import time
    t0 = time.perf_counter_ns()
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.endswith(_SKIP_FILES):
        f = f.f_back
    c = ffi.string(cfunc).decode() if cfunc != ffi.NULL else ""
    key = (f.f_code, f.f_lineno, c) if f is not None else ("?", 0, c)
    sid = _site_cache.get(key)
    if sid is None:
        text = (f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}:"
                f"{f.f_code.co_name}" if f is not None else "(no frame)")
        if c:
            text += f" > {c}"
        sid = lib.prof_site_intern(text.encode()[:119])
        _site_cache[key] = sid
    m = _bound["machine"]
    if m is not None and not m.closed:
        lib.atomic_fetchadd_long(ffi.addressof(m.hdr, "prof_calls"), 1)
        lib.atomic_fetchadd_long(ffi.addressof(m.hdr, "prof_ns"),
                                 time.perf_counter_ns() - t0)
    return sid


def install_signal_handlers():
    """SIGUSR2 -> Panic in this thread; SIGUSR1 -> dump Python stacks."""
    signal.signal(signal.SIGUSR2, _on_panic_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def thread_bind(machine, name, kind=lib.TDK_HOST, cpu=-1):
    """Take a free thread slot of machine and make this process that thread.

    Returns the tid.  Raises SmpvmError when every slot is in use.
    """
    tid = lib.smpvm_thread_alloc(machine.base, kind, cpu, name.encode())
    if tid < 0:
        raise SmpvmError(f"machine {machine.name}: all "
                         f"{machine.config.maxthreads} thread slots in use")
    thread_attach(machine, tid)
    return tid


def thread_attach(machine, tid):
    """Play the thread slot tid that was reserved for this process."""
    install_signal_handlers()
    lib.smpvm_set_site_fn(_site_fn)
    _site_cache.clear()                 # site ids belong to one machine
    if lib.smpvm_bind(machine.base, tid) != 0:
        raise SmpvmError(f"machine {machine.name}: bad thread id {tid}")
    _bound["machine"] = machine


def thread_exit():
    """End this thread.  It must hold no spinlock or token (else panic)."""
    lib.smpvm_thread_exit()
    _bound["machine"] = None


@contextlib.contextmanager
def bound_thread(machine, name="host", kind=lib.TDK_HOST, cpu=-1):
    """Run a block as a thread of machine (tests use this)."""
    tid = thread_bind(machine, name, kind, cpu)
    try:
        yield tid
    finally:
        if lib.smpvm_curtid() == tid:
            if machine.panicked:
                # a panicked thread may still hold locks: just let go
                lib.smpvm_bind(machine.base, -1)
                threads(machine.base)[tid].state = lib.TDS_FREE
            else:
                thread_exit()
        _bound["machine"] = None


def curthread():
    """This process's struct smpvm_thread (cdata), or None if unbound."""
    m = _bound["machine"]
    tid = lib.smpvm_curtid()
    if m is None or tid < 0:
        return None
    return threads(m.base) + tid


def curmachine():
    """The machine this process is a thread of (None if unbound)."""
    return _bound["machine"]


def panic(msg):
    """panic(msg): the kernel's panic.  Records msg, halts the machine and
    raises Panic in the caller."""
    lib.panic(str(msg).encode())
    # SIGUSR2 raised Panic on return from the C call; this is only reached
    # if the handler was not installed in this process
    raise Panic(str(msg))


__all__ = ["thread_bind", "thread_attach", "thread_exit", "bound_thread",
           "curthread", "panic", "install_signal_handlers", "ffi"]
