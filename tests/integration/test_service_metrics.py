"""Every ``runwire serve`` process answers ``/metrics``, ``/healthz`` and ``/readyz`` for real."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from runwire.client import Client
from runwire.contract.events import RunStatus
from runwire.services.process import ServiceProcess
from runwire.settings import Settings
from tests.conftest import free_port
from tests.helpers import assert_eventually

SERVICES = (
    "projector-runs",
    "projector-sessions",
    "projector-transcripts",
    "orchestrator",
    "tools",
    "watchdog",
    "api",
)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_each_service_serves_metrics_health_and_readiness(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"api_port": free_port(), "api_keys": SecretStr("metrics-test-key-0123456789:alice")}
    )
    ports: dict[str, int] = {}
    processes: list[ServiceProcess] = []
    for name in SERVICES:
        ports[name] = free_port(set(ports.values()) | {settings.api_port})
        processes.append(
            ServiceProcess.serve(
                name, settings, "--log-level", "WARNING", "--metrics-port", str(ports[name])
            )
        )
    async with contextlib.AsyncExitStack() as stack:
        for process in processes:
            await process.start()
            stack.push_async_callback(process.stop)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=5))

        async def all_ready() -> bool:
            for name, port in ports.items():
                try:
                    answer = await http.get(f"http://127.0.0.1:{port}/readyz")
                except httpx.TransportError as e:
                    tail = "\n".join(processes[SERVICES.index(name)].output[-15:])
                    raise AssertionError(f"{name}: no answer on :{port}: {e}\n{tail}") from e
                assert answer.status_code == 200, f"{name}: {answer.text}"
                assert answer.json()["status"] == "ok"
                assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            return True

        await assert_eventually(all_ready, timeout=90, interval=0.5)

        async with Client(settings) as rw:
            handle = await rw.run("helper", "what is 6 * 7?", session_id="metrics")
            outcome = await handle.wait(timeout=60)
        assert outcome.status is RunStatus.COMPLETED

        async def scrape(name: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            answer = await http.get(f"http://127.0.0.1:{ports[name]}/metrics")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            return _samples(answer.text)

        run_events = settings.run_events

        async def counted() -> bool:
            runs = await scrape("projector-runs")
            assert (
                _total(
                    runs, "runwire_records_consumed_total", topic=run_events, type="run_completed"
                )
                >= 1
            )
            assert _total(runs, "runwire_handler_duration_seconds_count", service="runs") >= 1
            assert ("runwire_consumer_lag", frozenset()) not in runs
            lags = [
                v
                for (n, ls), v in runs.items()
                if n == "runwire_consumer_lag"
                and ("group", f"{settings.topic_prefix}runwire-projector-runs") in ls
            ]
            assert lags
            assert sum(lags) == 0, lags  # caught up: nothing behind the log end

            orchestrator = await scrape("orchestrator")
            assert _total(orchestrator, "runwire_orchestrator_turns_total", outcome="answered") == 2
            assert (
                _total(
                    orchestrator,
                    "runwire_model_call_duration_seconds_count",
                    provider="local",
                    outcome="ok",
                )
                == 2
            )
            assert _total(orchestrator, "runwire_model_tokens_total", kind="output") > 0
            assert _total(orchestrator, "runwire_records_produced_total", topic=run_events) > 0
            assert any(n == "runwire_consumer_lag" for n, _ in orchestrator)

            tools = await scrape("tools")
            assert (
                _total(
                    tools,
                    "runwire_tool_call_duration_seconds_count",
                    tool="calculator",
                    outcome="ok",
                )
                == 1
            )
            assert _total(tools, "runwire_records_produced_total", type="tool_result") == 1
            return True

        await assert_eventually(counted, timeout=30, interval=0.5)

        watchdog = await http.get(f"http://127.0.0.1:{ports['watchdog']}/metrics")
        assert "runwire_watchdog_verdicts" in watchdog.text
        # The API's request metrics live on the process registry: both ports show them.
        await http.get(f"http://127.0.0.1:{settings.api_port}/healthz")
        api = _samples((await http.get(f"http://127.0.0.1:{ports['api']}/metrics")).text)
        assert _total(api, "runwire_api_requests_total", route="/healthz") >= 1

        # A service that stops is no longer ready, and its port closes.
        tools_process = processes[SERVICES.index("tools")]
        await tools_process.stop()
        with contextlib.suppress(httpx.TransportError):
            answer = await http.get(f"http://127.0.0.1:{ports['tools']}/readyz")
            assert answer.status_code == 503, json.dumps(answer.json())
        await asyncio.sleep(0)
