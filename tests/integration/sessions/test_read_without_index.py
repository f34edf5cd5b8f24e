"""A session read on the log backend queries no Postgres, and an unchanged
session is not transferred again, on the real stack: the clear point and the
deletion come with the runs from the transcript cache (one script call); the
version read in the same call says whether what the process holds is still
current. The reading backend's Postgres pool is closed after the session is
opened, so any query on the read path would fail the test."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

import pytest
import redis.asyncio as aioredis

from runwire.errors import NotFoundError
from runwire.projections.transcripts.keys import Keyspace
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from runwire.transcript.messages import Message

pytestmark = pytest.mark.integration

_OTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from runwire.sessions import AsyncSession
    from runwire.settings import Settings

    async def main() -> None:
        settings = Settings.model_validate_json(sys.argv[1])
        async with AsyncSession(sys.argv[2], user_id="alice", settings=settings) as s:
            for step in sys.argv[3:]:
                if step == "clear":
                    await s.clear()
                elif step == "delete":
                    await s.delete()
                else:
                    await s.add_message("user", step)

    asyncio.run(main())
    """
)


async def in_another_process(settings: Settings, session_id: str, *steps: str) -> None:
    """Run ``steps`` (``clear``, ``delete`` or a user message) on the session
    in a separate Python process with its own backend."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _OTHER_PROCESS,
        settings.model_dump_json(),
        session_id,
        *steps,
        env={**os.environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()


def texts(messages: list[Message]) -> list[str]:
    return [m.text() for m in messages]


async def test_a_clear_from_another_process_is_read_without_postgres(
    log_backend: LogBackend, settings: Settings
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as writer:
        await writer.add_messages([("user", "q0"), ("assistant", "a0")])
        await writer.add_messages([("user", "q1"), ("assistant", "a1")])
        # Handed to another process: once the cache has the writer's runs.
        await log_backend.settle(writer.session_id)
        async with (
            LogBackend(settings) as backend,
            AsyncSession(writer.session_id, user_id="alice", backend=backend) as reader,
        ):
            assert texts(await reader.get_messages()) == ["q0", "a0", "q1", "a1"]
            await backend.pool.close()  # from here on, a Postgres query fails
            await in_another_process(settings, writer.session_id, "clear", "after the clear")
            assert texts(await reader.get_messages()) == ["after the clear"]
            assert texts(await reader.get_messages(limit=1)) == ["after the clear"]
            # The other process's writes are seen too, and a clear again.
            await in_another_process(settings, writer.session_id, "more", "clear")
            assert texts(await reader.get_messages()) == []
            await in_another_process(settings, writer.session_id, "delete")
            with pytest.raises(NotFoundError):
                await reader.get_messages()


async def test_an_unchanged_session_is_not_transferred_again(
    log_backend: LogBackend, settings: Settings
) -> None:
    # The writer's new runs are visible to every reader when its writes return
    # (the default serves them to the writer alone until the cache has them).
    async with (
        LogBackend(settings, visible_to="everyone") as everyone,
        AsyncSession(user_id="alice", backend=everyone) as writer,
    ):
        for i in range(5):
            await writer.add_messages([("user", f"q{i}"), ("assistant", f"a{i}" * 50)])
        expected = texts(await writer.get_messages())
        async with (
            LogBackend(settings) as backend,
            AsyncSession(writer.session_id, user_id="alice", backend=backend) as reader,
        ):
            await backend.pool.close()
            script = backend.view
            first = await reader.get_messages()
            assert texts(first) == expected
            whole = script.last_reply_bytes
            assert whole > 5 * 250  # the five runs' bodies came
            first.clear()  # what a caller does to its list changes nothing held
            again = await reader.get_messages()
            assert texts(again) == expected
            assert script.last_reply_bytes < 100, script.last_reply_bytes  # the header only
            assert texts(await reader.get_messages(limit=2)) == expected[-4:]
            assert script.last_reply_bytes < 100  # a limit read is served from it too
            # Another writer's add: the next read transfers the bodies again.
            await writer.add_message("user", "q5")
            assert texts(await reader.get_messages(limit=1)) == ["q5"]  # the newest runs
            assert 0 < script.last_reply_bytes < whole
            assert texts(await reader.get_messages()) == [*expected, "q5"]
            # Only the changed run came (held at an older version of the session).
            assert 100 < script.last_reply_bytes < whole / 3, (script.last_reply_bytes, whole)
            assert texts(await reader.get_messages()) == [*expected, "q5"]
            assert script.last_reply_bytes < 100
            # A clear by another writer: a new version, and nothing before it shows.
            runs_before = len(await backend.history(writer.session_id))
            await writer.clear()
            assert texts(await reader.get_messages()) == []
            await writer.add_message("user", "fresh")
            assert texts(await reader.get_messages()) == ["fresh"]
            # Only the runs after the clear point are transferred.
            assert script.last_reply_bytes < whole
            # The history itself (export, erasure) still lists every run.
            assert len(await backend.history(writer.session_id)) == runs_before + 1


async def test_a_backend_without_held_sessions_reads_whole_every_time(
    log_backend: LogBackend, settings: Settings
) -> None:
    # The reader is another backend: the writer's runs are in the cache on return.
    async with (
        LogBackend(settings, visible_to="everyone") as everyone,
        AsyncSession(user_id="alice", backend=everyone) as writer,
    ):
        await writer.add_messages([("user", "q0"), ("assistant", "a0")])
        async with (
            LogBackend(settings, decoded_bytes=0) as backend,
            AsyncSession(writer.session_id, user_id="alice", backend=backend) as reader,
        ):
            script = backend.view
            for _ in range(2):
                assert texts(await reader.get_messages()) == ["q0", "a0"]
                assert script.last_reply_bytes > 20


async def test_a_delta_that_does_not_add_up_is_read_whole(
    log_backend: LogBackend, settings: Settings
) -> None:
    """A run leaves the session's index without changing any run (as an erasure
    by hand would): the changed runs since the held version are none, the
    visible count is one less, so the read is done whole."""
    async with AsyncSession(user_id="alice", backend=log_backend) as writer:
        for i in range(3):
            await writer.add_messages([("user", f"q{i}"), ("assistant", f"a{i}")])
        await log_backend.settle(writer.session_id)  # handed to another process
        async with (
            LogBackend(settings) as backend,
            AsyncSession(writer.session_id, user_id="alice", backend=backend) as reader,
        ):
            assert len(await reader.get_messages()) == 6
            first = (await log_backend.history(writer.session_id))[0].run_id
            keys = Keyspace(settings.redis_key_prefix).generation(0)
            client = aioredis.Redis.from_url(settings.redis_url)
            try:
                await client.zrem(keys.session(writer.session_id), first)
                await client.hincrby(keys.versions, writer.session_id, 1)
            finally:
                await client.aclose()
            assert texts(await reader.get_messages()) == ["q1", "a1", "q2", "a2"]


async def alices_session(backend: LogBackend) -> str:
    """A session of alice's holding one turn, in the cache."""
    async with AsyncSession(user_id="alice", backend=backend) as writer:
        await writer.add_messages([("user", "q0"), ("assistant", "a0")])
        await backend.settle(writer.session_id)
        return writer.session_id


