"""Race detection: the deterministic scheduler (sched)."""
