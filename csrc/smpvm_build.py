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
SOURCES = ["smpvm.c", "vm.c", "sched.c"]


def cdef_text():
    """smpvm.h without the blocks between @c-only-begin and @c-only-end."""
    with open(HEADER) as f:
        text = f.read()
    return re.sub(r"/\* @c-only-begin \*/.*?/\* @c-only-end \*/", "", text,
                  flags=re.S)


ffibuilder = cffi.FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "smpvm._smpvm",
    '#include "smpvm.h"\n',
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
