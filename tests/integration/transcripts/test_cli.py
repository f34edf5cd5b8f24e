"""``runwire transcript RUN_ID [--json] [--follow]`` against the real stack."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import redis.asyncio as aioredis

from runwire.projections.transcripts.body import MESSAGES
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.settings import Settings
from tests.integration.transcripts.conftest import publish, running, store_for, wait_caught_up
from tests.integration.transcripts.test_crash import projector_env
from tests.support.transcript_workload import by_run, reference_transcripts, workload


async def runwire(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runwire.cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_transcript_shows_follows_and_prints_json(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    events = workload(61, runs=6, sessions=2, turns=(2, 3))
    reference = reference_transcripts(events)
    run_id, live_run = sorted(reference)[:2]
    live_events = by_run(events)[live_run]
    later = {e.event_id for e in live_events[len(live_events) // 2 :]}
    store = store_for(redis_client, settings)
    await publish(settings, [e for e in events if e.event_id not in later])
    async with running(TranscriptProjection(store, settings), settings):
        await wait_caught_up(store, settings)
    env = projector_env(settings, tmp_path)
    # Follow a run that is half written; write the rest while it follows.
    following = asyncio.create_task(
        runwire(env, "transcript", live_run, "--follow", "--json", "--idle", "30")
    )
    (code, out, err), (pcode, pout, _), (ncode, _, nerr) = await asyncio.gather(
        runwire(env, "transcript", run_id, "--json"),
        runwire(env, "transcript", run_id),
        runwire(env, "transcript", "no-such-run"),
    )
    await asyncio.sleep(1.0)
    assert not following.done()
    await publish(settings, [e for e in live_events if e.event_id in later])
    fcode, fout, _ = await following
    assert code == 0, err
    assert MESSAGES.validate_python(json.loads(out)) == reference[run_id]
    # --follow starts at the run's first event, shows the new ones, ends with the last
    assert fcode == 0
    followed = [json.loads(line)["event_id"] for line in fout.splitlines()]
    assert followed == [e.event_id for e in live_events]
    # the rich rendering shows the text and the tool calls
    assert pcode == 0
    assert f"run {run_id}: {len(reference[run_id])} messages" in pout
    assert "svc.lookup" in pout
    assert ncode == 1
    assert "no-such-run" in nerr
