"""smpvm: an SMP-faithful emulator of DragonFly BSD's VM swapcache.

Layers (each imports only those below it; README "How it is built"):
    cli                       parses and dispatches: stress|race|replay|boot|
                              stat|check|lockstat|sysctl|ps|clean
    stress/                   a run: options, session, findings, replay; the
                              stamped workloads
    race/, prof/              readers of the C checkers; the lock profiler
    vm/, vfs/                 the emulated kernel (the seed, ported)
    kern/                     threads, spinlocks, tokens, tsleep, sysctl, kproc
    machine, config, layout   one shared-memory machine and its layout
    _smpvm (csrc/, cffi)      the C primitives, checkers and scheduler
"""
__version__ = "0.1.0"
