"""The process's probes: is it alive, is it ready, how far behind is it.

Contract:
- A service registers a :class:`Probe` under its name with :func:`register`
  (and removes it with :func:`unregister` when it stops); a process may hold
  several (tests run many services in one process).
- ``ready()`` answers ``None`` when the service is ready (connected and
  caught up) and otherwise a short reason; ``alive()`` answers ``None``
  while its loops run. The process is ready (alive) when every probe is,
  and not ready while none is registered yet.
- ``lag()`` (optional) answers records behind per (group, topic,
  partition); :func:`refresh_lag` sets :data:`runwire.telemetry.metrics.LAG`
  from every probe before a scrape. A probe that fails to answer is reported
  as the reason, never raised; a lag that takes longer than
  :data:`LAG_TIMEOUT` is left out of that scrape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from runwire.telemetry.metrics import LAG

__all__ = ["Probe", "alive", "ready", "refresh_lag", "register", "unregister"]

log = logging.getLogger(__name__)

LAG_TIMEOUT = 2.0
"""Seconds a probe's lag may take before the scrape goes on without it."""

LagSource = Callable[[], Awaitable[Mapping[tuple[str, str, int], int]]]


def _always() -> str | None:
    return None


@dataclass(frozen=True, eq=False)
class Probe:
    """One service's answers; see the module contract."""

    name: str
    ready: Callable[[], str | None]
    alive: Callable[[], str | None] = _always
    lag: LagSource | None = None


_probes: list[Probe] = []
_lag_seen: set[tuple[str, str, int]] = set()


def register(probe: Probe) -> Probe:
    _probes.append(probe)
    return probe


def unregister(probe: Probe) -> None:
    if probe in _probes:
        _probes.remove(probe)


def _answers(which: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for probe in list(_probes):
        check = probe.ready if which == "ready" else probe.alive
        try:
            out[probe.name] = check()
        except Exception as e:
            out[probe.name] = f"the {which} check failed: {type(e).__name__}: {e}"
    return out


def ready() -> dict[str, str | None]:
    """Every probe's readiness (``None``: ready); empty while none is registered."""
    return _answers("ready")


def alive() -> dict[str, str | None]:
    """Every probe's liveness (``None``: alive)."""
    return _answers("alive")


async def refresh_lag() -> None:
    """Set the lag gauge from every probe that knows its lag (before a scrape)."""
    seen: set[tuple[str, str, int]] = set()
    for probe in list(_probes):
        if probe.lag is None:
            continue
        try:
            lags = await asyncio.wait_for(probe.lag(), LAG_TIMEOUT)
        except Exception as e:
            log.warning("%s: its lag could not be read: %s", probe.name, e)
            continue
        for (group, topic, partition), behind in lags.items():
            LAG.labels(group, topic, str(partition)).set(behind)
            seen.add((group, topic, partition))
    # Partitions no longer owned here are no longer this process's lag.
    for group, topic, partition in _lag_seen - seen:
        LAG.remove(group, topic, str(partition))
    _lag_seen.clear()
    _lag_seen.update(seen)
