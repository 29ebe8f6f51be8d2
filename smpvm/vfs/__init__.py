"""The parts of vfs the seed touches: vnodes backed by real files, the VCHR
meta-data device, chflags cache/noscache, the buffer-level strategy path
with vn_cache_strategy, and a syscall-like API for CPU processes."""
