"""A session holding a secret in every kind of content: what the erasure proofs write."""

from __future__ import annotations

from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.transcript.messages import ThinkingPart, ToolUsePart


async def secret_session(
    backend: LogBackend, secret: str, *, user: str = "alice", tenant: str | None = None
) -> str:
    """A new session of ``user`` with ``secret`` in its text, thinking, tool input and
    result, metadata and session memory; its id."""
    async with AsyncSession(user_id=user, tenant=tenant, backend=backend) as s:
        await s.add_message("user", f"my secret is {secret}")
        await s.add_message(
            "assistant",
            [
                ThinkingPart(text=f"they said {secret}", signature="sig"),
                f"noted: {secret}",
                ToolUsePart(id="c1", name="vault", input={"store": secret}),
            ],
        )
        await s.add_message("tool", {"tool_use_id": "c1", "content": {"stored": secret}})
        await s.add_message("assistant", "done")
        await s.set("note", secret)
        await s.store_memory("pin", secret)
        assert any(secret in m.text() for m in await s.get_messages())
        return s.session_id
