"""docker-compose.yml can't run here (no Docker engine), so it is checked against
what can: the compose specification's JSON schema, and the code it deploys.

- The file (and a copy with a typo, to show the check bites) against the
  compose specification's schema, the one check-jsonschema ships.
- Every ``runwire serve`` service (projectors from the catalog, orchestrator,
  tools, watchdog, api) runs in a container of its own name, with a restart
  policy, a health check on ``/readyz`` of its metrics port, and waits for the
  topics and migrations jobs; nothing else runs ``runwire serve``.
- Every ``RUNWIRE_*`` variable is a setting and its value (after compose's
  interpolation) is valid; every service names the same servers and topics.
- Host ports: the local stack's, published on loopback only.
- The observability profile: Prometheus scrapes exactly those services'
  metrics ports, the trace path (services -> collector -> Jaeger) connects,
  Grafana's provisioning, data source and dashboard agree, and every file a
  container mounts exists.
- The Dockerfile installs the runtime lock with hashes and copies every folder
  the package links.
"""

from __future__ import annotations

import base64
import copy
import importlib
import importlib.resources
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from runwire.cli.main import app
from runwire.cli.serve import services as serve_services
from runwire.infra.stack import StackConfig
from runwire.infra.topics import load_topics
from runwire.settings import Settings

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "infra" / "observability"
IMAGE = "runwire:dev"
ONE_SHOT = {
    "topics": ["runwire", "topics", "apply"],
    "migrate": ["runwire", "projections", "migrate"],
}
# What compose is given on the command line in docs/deploy.md's first example.
GIVEN = {"RUNWIRE_API_KEYS": "k-123:alice"}
# The OpenTelemetry SDK's standard variables the services are given
# (opentelemetry.sdk.environment_variables); runwire reads them.
OTEL_VARIABLES = {
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
}


@pytest.fixture
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    for name in list(os.environ):
        if name.startswith("RUNWIRE_") and name != "RUNWIRE_HOME":
            monkeypatch.delenv(name)
    return Settings()


# -- compose's own rules ----------------------------------------------------------

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def interpolate(value: str, given: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = given.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise ValueError(f"{name}: {arg}")
        if op is not None and op.endswith("-") and unset:
            return str(arg)
        return value or ""

    return _VARIABLE.sub(replace, value)


def _env(service: dict[str, Any], given: Mapping[str, str] = GIVEN) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: interpolate(str(v), given) for k, v in env.items()}


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, for ports published on loopback."""
    out = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container_port = str(entry).split(":")
        assert host_ip == "127.0.0.1", "publish on loopback only, like the local stack"
        out[int(container_port)] = int(host_port)
    return out


def _runwire_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The containers that run ``runwire serve NAME``, by NAME."""
    found = {}
    for name, service in compose["services"].items():
        command = service.get("command", [])
        if command[:2] == ["runwire", "serve"]:
            assert len(command) == 3, f"{name}: settings go in the environment, not flags"
            found[command[2]] = service
            assert name == command[2], f"the container of `runwire serve {command[2]}` is {name}"
    return found


def _metrics_port(service: dict[str, Any]) -> int:
    return int(_env(service)["RUNWIRE_METRICS_PORT"])


# -- the specification ------------------------------------------------------------


def _compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def _spec_errors(document: dict[str, Any]) -> list[str]:
    schema = _compose_schema()
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _spec_errors(compose) == []
    # The check is not vacuous: the typos compose itself would refuse are caught.
    broken = copy.deepcopy(compose)
    broken["services"]["orchestrator"]["restrat"] = "always"
    broken["services"]["kafka"]["healthcheck"]["interval"] = 5
    errors = _spec_errors(broken)
    assert any("restrat" in e for e in errors), errors
    assert any(e.startswith("services/kafka/healthcheck/interval") for e in errors), errors


