"""cffi build of smpvm's C layer, API (out-of-line) mode.

The cdef is csrc/smpvm.h itself with its C-only blocks removed, so the layout,
constants and prototypes are declared exactly once.  setup.py names this file in
cffi_modules; `python csrc/smpvm_build.py` builds in place for development.
"""
import os
import re

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "smpvm.h")
SOURCES = ["smpvm.c", "vm.c", "race.c", "sched.c", "bio.c", "stamp.c",
           "pageout.c"]


def cdef_text():
    """smpvm.h without the blocks between @c-only-begin and @c-only-end."""
    with open(HEADER) as f:
        text = f.read()
    return re.sub(r"/\* @c-only-begin \*/.*?/\* @c-only-end \*/", "", text,
                  flags=re.S)


# the structs whose fields carry protection annotations, and their index space
CHECKED_STRUCTS = {"vm_page": "SK_PAGE", "vpgqueues": "SK_PQ",
                   "vm_object": "SK_OBJECT", "swblock": "SK_SWBLOCK",
                   "vnode": "SK_VNODE", "vm_globals": "SK_VMG"}
# structs nested in vm_globals: their fields belong to SK_VMG
NESTED_IN_VMG = {"vmstats": "vmstats", "vm_counters": "cnt",
                 "vm_swapcache_sysctl": "swapcache", "vm_faults": "faults"}
KINDS = {"atomic": "PROT_ATOMIC", "immutable": "PROT_IMMUTABLE",
         "racy": "PROT_RACY"}
PROTECTORS = ("page_spin", "queue_spin", "obj_token", "busy", "vm_token",
              "vmobj_token", "vnode_token", "swapzone")


def _prot_mask(names, where):
    bits = []
    for n in names:
        n = n.strip()
        if n not in PROTECTORS:
            raise SystemExit(f"smpvm.h: {where}: unknown protector {n!r}")
        bits.append("PROT_" + n.upper())
    return "|".join(bits) or "0"


def _define(text, name):
    """The integer value of smpvm.h's #define name."""
    return int(re.search(rf"^#define {name}\s+(\d+)", text, re.M).group(1))


def field_table():
    """The table of protection, generated from smpvm.h's @-annotations:
    C source defining smpvm_fields_gen[] and smpvm_nfields_gen."""
    text = open(HEADER).read()
    rows = []
    for sm in re.finditer(r"^struct (\w+) \{([^\n]*)\n(.*?)^\};", text,
                          re.S | re.M):
        sname, head, body = sm.group(1), sm.group(2), sm.group(3)
        if sname in CHECKED_STRUCTS:
            sk, prefix, outer = CHECKED_STRUCTS[sname], "", sname
        elif sname in NESTED_IN_VMG:
            sk, prefix, outer = "SK_VMG", NESTED_IN_VMG[sname] + ".", \
                "vm_globals"
        else:
            continue
        all_ = re.search(r"@all\((\w+)\)", head)
        for fm in re.finditer(r"^\s*(?:struct\s+)?(\w+)\s+(\w+)(\[[^\]]*\])?;"
                              r"[ \t]*(?:/\*(.*?)\*/)?", body, re.M | re.S):
            ftype, fname, arr, note = fm.groups()
            note = note or ""
            if fname.startswith("pad") or ftype in NESTED_IN_VMG \
                    or ftype == "vpgqueues":
                continue
            where = f"struct {sname}.{fname}"
            kind, wr_all, wr_any, rd = "0", "0", "0", "0"
            k = re.search(r"@(atomic|immutable|racy)\b", note)
            if k:
                kind = KINDS[k.group(1)]
            elif all_:
                kind = KINDS[all_.group(1)]
            w = re.search(r"@W\(([^)]*)\)", note)
            r = re.search(r"@R\(([^)]*)\)", note)
            if w:
                if "|" in w.group(1):
                    wr_any = _prot_mask(w.group(1).split("|"), where)
                else:
                    wr_all = _prot_mask(w.group(1).split(","), where)
            if r:
                rd = _prot_mask(r.group(1).split("|"), where)
            if kind == "0" and not w:
                raise SystemExit(f"smpvm.h: {where} has no protection "
                                 "annotation (@atomic, @immutable, @racy "
                                 "or @W(...))")
            member = prefix + fname
            # a name cut short would match no Python field: the field would
            # go unchecked, silently (as 'vm_swapcache_inactive_heuristic'
            # did in name[24])
            for what, name in (("SMPVM_FIELD_NAME", member),
                               ("SMPVM_FIELD_SNAME", sname)):
                if len(name) >= _define(text, what):
                    raise SystemExit(f"smpvm.h: {where}: {name!r} does not "
                                     f"fit in {what} ({_define(text, what)}"
                                     " with its NUL)")
            rows.append(
                f'\t{{"{member}", "{sname}", {sk}, '
                f"offsetof(struct {outer}, {member}), "
                f"sizeof(((struct {outer} *)0)->{member}), -1, "
                f"{kind}, {wr_all}, {wr_any}, {rd}}},")
    return ("const struct smpvm_field smpvm_fields_gen[] = {\n"
            + "\n".join(rows) + "\n};\n"
            "const int smpvm_nfields_gen = "
            "sizeof(smpvm_fields_gen) / sizeof(smpvm_fields_gen[0]);\n")


ffibuilder = cffi.FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "smpvm._smpvm",
    '#include "smpvm.h"\n#include <stddef.h>\n' + field_table(),
    sources=[os.path.relpath(os.path.join(HERE, s)) for s in SOURCES],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra",
                        "-Wno-unused-parameter"],
    depends=[HEADER, os.path.join(HERE, "smpvm_priv.h")]
    + [os.path.join(HERE, s) for s in SOURCES],
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    ffibuilder.compile(verbose=True)
