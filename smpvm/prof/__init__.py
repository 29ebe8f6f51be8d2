"""Lock-contention profiling (smpvm lockstat)."""
