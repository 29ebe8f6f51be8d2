"""What CPU processes run in `smpvm stress` and `smpvm boot`.

stress_worker: a seeded, weighted mix of operations on this CPU's own
files (exact truth: one writer per file) and reads of other CPUs' files
(stamp sanity).  Every write is stamped (stamps.py), every read compared
with the truth at that moment; a mismatch is written as one JSON line to
<datadir>/failures/cpuN.jsonl with the file, offset, the expected and found
stamps, whether the read was served from the SSD, and this CPU's last ops
(an fsx-style op log).  The op sequence depends only on the seed and the
CPU, so the seed replays it (the interleaving is the host's).

Ops: read (random), seqread (whole file), write (write(2)), mmap (stores
through a mapping, sometimes msync), truncate (shrink, then sometimes grow
back), unlink (and recreate), chflags (cache/noscache, then reopen),
sysctl (flip vm.swapcache.* mid-run), meta (this CPU's slice of the VCHR
meta-data device), xread (another CPU's file: memory pressure and
cross-file integrity).
"""
import bisect
import collections
import itertools
import json
import os
import random

from smpvm.errors import Shutdown
from smpvm.kern import sysctl
from smpvm.kern.safepoint import safepoint
from smpvm.kern.thread import curthread
from smpvm.layout import ffi, lib
from smpvm.stress import stamps
from smpvm.vfs import syscalls as sc
from smpvm.vfs.vfs_bio import ReadStats
from smpvm.vfs.vnode import VfsError, vn_meta

PAGE = lib.PAGE_SIZE
UNIT = stamps.UNIT
OPS = ("read", "seqread", "write", "mmap", "truncate", "unlink", "chflags",
       "sysctl", "meta", "xread")
STRESS_MIX = {"read": 55, "seqread": 5, "write": 5, "mmap": 2,
              "truncate": 2, "unlink": 1, "chflags": 2, "sysctl": 1,
              "meta": 6, "xread": 21}
READ_HEAVY_MIX = {"read": 85, "write": 5, "seqread": 5, "xread": 5}
# the sysctl flipper's menu: (name, values) -- all valid, swapcache stays
# mostly on so that it keeps being exercised
SYSCTL_MENU = (("vm.swapcache.read_enable", (1, 1, 1, 0)),
               ("vm.swapcache.data_enable", (1, 1, 1, 0)),
               ("vm.swapcache.meta_enable", (1, 0)),
               ("vm.swapcache.use_chflags", (0, 0, 1)),
               ("vm.swapcache.maxswappct", (20, 40, 60, 75)),
               ("vm.swapcache.maxlaunder", (64, 256, 1024)))
# destructive ops run at most once per this many ops of a CPU (a chosen one
# that comes too early is a read instead): at ~10k ops/s a weight alone
# would unlink every file many times a second and the cache never builds
MIN_OP_GAP = {"unlink": 5000, "truncate": 2000, "chflags": 500,
              "sysctl": 5000}


def counter(machine, k):
    """The address of workload counter k (hdr.stress[k]), made once per
    machine and process."""
    ptrs = machine.__dict__.get("_stress_counters")
    if ptrs is None:
        base = ffi.cast("uint64_t *", ffi.addressof(machine.hdr, "stress"))
        ptrs = machine._stress_counters = [base + i for i in
                                           range(lib.ST_NCOUNTERS)]
    return ptrs[k]


_fetchadd = lib.atomic_fetchadd_long
_check_read = lib.stress_check_read


def bump(machine, k, n=1):
    """hdr.stress[k] += n, atomically (an atomic: a preemption point, as
    every atomic is)."""
    if n:
        _fetchadd(counter(machine, k), n)


def workload_counters(machine):
    s = machine.hdr.stress
    return {"ops": s[lib.ST_OPS], "reads_verified": s[lib.ST_READS],
            "pages_read": s[lib.ST_READ_PAGES],
            "ssd_pages": s[lib.ST_DIVERTED], "failures": s[lib.ST_FAILURES],
            "zero_fills": s[lib.ST_ZERO_FILLS], "writes": s[lib.ST_WRITES],
            "mmap_ops": s[lib.ST_MMAP], "truncates": s[lib.ST_TRUNCATES],
            "unlinks": s[lib.ST_UNLINKS], "chflags": s[lib.ST_CHFLAGS],
            "sysctl_flips": s[lib.ST_SYSCTLS], "meta_ops": s[lib.ST_META],
            "cross_reads": s[lib.ST_XREADS]}


