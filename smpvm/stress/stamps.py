"""Stamped data, as fsx does: every 64-byte unit a writer puts in a file
says who wrote it -- (file id, unit index, incarnation, cpu, op number) --
so a wrong byte read later names the operation that wrote what was found.

A unit is the 24-byte header repeated to 64 bytes.  Anything else (zeros
from a lost swap block, a torn or misplaced unit) decodes as garbage.
Making and checking whole runs of units is C (csrc/stamp.c: a verified
page is 64 units); decoding one for a report is Python.
"""
import struct

from smpvm.layout import ffi, lib

UNIT = lib.STAMP_UNIT
_HDR = struct.Struct("<IIIIQ")        # file, unit, incarnation, cpu, op


def unit_bytes(file_id, unit, inc, cpu, op):
    h = _HDR.pack(file_id & 0xffffffff, unit & 0xffffffff, inc, cpu, op)
    return (h * 3)[:UNIT]


def stamp(file_id, offset, length, inc, cpu, op):
    """The bytes of a write of `length` at `offset` (both multiples of
    UNIT) by op number `op` of `cpu`."""
    out = bytearray(length)
    lib.stamp_fill(ffi.from_buffer(out), length, file_id & 0xffffffff,
                   offset // UNIT, inc, cpu, op)
    return bytes(out)


def first_foreign(data, offset, file_id, zeros_ok, n=None):
    """Offset (in the file) of the first unit of data (bytes, or a char *
    of n bytes), read at offset, that is neither zeros (a hole, a truncated
    tail; only if zeros_ok) nor a stamp of file_id at that offset; None if
    there is none."""
    k = lib.stamp_check_foreign(data, len(data) if n is None else n,
                                offset // UNIT, file_id & 0xffffffff,
                                1 if zeros_ok else 0)
    return None if k < 0 else offset + k


def decode(unit):
    """The stamp of a 64-byte unit as a dict, or None if it is no stamp."""
    if len(unit) != UNIT or not any(unit):
        return None                     # file ids start at 1: zeros are none
    f, u, inc, cpu, op = _HDR.unpack_from(unit)
    if unit_bytes(f, u, inc, cpu, op) != bytes(unit):
        return None
    return {"file": f, "unit": u, "inc": inc, "cpu": cpu, "op": op}


def describe(unit):
    d = decode(unit)
    if d is None:
        if not any(unit):
            return "zeros (no stamp)"
        return "garbage (no valid stamp)"
    return (f"file {d['file']} offset {d['unit'] * UNIT} inc {d['inc']} "
            f"written by cpu{d['cpu']} op {d['op']}")


def shape(expected, found):
    """How a wrong unit relates to the right one: 'stale' (this unit of
    this file as an earlier write left it), 'newer' (a later write of it,
    read too soon), 'misplaced' (another unit's or file's stamp), 'zeros'
    or 'garbage' (no stamp).  The registry (smpvm/vm/bugs.py) names the
    defects that leave each shape."""
    e, f = decode(expected), decode(found)
    if f is None:
        return "zeros" if not any(found) else "garbage"
    if e is None or (e["file"], e["unit"]) != (f["file"], f["unit"]):
        return "misplaced"
    return "stale" if (f["inc"], f["op"]) < (e["inc"], e["op"]) else "newer"


def first_mismatch(expected, found, base_offset):
    """(offset, expected unit, found unit) of the first differing unit."""
    n = min(len(expected), len(found))
    for i in range(0, n, UNIT):
        if expected[i:i + UNIT] != found[i:i + UNIT]:
            return base_offset + i, expected[i:i + UNIT], found[i:i + UNIT]
    if len(expected) != len(found):
        return base_offset + n, expected[n:n + UNIT], found[n:n + UNIT]
    return None
