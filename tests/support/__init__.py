"""Test support that never ships: oracles, workloads and sample generators (bench/ may use them)."""
