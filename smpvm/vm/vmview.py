"""Typed views of a machine's VM regions, made once per machine and
process: the page, object, vnode and swblock arrays, vm_globals, and the
physical memory as a memoryview (page m's bytes are
phys[m * PAGE_SIZE:...]).

On a checked machine (config.check) the page, queue, object, swblock and
vnode arrays and vm_globals' scalar fields are *checked views*: every read
and store of a field goes through race_access() in C, which checks it
against the field's protector in smpvm.h's table (and feeds the
happens-before detector).  Kernel code does not change: `v.pages[m].queue`
is the same expression either way.  `v.raw` is the unchecked view, for
code that runs with the world stopped or before the machine runs (boot,
the invariant checker, statistics readers).
"""
import os
import sys
from operator import attrgetter

from smpvm import layout
from smpvm.kern.thread import _bound      # curmachine(), without a call
from smpvm.layout import ffi, lib


class VMView:
    def __init__(self, machine, checked=None):
        b = machine.base
        self.machine = machine
        self.pages = layout.pages(b)
        self.objects = layout.objects(b)
        self.vnodes = layout.vnodes(b)
        self.swblocks = layout.swblocks(b)
        self.vmg = layout.vm_globals(b)
        self.vmstats = self.vmg.vmstats
        self.cnt = self.vmg.cnt
        self.phys = machine.view(lib.REG_PHYS)
        self.npages = machine.config.npages
        self.raw = self
        self.cnt_addr = {}      # counter_add's addresses, by field name
        self.checked = False
        if checked is None:     # the witness alone needs no field checks
            checked = bool(machine.hdr.cfg.check
                           & (lib.RACE_FIELDS | lib.RACE_HB))
        if checked:
            if _sites_machine[0] is not machine:
                _sites.clear()
                _sites_machine[0] = machine
            self.raw = VMView(machine, checked=False)
            self.checked = True
            cfg = machine.config
            self.pages = _checked_list(
                self.pages, self.npages + self.vmg.nmarkers, "vm_page")
            self.objects = _checked_list(self.objects, self.vmg.nobjslots,
                                         "vm_object")
            self.vnodes = _checked_list(self.vnodes, cfg.nvnodes, "vnode")
            self.swblocks = _checked_list(self.swblocks,
                                          self.vmg.nswblocks, "swblock")
            self.vmg = _checked_list(ffi.cast("struct vm_globals *",
                                              self.vmg), 1, "vm_globals")[0]

    def page_bytes(self, m):
        """The live contents of page m (a memoryview, not a copy)."""
        off = m * lib.PAGE_SIZE
        return self.phys[off:off + lib.PAGE_SIZE]


_last = [None, None]        # the machine and view asked for last


def vmview(machine=None):
    """The VMView of machine (default: this thread's machine)."""
    m = machine if machine is not None else _bound["machine"]
    if m is _last[0]:
        return _last[1]
    v = m.__dict__.get("_vmview")
    if v is None or v.machine is not m:
        v = VMView(m)
        m._vmview = v
        m.on_close(lambda: _forget(m))
    _last[0], _last[1] = m, v
    return v


def _forget(machine):
    if _last[0] is machine:
        _last[0] = _last[1] = None


_fetchadd = lib.atomic_fetchadd_long


def counter_add(field, n=1, machine=None):
    """vm_counters.<field> += n, atomically (smpvm's statistics).  The
    field's address is made once per machine and process."""
    v = vmview(machine)
    p = v.cnt_addr.get(field)
    if p is None:
        p = v.cnt_addr[field] = ffi.addressof(v.raw.cnt, field)
    _fetchadd(p, n)


def addressof(struct, field):
    """ffi.addressof for a struct of a view, checked or not (atomics take
    the field's address; atomic fields need no protector)."""
    return ffi.addressof(getattr(struct, "_raw", struct), field)


# ---- checked views --------------------------------------------------------

_race_access = lib.race_access
_intern = lib.prof_site_intern
_getframe = sys._getframe
_sites = {}             # (code, line) -> site id; ids belong to one machine
_sites_machine = [None]
_proxies = {}


