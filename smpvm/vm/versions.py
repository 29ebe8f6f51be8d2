"""Kernel versions: the seed and the ten upstream commits to sys/vm's
swapcache after it (../shared/seeds/history/01-10), in upstream order.
Version k is the seed plus commits 1..k; nothing else of upstream's sys/vm
of those weeks is applied (README "Kernel versions" lists what a version
therefore lacks).

A version is chosen at boot (vm_init.vm_boot) and lives in
vm_globals.version as its KV_* ordinal (csrc/smpvm.h, the one definition).
The kernel code gates each change of a commit on since("<commit>") --
per-version functions where a commit rewrote one (the cleaning pass of
f5f6d24720, the pageout scans of 027193eb61) -- so that a reader can lay
the upstream diff beside smpvm's change and see the same change.  The
seed's defects are BUG_* bits derived from the version (smpvm/vm/bugs.py:
DEFECT_FIXED_BY), with the bugs on purpose OR'ed on top.

To add the eleventh: its KV_* in smpvm.h, a Version row here, its gates.
"""
import dataclasses

from smpvm.kern.thread import _bound, curmachine
from smpvm.layout import lib


@dataclasses.dataclass(frozen=True)
class Version:
    name: str           # "seed" or the short hash, as --kernel takes it
    commit: str         # the full upstream hash (what is known of it)
    date: str
    title: str
    ordinal: int        # KV_* of csrc/smpvm.h


VERSIONS = (
    Version("seed", "d2d8515bfb3e", "2011-10-27",
            "kernel - More many-cores SMP work", lib.KV_SEED),
    Version("027193eb61", "027193eb611cf4258b84198529d8c88cb733d884",
            "2011-10-28",
            "kernel - Another huge HUGE VM performance improvement for "
            "many-cores", lib.KV_027193EB61),
    Version("51c99c6153", "51c99c6153dfaddf8f0a27f9f536caaa28c681a4",
            "2011-11-10",
            "kernel - Fix numerous performance problems with the pageout "
            "daemon", lib.KV_51C99C6153),
    Version("08fb7a9da0", "08fb7a9da0e0d88d4b3f6574e0e113fb6304946f",
            "2011-11-18",
            "kernel - Fix swapcached problems when max-swap use reached",
            lib.KV_08FB7A9DA0),
    Version("27b6ee0313", "27b6ee0313255ebdf693a8c6dc713c3d40e4419a",
            "2011-11-18",
            "kernel - Fix swapcached problems when max-swap use reached (2)",
            lib.KV_27B6EE0313),
    Version("739be60bf6", "739be60bf6ac8b23af2c538f35d8f503a234d194",
            "2011-11-19", "kernel - Fix swapcache related crash",
            lib.KV_739BE60BF6),
    Version("f5f6d24720", "f5f6d24720b2a6d59adc2d6af68754ed3382ff20",
            "2011-11-29",
            "kernel - Fix fragmentation and object list scan bug in "
            "swapcache", lib.KV_F5F6D24720),
    Version("7a175765de", "7a175765de62a14e3e3d660aac14f91810647a4e",
            "2011-11-30", "kernel - Fix minor bug in last swapcache commit",
            lib.KV_7A175765DE),
    Version("0bf8126181", "0bf8126181b006215fc295c8ba2700bb6c03b809",
            "2011-12-26", "kernel - Add vm.swapcache.maxscan",
            lib.KV_0BF8126181),
    Version("0301c40799", "0301c407992b4e73ffebb89e08bfc1efe3c4bec6",
            "2011-12-27", "kernel - Fix swap space leak", lib.KV_0301C40799),
    Version("64949baad7", "64949baad746ba8f3a957a675ce437b2f4529a24",
            "2012-01-02",
            "kernel - Fix swapcache inefficiency related to the PQ_INACTIVE "
            "queue", lib.KV_64949BAAD7),
)
assert [v.ordinal for v in VERSIONS] == list(range(len(VERSIONS)))
assert VERSIONS[-1].ordinal == lib.KV_NEWEST

BY_NAME = {v.name: v for v in VERSIONS}
_ORDINAL = {v.name: v.ordinal for v in VERSIONS}
NEWEST = VERSIONS[-1]
# "fixed": the newest version plus smpvm's own fixes of H1 and H2
FIXED = "fixed"


def lookup(name):
    """The Version named: "seed", a short hash or any unique prefix of at
    least 4 characters of one (full hashes too).  KeyError naming the
    choices if none or several match."""
    if name in BY_NAME:
        return BY_NAME[name]
    name = str(name).lower()
    hits = [v for v in VERSIONS
            if len(name) >= 4 and (v.commit.startswith(name)
                                   or name.startswith(v.name))]
    if len(hits) == 1:
        return hits[0]
    raise KeyError(name)


def parent(version):
    """The version before this one (None for the seed)."""
    return VERSIONS[version.ordinal - 1] if version.ordinal else None


def ordinal(name):
    return lookup(name).ordinal


def since(commit, machine=None):
    """Is the running kernel this commit or later?  commit: a version
    name ("739be60bf6").  No locks needed (the version is immutable)."""
    m = machine if machine is not None else _bound["machine"]
    k = m.__dict__.get("_kernel_version")
    if k is None:
        k = _kernel(m)
    return k[0] >= _ORDINAL[commit]


def _kernel(m):
    """(version, PQ_L2_SIZE) of machine m's kernel, read from vm_globals
    once per machine and process (both immutable once the VM booted;
    vm_init.vm_boot forgets them when it sets the version)."""
    k = m.__dict__.get("_kernel_version")
    if k is None:
        from smpvm.layout import vm_globals
        g = vm_globals(m.base)
        k = m._kernel_version = (int(g.version), int(g.pq_l2_size))
    return k


def _version(machine=None):
    return _kernel(machine if machine is not None else curmachine())[0]


def running(machine=None):
    """The Version of the running kernel."""
    return VERSIONS[_version(machine)]


def pq_l2_size(machine=None):
    """PQ_L2_SIZE of the running kernel: 64 colours before 51c99c6153, 256
    from it on (vm_globals.pq_l2_size)."""
    m = machine if machine is not None else _bound["machine"]
    k = m.__dict__.get("_kernel_version")
    if k is None:
        k = _kernel(m)
    return k[1]


def inactive_queues(machine=None):
    """The INACTIVE queues a scan walks: PQ_INACTIVE alone in the seed;
    PQ_INACTIVE + q for q < PQ_MAXL2_SIZE since 027193eb61 (only the first
    64 carry pages until 51c99c6153), q < PQ_L2_SIZE since 51c99c6153."""
    if not since("027193eb61", machine):
        return 1
    if not since("51c99c6153", machine):
        return lib.PQ_MAXL2_SIZE
    return pq_l2_size(machine)


def table():
    """The versions as text: name, date, title (smpvm kernels)."""
    rows = [f"{v.name:<11} {v.date}  {v.title}" for v in VERSIONS]
    rows.append(f"{FIXED:<11} {NEWEST.date}  {NEWEST.name} plus smpvm's own "
                "fixes of H1 and H2")
    return "\n".join(rows) + "\n"