def test_interpolation_needs_only_the_api_keys(compose: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RUNWIRE_API_KEYS"):
        _env(compose["services"]["api"], given={})
    for service in compose["services"].values():
        _env(service)  # nothing else is required


# -- the services the code has ----------------------------------------------------


def test_every_runwire_serve_service_runs_in_its_own_container(compose: dict[str, Any]) -> None:
    missing = set(serve_services()) - set(_runwire_services(compose))
    assert not missing, (
        f"add {missing} to docker-compose.yml and infra/observability/prometheus.yml"
    )
    assert set(_runwire_services(compose)) == set(serve_services())


def test_runwire_services_restart_report_readiness_and_wait_for_the_jobs(
    compose: dict[str, Any],
) -> None:
    for name, service in _runwire_services(compose).items():
        assert service["image"] == IMAGE, name
        assert "build" not in service, f"{name}: one build (the topics job), one image"
        assert service["restart"] == "unless-stopped", name
        assert "profiles" not in service, f"{name} is part of the system, not a profile"
        for job in ONE_SHOT:
            assert service["depends_on"][job]["condition"] == "service_completed_successfully"
        probe = " ".join(service["healthcheck"]["test"])
        assert "/readyz" in probe, name
        # The probe reads the port the process serves on, so they cannot differ.
        assert "os.environ['RUNWIRE_METRICS_PORT']" in probe, name
        assert 0 < _metrics_port(service) < 65536
        env = _env(service)
        assert env["RUNWIRE_METRICS_HOST"] == "0.0.0.0", f"{name}: Prometheus scrapes from outside"
        assert env["OTEL_SERVICE_NAME"] == f"runwire-{name}"


def test_one_shot_jobs_run_real_commands_once_their_servers_are_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["topics"]["build"] == "."
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for server in ("postgres", "redis"):
        assert services["migrate"]["depends_on"][server]["condition"] == "service_healthy"
    runner = CliRunner()
    for job, command in ONE_SHOT.items():
        service = services[job]
        assert service["command"] == command
        assert service["image"] == IMAGE
        assert str(service["restart"]).startswith("on-failure"), f"{job} is one-shot"
        result = runner.invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, f"`{' '.join(command)}` is not a command: {result.output}"


def test_runwire_environment_names_real_settings_with_valid_values(
    compose: dict[str, Any],
) -> None:
    fields = {f"RUNWIRE_{name.upper()}" for name in Settings.model_fields}
    services = compose["services"]
    internal = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name, service in services.items():
        env = _env(service)
        runwire = {k: v for k, v in env.items() if k.startswith("RUNWIRE_")}
        assert set(runwire) <= fields, f"{name}: {set(runwire) - fields} are not settings"
        otel = {k for k in env if k.startswith("OTEL_")}
        assert otel <= OTEL_VARIABLES, f"{name}: {otel - OTEL_VARIABLES}"
        settings = Settings.model_validate(
            {k.removeprefix("RUNWIRE_").lower(): v for k, v in runwire.items() if v != ""}
        )
        if "RUNWIRE_KAFKA_BOOTSTRAP_SERVERS" in runwire:
            assert f"//{settings.kafka_bootstrap_servers}" in internal
        if "RUNWIRE_POSTGRES_DSN" in runwire:
            dsn = urlsplit(settings.postgres_dsn)
            assert (dsn.hostname, dsn.port) == ("postgres", 5432)
        if "RUNWIRE_REDIS_URL" in runwire:
            url = urlsplit(settings.redis_url)
            assert (url.hostname, url.port) == ("redis", 6379)


def test_every_runwire_container_names_the_same_servers_and_topics(
    compose: dict[str, Any], defaults: Settings
) -> None:
    # Services that disagree on a topic or a prefix would talk past each other.
    shared = [
        "kafka_bootstrap_servers",
        "postgres_dsn",
        "redis_url",
        "redis_key_prefix",
        "topic_prefix",
        *(f"{spec.id}_topic" for spec in load_topics()),
    ]
    seen: dict[str, set[str]] = {field: set() for field in shared}
    for service in compose["services"].values():
        if service.get("image") != IMAGE:
            continue
        env = _env(service)
        for field in shared:
            seen[field].add(env.get(f"RUNWIRE_{field.upper()}", str(getattr(defaults, field))))
    assert {f: v for f, v in seen.items() if len(v) != 1} == {}


# -- the stateful servers -----------------------------------------------------------


def test_host_ports_are_the_ones_default_settings_reach(
    compose: dict[str, Any], defaults: Settings
) -> None:
    services = compose["services"]
    stack = StackConfig(home=Path("/nonexistent"))
    kafka_host_port = int(defaults.kafka_bootstrap_servers.rsplit(":", 1)[1])
    assert kafka_host_port == stack.kafka_port
    assert kafka_host_port in _published(services["kafka"]).values()
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"localhost:{kafka_host_port}" in advertised

    pg = urlsplit(defaults.postgres_dsn)
    assert pg.port == stack.postgres_port
    assert _published(services["postgres"]) == {5432: pg.port}
    pg_env = _env(services["postgres"])
    assert pg_env["POSTGRES_USER"] == pg.username == stack.postgres_user
    assert pg_env["POSTGRES_DB"] == pg.path.lstrip("/") == stack.postgres_db

    redis = urlsplit(defaults.redis_url)
    assert redis.port == stack.redis_port
    assert _published(services["redis"]) == {6379: redis.port}

    api = services["api"]
    assert _published(api) == {int(_env(api)["RUNWIRE_API_PORT"]): defaults.api_port}
    host_ports = [p for s in services.values() for p in _published(s).values()]
    assert len(host_ports) == len(set(host_ports)), "two services publish one host port"


def test_kafka_is_the_pinned_release_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{StackConfig(home=Path('/x')).kafka_version}"
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_stateful_services_have_healthchecks_restarts_and_named_volumes(
    compose: dict[str, Any],
) -> None:
    for name in ("kafka", "postgres", "redis"):
        service = compose["services"][name]
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name
        volume = service["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name} keeps its data in a named volume"


def test_topics_are_provisioned_from_the_topics_file_once_kafka_is_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    # Nothing else creates topics behind the topics file's back.
    for name, service in services.items():
        assert not any(key.endswith("CREATE_TOPICS") for key in _env(service)), name
    brokers = 1
    env = _env(services["topics"])
    assert int(env["RUNWIRE_TOPIC_REPLICATION_FACTOR"]) <= brokers
    # Every topic the file declares is one the settings can name (and so provision).
    settings = Settings.model_validate({"home": "/nonexistent"})
    assert all(settings.topic_for(spec.id) for spec in load_topics())


# -- the observability profile --------------------------------------------------------


def _load(path: Path) -> Any:
    return (
        json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    )


def test_observability_runs_only_in_its_profile_and_mounts_files_that_exist(
    compose: dict[str, Any],
) -> None:
    profiled = {n for n, s in compose["services"].items() if "profiles" in s}
    assert profiled == {"prometheus", "grafana", "otel-collector", "jaeger"}
    for name, service in compose["services"].items():
        if name in profiled:
            assert service["profiles"] == ["observability"], name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is missing"
                if (REPO / source).is_file():
                    _load(REPO / source)  # parses


def test_prometheus_scrapes_every_runwire_service_and_the_collector(
    compose: dict[str, Any],
) -> None:
    config = _load(OBSERVABILITY / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scraped = {
        target: group.get("labels", {}).get("service")
        for group in jobs["runwire"]["static_configs"]
        for target in group["targets"]
    }
    expected = {
        f"{name}:{_metrics_port(service)}": name
        for name, service in _runwire_services(compose).items()
    }
    assert scraped == expected
    collector = _load(OBSERVABILITY / "otel-collector.yaml")
    reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert [t for g in jobs["otel-collector"]["static_configs"] for t in g["targets"]] == [
        f"otel-collector:{reader['prometheus']['port']}"
    ]


def test_traces_flow_from_the_services_through_the_collector_to_jaeger(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    collector = _load(OBSERVABILITY / "otel-collector.yaml")
    protocols = collector["receivers"]["otlp"]["protocols"]
    for name, service in _runwire_services(compose).items():
        env = _env(service)
        assert env["OTEL_SDK_DISABLED"] == "true", f"{name}: tracing is off unless asked for"
        assert (
            _env(service, {**GIVEN, "OTEL_SDK_DISABLED": "false"})["OTEL_SDK_DISABLED"] == "false"
        )
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.hostname == "otel-collector"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert protocols["http"]["endpoint"] == f"0.0.0.0:{endpoint.port}"
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(pipeline["processors"]) <= set(collector["processors"])
    (exporter,) = pipeline["exporters"]
    host, port = collector["exporters"][exporter]["endpoint"].split(":")
    assert host in services
    assert (
        f"--set=receivers.otlp.protocols.grpc.endpoint=0.0.0.0:{port}" in services[host]["command"]
    )


def _mount_target(service: dict[str, Any], source: str) -> str:
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return str(parts[1])
    raise AssertionError(f"{source} is not mounted")


def test_grafana_provisions_the_prometheus_source_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = OBSERVABILITY / "grafana" / "provisioning"
    (source,) = _load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    prometheus = compose["services"]["prometheus"]
    assert urlsplit(source["url"]).hostname == "prometheus"
    assert urlsplit(source["url"]).port in _published(prometheus)
    (provider,) = _load(provisioning / "dashboards" / "runwire.yml")["providers"]
    dashboards = "./infra/observability/grafana/dashboards"
    assert provider["options"]["path"] == _mount_target(grafana, dashboards)
    files = sorted((REPO / dashboards).glob("*.json"))
    assert files, "no dashboard"
    for path in files:
        dashboard = _load(path)
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert panels, path.name
        for panel in panels:
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t["expr"] for t in panel["targets"]), panel["title"]


# -- the image ----------------------------------------------------------------------


def test_the_image_installs_the_lock_with_hashes_and_every_linked_folder() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile
    linked = [p.name for p in (REPO / "src" / "runwire").iterdir() if p.is_symlink()]
    assert linked
    for folder in linked:
        assert f"COPY {folder} ./{folder}" in dockerfile, f"the image lacks {folder}/"


def _exported_names() -> set[str]:
    """Every series name the services' registry can expose (runwire.telemetry.metrics)."""
    from prometheus_client import REGISTRY

    # Importing the module registers the collectors every `runwire serve` process exports.
    importlib.import_module("runwire.telemetry.metrics")
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def test_the_dashboard_queries_only_metrics_the_services_export() -> None:
    exported = _exported_names()
    dashboard = _load(OBSERVABILITY / "grafana" / "dashboards" / "runwire.json")
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\brunwire_[a-z0-9_]+", target["expr"])
    }
    assert queried, "the dashboard queries no runwire metric"
    assert queried - exported == set(), "the dashboard queries metrics no service exports"
