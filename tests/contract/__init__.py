"""Contract suites: behaviour specified once, run against every implementation.

A suite is a class of tests that needs a ``backend`` fixture; each
implementation's test module subclasses it and provides the fixture (the
in-memory twin in tests/unit, the log-backed one in tests/integration).
Nothing in a suite is skipped for any implementation.
"""
