"""The process's Prometheus collectors: one registry, one place that names them.

Contract:
- Every collector lives on :data:`REGISTRY`, prometheus-client's registry of
  the process (it also carries the process and GC collectors), so one
  ``/metrics`` shows all of a process.
- Labels are bounded: topics, event types, consumer groups, partitions,
  projection, provider, model, tool and error kinds; never a run or session
  id.
- :class:`MetricsHook` is a :class:`runwire.log.hooks.LogHook` that counts
  every record the log layer writes and reads, by topic and event type.
- Collectors are module-level singletons: importing the module twice (or
  two services in one process, as in tests) shares them.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from runwire.contract.events import Event
    from runwire.log.records import SourceRecord

__all__ = [
    "DEAD_LETTERS",
    "HANDLER_SECONDS",
    "LAG",
    "MODEL_ERRORS",
    "MODEL_RETRIES",
    "MODEL_SECONDS",
    "MODEL_TOKENS",
    "REBUILD_PROGRESS",
    "RECORDS_CONSUMED",
    "RECORDS_PRODUCED",
    "REGISTRY",
    "SPANS_DROPPED",
    "TOOL_ERRORS",
    "TOOL_SECONDS",
    "TURNS",
    "WATCHDOG_VERDICTS",
    "MetricsHook",
]

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)

RECORDS_PRODUCED = Counter(
    "runwire_records_produced",
    "Records handed to Kafka by the log layer, by topic and event type",
    ("topic", "type"),
)
RECORDS_CONSUMED = Counter(
    "runwire_records_consumed",
    "Records read and decoded by the log layer, by topic and event type",
    ("topic", "type"),
)
HANDLER_SECONDS = Histogram(
    "runwire_handler_duration_seconds",
    "Time to handle what was read: a projector's batch apply, an orchestrator's "
    "delta (model call included), a tool call with its result published",
    ("service", "operation"),
    buckets=LATENCY_BUCKETS,
)
LAG = Gauge(
    "runwire_consumer_lag",
    "Records between the log end and the consumer's position: for projectors the "
    "position stored with the rows, for the orchestrator and the tool runner the "
    "position read to (refreshed at each scrape)",
    ("group", "topic", "partition"),
)
DEAD_LETTERS = Counter(
    "runwire_dead_letters",
    "Records written to the dead-letter topic, by consumer and reason",
    ("consumer", "reason"),
)
REBUILD_PROGRESS = Gauge(
    "runwire_rebuild_progress_ratio",
    "How far a projection rebuild has read the log (0 to 1)",
    ("projection",),
)
TURNS = Counter(
    "runwire_orchestrator_turns",
    "What the orchestrator did with a delta: answered, failed or closed the run",
    ("outcome",),
)
MODEL_SECONDS = Histogram(
    "runwire_model_call_duration_seconds",
    "One model call attempt, by provider, model and outcome (ok or the error kind)",
    ("provider", "model", "outcome"),
    buckets=MODEL_BUCKETS,
)
MODEL_ERRORS = Counter(
    "runwire_model_errors",
    "Model call attempts that failed, by provider, model and error kind",
    ("provider", "model", "kind"),
)
MODEL_RETRIES = Counter(
    "runwire_model_retries",
    "Model calls retried after a retriable error, by provider and model",
    ("provider", "model"),
)
MODEL_TOKENS = Counter(
    "runwire_model_tokens",
    "Tokens the model reported, by provider, model and kind (input, output)",
    ("provider", "model", "kind"),
)
TOOL_SECONDS = Histogram(
    "runwire_tool_call_duration_seconds",
    "One tool execution, by tool and outcome (ok, error)",
    ("tool", "outcome"),
    buckets=LATENCY_BUCKETS,
)
TOOL_ERRORS = Counter(
    "runwire_tool_errors",
    "Tool executions whose result is an error, by tool",
    ("tool",),
)
WATCHDOG_VERDICTS = Counter(
    "runwire_watchdog_verdicts",
    "What the watchdog decided about a run it looked at: the error kind it failed "
    "the run with, or why it left it alone",
    ("verdict",),
)
SPANS_DROPPED = Counter(
    "runwire_spans_dropped",
    "Spans the trace exporter could not deliver (the backend down or too slow)",
    ("reason",),
)


class MetricsHook:
    """Counts every record written and read (a :class:`runwire.log.hooks.LogHook`)."""

    def writing(
        self, event: Event, topic: str, headers: MutableSequence[tuple[str, bytes]]
    ) -> None:
        RECORDS_PRODUCED.labels(topic, event.type.value).inc()

    def read(self, record: SourceRecord) -> None:
        RECORDS_CONSUMED.labels(record.topic, record.event.type.value).inc()
