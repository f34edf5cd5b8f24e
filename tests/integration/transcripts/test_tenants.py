"""Tenants in the transcript cache: each tenant's runs and sessions live in its own
key namespace, even when two tenants use the same run and session ids."""

from __future__ import annotations

import re

import pytest
import redis.asyncio as aioredis

from runwire.contract.events import AssistantText, Event, SessionDeleted, UserMessage
from runwire.errors import NotFoundError
from runwire.projections.runtime.rebuild import rebuild
from runwire.projections.transcripts.claims import RunClaims
from runwire.projections.transcripts.keys import Keyspace, tenant_segment
from runwire.projections.transcripts.projection import TranscriptProjection
from runwire.projections.transcripts.reader import TranscriptCache
from runwire.projections.transcripts.session_read import SessionReader
from runwire.projections.transcripts.store import Slot, checksum
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart
from tests.helpers import assert_eventually
from tests.integration.transcripts.conftest import publish, running, store_for, wait_caught_up

# A tenant holding ':' and '*' as well: its namespace must still be its own.
TENANTS: tuple[str | None, ...] = ("acme", "glo:bex*", None)


def turn(tenant: str | None, run_id: str = "r1", session_id: str = "s1") -> list[Event]:
    """One user -> assistant turn whose text names its tenant."""
    who = tenant or "no tenant"
    return [
        Event.create(
            UserMessage(parts=[f"question of {who}"]),
            run_id=run_id,
            session_id=session_id,
            user_id="ann",
        ),
        Event.create(
            AssistantText(text=f"answer for {who}"),
            run_id=run_id,
            session_id=session_id,
            user_id="ann",
        ),
    ]


def texts(messages: list[Message]) -> list[str]:
    return [p.text for m in messages for p in m.parts if isinstance(p, TextPart)]


def as_tenant(settings: Settings, tenant: str | None) -> Settings:
    return settings.model_copy(update={"tenant": tenant})


async def publish_as(settings: Settings, tenant: str | None, events: list[Event]) -> None:
    """Publish through a process of ``tenant`` (its writer stamps the tenant)."""
    await publish(as_tenant(settings, tenant), events)


