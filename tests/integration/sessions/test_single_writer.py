"""Single-writer sessions with writers racing in several OS processes on the real stack."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time

from runwire.projections.runtime.protocol import Projection, Rebuildable
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.sessions.reader import SessionIndex
from runwire.sessions import AsyncSession
from runwire.sessions.log_backend import LogBackend
from runwire.settings import Settings
from tests.integration.sessions.test_sessions_stack import stack_env

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from runwire.sessions import Session, SessionBusy

    session_id, name, turns = sys.argv[1], sys.argv[2], int(sys.argv[3])
    busy = 0
    with Session(session_id, user_id="alice") as s:
        time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # start together
        done = 0
        while done < turns:
            read = s.get_versioned()
            # What this writer saw: the turn it writes says the version it read and
            # how many turns the history it read held.
            seen = len(read.messages) // 2
            text = f"{name}:{done}:v{read.version}:seen{seen}"
            try:
                s.add_messages([("user", text), ("assistant", "ok " + text)],
                               expected_version=read.version)
            except SessionBusy as e:
                busy += 1
                assert e.version >= read.version, (e.version, read.version)
                continue
            done += 1
    print(json.dumps({"busy": busy}))
    """
)


async def test_racing_processes_never_interleave_turns(
    log_backend: LogBackend, settings: Settings
) -> None:
    writers, turns = 3, 4
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        go = time.time() + 8.0  # every process is up by then (imports, connections)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                s.session_id,
                f"w{i}",
                str(turns),
                str(go),
                env=stack_env(settings),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for i in range(writers)
        ]
        outs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), timeout=240
        )
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err.decode()[-3000:]
        busy = sum(json.loads(out.decode().strip().splitlines()[-1])["busy"] for out, _ in outs)

        history = [m.text() for m in await s.get_messages()]
        assert len(history) == 2 * writers * turns, "every writer's every turn, once"
        for k in range(writers * turns):
            user, answer = history[2 * k], history[2 * k + 1]
            assert answer == "ok " + user, f"turn {k} interleaved: {user!r} / {answer!r}"
            _, _, version, seen = user.split(":")
            # The k-th turn was written at version k by a writer that had read k turns:
            # no writer wrote on a history it had not seen.
            assert (version, seen) == (f"v{k}", f"seen{k}"), history
        for i in range(writers):
            mine = [t.split(":")[1] for t in history[::2] if t.startswith(f"w{i}:")]
            assert mine == [str(n) for n in range(turns)], "each writer's turns in its order"
        assert await s.version() == writers * turns
        assert busy > 0, "the writers did race (some were refused)"


async def test_the_version_survives_a_rebuild(
    log_backend: LogBackend, settings: Settings, projectors: dict[str, Projection]
) -> None:
    async with AsyncSession(user_id="alice", backend=log_backend) as s:
        for v in range(3):
            await s.add_message("user", f"q{v}", expected_version=v)
        before = await s.info()
        projection = projectors["sessions"]
        assert isinstance(projection, Rebuildable)
        await rebuild(projection, settings)
        index = await SessionIndex.connect(settings)
        try:
            row = await index.get(s.session_id)
        finally:
            await index.close()
        assert (row.version, row.writer, row.version_by) == (3, None, before.version_by)
