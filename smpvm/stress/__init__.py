"""The stress harness: workloads for CPU processes and their verification."""
