"""``python -m runwire.services.orchestrator``: the orchestrator as a process."""

from runwire.services.process import run_service

raise SystemExit(run_service("orchestrator"))