async def test_two_tenants_with_the_same_ids_project_into_disjoint_keys(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    for tenant in TENANTS:
        await publish_as(settings, tenant, turn(tenant))
    # Interleaved on the one partition of r1: a second run each, in the same session.
    for tenant in TENANTS:
        await publish_as(settings, tenant, turn(tenant, run_id="r2"))
    store = store_for(redis_client, settings)
    async with running(TranscriptProjection(store, settings), settings):
        await wait_caught_up(store, settings)

        for tenant in TENANTS:
            who = tenant or "no tenant"
            async with TranscriptCache(settings, client=redis_client, tenant=tenant) as cache:
                assert texts(await cache.get("r1")) == [f"question of {who}", f"answer for {who}"]
                assert await cache.session_runs("s1") == ["r1", "r2"]
                assert texts(await cache.get_session("s1")) == 2 * [
                    f"question of {who}",
                    f"answer for {who}",
                ]
                assert cache.misses == 0
            read = await SessionReader(redis_client, settings.redis_key_prefix, tenant=tenant).read(
                "s1"
            )
            assert [r for r, _ in read.runs] == ["r1", "r2"]
            assert all(f"of {who}".encode() in body.committed for body in read.bodies.values())

        # A tenant without runs sees none of the others', whatever ids it names.
        async with TranscriptCache(settings, client=redis_client, tenant="initech") as cache:
            assert await cache.session_runs("s1") == []
            assert await cache.start_of("r1") is None

        # Every key of tenant data is under its tenant's namespace.
        keys = Keyspace(settings.redis_key_prefix)
        root = keys.root
        names = sorted(
            [k.decode() async for k in redis_client.scan_iter(match=f"{root}:*", count=1000)]
        )
        shared = {f"{root}:0:pos"}
        by_tenant: dict[str | None, list[str]] = {t: [] for t in TENANTS}
        for name in names:
            if name in shared:
                continue
            rest = name.removeprefix(f"{root}:0:")
            owner = next(
                (t for t in TENANTS if t is not None and rest.startswith(tenant_segment(t))),
                None,
            )
            assert owner is not None or not rest.startswith("t:"), f"{name}: no known tenant"
            by_tenant[owner].append(rest.removeprefix(tenant_segment(owner)))
        expected = {"meta:r1", "run:r1", "meta:r2", "run:r2", "session:s1", "owners:s1", "ver"}
        for tenant in TENANTS:
            assert set(by_tenant[tenant]) == expected, (tenant, by_tenant[tenant])
        # The escaped tenant holds no ':' of its own: nothing reads as another tenant.
        assert re.fullmatch(r"t:[^:]+:", tenant_segment("glo:bex*"))

        # Claims are per tenant too, each reading its own tenant's run.
        for tenant in TENANTS:
            who = tenant or "no tenant"
            claims = RunClaims(redis_client, settings.redis_key_prefix, tenant=tenant)
            claim = await claims.take("r1")
            assert claim.taken
            assert texts(claim.messages() or []) == [f"question of {who}", f"answer for {who}"]
            assert await redis_client.exists(keys.claim("r1", tenant)) == 1
            await claims.give_back("r1", claim)
        # One writer's claims on another tenant's run: the same writer, that tenant's keys.
        mine = RunClaims(redis_client, settings.redis_key_prefix)
        acme = mine.for_tenant("acme")
        assert acme.writer == mine.writer
        claim = await acme.take("r1")
        assert texts(claim.messages() or []) == ["question of acme", "answer for acme"]
        assert await redis_client.exists(keys.claim("r1", "acme")) == 1
        assert await redis_client.exists(keys.claim("r1")) == 0
        await acme.give_back("r1", claim)

        # A rebuild into a new generation holds exactly the same keys.
        before = await store.dump(0)
        assert {k for k in before if k.startswith("t:")} >= {
            f"{tenant_segment('acme')}meta:r1",
            f"{tenant_segment('glo:bex*')}meta:r1",
        }
        report = await rebuild(TranscriptProjection(store, settings), settings)
        assert report.generation == 1
        assert await store.generation(Slot.LIVE) == 1
        assert checksum(await store.dump(1)) == checksum(before)


async def test_a_deletion_and_a_miss_stay_in_their_tenant(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    for tenant in TENANTS:
        await publish_as(settings, tenant, turn(tenant))
    store = store_for(redis_client, settings)
    async with running(TranscriptProjection(store, settings), settings):
        await wait_caught_up(store, settings)
        # acme's transcript expires: the miss path reads r1's partition, where
        # every tenant's r1 lies, and folds only acme's records.
        await redis_client.delete(
            Keyspace(settings.redis_key_prefix).generation(0, "acme").body("r1")
        )
        async with TranscriptCache(settings, client=redis_client, tenant="acme") as acme:
            assert texts(await acme.get("r1")) == ["question of acme", "answer for acme"]
            assert acme.misses == 1

        # acme deletes its session s1: the other tenants' s1 and r1 stay.
        await publish_as(settings, "acme", [Event.create(SessionDeleted(), session_id="s1")])
        await wait_caught_up(store, settings)

        async def acme_gone() -> bool:
            return await store.deleted(0, ["s1"], tenant="acme") == {"s1"}

        await assert_eventually(acme_gone, timeout=30)
        async with TranscriptCache(settings, client=redis_client, tenant="acme") as acme:
            assert await acme.session_runs("s1") == []
            assert (await store.heads(0, ["r1"], tenant="acme"))["r1"].meta is None
        for tenant in ("glo:bex*", None):
            assert await store.deleted(0, ["s1"], tenant=tenant) == set()
            async with TranscriptCache(settings, client=redis_client, tenant=tenant) as cache:
                assert await cache.session_runs("s1") == ["r1"]
                assert len(await cache.get("r1")) == 2


async def test_a_reader_of_the_process_reads_its_tenant(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    await publish_as(settings, "acme", turn("acme"))
    store = store_for(redis_client, settings)
    async with running(TranscriptProjection(store, settings), settings):
        await wait_caught_up(store, settings)
        mine = as_tenant(settings, "acme")
        async with TranscriptCache(mine, client=redis_client) as acme:
            assert acme.tenant == "acme"
            assert texts(await acme.get("r1")) == ["question of acme", "answer for acme"]
            # The same reader for the namespace without a tenant does not know r1
            # (neither does the run-status store: no runs projector runs here).
            nobody = acme.for_tenant(None)
            assert nobody.tenant is None
            assert await nobody.session_runs("s1") == []
        async with TranscriptCache(settings, client=redis_client) as default:
            assert default.tenant is None
            with pytest.raises(NotFoundError):
                await default.get("r1")
