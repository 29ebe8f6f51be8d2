"""The emulated kernel's base: threads, spinlocks, tokens, tsleep/wakeup,
sysctl and kernel processes -- the Python faces of csrc/smpvm.c."""
