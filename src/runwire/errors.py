"""The exception root of runwire.

Every error carries its retry posture as data (``retriable``), so callers and
retry loops decide in one place instead of matching on classes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

NAMED = 10
"""Items a message names at most (see :func:`listed`)."""


def listed(names: Iterable[str], count: int, *, limit: int = NAMED) -> str:
    """``names`` for a message: the first ``limit`` of them joined (``count`` in
    all), the rest counted (``"a, b and 3 more"``), ``"none"`` when empty.

    - A message that lists what a log or a request holds (tool calls, ids) stays
      short however many it holds: a hostile one may hold any number, and an
      error or an event over its size limit is never delivered.
    """
    shown = ", ".join(itertools.islice(names, limit)) or "none"
    return f"{shown} and {count - limit} more" if count > limit else shown


class RunwireError(Exception):
    """Root of every error raised by runwire."""

    retriable: bool = False


class ConfigurationError(RunwireError):
    """A setting is missing or wrong; the message names the setting."""


class StackError(RunwireError):
    """The local stack could not be started, stopped or inspected.

    ``problem`` names what is wrong and ``fix`` what to do about it; ``str()``
    joins them into the one line the command line prints.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(f"{problem}; fix: {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix


class ContractError(RunwireError):
    """An event or message breaks the contract (schema, ledger or provider rule)."""


class InputError(ContractError):
    """A value given to runwire is refused before anything is written; ``field`` says
    which (``payload.labels['k']``, ``content[1].kind``), ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class DecodeError(ContractError):
    """Bytes could not be decoded into an event; ``reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class NotStartedError(RunwireError, RuntimeError):
    """A resource was used before ``start()`` (or ``async with``), or after ``stop()``;
    the message says how to start it. (A ``RuntimeError`` too, as asyncio's own.)"""


class PublishError(RunwireError):
    """An event could not be written to Kafka; the caller was not told it was."""

    retriable = True


class NotFoundError(RunwireError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class ProviderError(RunwireError):
    """A model provider refused or failed a call.

    ``retriable`` and ``retry_after`` carry the retry decision so the
    orchestrator's single policy can act on it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retriable: bool = False,
        retry_after: float | None = None,
        kind: str = "provider_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retriable = retriable
        self.retry_after = retry_after
        self.kind = kind


class StoreError(RunwireError):
    """A store (Postgres, Redis, a read of the Kafka log) failed a request.

    ``store`` names the store ("the run-status store (Postgres)"). ``retriable``
    says whether the same request may succeed later; a plain :class:`StoreError`
    never will (a missing table, a refused privilege, a broken statement).
    ``kind`` is what a run failed by it carries as its error kind. Adapters
    raise it ``from`` the driver's exception, so callers never match driver
    classes.
    """

    kind = "store_error"

    def __init__(self, message: str, *, store: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.store = store
        self.retriable = retriable


class StoreUnavailableError(StoreError):
    """The store could not be reached or could not serve now (connection lost or
    refused, no pooled connection in time, a failover, a serialization conflict):
    the same request may succeed later."""

    kind = "store_unavailable"

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message, store=store, retriable=True)
