"""How deep a tool's JSON may nest in a transcript: one budget for every writer and reader.

Contract:
- :data:`MAX_VALUE_DEPTH`: the most levels of lists and objects a tool_use's
  ``input`` or a tool_result's ``content`` may nest (the value itself is 1).
  The ledger refuses a deeper one (``nested_too_deep``), so every fold - a
  session's write plan, the orchestrator's run state, the transcript cache, a
  rebuild - refuses it alike, and nothing that a body cannot hold gets in.
- :func:`deeper_than`: whether a JSON value nests more than a given number of
  levels (:func:`runwire.contract.jsonvalues.deeper_than`, here beside the budget).

Why this number: an event carries the value alone, up to
:data:`~runwire.contract.jsonvalues.MAX_DEPTH` (254) levels, the most
``jsonvalues`` reads and orjson writes. Every place that keeps it inside
something adds levels around it: a run's body in the transcript cache 4-5
(``[[{"parts": [{"input": ...}]}]]``, which
:mod:`runwire.projections.transcripts.body` decodes up to 254 levels), a
framework item in its run's state 4, an export document, a provider's request.
So the value gets the budget of every value kept inside another,
:data:`~runwire.contract.jsonvalues.MAX_HELD_DEPTH` (200; a framework item
has the same), leaving those wrappers room below 254. (pydantic's JSON parser
alone stops at 200 levels in all, which is why the body decoder does not rely
on it for a deep body.)
"""

from __future__ import annotations

from runwire.contract import jsonvalues
from runwire.contract.jsonvalues import deeper_than

__all__ = ["MAX_VALUE_DEPTH", "deeper_than"]

MAX_VALUE_DEPTH = jsonvalues.MAX_HELD_DEPTH
"""The most levels a tool_use input or tool_result content may nest (see the module doc)."""
