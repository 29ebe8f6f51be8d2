"""Create, attach and destroy one machine: a named POSIX shared-memory segment
(mode 0600, exclusive create) plus a private data directory.

Leak-proofing, by exit path:
  * normal exit, exception, Ctrl-C: Machine.destroy() runs from the context
    manager / finally, and unlinks the segment and removes the data directory;
  * a CPU process killed: the supervisor (kern/kproc.py) notices and destroys;
  * the creating process killed (even by SIGKILL): a janitor process forked at
    creation waits for EOF on a pipe whose only write end the creator holds;
    the kernel closes it when the creator dies, and the janitor unlinks the
    segment and removes the data directory.  CPU processes die with their
    parent (PR_SET_PDEATHSIG), so nothing keeps running;
  * the janitor killed too: the next create and `smpvm clean` sweep names
    whose creator pid is dead (names are smpvm-<creator pid>-<random>).
No SysV object and no named semaphore is used: waits are futexes inside the
segment, which vanish with it.

The host is asked first: a machine larger than /dev/shm's free space or the
memory available is refused with the sizes, and the segment's pages are
allocated (fallocate) before anything touches them, so a full /dev/shm is an
error, never a SIGBUS.  The name's second part is random, so another user
cannot squat the names smpvm will pick; a taken name is skipped.
"""
import mmap
import os
import re
import resource
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import time

import posix_ipc

from smpvm import layout
from smpvm.config import SCHED_STRATEGIES, MachineConfig
from smpvm.errors import AttachError, ConfigError, HostError
from smpvm.layout import ffi, lib

SHM_DIR = "/dev/shm"
NAME_PREFIX = "smpvm-"
NAME_RE = re.compile(r"^smpvm-(\d+)-([0-9a-f]{1,16})$")
DATADIR_RE = re.compile(r"^smpvm-(\d+)-([0-9a-f]{1,16})-")
NAME_TRIES = 16             # taken names skipped before giving up

# write ends of janitor pipes held by this process; fork children close them
janitor_fds = set()


def new_name():
    """A fresh machine name: smpvm-<this pid>-<8 random hex digits>."""
    return f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


def check_name(name, given_as="-m "):
    """name, if it is a machine name (smpvm-PID-ID); AttachError naming
    where it was given (-m, $SMPVM_MACHINE) if not."""
    name = name.lstrip("/")
    if not NAME_RE.match(name):
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise AttachError(f"{given_as}{shown!r}: not a machine name (names "
                          "look like smpvm-PID-ID; `smpvm ps` lists them)")
    return name


