"""Typed views of a machine's VM regions, made once per machine and
process: the page, object, vnode and swblock arrays, vm_globals, and the
physical memory as a memoryview (page m's bytes are phys[m*4096:...]).

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

from smpvm import layout
from smpvm.kern.thread import curmachine
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
            self.pages = _CheckedArray(self.pages, _proxy_class("vm_page"))
            self.objects = _CheckedArray(self.objects,
                                         _proxy_class("vm_object"))
            self.vnodes = _CheckedArray(self.vnodes, _proxy_class("vnode"))
            self.swblocks = _CheckedArray(self.swblocks,
                                          _proxy_class("swblock"))
            self.vmg = _proxy_class("vm_globals")(self.vmg, 0)

    def page_bytes(self, m):
        """The live contents of page m (a memoryview, not a copy)."""
        off = m * lib.PAGE_SIZE
        return self.phys[off:off + lib.PAGE_SIZE]


def vmview(machine=None):
    """The VMView of machine (default: this thread's machine)."""
    m = machine if machine is not None else curmachine()
    v = m.__dict__.get("_vmview")
    if v is None or v.machine is not m:
        v = VMView(m)
        m._vmview = v
    return v


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
    cls = _proxies.get(sname)
    if cls is not None:
        return cls
    table = field_table()
    # stores are all checked; reads only of fields with a read protector
    # (atomic, immutable, racy and unlocked-read fields need no check and
    # race only against writes)
    fields = {name: fid for name, (fid, f) in table.get(sname, {}).items()
              if "." not in name}
    read_fields = {name: fid for name, (fid, f) in
                   table.get(sname, {}).items()
                   if "." not in name and f.kind == 0 and f.rd_any}
    # nested arrays of structs with their own checked fields
    subarrays = {}
    if sname == "vm_globals":
        subarrays["vm_page_queues"] = _proxy_class("vpgqueues")

    class Checked:
        """A struct of the segment whose field accesses are checked."""
        __slots__ = ("_raw", "_idx")

        def __init__(self, raw, idx):
            object.__setattr__(self, "_raw", raw)
            object.__setattr__(self, "_idx", idx)

        # the hot path of checked mode: kept to one frame and one C call
        def __getattr__(self, name):
            v = getattr(self._raw, name)
            fid = read_fields.get(name)
            if fid is not None:
                f = _getframe(1)
                sid = _sites.get((f.f_code, f.f_lineno))
                if sid is None:
                    sid = _site()
                _race_access(fid, self._idx, 0,
                             v & _MASK if type(v) is int else 0, sid)
            elif name in subarrays:
                return _CheckedArray(v, subarrays[name])
            return v

        def __setattr__(self, name, value):
            fid = fields.get(name)
            if fid is not None:
                # a Python store is a plain store (write 2): never atomic
                _race_access(fid, self._idx, 2, _value(value), _site())
            setattr(self._raw, name, value)

        def __repr__(self):
            return f"<checked {sname}[{self._idx}]>"

    Checked.__name__ = f"Checked_{sname}"
    _proxies[sname] = Checked
    return Checked


class _CheckedArray:
    __slots__ = ("_raw", "_cls")

    def __init__(self, raw, cls):
        self._raw = raw
        self._cls = cls

    def __getitem__(self, i):
        return self._cls(self._raw[i], i)
