"""Telemetry: what a running runwire process tells its operators.

- :mod:`.metrics`: the process's Prometheus collectors (one registry per
  process, :data:`~runwire.telemetry.metrics.REGISTRY`) and the log hook
  that counts every record written and read.
- :mod:`.health`: the process's readiness and liveness probes and the lag
  sources refreshed at each scrape.
- :mod:`.server`: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.
- :mod:`.tracing`: OpenTelemetry spans and W3C trace context in Kafka
  headers; off unless the ``OTEL_*`` environment asks for it, and then the
  OpenTelemetry SDK is imported only by :mod:`.otel`.
- :mod:`.process`: switches the above on for one ``runwire serve`` process.

Nothing here is on the data path's critical section: a hook that fails is
logged and the record goes on (:mod:`runwire.log.hooks`), an exporter that
is down drops spans and counts them.
"""
