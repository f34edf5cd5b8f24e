"""Errors raised when a transcript breaks one of the ledger rules.

Every error carries the ``rule`` it broke as a stable snake_case name, so
callers (dead-letter routing, tests, the orchestrator's failure reason) match
on data rather than on message text, plus where it happened: the run and the
event for a rule broken while building, the run and the message index for a
rule broken by a built transcript.
"""

from __future__ import annotations

from runwire.errors import ContractError


class TranscriptError(ContractError):
    """A transcript rule was broken; ``rule`` names it, ``detail`` says how."""

    def __init__(self, rule: str, detail: str, *, run_id: str | None = None) -> None:
        self.rule = rule
        self.detail = detail
        self.run_id = run_id
        super().__init__(self._render())

    def _where(self) -> list[str]:
        return [f"run {self.run_id}"] if self.run_id else []

    def _render(self) -> str:
        where = ", ".join(self._where())
        prefix = f"{where}: " if where else ""
        return f"{prefix}transcript rule {self.rule!r} broken: {self.detail}"


class LedgerError(TranscriptError):
    """An append to the ledger (or an event folded into it) broke a rule.

    ``event_id`` names the event that broke it when the ledger was fed from
    the log; it is ``None`` for direct :class:`~runwire.transcript.ledger.Ledger`
    calls.
    """

    def __init__(
        self,
        rule: str,
        detail: str,
        *,
        run_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        self.event_id = event_id
        super().__init__(rule, detail, run_id=run_id)

    def _where(self) -> list[str]:
        where = super()._where()
        if self.event_id:
            where.append(f"event {self.event_id}")
        return where

    def at(self, *, run_id: str | None, event_id: str | None) -> LedgerError:
        """The same error, located at ``run_id`` / ``event_id``."""
        return LedgerError(self.rule, self.detail, run_id=run_id, event_id=event_id)


class TranscriptValidationError(TranscriptError):
    """A built transcript cannot be sent to a provider.

    ``index`` is the position of the offending message (``None`` when the rule
    concerns the transcript as a whole, e.g. an empty one).
    """

    def __init__(
        self,
        rule: str,
        detail: str,
        *,
        run_id: str | None = None,
        index: int | None = None,
    ) -> None:
        self.index = index
        super().__init__(rule, detail, run_id=run_id)

    def _where(self) -> list[str]:
        where = super()._where()
        if self.index is not None:
            where.append(f"message {self.index}")
        return where
