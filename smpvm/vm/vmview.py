"""Typed views of a machine's VM regions, made once per machine and
process: the page, object, vnode and swblock arrays, vm_globals, and the
physical memory as a memoryview (page m's bytes are phys[m*4096:...])."""
from smpvm import layout
from smpvm.kern.thread import curmachine
from smpvm.layout import lib


class VMView:
    def __init__(self, machine):
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
