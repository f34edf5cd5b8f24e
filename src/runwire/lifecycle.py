"""The lifecycle every long-lived resource shares (kept at the bottom, so any floor uses it).

- :class:`AsyncService` gives ``async with`` on top of ``start()`` / ``stop()``;
  subclasses implement both, ``start()`` idempotent while running and
  ``stop()`` safe to call twice.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncService"]


class AsyncService:
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