async def test_a_reopen_on_a_backend_that_described_the_session_queries_no_postgres(
    log_backend: LogBackend, settings: Settings
) -> None:
    session_id = await alices_session(log_backend)
    async with LogBackend(settings, decoded_bytes=0) as backend:
        async with AsyncSession(session_id, user_id="alice", backend=backend) as s:
            assert texts(await s.get_messages(limit=1)) == ["q0", "a0"]
        await backend.pool.close()  # from here on, a Postgres query fails
        for _ in range(2):
            async with AsyncSession(session_id, user_id="alice", backend=backend) as s:
                assert not s.created
                assert texts(await s.get_messages(limit=1)) == ["q0", "a0"]


async def test_a_reopen_still_refuses_other_users_and_deleted_sessions(
    log_backend: LogBackend, settings: Settings
) -> None:
    session_id = await alices_session(log_backend)
    async with LogBackend(settings) as backend:
        async with AsyncSession(session_id, user_id="alice", backend=backend) as s:
            assert texts(await s.get_messages()) == ["q0", "a0"]
        # The backend knows alice owns it: mallory is still refused.
        with pytest.raises(NotFoundError):
            await AsyncSession(session_id, user_id="mallory", backend=backend).open()
        with pytest.raises(NotFoundError):
            await AsyncSession(session_id, user_id="alice", tenant="acme", backend=backend).open()
        # Deleted by another process after this backend described it.
        await in_another_process(settings, session_id, "delete")
        with pytest.raises(NotFoundError):
            await AsyncSession(session_id, user_id="alice", backend=backend).open()
