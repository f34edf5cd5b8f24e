"""The log layer is the only place that builds Kafka clients (the local stack aside)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CLIENT_CLASSES = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
OWNER = REPO / "src" / "runwire" / "log" / "clients.py"
SHIPPED = [REPO / "src" / "runwire", REPO / "projections", REPO / "services"]


LINKS = {"projections", "services", "infra", "schemas"}
"""src/runwire/<these> are links to top-level folders (infra, the local stack, may build clients)."""


def _shipped_sources() -> list[Path]:
    out: list[Path] = []
    for root in SHIPPED:
        for path in root.rglob("*.py"):
            parts = path.relative_to(REPO).parts
            if parts[:2] == ("src", "runwire") and parts[2] in LINKS:
                continue
            out.append(path)
    return out


def test_only_the_log_layer_builds_kafka_clients() -> None:
    builders = []
    for path in _shipped_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in CLIENT_CLASSES and path != OWNER:
                    builders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert builders == []


def test_the_scan_sees_the_owner_and_the_shipped_tree() -> None:
    sources = _shipped_sources()
    assert OWNER in sources
    assert any(p.parts[-3:] == ("projections", "runtime", "consumer.py") for p in sources)
    assert not any("infra" in p.relative_to(REPO).parts for p in sources)
