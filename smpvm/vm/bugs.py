"""The registry of bugs on purpose: named wrong variants of the kernel code,
selectable with --bug NAME on top of any kernel.  One table; the harness,
replay, the detection benchmark and the tests all read it.

Each entry: the BUG_* bits of vm_globals.bugs (csrc/smpvm.h) that switch the
wrong code on, what is wrong, where it comes from (the seed's own defect
with its letter, a hazard H1/H2 of the README's kernel table, or a classic
mistake of this kind of code), the upstream commit that fixed it (seed
defects only), the detector expected to find it, and the stress options (a
profile over the general hunting profile) under which its pinned detection
was found.

The bits' branches live in the kernel code (vm/, vfs/, csrc/vm.c); this
table holds only what is known about them.
"""
import dataclasses

from smpvm.layout import lib


@dataclasses.dataclass(frozen=True)
class Bug:
    name: str
    bits: int
    what: str
    origin: str             # "seed (a)", "hazard H1", "classic"
    fixed_by: str           # upstream commit(s), "smpvm" (our own) or ""
    detector: str           # the detector expected to find it
    profile: tuple = ()     # ((StressOptions field, value), ...)
    # the shapes of wrong bytes it leaves (smpvm.stress.stamps.shape), so
    # a wrong byte on a kernel that has it is named by it
    wrong_bytes: tuple = ()

    def options(self):
        """The profile as StressOptions fields (a dict; mix as a dict)."""
        d = dict(self.profile)
        if "mix" in d:
            d["mix"] = dict(d["mix"])
        return d

    @property
    def in_seed(self):
        """Is this one of the seed kernel's own defects?"""
        return self.origin.startswith(("seed", "hazard"))


# the cleaning defects need files unlinked while many cleaning passes walk
# the object list (a virtual tick every 20 steps: swapcached runs ten times
# as often); the marker re-insert (b)-(d) also needs a budget that runs out
# within a pass
_CLEANING = (("files", 4), ("file_pages", 8), ("nswap", 64),
             ("tick_steps", 20),
             ("mix", (("read", 5), ("write", 10), ("unlink", 20))))

# H2 on fixed (64949baad7): a CPU truncates its one file while the other
# CPU's cross read, which sized its read before the truncation, waits for
# the object; when the range free blocks on vm_token the reader inserts
# pages past the new EOF that get PG_SWAPPED from entries about to vanish
# and are read from the SSD; once the file grows again the owner finds the
# old unit in the hole.  That needs swap copies of the truncated pages: one
# small file each (16 pages, so a written file is soon cached whole) and
# many truncations and cross reads.  Cleaning's condfree is not the window
# here: it runs rarely and almost never frees a swblock (one of its pages
# is resident).  The range free blocks on vm_token only when another thread
# holds it at that moment; the hunt's loss arms make such acquisitions
# block (injected token losses) and run the waiting reader next.
_H2 = (("files", 1), ("file_pages", 16), ("npages", 64), ("nswap", 96),
       ("tick_steps", 10),
       ("mix", (("read", 20), ("seqread", 2), ("xread", 40), ("write", 10),
                ("truncate", 40))))

# a swap copy older than the page: the unit as an earlier write left it, or
# zeros where the file had a hole then (a truncated or extended range)
_STALE_COPY = ("stale", "zeros")