class File:
    __slots__ = ("name", "vp", "fid", "inc", "truth")


class Worker:
    def __init__(self, machine, seed, mix, files, file_pages, log_len=64,
                 gap_scale=1.0):
        self.machine = machine
        self.gaps = {k: int(g * gap_scale) for k, g in MIN_OP_GAP.items()}
        self.counters = counter(machine, 0)     # hdr.stress
        self.buf = bytearray(4 * PAGE)
        self.bufp = ffi.from_buffer(self.buf)
        self.me = curthread().tid
        self.cpu = curthread().cpu
        self.ncpus = machine.config.ncpus
        self.rng = random.Random(seed * 7919 + self.cpu)
        self.mix = [(k, w) for k, w in mix.items() if w > 0]
        self.kinds = [k for k, _ in self.mix]
        self.weights = [w for _, w in self.mix]
        # random.choices(kinds, weights)'s draw, its sums made once
        self.cum_weights = list(itertools.accumulate(self.weights))
        self.total = self.cum_weights[-1] + 0.0
        self.file_pages = file_pages
        self.op = 0
        self.last_op = {}
        self.log = collections.deque(maxlen=log_len)
        self.files = []
        self.fail_path = os.path.join(machine.datadir, "failures",
                                      f"cpu{self.cpu}.jsonl")
        for k in range(files):
            if machine.shutting_down():
                # a deterministic run may end during the set-up: stop
                # between files (a flag read, not a preemption point)
                raise Shutdown("stress set-up at shutdown")
            f = File()
            f.name, f.inc, f.vp = f"cpu{self.cpu}.{k}", 0, -1
            f.fid = self.cpu * 1000 + k + 1     # 0 is no file
            self.files.append(f)
            self._create(f)
        self.meta_vp = vn_meta()
        slice_pages = machine.config.nmeta // self.ncpus
        self.meta_off = self.cpu * slice_pages * PAGE
        self.meta_len = slice_pages * PAGE
        self.meta_truth = None

    # ---- helpers -----------------------------------------------------------
    def _create(self, f):
        f.inc += 1
        f.vp = sc.sys_open(f.name, create=True)
        size = self.file_pages * PAGE
        data = stamps.stamp(f.fid, 0, size, f.inc, self.cpu, self.op)
        sc.sys_write(f.vp, 0, data)
        f.truth = bytearray(data)

    def _note(self, kind, *args):
        self.op += 1
        self.log.append((self.op, kind) + args)

    def _fail(self, what, f_name, offset, expected, got, st):
        if self.machine.panicked:
            # the other CPUs of a panicked machine run on with their locks
            # abandoned: what they read now is no finding
            return
        mm = stamps.first_mismatch(expected, got, offset)
        off, exp_u, got_u = mm if mm else (offset, b"", b"")
        pindex = off // PAGE
        rec = {
            "cpu": self.cpu, "op": self.op, "what": what, "file": f_name,
            "offset": off, "expected": stamps.describe(exp_u),
            "found": stamps.describe(got_u),
            "shape": stamps.shape(exp_u, got_u),
            "served_from_ssd": pindex in (st.diverted if st else []),
            "zero_filled": list(st.zero_filled) if st else [],
            "recent_ops": [list(x) for x in self.log],
        }
        os.makedirs(os.path.dirname(self.fail_path), exist_ok=True)
        with open(self.fail_path, "a") as fp:
            fp.write(json.dumps(rec) + "\n")
        bump(self.machine, lib.ST_FAILURES)

    def _buffer(self, n):
        """This CPU's read buffer (a char *), at least n bytes."""
        if n > len(self.buf):
            self.buf = bytearray(n)
            self.bufp = ffi.from_buffer(self.buf)
        return self.bufp

    def _verify_read(self, f, off, n, what="read"):
        """Read n bytes of f at off and compare them with the truth, in C
        (the counters ST_READS, ST_READ_PAGES, ST_DIVERTED and
        ST_ZERO_FILLS, then the bytes: stress_check_read)."""
        st = ReadStats()
        dst = self._buffer(n)
        got = sc.sys_pread(f.vp, off, n, dst, st)
        truth = f.truth
        nwant = max(0, min(n, len(truth) - off))
        if _check_read(dst, got, ffi.from_buffer(truth) + off, nwant,
                       self.counters, len(st.diverted),
                       len(st.zero_filled)):
            self._fail(what, f.name, off, bytes(truth[off:off + n]),
                       bytes(self.buf[:got]), st)

    def _unit_off(self, limit):
        return self.rng.randrange(max(1, limit // UNIT)) * UNIT

    # ---- operations -----------------------------------------------------------
    def op_read(self):
        f = self.rng.choice(self.files)
        size = len(f.truth)
        if not size:
            return
        off = self._unit_off(size)
        n = self.rng.randrange(1, 5) * PAGE
        self._note("read", f.name, off, n)
        self._verify_read(f, off, n)

    def op_seqread(self):
        f = self.rng.choice(self.files)
        self._note("seqread", f.name, len(f.truth))
        for off in range(0, len(f.truth), 4 * PAGE):
            self._verify_read(f, off, 4 * PAGE, "seqread")

    def op_write(self):
        f = self.rng.choice(self.files)
        cap = self.file_pages * PAGE
        off = self._unit_off(min(len(f.truth) + PAGE, cap))
        n = min(self.rng.randrange(1, 129) * UNIT, cap - off)
        if n <= 0:
            return
        self._note("write", f.name, off, n)
        data = stamps.stamp(f.fid, off, n, f.inc, self.cpu, self.op)
        sc.sys_write(f.vp, off, data)
        if off > len(f.truth):
            f.truth.extend(bytes(off - len(f.truth)))
        f.truth[off:off + n] = data
        bump(self.machine, lib.ST_WRITES)

    def op_mmap(self):
        f = self.rng.choice(self.files)
        size = len(f.truth)
        if size < UNIT:
            return
        off = self._unit_off(size)
        n = min(self.rng.randrange(1, 33) * UNIT, size - off)
        self._note("mmap_store", f.name, off, n)
        data = stamps.stamp(f.fid, off, n, f.inc, self.cpu, self.op)
        sc.mmap_store(f.vp, off, data)
        f.truth[off:off + n] = data
        if self.rng.random() < 0.2:
            self._note("msync", f.name)
            sc.sys_msync(f.vp)
        bump(self.machine, lib.ST_MMAP)

    def op_truncate(self):
        f = self.rng.choice(self.files)
        # sizes stay whole stamp units (a partial unit would be no stamp);
        # most are not page multiples, so the partial-page path runs
        new = self._unit_off(len(f.truth) + UNIT)
        self._note("truncate", f.name, new)
        sc.sys_truncate(f.vp, new)
        del f.truth[new:]
        if self.rng.random() < 0.5:
            grow = new + self._unit_off(self.file_pages * PAGE - new + UNIT)
            self._note("truncate", f.name, grow)
            sc.sys_truncate(f.vp, grow)
            f.truth.extend(bytes(grow - new))
        bump(self.machine, lib.ST_TRUNCATES)

    def op_unlink(self):
        f = self.rng.choice(self.files)
        self._note("unlink", f.name)
        sc.sys_close(f.vp)
        sc.sys_unlink(f.name)
        self._create(f)
        bump(self.machine, lib.ST_UNLINKS)

    def op_chflags(self):
        f = self.rng.choice(self.files)
        flags = self.rng.choice((0, lib.UF_CACHE, lib.SF_NOCACHE,
                                 lib.UF_CACHE | lib.SF_NOCACHE))
        self._note("chflags", f.name, flags)
        sc.sys_chflags(f.name, flags)
        sc.sys_close(f.vp)                  # VSWAPCACHE follows at open
        f.vp = sc.sys_open(f.name)
        bump(self.machine, lib.ST_CHFLAGS)

    def op_sysctl(self):
        name, values = self.rng.choice(SYSCTL_MENU)
        v = self.rng.choice(values)
        self._note("sysctl", name, v)
        sysctl.sysctl_set(self.machine, name, str(v))
        bump(self.machine, lib.ST_SYSCTLS)

    def op_meta(self):
        if self.meta_truth is None:         # first use: stamp the slice
            data = stamps.stamp(0xffff0000 + self.cpu, self.meta_off,
                                self.meta_len, 1, self.cpu, self.op)
            sc.sys_write(self.meta_vp, self.meta_off, data)
            self.meta_truth = bytearray(data)
        if self.rng.random() < 0.3:
            off = self._unit_off(self.meta_len)
            n = min(self.rng.randrange(1, 65) * UNIT, self.meta_len - off)
            self._note("meta_write", off, n)
            data = stamps.stamp(0xffff0000 + self.cpu, self.meta_off + off,
                                n, 1, self.cpu, self.op)
            sc.sys_write(self.meta_vp, self.meta_off + off, data)
            self.meta_truth[off:off + n] = data
        else:
            off = self._unit_off(self.meta_len)
            n = min(self.rng.randrange(1, 4) * PAGE, self.meta_len - off)
            self._note("meta_read", off, n)
            got, st = sc.sys_read(self.meta_vp, self.meta_off + off, n)
            want = bytes(self.meta_truth[off:off + n])
            bump(self.machine, lib.ST_READS)
            bump(self.machine, lib.ST_DIVERTED, len(st.diverted))
            if got != want or st.zero_filled:
                self._fail("meta_read", "/dev/meta", self.meta_off + off,
                           want, got, st)
        bump(self.machine, lib.ST_META)

    def op_xread(self):
        """Read another CPU's file: every unit must be a stamp of that file
        at that offset (or zeros past a truncation/hole)."""
        if self.ncpus < 2:
            return self.op_read()
        other = (self.cpu + self.rng.randrange(1, self.ncpus)) % self.ncpus
        name = f"cpu{other}.{self.rng.randrange(len(self.files))}"
        try:
            vp = sc.sys_open(name)
        except VfsError:
            return
        try:
            off = self._unit_off(self.file_pages * PAGE)
            self._note("xread", name, off, 4 * PAGE)
            st = ReadStats()
            dst = self._buffer(4 * PAGE)
            got = sc.sys_pread(vp, off, 4 * PAGE, dst, st)
            bump(self.machine, lib.ST_XREADS)
            bump(self.machine, lib.ST_DIVERTED, len(st.diverted))
            fid = other * 1000 + int(name.rsplit(".", 1)[1]) + 1
            bad = stamps.first_foreign(dst, off, fid, not st.zero_filled,
                                       got)
            if bad is not None:
                # the owner may be storing through a mapping right now
                # (stores are not atomic, as on hardware): look again
                got2, st2 = sc.sys_read(vp, off, 4 * PAGE)
                if self._foreign_bad(got2, off, fid, st2) == bad:
                    i = bad - off
                    self._fail("xread", name, bad, b"(a stamp of this file "
                               b"at this offset)".ljust(UNIT),
                               got2[i:i + UNIT], st2)
        finally:
            sc.sys_close(vp)

    @staticmethod
    def _foreign_bad(got, off, fid, st):
        """Offset of the first unit that is neither zeros (a hole, a
        truncated tail) nor a stamp of file fid at that offset."""
        return stamps.first_foreign(got, off, fid, not st.zero_filled)

    def run(self, op_budget=None):
        ops = {k: getattr(self, "op_" + k) for k in OPS}
        kinds, cum, total = self.kinds, self.cum_weights, self.total
        draw, hi = self.rng.random, len(cum) - 1
        n = 0
        while not self.machine.shutting_down():
            safepoint(self.machine)
            # = self.rng.choices(self.kinds, self.weights)[0], same draw
            kind = kinds[bisect.bisect(cum, draw() * total, 0, hi)]
            gap = self.gaps.get(kind)
            if gap:
                if self.op - self.last_op.get(kind, -gap) < gap:
                    kind = "read"
                else:
                    self.last_op[kind] = self.op
            ops[kind]()
            bump(self.machine, lib.ST_OPS)
            n += 1
            if op_budget is not None and n >= op_budget:
                break
        for f in self.files:
            sc.sys_close(f.vp)


def stress_worker(machine, seed=0, mix=None, files=4, file_pages=64,
                  op_budget=None, gap_scale=1.0):
    """Entry of a CPU process: set up this CPU's files, then run the mix
    until shutdown (or op_budget operations).  gap_scale scales
    MIN_OP_GAP (0: destructive ops as often as their weight says)."""
    w = Worker(machine, seed, mix or STRESS_MIX, files, file_pages,
               gap_scale=gap_scale)
    # a deterministic schedule's budget counts the workload, not the set-up
    lib.sched_setup_done()
    w.run(op_budget)


def files_workload(machine, files=8, file_pages=256, seed=0):
    """`smpvm boot`'s default: the read-heavy mix."""
    stress_worker(machine, seed, READ_HEAVY_MIX, files, file_pages)
