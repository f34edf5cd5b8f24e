"""The long-running processes that act on the log (imported as ``runwire.services``).

- :mod:`runwire.services.orchestrator` — answers a run's deltas (a user
  message, or the tool results completing a tool call) by calling a model and
  publishing what it says plus the run's status changes.
- :mod:`runwire.services.tools` — executes the tool calls of registered tools
  and publishes their results.

Both follow the run-events topic with :mod:`runwire.services.follower`: they
hold no state the log cannot rebuild, catch up to the end of a partition
before acting on it, and never act twice on something already answered in
the log. Each is wired in one place (``wiring.py``) from the SDK.
"""
