"""The Python view of csrc/smpvm.h: ffi, lib, and typed views of regions.

Nothing here defines a layout: sizes, offsets and constants all come from the
header through cffi.  This module only turns (base, region) into cdata.
"""
from smpvm._smpvm import ffi, lib

# Python names for the header's constant families, derived from the header.
GLOBAL_TOKENS = {
    getattr(lib, n): n[4:].lower() + "_token"
    for n in dir(lib) if n.startswith("TOK_")
}
THREAD_STATES = {getattr(lib, n): n[4:].lower()
                 for n in dir(lib) if n.startswith("TDS_")}
THREAD_KINDS = {getattr(lib, n): n[4:].lower()
                for n in dir(lib) if n.startswith("TDK_")}
MACHINE_STATES = {getattr(lib, n): n[3:].lower()
                  for n in dir(lib) if n.startswith("MS_")}
LOCK_KINDS = {lib.LK_SPIN: "spin", lib.LK_TOKEN: "token"}


def header(base):
    """The segment header at base (a cdata void * / char *)."""
    return ffi.cast("struct smpvm_header *", base)


def region(base, reg, ctype):
    """Region reg of the segment at base, as an array pointer of ctype."""
    hdr = header(base)
    return ffi.cast(ctype + " *", ffi.cast("char *", base) + hdr.region_off[reg])


def threads(base):
    return region(base, lib.REG_THREADS, "struct smpvm_thread")


def spinlocks(base):
    return region(base, lib.REG_SPINLOCKS, "struct spinlock")


def tokens(base):
    return region(base, lib.REG_TOKENS, "struct lwkt_token")


def cstr(chararray):
    """A NUL-terminated char[] field as str."""
    return ffi.string(chararray).decode("utf-8", "replace")


def vm_globals(base):
    return region(base, lib.REG_VM, "struct vm_globals")


def pages(base):
    """The page array (markers follow the npages real pages)."""
    return region(base, lib.REG_PAGES, "struct vm_page")


def objects(base):
    return region(base, lib.REG_OBJECTS, "struct vm_object")


def vnodes(base):
    hdr = header(base)
    return ffi.cast("struct vnode *", ffi.cast("char *", base)
                    + hdr.region_off[lib.REG_OBJECTS]
                    + vm_globals(base).off_vnodes)


def swblocks(base):
    hdr = header(base)
    return ffi.cast("struct swblock *", ffi.cast("char *", base)
                    + hdr.region_off[lib.REG_OBJECTS]
                    + vm_globals(base).off_swblocks)