_TABLE = (
    Bug("yield-before-hold", lib.BUG_YIELD_BEFORE_HOLD,
        "cleaning: lwkt_yield before vm_object_hold (the object may be "
        "freed)", "seed (a)", "739be60bf6", "assertion panic",
        # swap 10 % full starts cleaning at once and keeps it going: on the
        # 256-queue versions the writing heuristic leaves a 64-page machine
        # too little swap in use for the 75 % mark (README, Bisect)
        _CLEANING + (("sysctls", (("vm.swapcache.maxswappct", "10"),)),)),
    # (b)-(d) need (a)'s yield: it is the blocking point that lets the
    # object the marker goes back in front of be unlinked
    Bug("clean-markers", lib.BUG_CLEAN_MARKERS | lib.BUG_YIELD_BEFORE_HOLD,
        "cleaning: holds other threads' markers, re-inserts its marker "
        "before an object reached after blocking (with (a)'s yield)",
        "seed (b)-(d)", "f5f6d24720", "race: use after free",
        _CLEANING + (("sysctls", (("vm.swapcache.maxlaunder", "2"),)),)),
    # one upstream fix (08fb7a9da0, and 27b6ee0313 for its token swap),
    # two behaviours (two bits): the charge (e) and vmobj_token (f)
    Bug("condfree-uncharged",
        lib.BUG_CONDFREE_UNCHARGED | lib.BUG_CONDFREE_VMOBJ_HELD,
        "condfree returns the pages it freed, so the swblocks it visits "
        "cost the cleaning pass nothing and a pass walks every object "
        "again and again (swapcached eats the CPU); cleaning ends at "
        "SWAPMAX(-5); vmobj_token is held across condfree",
        "seed (e), (f)", "08fb7a9da0, 27b6ee0313", "cleaning cost",
        _CLEANING + (("sysctls", (("vm.swapcache.maxlaunder", "4"),)),)),
    # one upstream commit, two behaviours (two bits): the leak (g), and
    # meta_build's free-before-clear that races the swblock's destruction
    Bug("swblock-leak", lib.BUG_SWBLOCK_LEAK | lib.BUG_META_BUILD_FREE_FIRST,
        "meta_free leaks the last block of a swblock it empties (range "
        "frees: truncate, condfree, partial page removes); meta_build "
        "frees the old block (which may block) while it is still recorded "
        "and counted", "seed (g)", "0301c40799", "invariant checker"),
    # found when its range free blocks on vm_token (an injected token loss:
    # the loss arms) and a reader waiting for the object inserts a page of
    # the range; the protocol check sees the block freed from under the
    # page at once, the stress verifier only if the file grows over the
    # page and it is read before it is evicted
    Bug("range-free-interleaved", lib.BUG_RANGE_FREE_INTERLEAVED,
        "a range free clears entries one by one, blocking on vm_token "
        "between them: a page inserted meanwhile gets PG_SWAPPED from an "
        "entry about to vanish", "hazard H2", "smpvm",
        "race: protocol: PG_SWAPPED without swap",
        _H2, wrong_bytes=("misplaced", "zeros", "garbage")),
    Bug("write-ignores-swapinprog", lib.BUG_WRITE_IGNORES_SWAPINPROG,
        "a buffer write does not wait for an in-flight swap write",
        "hazard H1", "smpvm", "race: write during I/O",
        wrong_bytes=_STALE_COPY),
    Bug("skip-unswap-on-write", lib.BUG_SKIP_UNSWAP_ON_WRITE,
        "a buffer write keeps the stale swap copy", "classic", "",
        "stress verifier", wrong_bytes=_STALE_COPY),
    Bug("no-object-recheck", lib.BUG_NO_OBJECT_RECHECK,
        "writing pass: m->object read before the page is busied and not "
        "rechecked after the hold", "classic", "",
        "race: unprotected access"),
    Bug("no-object-hold", lib.BUG_NO_OBJECT_HOLD,
        "writing pass: the object is used without vm_object_hold",
        "classic", "", "race: unprotected access"),
    Bug("no-pip", lib.BUG_NO_PIP,
        "flush: pages written without vm_object_pip_add", "classic", "",
        "assertion panic"),
    Bug("flush-unbusied", lib.BUG_FLUSH_UNBUSIED,
        "flush: the page is unbusied before its I/O is set up", "classic",
        "", "assertion panic"),
    Bug("inverted-locks", lib.BUG_INVERTED_LOCKS,
        "writing pass: page spinlock taken under the queue spinlock",
        "classic", "", "race: lock order"),
    Bug("lost-io-wakeup", lib.BUG_LOST_IO_WAKEUP,
        "swap iodone clears busy without waking the sleepers", "classic", "",
        "hang forensics"),
    Bug("marker-unlocked", lib.BUG_MARKER_UNLOCKED,
        "writing pass: the marker is moved without the queue spinlock",
        "classic", "", "assertion panic"),
)

BUGS = {b.name: b for b in _TABLE}

# The seed's defects, one BUG_* bit per behaviour, and the kernel version
# that removes it (smpvm/vm/versions.py): a version's bits are those its
# commits have not fixed yet.  H1 and H2 were never fixed upstream ("smpvm":
# only the `fixed` kernel leaves them out).
DEFECT_FIXED_BY = {
    lib.BUG_CONDFREE_UNCHARGED: "08fb7a9da0",           # (e)
    lib.BUG_CONDFREE_VMOBJ_HELD: "08fb7a9da0",          # (f), 27b6ee0313
    lib.BUG_YIELD_BEFORE_HOLD: "739be60bf6",            # (a)
    lib.BUG_CLEAN_MARKERS: "f5f6d24720",                # (b)-(d)
    lib.BUG_SWBLOCK_LEAK: "0301c40799",                 # (g)
    lib.BUG_META_BUILD_FREE_FIRST: "0301c40799",
    lib.BUG_WRITE_IGNORES_SWAPINPROG: "smpvm",          # H1
    lib.BUG_RANGE_FREE_INTERLEAVED: "smpvm",            # H2
}
assert sum(DEFECT_FIXED_BY) == lib.BUGS_SEED


def version_bits(ordinal, fixed=False):
    """The BUG_* bits of kernel version `ordinal` (KV_*): every seed defect
    whose fixing commit comes later; with fixed (the `fixed` kernel), H1
    and H2 are left out too."""
    from smpvm.vm.versions import BY_NAME
    bits = 0
    for bit, commit in DEFECT_FIXED_BY.items():
        if commit == "smpvm":
            if not fixed:
                bits |= bit
        elif BY_NAME[commit].ordinal > ordinal:
            bits |= bit
    return bits


def wrong_bytes_cause(bits, shape):
    """What names a wrong byte of this shape on a kernel with BUG_* bits:
    "hazard H1 (write-ignores-swapinprog): ..." for each registered bug
    the kernel has that leaves this shape, joined by " or "; "" when none
    does (then the wrong byte is unexplained: a real finding)."""
    return " or ".join(f"{b.origin} ({b.name}): {b.what}"
                       for b in _TABLE if bits & b.bits == b.bits
                       and shape in b.wrong_bytes)


def bug_bits(name):
    """The BUG_* bits of bug name ("" -> 0); KeyError if unknown."""
    return BUGS[name].bits if name else 0
