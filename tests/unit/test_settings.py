"""Settings precedence: constructor > environment > stack file > defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runwire.settings import Settings


def test_stack_file_is_read_and_env_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNWIRE_HOME", str(tmp_path))
    (tmp_path / "stack.json").write_text(
        json.dumps({"kafka_bootstrap_servers": "127.0.0.1:1111", "redis_url": "redis://x:2/0"})
    )
    monkeypatch.setenv("RUNWIRE_REDIS_URL", "redis://env:3/0")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:1111"
    assert settings.redis_url == "redis://env:3/0"
    assert Settings(redis_url="redis://init:4/0").redis_url == "redis://init:4/0"


def test_topic_prefix_applies_to_every_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    settings = Settings(topic_prefix="t1.")
    assert settings.run_events == "t1.runwire.run-events"
    assert settings.dead_letters == "t1.runwire.dead-letters"