def _site():
    """The site id of the kernel code that touched the field (the frame
    above the proxy method)."""
    f = _getframe(2)
    key = (f.f_code, f.f_lineno)
    sid = _sites.get(key)
    if sid is None:
        text = (f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}:"
                f"{f.f_code.co_name}")
        sid = _intern(text.encode()[:119])
        _sites[key] = sid
    return sid


def field_table():
    """{struct name: {field name: (field id, smpvm_field cdata)}} from the
    table generated out of smpvm.h's annotations."""
    t = {}
    for i in range(lib.smpvm_nfields()):
        f = lib.smpvm_field(i)
        t.setdefault(layout.cstr(f.sname), {})[layout.cstr(f.name)] = (i, f)
    return t


_MASK = 0xffffffffffffffff


def _value(v):
    return v & _MASK if isinstance(v, int) else 0


def _proxy_class(sname):
    """The checked-struct class of struct sname: a property per field.  A
    field read that needs no check (atomic, immutable, racy, or readable
    without a lock) is an attrgetter property: C all the way down, so the
    common reads (flags, queue) cost little more than a plain cdata read.
    Reads of fields with a read protector and every store call
    race_access() with the caller's site."""
    cls = _proxies.get(sname)
    if cls is not None:
        return cls
    table = field_table().get(sname, {})
    ns = {"__slots__": ("_raw", "_idx"),
          "__doc__": f"struct {sname} of the segment, field accesses "
                     "checked",
          "__repr__": lambda self: f"<checked {sname}[{self._idx}]>"}
    for name, _ in ffi.typeof(f"struct {sname}").fields:
        entry = table.get(name)
        if sname == "vm_globals" and name == "vm_page_queues":
            ns[name] = property(_queues_getter(), None)
        elif entry is None:
            # pads and nested statistics (atomic/racy): unchecked
            ns[name] = property(attrgetter("_raw." + name),
                                _raw_setter(name))
        else:
            fid, f = entry
            getter = (_checked_getter(name, fid) if f.kind == 0 and f.rd_any
                      else attrgetter("_raw." + name))
            ns[name] = property(getter, _checked_setter(name, fid))
    cls = type(f"Checked_{sname}", (), ns)
    _proxies[sname] = cls
    return cls


def _checked_getter(name, fid):
    def get(self):
        v = getattr(self._raw, name)
        f = _getframe(1)
        sid = _sites.get((f.f_code, f.f_lineno))
        if sid is None:
            sid = _site()
        _race_access(fid, self._idx, 0, v & _MASK if type(v) is int else 0,
                     sid)
        return v
    return get


def _checked_setter(name, fid):
    def put(self, value):
        # a Python store is a plain store (write 2): never atomic
        _race_access(fid, self._idx, 2, _value(value), _site())
        setattr(self._raw, name, value)
    return put


def _raw_setter(name):
    def put(self, value):
        setattr(self._raw, name, value)
    return put


def _queues_getter():
    cache = []

    def get(self):
        if not cache:
            cache.append(_checked_list(self._raw.vm_page_queues,
                                       lib.PQ_COUNT, "vpgqueues"))
        return cache[0]
    return get


class _CheckedArray(dict):
    """The checked structs of array raw, index -> proxy, each made the
    first time it is indexed (so a view costs nothing per page until the
    page is touched: a 1 GiB machine has 262144 pages).  Indexing is the
    dict's own C code; a miss (__missing__) makes the proxy."""
    __slots__ = ("raw", "n", "cls")

    def __init__(self, raw, n, cls):
        super().__init__()
        self.raw, self.n, self.cls = raw, n, cls

    def __missing__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"{self.cls.__name__} index {i} out of range")
        p = object.__new__(self.cls)
        p._raw = self.raw[i]
        p._idx = i
        self[i] = p
        return p

    def __len__(self):
        return self.n

    def __iter__(self):
        return (self[i] for i in range(self.n))


def _checked_list(raw, n, sname):
    """The n checked structs of array raw (index -> proxy, made lazily)."""
    return _CheckedArray(raw, n, _proxy_class(sname))
