"""The local stack: real Kafka, PostgreSQL and Redis run by runwire itself.

No Docker engine is needed. Kafka's broker jars come from Maven Central into a
cache outside the repository; PostgreSQL and Redis come from Debian's packages.
Every part keeps its data under one home directory (``RUNWIRE_HOME``), listens
on its own loopback port, and survives ``down`` / ``up`` and ``kill -9``.
"""

from runwire.infra.stack.config import StackConfig
from runwire.infra.stack.stack import LocalStack, PartStatus

__all__ = ["LocalStack", "PartStatus", "StackConfig"]
