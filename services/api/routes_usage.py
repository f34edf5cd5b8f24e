"""``/v1/usage``: the caller's token usage and its cost, grouped.

Scoped like every read: only usage whose events name the caller's user is
summed (another user's agents, sessions and runs never show). Cost comes
from the API's price table (``usage_prices_file`` / ``RUNWIRE_USAGE_PRICES``,
docs/usage.md); a model without a price makes a cost ``null``, never 0.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from runwire.projections.usage.report import parse_day, priced
from runwire.services.api.auth import Caller
from runwire.services.api.backends import Using
from runwire.services.api.errors import input_as_422

__all__ = ["router"]

router = APIRouter(prefix="/v1/usage", tags=["usage"])

By = Literal["agent", "session", "run", "model", "provider", "day"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Counts(_Out):
    calls: int = Field(description="model calls")
    input_tokens: int = Field(description="prompt tokens at the input price (cache apart)")
    output_tokens: int = Field(description="generated tokens, reasoning included")
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int = Field(description="input + output + cache reads and writes")
    cost: str | None = Field(description="exact decimal; null when a model has no price")
    currency: str
    unpriced_models: list[str] = Field(description="the models that made the cost unknown")


class ModelUsageOut(_Counts):
    model: str
    provider: str


class UsageGroupOut(_Counts):
    key: str | None = Field(description="the agent, session, ... (ISO date for days); null: none")
    models: list[ModelUsageOut]


class UsageOut(_Out):
    by: str
    since: date | None
    until: date | None
    groups: list[UsageGroupOut] = Field(
        description="days oldest first; otherwise most tokens first"
    )


def _day(text: str | None, name: str) -> date | None:
    with input_as_422("query"):
        return parse_day(text, name)


@router.get("", response_model=UsageOut, summary="The caller's usage and cost, grouped")
async def usage(
    principal: Caller,
    using: Using,
    by: Annotated[By, Query(description="what to group by")] = "agent",
    since: Annotated[
        str | None, Query(max_length=20, description="Nd (the N UTC days ending today) or a date")
    ] = "7d",
    until: Annotated[
        str | None, Query(max_length=20, description="the UTC date the window ends before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="groups (the newest days)")] = 100,
) -> UsageOut:
    """Tokens of the caller's model calls summed per group, with their cost and split by model."""
    first, end = _day(since, "since"), _day(until, "until")
    groups = await using.usage.summary(
        by=by,
        since=first,
        until=end,
        user_id=principal.user_id,
        tenant=principal.tenant,
        scoped=True,
        limit=limit,
    )
    return UsageOut(
        by=by,
        since=first,
        until=end,
        groups=[UsageGroupOut.model_validate(priced(g, using.prices)) for g in groups],
    )
