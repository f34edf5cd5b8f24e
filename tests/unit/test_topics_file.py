"""The topics file declares what the design asks for, and settings name the same topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwire.errors import ConfigurationError
from runwire.infra.topics import load_topics
from runwire.settings import Settings


def test_the_file_declares_the_four_topics_of_the_design() -> None:
    topics = {spec.id: spec for spec in load_topics()}
    assert set(topics) == {
        "run_events",
        "session_events",
        "memory",
        "checkpoints",
        "dead_letters",
        "live",
    }

    run_events = topics["run_events"]
    assert run_events.partitions == 12
    assert run_events.key == "run_id"
    assert run_events.config["cleanup.policy"] == "delete"
    assert run_events.config["retention.ms"] == "-1"  # forever; never compacted

    assert topics["session_events"].config["retention.ms"] == "-1"
    assert topics["session_events"].key == "session_id"
    assert topics["memory"].config["cleanup.policy"] == "compact"
    dead_letter_retention = int(topics["dead_letters"].config["retention.ms"])
    assert dead_letter_retention >= 30 * 24 * 3600 * 1000  # long


def test_default_settings_name_the_topics_the_file_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    settings = Settings()
    for spec in load_topics():
        assert settings.topic_for(spec.id) == spec.name


def test_cluster_wide_settings_add_min_insync_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    spec = load_topics()[0]
    assert "min.insync.replicas" not in spec.configs_for(Settings())
    assert spec.configs_for(Settings(topic_min_insync_replicas=2))["min.insync.replicas"] == "2"


def test_a_broken_topics_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "topics.toml"
    bad.write_text('[[topic]]\nid = "x"\nname = "x"\nkey = "k"\nwhat = "w"\npartitions = 1\n' * 2)
    with pytest.raises(ConfigurationError, match="declares an id twice"):
        load_topics(bad)
    bad.write_text("[[topic]\n")
    with pytest.raises(ConfigurationError, match="cannot read the topics file"):
        load_topics(bad)


def test_an_unknown_topic_id_names_the_missing_setting() -> None:
    with pytest.raises(ConfigurationError, match="no_such_topic"):
        Settings(home=Path("/nonexistent")).topic_for("no_such")
