"""The topics file and its idempotent provisioning.

Contract:
- ``topics.toml`` beside this module is the one declaration of every topic.
- :func:`provision_topics` creates the topics that are missing and reconciles
  the declared configs of those that exist. Configs an operator set that the
  file does not mention are kept.
- It never deletes a topic or a record and never changes a partition count:
  a count that differs from the file is reported as drift, because changing it
  breaks per-key order (per-run order for the run-events topic).
- It is safe to run any number of times, from any number of processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import BaseModel, ConfigDict, Field

from runwire.errors import ConfigurationError, StackError
from runwire.settings import Settings

TOPICS_FILE = Path(__file__).with_name("topics.toml")

log = logging.getLogger(__name__)

# Kafka protocol error codes that provisioning treats as "already done".
_TOPIC_ALREADY_EXISTS = 36
# DescribeConfigs config_source: 1 = DYNAMIC_TOPIC_CONFIG (set on the topic itself).
_DYNAMIC_TOPIC_CONFIG = 1


class TopicSpec(BaseModel):
    """One topic as the topics file declares it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")
    key: str
    what: str
    partitions: int = Field(ge=1)
    config: dict[str, str] = Field(default_factory=dict)

    def configs_for(self, settings: Settings) -> dict[str, str]:
        """The declared configs plus the cluster-wide ones settings add."""
        configs = dict(self.config)
        if settings.topic_min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
        return configs


class _TopicsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: list[TopicSpec]


def load_topics(path: Path | None = None) -> list[TopicSpec]:
    """Read and validate the topics file (``infra/topics.toml`` by default)."""
    path = path or TOPICS_FILE
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationError(f"cannot read the topics file {path}: {e}") from e
    specs = _TopicsFile.model_validate(data).topic
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigurationError(f"the topics file {path} declares an id twice: {ids}")
    return specs


@dataclass
class ProvisionReport:
    """What :func:`provision_topics` found and did, by full topic name."""

    created: list[str] = field(default_factory=list)
    reconciled: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        for name, changes in self.reconciled.items():
            diff = ", ".join(f"{k}: {old} -> {new}" for k, (old, new) in changes.items())
            out.append(f"reconciled {name} ({diff})")
        out += [f"unchanged {name}" for name in self.unchanged]
        out += [f"drift: {d}" for d in self.drift]
        return out


async def provision_topics(
    settings: Settings,
    specs: Sequence[TopicSpec] | None = None,
    *,
    limit: float = 30.0,
) -> ProvisionReport:
    """Make the cluster hold every declared topic with its declared configs."""
    specs = list(specs) if specs is not None else load_topics()
    names = {spec.id: settings.topic_for(spec.id) for spec in specs}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.client_id}-provision",
        request_timeout_ms=int(limit * 1000),
    )
    try:
        await admin.start()
    except Exception as e:
        raise StackError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} to provision topics ({e})",
            "start the stack (runwire stack up) or set RUNWIRE_KAFKA_BOOTSTRAP_SERVERS",
        ) from e
    report = ProvisionReport()
    try:
        existing = {t["topic"]: t for t in await admin.describe_topics(list(names.values()))}
        present = {n for n, t in existing.items() if t["error_code"] == 0}
        missing = [spec for spec in specs if names[spec.id] not in present]
        if missing:
            await _create(admin, settings, missing, names, report)
        for spec in specs:
            name = names[spec.id]
            if name not in present:
                continue
            count = len(existing[name]["partitions"])
            if count != spec.partitions:
                report.drift.append(
                    f"{name} has {count} partitions, the topics file declares {spec.partitions};"
                    " left as is (changing a partition count breaks per-key order)"
                )
        await _reconcile(
            admin, settings, [s for s in specs if names[s.id] in present], names, report, limit
        )
        await _wait_for_leaders(admin, list(names.values()), limit)
    finally:
        await admin.close()
    return report


