"""``python -m runwire.services.tools``: the tool runner as a process."""

from runwire.services.process import run_service

raise SystemExit(run_service("tools"))
