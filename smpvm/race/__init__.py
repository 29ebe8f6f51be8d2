"""Readers of the C checkers: race reports (report), hang forensics and the
indefinite-wait watchdog (forensics), the deterministic scheduler's face
(sched) and the pytest plugin.  Nothing here drives a run: runs, replay and
shrinking are smpvm.stress (which imports this package, never the reverse).
"""