def format_size(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else \
                f"{n:.1f} {unit}"
        n /= 1024


def _mem_available():
    """Bytes of memory the host can still give (MemAvailable + SwapFree),
    or None when /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return sum(int(info[k].split()[0]) * 1024
                   for k in ("MemAvailable", "SwapFree"))
    except (OSError, KeyError, ValueError):
        return None


def check_fits(size, swap_bytes=0):
    """Refuse a segment of size bytes that /dev/shm or memory cannot hold,
    or a segment or SSD file of swap_bytes over the file size limit
    (ConfigError with the sizes), before anything is created."""
    st = os.statvfs(SHM_DIR)
    shm_free = st.f_bavail * st.f_frsize
    mem = _mem_available()
    if size > shm_free or (mem is not None and size > mem):
        raise ConfigError(
            f"a machine of {format_size(size)} does not fit: {SHM_DIR} has "
            f"{format_size(shm_free)} free"
            + (f" and the host {format_size(mem)} of memory available"
               if mem is not None else "")
            + " (make --npages smaller)")
    # a segment is a file of /dev/shm: the file size limit (ulimit -f)
    # bounds it too, and posix_ipc would only say "The size is too large"
    fsize, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if fsize != resource.RLIM_INFINITY and size > fsize:
        raise ConfigError(
            f"a machine of {format_size(size)} does not fit: the file size "
            f"limit (ulimit -f) is {format_size(fsize)} (make --npages "
            "smaller or raise the limit)")
    if fsize != resource.RLIM_INFINITY and swap_bytes > fsize:
        raise ConfigError(
            f"an SSD file of {format_size(swap_bytes)} does not fit: the "
            f"file size limit (ulimit -f) is {format_size(fsize)} (make "
            "--nswap smaller or raise the limit)")


def _posix_name(name):
    return "/" + name.lstrip("/")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Machine:
    """One machine, created by this process or attached by name.

    The object keeps the mapping alive: cdata pointers into the segment
    (base, hdr) are valid exactly as long as the Machine is open.
    """

    def __init__(self, name, mm, creator):
        self.name = name
        self._mm = mm
        self._buf = ffi.from_buffer(mm)
        self.base = ffi.cast("char *", self._buf)
        self.hdr = layout.header(self.base)
        self.creator = creator
        self.janitor_pid = 0
        self.janitor_fd = -1
        self.closed = False
        self._views = []
        self._close_hooks = []

    # ---- creation -----------------------------------------------------------
    @classmethod
    def create(cls, config=None):
        """Create a machine from config (defaults if None) and return it.

        Sweeps this user's leftovers of dead creators first.  ConfigError
        for a machine the host cannot hold or a data directory that cannot
        be made; HostError when the host fails the creation.
        """
        cfg = (config or MachineConfig()).validate()
        sweep()
        proto = _layout(cfg)
        size = proto.segment_size
        check_fits(size, cfg.nswap * lib.PAGE_SIZE)
        name, shm = _create_segment(size)
        machine = datadir = None
        try:
            try:
                # the pages now, so that a full /dev/shm is ENOSPC here and
                # not a SIGBUS in smpvm_init
                os.posix_fallocate(shm.fd, 0, size)
                mm = mmap.mmap(shm.fd, size)
            except OSError as e:
                raise HostError(f"{SHM_DIR} cannot hold a machine of "
                                f"{format_size(size)}: {e.strerror}") \
                    from None
            finally:
                shm.close_fd()
            datadir = _make_datadir(name, cfg.datadir_base)
            machine = cls(name, mm, creator=True)
            ffi.memmove(machine.base, proto, ffi.sizeof("struct smpvm_header"))
            h = machine.hdr
            h.owner_uid = os.getuid()
            h.creator_pid = os.getpid()
            h.created_ns = time.time_ns()
            h.state = lib.MS_BOOTING
            h.name = name.encode()
            h.datadir = datadir.encode()
            # the janitor first: from here on a dying creator leaves nothing
            machine._start_janitor()
            _init_machine(machine, cfg)
            h.state = lib.MS_RUNNING
            return machine
        except BaseException:
            if machine is not None:
                machine.destroy()
            else:
                _unlink(name)
                if datadir:
                    shutil.rmtree(datadir, ignore_errors=True)
            raise

    def _start_janitor(self):
        r, w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _janitor_main(r, self.name, self.datadir, self.hdr)
        os.close(r)
        self.janitor_pid = pid
        self.janitor_fd = w
        janitor_fds.add(w)

    # ---- attaching ----------------------------------------------------------
    @classmethod
    def attach(cls, name):
        """Map an existing machine by name; AttachError if that is not sound."""
        name = check_name(name)
        try:
            shm = posix_ipc.SharedMemory(_posix_name(name))
        except posix_ipc.ExistentialError:
            raise AttachError(f"no machine named {name!r} "
                              "(`smpvm ps` lists running machines)") from None
        except posix_ipc.PermissionsError:
            raise AttachError(
                f"machine {name!r} belongs to another user") from None
        except (posix_ipc.Error, ValueError, OSError) as e:
            raise AttachError(f"machine {name!r} cannot be opened ({e})") \
                from None
        try:
            hsize = ffi.sizeof("struct smpvm_header")
            if shm.size < 16:
                raise AttachError(f"{name!r} is not an smpvm machine "
                                  f"(segment of {shm.size} bytes)")
            mm = mmap.mmap(shm.fd, shm.size)
        finally:
            shm.close_fd()
        machine = cls(name, mm, creator=False)
        h = machine.hdr
        try:
            if h.magic != lib.SMPVM_MAGIC:
                raise AttachError(f"{name!r} is not an smpvm machine "
                                  "(bad magic)")
            if h.layout_version != lib.SMPVM_LAYOUT_VERSION:
                raise AttachError(
                    f"machine {name!r} has layout version {h.layout_version};"
                    f" this smpvm speaks version {lib.SMPVM_LAYOUT_VERSION}")
            if h.header_size != hsize or h.segment_size != len(mm):
                raise AttachError(f"machine {name!r} has a header of "
                                  f"{h.header_size} bytes and a segment of "
                                  f"{len(mm)}; expected {hsize} and "
                                  f"{h.segment_size}")
            if h.owner_uid != os.getuid():
                raise AttachError(f"machine {name!r} belongs to uid "
                                  f"{h.owner_uid}, not {os.getuid()}")
            if h.state == lib.MS_DESTROYED:
                raise AttachError(f"machine {name!r} is being destroyed")
        except AttachError:
            machine.close()
            raise
        return machine

    # ---- state ----------------------------------------------------------------
    def on_close(self, fn):
        """Call fn() when this process closes the machine (per-process
        resources: cached descriptors of its files)."""
        self._close_hooks.append(fn)

    def view(self, reg):
        """A memoryview of region reg of the segment (page contents...)."""
        off = self.hdr.region_off[reg]
        v = memoryview(self._mm)[off:off + self.hdr.region_len[reg]]
        self._views.append(v)
        return v

    @property
    def datadir(self):
        return layout.cstr(self.hdr.datadir)

    @property
    def config(self):
        return self.hdr.cfg

    @property
    def state(self):
        return self.hdr.state

    @property
    def panicked(self):
        return self.hdr.panicking != 0

    @property
    def panicstr(self):
        return layout.cstr(self.hdr.panicstr)

    @property
    def host_panic(self):
        """Is the machine's panic the host's (a full disk: panic_host),
        not the kernel's?  The first panic sets it, as it sets panicstr."""
        return self.panicked and self.hdr.host_error != 0

    def creator_alive(self):
        return _pid_alive(self.hdr.creator_pid)

    def shutting_down(self):
        return self.hdr.shutdown != 0

    def request_shutdown(self):
        """Set the shutdown flag and wake every thread sleeping on it."""
        lib.atomic_set_int(ffi.addressof(self.hdr, "shutdown"), 1)
        lib.atomic_cmpset_int(ffi.addressof(self.hdr, "state"),
                              lib.MS_RUNNING, lib.MS_SHUTDOWN)
        if lib.smpvm_curtid() < 0:      # a process binds one machine at a time
            lib.smpvm_bind(self.base, -1)
        lib.wakeup(lib.IDENT_SHUTDOWN)

    def record_panic(self, msg):
        """Record msg as the machine's panic unless another came first.

        For the supervisor, which is not a thread of the machine and so must
        not take the C panic path (that signals the caller).
        """
        if lib.atomic_cmpset_int(ffi.addressof(self.hdr, "panicking"), 0, 1):
            self.hdr.panicstr = msg.encode()[:511]
            self.hdr.panic_tid = -1
            self.hdr.panic_pid = os.getpid()
            self.hdr.state = lib.MS_PANIC
            return True
        return False

    # ---- teardown -----------------------------------------------------------
    def close(self):
        """Unmap (the machine lives on unless we created and destroy it)."""
        if self.closed:
            return
        self.closed = True
        for fn in self._close_hooks:
            fn()
        self._close_hooks = []
        lib.smpvm_unbind(self.base)     # C must not keep a dangling base
        self.__dict__.pop("_vmview", None)
        for v in self._views:
            try:
                v.release()
            except BufferError:
                pass
        self._views = []
        del self.hdr
        del self.base
        ffi.release(self._buf)
        del self._buf
        try:
            self._mm.close()
        except BufferError:
            # cdata views still alive elsewhere: the mapping goes at exit
            pass

    def destroy(self):
        """Unlink the segment and remove the data directory (creator only).

        Idempotent.  Processes still attached keep their mapping until they
        exit; CPU processes must have been stopped first (the supervisor
        does that).
        """
        if self.closed:
            return
        if self.creator:
            self.hdr.state = lib.MS_DESTROYED
            _unlink(self.name)
            shutil.rmtree(self.datadir, ignore_errors=True)
            if self.janitor_fd >= 0:
                janitor_fds.discard(self.janitor_fd)
                os.close(self.janitor_fd)
                self.janitor_fd = -1
                try:
                    os.waitpid(self.janitor_pid, 0)
                except ChildProcessError:
                    pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.creator:
            self.destroy()
        else:
            self.close()
        return False

    def __repr__(self):
        return f"<Machine {self.name} {'creator' if self.creator else ''}>"


def _layout(cfg):
    """The header of a machine of cfg, with its sizes and offsets (C's
    smpvm_layout computes them)."""
    ccfg = ffi.new("struct smpvm_config *", {
        "ncpus": cfg.ncpus, "maxthreads": cfg.maxthreads,
        "npages": cfg.npages, "nobjects": cfg.nobjects,
        "nvnodes": cfg.nvnodes, "nswap": cfg.nswap, "nmeta": cfg.nmeta,
        "spin_pool": cfg.spin_pool, "token_pool": cfg.token_pool,
        "nsleepq": cfg.nsleepq, "hz": cfg.hz,
        "check": cfg.check_flags(), "check_sample": cfg.check_sample,
        "sched": int(cfg.sched.on), "sched_trace": cfg.sched.trace,
        "noise": 0 if cfg.sched.on else cfg.noise,
        "noise_seed": cfg.noise_seed})
    proto = ffi.new("struct smpvm_header *")
    if lib.smpvm_layout(ccfg, proto) != 0:
        raise AttachError(f"smpvm_layout refused the config {cfg}")
    return proto


def scratch_dir(what):
    """A private (0700) directory in $TMPDIR for a tool's own files
    (`what` names the tool), named as machines' data directories are, so
    that `smpvm clean` (sweep) removes it once this process is dead -- the
    one case its owner cannot: SIGKILL."""
    return tempfile.mkdtemp(
        prefix=f"{NAME_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{what}-")


def _make_datadir(name, base):
    """The machine's private data directory (mode 0700) in base or $TMPDIR;
    ConfigError if it cannot be made there."""
    try:
        return tempfile.mkdtemp(prefix=name + "-", dir=base or None)
    except OSError as e:
        where = base or tempfile.gettempdir()
        what = (f"cannot make the machine's data directory there "
                f"({e.strerror})")
        raise ConfigError(f"datadir_base={where!r}: {what}", "datadir_base",
                          where, what) from None


def _init_machine(machine, cfg):
    """Fill the rest of the header and let C initialise every region."""
    h = machine.hdr
    h.boot_mono_ns = lib.smpvm_nanotime()
    h.tsc_ns_q32 = lib.smpvm_tsc_calibrate(5)
    h.clock_mode = (lib.CLOCK_VIRTUAL if cfg.clock == "virtual"
                    else lib.CLOCK_WALL)
    h.clock_speedup = cfg.speedup
    _register_lock_classes(h)
    _set_kern_defaults(h)
    lib.smpvm_init(machine.base)
    if cfg.sched.on:
        _sched_configure(machine, cfg.sched)


def _register_lock_classes(h):
    """Lock classes: contiguous id ranges, named for reports."""
    named = h.cfg.spin_pool     # named spinlocks follow the pool
    classes = [("spin_pool", lib.LK_SPIN, 0, h.cfg.spin_pool),
               ("pq_free", lib.LK_SPIN, named + lib.PQ_FREE,
                lib.PQ_MAXL2_SIZE),
               # the seed uses pq_inactive[0], pq_active[0], pq_hold[0]
               # only; 027193eb61 fans them out to 256 locks each
               ("pq_inactive", lib.LK_SPIN, named + lib.PQ_INACTIVE,
                lib.PQ_MAXL2_SIZE),
               ("pq_active", lib.LK_SPIN, named + lib.PQ_ACTIVE,
                lib.PQ_MAXL2_SIZE),
               ("pq_cache", lib.LK_SPIN, named + lib.PQ_CACHE,
                lib.PQ_MAXL2_SIZE),
               ("pq_hold", lib.LK_SPIN, named + lib.PQ_HOLD,
                lib.PQ_MAXL2_SIZE),
               ("swap_zone", lib.LK_SPIN, named + lib.SPIN_NAMED_SWAPZONE, 1)]
    for tid in sorted(layout.GLOBAL_TOKENS):
        classes.append((layout.GLOBAL_TOKENS[tid], lib.LK_TOKEN, tid, 1))
    classes.append(("pool_token", lib.LK_TOKEN, lib.SMPVM_NGLOBAL_TOKENS,
                    h.cfg.token_pool))
    # page busy is a sleep lock for the witness (ids are page indices)
    classes.append(("page_busy", lib.LK_BUSY, 0,
                    h.cfg.npages + h.cfg.maxthreads
                    * lib.VM_MARKERS_PER_THREAD + lib.VM_STATIC_MARKERS))
    for i, (name, kind, first, count) in enumerate(classes):
        c = h.classes[i]
        c.name = name.encode()
        c.kind = kind
        c.first = first
        c.count = count
    h.nclasses = len(classes)


def _sched_configure(machine, sc):
    """Deterministic mode: strategy, seed, plans and forced choices into
    REG_SCHED (csrc/sched.c), before any thread exists."""
    if lib.sched_configure(machine.base, SCHED_STRATEGIES[sc.strategy],
                           sc.seed, sc.depth, sc.k, sc.bound, sc.max_steps,
                           sc.tick_steps, sc.flags) != 0:
        raise AttachError(f"sched_configure refused {sc}")
    if lib.sched_token_loss_rate(machine.base, sc.token_loss,
                                 int(sc.steer)) != 0:
        raise AttachError(f"sched_token_loss_rate refused {sc}")
    # (step, tid[, kind]) is anchored at the global step; (step, tid, kind,
    # at, tstep), as recorded, at thread at's tstep-th decision, which the
    # C side takes in (at, tstep) order, a token loss after the pick it
    # shares its anchor with
    for c in sorted(sc.schedule, key=lambda c: (
            c[3], c[4], c[2] == lib.SCHED_CH_TOKLOSS) if len(c) == 5
            else (lib.SCHED_AT_STEP, c[0], False)):
        step, tid = c[0], c[1]
        kind = c[2] if len(c) > 2 else lib.SCHED_CH_SWITCH
        at, tstep = (c[3], c[4]) if len(c) == 5 else (lib.SCHED_AT_STEP, 0)
        if lib.sched_force(machine.base, step, tid, kind, at, tstep) != 0:
            raise AttachError(f"sched_force refused choice {c}")


def _set_kern_defaults(h):
    k = h.kern
    k.lwkt_token_spin = lib.LWKT_TOKEN_SPIN
    k.lwkt_yield_switch = 1
    k.spin_yield_spins = lib.SPIN_YIELD_SPINS_DEFAULT
    k.spin_warn_ms = lib.SPIN_WARN_MS_DEFAULT
    k.spin_backtrace_ms = lib.SPIN_BACKTRACE_MS_DEFAULT
    k.spin_panic_ms = lib.SPIN_PANIC_MS_DEFAULT


def _create_segment(size):
    """Create a fresh segment of size bytes (mode 0600, exclusively),
    skipping names that are taken: (name, posix_ipc.SharedMemory)."""
    taken = []
    for _ in range(NAME_TRIES):
        name = new_name()
        try:
            return name, posix_ipc.SharedMemory(
                _posix_name(name), posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError:
            taken.append(name)
        except (posix_ipc.Error, OSError, ValueError) as e:
            raise HostError(f"{SHM_DIR}: cannot create {name}: {e}") \
                from None
    raise HostError(f"{SHM_DIR}: {len(taken)} fresh machine names were "
                    f"already taken (the last {taken[-1]}): another user "
                    "is holding names smpvm picks")


def _unlink(name):
    try:
        posix_ipc.unlink_shared_memory(_posix_name(name))
    except posix_ipc.ExistentialError:
        pass


def _janitor_main(rfd, name, datadir, hdr):
    """Forked at creation; cleans up if the creator dies without destroying."""
    try:
        os.setsid()                 # Ctrl-C goes to the creator, not here
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not the creator's
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        # drop every other inherited descriptor (test runners' pipes too)
        os.closerange(3, rfd)
        os.closerange(rfd + 1, 1 << 16)
        while os.read(rfd, 64):
            pass
        if hdr.state != lib.MS_DESTROYED:
            _unlink(name)
            shutil.rmtree(datadir, ignore_errors=True)
            os.write(2, f"smpvm: creator of {name} died; janitor removed "
                        "its segment and data directory\n".encode())
    finally:
        os._exit(0)


def list_machines():
    """Names of this user's machines in /dev/shm, with creator pid."""
    out = []
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return out
    uid = os.getuid()
    for e in sorted(entries):
        mo = NAME_RE.match(e)
        if not mo:
            continue
        try:
            st = os.lstat(os.path.join(SHM_DIR, e))
        except FileNotFoundError:
            continue
        if st.st_uid != uid or not stat.S_ISREG(st.st_mode):
            continue
        out.append((e, int(mo.group(1))))
    return out


def _own_dir(path, uid):
    """Is path a directory (never a symlink) owned by uid?"""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_uid == uid and stat.S_ISDIR(st.st_mode)


def _remove_dir(path, uid):
    """Remove this user's directory path (never through a symlink); True
    if it is gone afterwards and was there before."""
    if not _own_dir(path, uid):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def sweep(verbose=False):
    """Remove this user's segments and data directories whose creator is
    dead; never follows a symlink.  Returns exactly what was removed
    (names and paths)."""
    removed = []
    uid = os.getuid()
    for name, pid in list_machines():
        if _pid_alive(pid):
            continue
        try:
            machine = Machine.attach(name)
        except AttachError:
            machine = None
        if machine is not None:
            d = machine.datadir
            machine.close()
            if d and os.path.basename(d).startswith(name + "-") and \
                    _remove_dir(d, uid):
                removed.append(d)
        try:
            posix_ipc.unlink_shared_memory(_posix_name(name))
            removed.append(name)
        except posix_ipc.Error:
            pass
    base = tempfile.gettempdir()
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        entries = []
    for e in sorted(entries):
        mo = DATADIR_RE.match(e)
        if not mo or _pid_alive(int(mo.group(1))):
            continue
        p = os.path.join(base, e)
        if _remove_dir(p, uid):
            removed.append(p)
    if verbose:
        for r in removed:
            print(f"removed {r}")
    return removed
