"""The orchestrator's history windows: what their token budget accepts."""

from __future__ import annotations

from typing import Any, cast

import pytest

from runwire.services.orchestrator.history import SessionHistory
from runwire.settings import Settings


def test_a_negative_token_budget_is_refused_with_its_value() -> None:
    nothing = cast(Any, None)  # readers are only used once it runs
    with pytest.raises(ValueError, match="max_window_tokens must be 0 or more, not -1"):
        SessionHistory(
            Settings(),
            runs=nothing,
            sessions=None,
            run_log=nothing,
            provider="anthropic",
            thinking_enabled=False,
            max_window_tokens=-1,
        )
