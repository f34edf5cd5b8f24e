"""What a client writes into an existing run carries the run's session, user and tenant.

Without them a tenant's run would not find its own tool results (the
projections key a tenant's run by its tenant), and a sealed deployment would
leave their content clear (only events naming a session are sealed).
"""

from __future__ import annotations

from runwire.client import Client
from runwire.contract.events import Event, EventType
from runwire.settings import Settings

SESSION, USER, TENANT = "s-owned", "ann", "acme"


async def events_of(rw: Client, run_id: str, first_offset: int | None) -> list[Event]:
    handle = rw.handle(run_id, first_offset=first_offset)
    return [e async for e in handle.events(until_end=False, follow=False)]


async def test_writes_into_a_run_carry_whose_it_is_however_the_client_learnt_it(
    settings: Settings,
) -> None:
    async with Client(settings) as starter:
        handle = await starter.run(
            "assistant", "hello", session_id=SESSION, user_id=USER, tenant=TENANT
        )
        # The client that started the run knows whose it is.
        await starter.say(handle.run_id, "and then?")
    # Another client (another process) learns it from the log: at the run's first
    # offset, or from the start of its partition when nothing says where that is.
    async with Client(settings) as other:
        await other.resume(
            handle.run_id, {"toolu_1": {"ok": True}}, first_offset=handle.first_offset
        )
        await other.pause(handle.run_id, first_offset=handle.first_offset)
        await other.resume(handle.run_id, first_offset=handle.first_offset)
    async with Client(settings) as other:
        await other.resume(handle.run_id, {"toolu_2": {"ok": True}})
        await other.cancel(handle.run_id, reason="enough")
    async with Client(settings) as reader:
        written = await events_of(reader, handle.run_id, handle.first_offset)
    kinds = [e.type for e in written]
    assert kinds.count(EventType.TOOL_RESULT) == 2, kinds
    assert kinds.count(EventType.RUN_CANCELED) == 1, kinds
    assert kinds.count(EventType.RUN_STATUS_CHANGED) == 2, kinds  # the pause, lifted
    assert EventType.USER_MESSAGE in kinds, kinds
    assert [
        (e.type, e.session_id, e.user_id, e.tenant)
        for e in written
        if (e.session_id, e.user_id, e.tenant) != (SESSION, USER, TENANT)
    ] == []


async def test_a_run_the_log_does_not_hold_is_written_to_as_asked(settings: Settings) -> None:
    async with Client(settings) as rw:
        await rw.cancel("run-nobody-started", reason="stray")
        # (Nothing to learn: the event names no session, user or tenant.)
    async with Client(settings) as reader:
        written = await events_of(reader, "run-nobody-started", None)
    assert [(e.type, e.session_id, e.user_id, e.tenant) for e in written] == [
        (EventType.RUN_CANCELED, None, None, None)
    ]
