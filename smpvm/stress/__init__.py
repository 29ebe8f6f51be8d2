"""A run: its options (options), the run itself with one method per phase
(session), what it found with the one exit-code table and all printing
(findings), where its files go (outputs), replay and shrinking of schedule
files (replay), the status line (status), `smpvm boot` (boot); and what the
CPU processes run (workloads, stamps).

    from smpvm.stress.options import StressOptions
    from smpvm.stress.session import run
    f = run(StressOptions(seconds=5, quiet=True))
    f.exit, f.races, f.failures, f.violations, f.panic
"""
