"""``python -m runwire.services NAME [options]``: one service (orchestrator, tools) as a process.

The same as ``runwire serve NAME`` without the command line's other
commands; kept small so a container can run it with nothing else loaded.
"""

import sys

from runwire.services.process import run_service

if len(sys.argv) < 2 or sys.argv[1] not in ("orchestrator", "tools"):
    raise SystemExit("usage: python -m runwire.services {orchestrator,tools} [options]")
raise SystemExit(run_service(sys.argv[1], sys.argv[2:]))  # type: ignore[arg-type]
