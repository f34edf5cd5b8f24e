"""Names the session modules share (kept below all of them, so none imports another's API).

- :data:`SYSTEM_KEY`: the metadata key holding a session's system instructions.
- :data:`FROM_DOCUMENT`: the ``import_data`` marker "the owner comes from the document".
"""

from __future__ import annotations

__all__ = ["FROM_DOCUMENT", "SYSTEM_KEY", "FromDocument"]

SYSTEM_KEY = "system"
"""Metadata key that holds the session's system instructions (``role="system"``)."""


class FromDocument:
    """Marker for ``import_data``: the owner (user, tenant) comes from the document."""

    def __repr__(self) -> str:
        return "FROM_DOCUMENT"


FROM_DOCUMENT = FromDocument()
