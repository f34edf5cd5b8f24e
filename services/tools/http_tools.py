"""HTTP tools from an agents file: the tool call's input is POSTed as JSON.

Contract:
- :func:`http_tools` gives one :class:`Tool` per ``[tools.NAME]`` of an
  agents file, sharing one ``httpx.AsyncClient`` (the caller's, closed by
  the caller). The spec is the file's name, description and input schema.
- A call sends the input as the JSON body (``method``, ``url``, the file's
  ``headers`` with ``${VAR}`` replaced by environment variable VAR at call
  time) and waits at most the tool's ``timeout``.
- A 2xx answer's JSON body is the result (a body that is not JSON is kept
  as ``{"text": ...}``). Anything else is a tool error the model reads: a
  missing required input property (checked before any request), a non-2xx
  status with the start of its body, a connection failure, an unset
  ``${VAR}``. The endpoint validates its input further itself: it owns the
  schema.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import httpx

from runwire.providers.base import ToolSpec
from runwire.services.agents_file import AgentsFile, HttpToolConfig
from runwire.services.tools.registry import Tool, ToolContext, ToolError, ToolFunction

__all__ = ["http_tool", "http_tools"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BODY_CHARS = 500


def http_tools(file: AgentsFile, client: httpx.AsyncClient) -> list[Tool]:
    """Every HTTP tool of ``file``."""
    return [http_tool(name, config, client) for name, config in file.tools.items()]


def http_tool(name: str, config: HttpToolConfig, client: httpx.AsyncClient) -> Tool:
    """The tool ``name`` calling ``config.url``; see the module contract."""
    spec = ToolSpec(name=name, description=config.description, input_schema=config.input_schema)
    required = [str(r) for r in config.input_schema.get("required", [])]

    async def call(tool_input: Mapping[str, Any], context: ToolContext) -> Any:
        missing = [r for r in required if r not in tool_input]
        if missing:
            raise ToolError(f"the input lacks {', '.join(repr(m) for m in missing)}")
        headers = {k: _expand(v) for k, v in config.headers.items()}
        headers.setdefault("X-Runwire-Run-Id", context.run_id)
        headers.setdefault("X-Runwire-Tool-Use-Id", context.tool_use_id)
        try:
            response = await client.request(
                config.method,
                config.url,
                json=dict(tool_input),
                headers=headers,
                timeout=config.timeout,
            )
        except httpx.HTTPError as e:
            raise ToolError(f"{config.method} {config.url} failed: {type(e).__name__}: {e}") from e
        if not response.is_success:
            body = response.text[:_BODY_CHARS]
            raise ToolError(f"{config.method} {config.url} answered {response.status_code}: {body}")
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"text": response.text}

    function: ToolFunction = call
    # The runner's own bound is a little longer, so the HTTP timeout's message wins.
    return Tool(spec, function, timeout=config.timeout + 1.0)


def _expand(value: str) -> str:
    def var(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise ToolError(f"the environment variable {match.group(1)} is not set")
        return found

    return _VAR.sub(var, value)
