"""smpvm: an SMP-faithful emulator of DragonFly BSD's VM swapcache.

Layers (each imports only those below it; see DESIGN in the README):
    cli                       smpvm boot|sysctl|ps|clean
    kern/                     threads, spinlocks, tokens, tsleep, sysctl, kproc
    machine, config, layout   one shared-memory machine and its layout
    _smpvm (csrc/, cffi)      the C primitives
"""
__version__ = "0.1.0"
