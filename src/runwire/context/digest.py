"""The canonical JSON of a message list, and its digest.

Contract:
- :func:`canonical_json` is the same bytes for equal messages in every process
  and on every run (no hash seeds, no locale): one compact JSON array of the
  messages in order, each with its fields in model order (``role``,
  ``parts``; each part's fields as :mod:`runwire.transcript.messages`
  declares them), JSON object keys of tool input and result content in the
  order the transcript holds them (the order encoders send), UTF-8 text
  unescaped, bytes (redacted thinking) as base64, numbers exact
  (:mod:`runwire.contract.jsonvalues`: big integers as digits, a ``Decimal``
  as its text, never as a string).
- :func:`model_input_digest` is the SHA-256 (lowercase hex) of those bytes.
  Key order counts on purpose: two inputs with the same digest are the same
  request bytes for every encoder. A released digest format never changes
  (a unit test pins one digest); a new one would need a new field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pydantic import TypeAdapter

from runwire.contract import jsonvalues
from runwire.transcript.messages import Message

__all__ = ["canonical_json", "model_input_digest"]

_MESSAGES = TypeAdapter(list[Message])


def canonical_json(messages: Sequence[Message]) -> bytes:
    """The canonical JSON of ``messages``; see the module contract."""
    # Python mode keeps numbers as they are (JSON mode would write a Decimal as a
    # string); bytes become base64 as pydantic's JSON mode writes them, so the
    # bytes are those of every earlier release for what it could hold.
    return jsonvalues.dumps(
        _MESSAGES.dump_python(list(messages)), default=jsonvalues.bytes_as_base64
    )


def model_input_digest(messages: Sequence[Message]) -> str:
    """SHA-256 hex of :func:`canonical_json` of ``messages``."""
    return hashlib.sha256(canonical_json(messages)).hexdigest()
