"""A writer's tenant is its own: stamped on every event, another one refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runwire.contract.codec import default_codec
from runwire.contract.events import AssistantText, Event, UserMessage
from runwire.errors import ConfigurationError, ContractError, InputError
from runwire.log import Publisher
from runwire.log.inmem import InMemoryLog
from runwire.memory.checks import Caller, of_process
from runwire.settings import Settings


def _event(tenant: str | None = None) -> Event:
    return Event.create(AssistantText(text="a"), run_id="r", tenant=tenant)


def test_the_publisher_writes_every_event_with_its_tenant() -> None:
    publisher = Publisher(Settings(tenant="acme"))
    record = publisher.record_for(_event())
    assert record.event.tenant == "acme"
    assert default_codec().decode(record.value or b"").tenant == "acme"
    assert publisher.record_for(_event("acme")).event.tenant == "acme"


def test_the_publisher_refuses_an_event_naming_another_tenant() -> None:
    publisher = Publisher(Settings(tenant="acme"))
    with pytest.raises(ContractError, match=r"names tenant 'globex'.*writes as tenant 'acme'"):
        publisher.record_for(_event("globex"))


def test_a_publisher_without_a_tenant_passes_the_events_on() -> None:
    publisher = Publisher(Settings())
    assert publisher.record_for(_event("globex")).event.tenant == "globex"
    assert publisher.record_for(_event()).event.tenant is None


def test_a_tenant_that_cannot_be_an_id_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"RUNWIRE_TENANT.*control character"):
        Publisher(Settings(tenant="a\x01b"))
    with pytest.raises(ConfigurationError, match=r"RUNWIRE_TENANT.*empty"):
        InMemoryLog(Settings(tenant=""))


async def test_the_in_memory_twin_keeps_the_same_rule() -> None:
    log = InMemoryLog(Settings(tenant="acme"))
    await log.publish(_event())
    assert [e.tenant for e in log.events] == ["acme"]
    message = [
        Event.create(UserMessage(parts=["hi"]), run_id="r2"),
        Event.create(UserMessage(parts=["there"]), run_id="r2", tenant="globex"),
    ]
    with pytest.raises(ContractError, match="globex"):
        await log.publish_message(message)
    assert len(log.events) == 1  # nothing of the refused message was written


def test_a_caller_of_a_tenant_process_is_in_its_tenant() -> None:
    process = SimpleNamespace(settings=Settings(tenant="acme"))
    assert of_process(Caller("ann"), process) == Caller("ann", "acme")
    assert of_process(Caller("ann", "acme"), process) == Caller("ann", "acme")
    with pytest.raises(InputError, match="'globex', but this process writes as tenant 'acme'"):
        of_process(Caller("ann", "globex"), process)
    shared = SimpleNamespace(settings=Settings())
    assert of_process(Caller("ann", "globex"), shared) == Caller("ann", "globex")
    assert of_process(Caller("ann"), object()) == Caller("ann")
