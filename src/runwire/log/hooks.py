"""Where tracing, tenancy and metrics meet the log: one hook seam for every record.

Contract:
- A :class:`LogHook` installed with :func:`install` sees every record the
  log layer writes (:meth:`LogHook.writing`, which may add headers: trace
  context, tenant) and every record it reads and decodes
  (:meth:`LogHook.read`: counts, lag, trace context), in every process.
- Hooks are process-wide (like OpenTelemetry's global provider) and cost
  nothing while none is installed: callers test :data:`installed` first.
- :data:`scope`, when set (by tracing), wraps every publish call of the
  writer (``publish``, ``publish_many``, ``publish_message``; the encoding
  of ``enqueue_message``): one span per call, whose context the records'
  headers then carry, instead of one per record.
- :data:`reader` names who is reading in the current task (a consumer
  group, a service); consumer loops set it so hooks can say which consumer
  read a record (it is empty where nobody set it).
- A hook that raises is a bug in the hook: the error is logged once per hook
  and the record goes on (observing never fails the data path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableSequence, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from runwire.contract.events import Event
    from runwire.log.records import SourceRecord

__all__ = [
    "LogHook",
    "PublishScope",
    "install",
    "installed",
    "read",
    "reader",
    "scope",
    "set_scope",
    "uninstall",
    "writing",
]

log = logging.getLogger(__name__)


class LogHook(Protocol):
    def writing(
        self, event: Event, topic: str, headers: MutableSequence[tuple[str, bytes]]
    ) -> None:
        """A record of ``event`` is about to be written to ``topic``; may append headers."""
        ...

    def read(self, record: SourceRecord) -> None:
        """A record was read and decoded."""
        ...


PublishScope = Callable[[str, "Sequence[Event]"], AbstractContextManager[object]]
"""Called with the topic and the events of one publish call; the block is the call."""

scope: PublishScope | None = None
"""What wraps each publish call (None: nothing; set with :func:`set_scope`)."""


def set_scope(wrapper: PublishScope | None) -> None:
    """Wrap every later publish call with ``wrapper`` (None: stop)."""
    global scope
    scope = wrapper


reader: ContextVar[str] = ContextVar("runwire_log_reader", default="")
"""Who reads in this task (a consumer group or service name), for hooks."""

_hooks: list[LogHook] = []
_failed: set[int] = set()
installed = False
"""True while at least one hook is installed (checked before calling into this module)."""


def install(hook: LogHook) -> None:
    """Add ``hook`` for every later write and read of this process."""
    global installed
    _hooks.append(hook)
    installed = True


def uninstall(hook: LogHook) -> None:
    """Remove ``hook`` (no error when it is not installed)."""
    global installed
    if hook in _hooks:
        _hooks.remove(hook)
    installed = bool(_hooks)


def _failing(hook: LogHook, error: Exception) -> None:
    if id(hook) not in _failed:
        _failed.add(id(hook))
        log.error("log hook %r failed (the record went on): %s", hook, error, exc_info=error)


def writing(event: Event, topic: str, headers: MutableSequence[tuple[str, bytes]]) -> None:
    """Tell every hook a record is about to be written."""
    for hook in list(_hooks):
        try:
            hook.writing(event, topic, headers)
        except Exception as e:
            _failing(hook, e)


def read(record: SourceRecord) -> None:
    """Tell every hook a record was read."""
    for hook in list(_hooks):
        try:
            hook.read(record)
        except Exception as e:
            _failing(hook, e)
