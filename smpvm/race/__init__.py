"""Race detection: the checkers' reports, hang forensics, the race command,
the pytest plugin and the deterministic scheduler's face (sched)."""