async def _create(
    admin: AIOKafkaAdminClient,
    settings: Settings,
    specs: list[TopicSpec],
    names: dict[str, str],
    report: ProvisionReport,
) -> None:
    new = [
        NewTopic(
            names[spec.id],
            spec.partitions,
            settings.topic_replication_factor,
            topic_configs=spec.configs_for(settings),
        )
        for spec in specs
    ]
    response = (await admin.create_topics(new)).to_object()
    for entry in response["topic_errors"]:
        code = entry["error_code"]
        if code == 0:
            report.created.append(entry["topic"])
        elif code == _TOPIC_ALREADY_EXISTS:  # another process won the race
            report.unchanged.append(entry["topic"])
        else:
            raise StackError(
                f"Kafka refused to create topic {entry['topic']}: error {code}"
                f" {entry.get('error_message') or ''}".rstrip(),
                "check the topics file and RUNWIRE_TOPIC_REPLICATION_FACTOR against the cluster",
            )


async def _reconcile(
    admin: AIOKafkaAdminClient,
    settings: Settings,
    specs: list[TopicSpec],
    names: dict[str, str],
    report: ProvisionReport,
    limit: float,
) -> None:
    if not specs:
        return
    current = await _describe_configs(admin, [names[s.id] for s in specs])
    alters = []
    for spec in specs:
        name = names[spec.id]
        have = current.get(name, {})
        want = spec.configs_for(settings)
        changes = {
            k: (have.get(k, (None, 0))[0], v)
            for k, v in want.items()
            if have.get(k, (None, 0))[0] != v
        }
        if not changes:
            report.unchanged.append(name)
            continue
        # AlterConfigs replaces every dynamic config of the topic: send the ones
        # already set (so an operator's own settings survive) plus the declared ones.
        merged = {
            k: value for k, (value, source) in have.items() if source == _DYNAMIC_TOPIC_CONFIG
        }
        merged.update(want)
        alters.append(ConfigResource(ConfigResourceType.TOPIC, name, merged))
        report.reconciled[name] = changes
    if not alters:
        return
    for response in await admin.alter_configs(alters):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise StackError(
                    f"Kafka refused the configs of topic {resource['resource_name']}:"
                    f" error {resource['error_code']} {resource['error_message'] or ''}".rstrip(),
                    "fix the config in infra/topics.toml",
                )
    # A broker applies config changes as the metadata log reaches it: wait until it shows them.
    wanted = {str(r.name): dict(r.configs or {}) for r in alters}
    deadline = time.monotonic() + limit
    while True:
        shown = await _describe_configs(admin, list(wanted))
        if all(shown[n].get(k, (None, 0))[0] == v for n, c in wanted.items() for k, v in c.items()):
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"Kafka accepted new configs for {sorted(wanted)} but did not apply them"
                f" within {limit:.0f}s",
                "check the broker log (runwire stack logs kafka)",
            )
        await asyncio.sleep(0.1)


async def _describe_configs(
    admin: AIOKafkaAdminClient, names: list[str], limit: float = 15.0
) -> dict[str, dict[str, tuple[str | None, int]]]:
    """Every config of each topic: name -> (value, config_source).

    A broker that has not caught up with a new topic answers with an error
    and no entries; that is asked again (up to ``limit`` seconds), never
    read as "no configs".
    """
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    deadline = time.monotonic() + limit
    while True:
        current: dict[str, dict[str, tuple[str | None, int]]] = {}
        failed: list[str] = []
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                if resource.get("error_code"):
                    failed.append(
                        f"{resource['resource_name']} (Kafka error {resource['error_code']}: "
                        f"{resource.get('error_message')})"
                    )
                    continue
                current[resource["resource_name"]] = {
                    entry["config_names"]: (entry["config_value"], entry["config_source"])
                    for entry in resource["config_entries"]
                }
        if not failed:
            return current
        if time.monotonic() > deadline:
            raise StackError(
                f"describing the configs of topics {', '.join(failed)} failed for {limit:.0f}s",
                "check the brokers (runwire stack status, runwire stack logs kafka)",
            )
        await asyncio.sleep(0.2)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], limit: float) -> None:
    """Wait until every partition of every topic has a leader, so it is usable."""
    deadline = time.monotonic() + limit
    while True:
        topics = await admin.describe_topics(names)
        if all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
            for t in topics
        ):
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"topics {names} have no leader after {limit:.0f}s",
                "check the broker log (runwire stack logs kafka)",
            )
        await asyncio.sleep(0.1)
