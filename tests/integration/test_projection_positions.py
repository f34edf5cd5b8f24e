"""A Postgres projection's position rows, on the real Postgres.

A position row missing under a live projection (deleted by hand) is created
again and read as where the partition is (0), never taken as stored: the
runner reads again from there and the events applied before are dropped as
known.
"""

from __future__ import annotations

from runwire.contract.events import Event, RunStarted, Usage
from runwire.log.records import TopicPartition
from runwire.projections.runs.projection import RunsProjection
from runwire.projections.runtime.pg import Pool
from runwire.settings import Settings
from tests.contract.projections import RecordingSink
from tests.integration.projection_support import batch, table


async def test_a_position_row_gone_from_under_a_projection_is_created_at_0(
    settings: Settings, pool: Pool
) -> None:
    projection = RunsProjection(pool, settings)
    await projection.prepare()
    sink = RecordingSink()
    tp = TopicPartition(settings.run_events, 0)
    started = Event.create(RunStarted(agent_id="a"), run_id="r1", session_id="s1")
    first = await projection.apply(batch(tp, 0, [started]), sink)
    assert first.positions[tp] == 1
    usage = Event.create(
        Usage(model="m", provider="p", input_tokens=3, output_tokens=4),
        run_id="r1",
        session_id="s1",
    )
    assert (await projection.apply(batch(tp, 1, [usage]), sink)).positions[tp] == 2
    # Gone (as by hand): the next batch creates it at 0 and says so, so the
    # runner reads again from 0 instead of taking the batch as stored.
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM runwire_projection_positions WHERE projection = 'runs' "
            "AND topic = %s AND partition = 0",
            (tp.topic,),
        )
    more = Event.create(
        Usage(model="m", provider="p", input_tokens=5, output_tokens=6),
        run_id="r1",
        session_id="s1",
    )
    moved_back = await projection.apply(batch(tp, 2, [more]), sink)
    assert moved_back.positions[tp] == 0
    assert moved_back.applied == 0
    position = "SELECT next_offset FROM runwire_projection_positions WHERE projection = 'runs' "
    position += f"AND topic = '{tp.topic}' AND partition = 0"
    assert await table(pool, position) == [{"next_offset": 0}]
    # Read again from 0: the events applied before are known and dropped.
    again = await projection.apply(batch(tp, 0, [started, usage, more]), sink)
    assert (again.positions[tp], again.applied, again.duplicates) == (3, 1, 2)
    assert await table(pool, position) == [{"next_offset": 3}]
    rows = await table(pool, "SELECT input_tokens, output_tokens FROM run_status")
    assert rows == [{"input_tokens": 8, "output_tokens": 10}]
    assert sink.sent == []
