"""The schema-registry client against a server speaking the registry's wire format.

The server is tests/fakes/schema_registry.py (real status codes and error
bodies, on 127.0.0.1); nothing else runs.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from typing import cast

import pytest
from fastavro import parse_schema, schemaless_writer

from runwire.contract.codec import Codec, codec_for, registry_client_for
from runwire.contract.events import EventType
from runwire.contract.framing import Framing, confluent_header, read_header
from runwire.contract.records import to_record
from runwire.contract.registry import SchemaRegistryClient, SchemaRegistryError, subject_of
from runwire.contract.schemas import released_schemas
from runwire.errors import DecodeError
from runwire.settings import Settings
from tests.fakes.schema_registry import FakeSchemaRegistry
from tests.support.event_samples import sample_event

SCHEMAS = released_schemas()


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


def _client(registry: FakeSchemaRegistry, **options: object) -> SchemaRegistryClient:
    return SchemaRegistryClient(registry.url, **options)  # type: ignore[arg-type]


def _confluent(client: SchemaRegistryClient) -> Codec:
    return Codec(framing=Framing.CONFLUENT, lookup=client)


# -- registration and the writer side -----------------------------------------


def test_a_schema_is_registered_once_under_its_record_name(registry: FakeSchemaRegistry) -> None:
    schema = SCHEMAS.latest(EventType.USER_MESSAGE)
    client = _client(registry)
    schema_id = client.id_of(schema)
    assert client.id_of(schema) == schema_id
    assert registry.requests == [("POST", "/subjects/io.runwire.v1.UserMessageEvent/versions")]
    assert subject_of(schema) == "io.runwire.v1.UserMessageEvent"
    assert registry.subjects() == {"io.runwire.v1.UserMessageEvent": [schema_id]}
    # Another process registering the same schema gets the same id.
    assert _client(registry).id_of(schema) == schema_id
    # One topic, many types: each type is its own subject, so none refuses another.
    other = client.id_of(SCHEMAS.latest(EventType.TOOL_USE))
    assert other != schema_id
    assert len(registry.subjects()) == 2


def test_encode_writes_magic_zero_and_the_registry_id(registry: FakeSchemaRegistry) -> None:
    event = sample_event(EventType.ASSISTANT_TEXT)
    registry.add('{"type": "string"}', 1)  # ids need not start anywhere in particular
    client = _client(registry)
    data = _confluent(client).encode(event)
    schema_id = client.id_of(SCHEMAS.latest(EventType.ASSISTANT_TEXT))
    assert schema_id == 2
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    # A reader in another process learns the schema from the id, once.
    reader_client = _client(registry)
    before = len(registry.requests)
    reader = Codec(lookup=reader_client)
    assert reader.decode(data) == event
    assert reader.decode(data) == event
    assert registry.requests[before:] == [("GET", f"/schemas/ids/{schema_id}")]
    # The same reader reads single-object framing too (a topic can migrate).
    assert reader.decode(Codec().encode(event)) == event


async def test_prepare_registers_every_writer_schema_off_the_loop(
    registry: FakeSchemaRegistry,
) -> None:
    client = _client(registry)
    codec = _confluent(client)
    await codec.prepare()
    registered = len(registry.requests)
    assert registered == len(SCHEMAS.event_types())
    assert {m for m, _ in registry.requests} == {"POST"}
    for event_type in SCHEMAS.event_types():
        data = codec.encode(sample_event(event_type))
        assert read_header(data).schema_id == client.id_of(SCHEMAS.latest(event_type))
    assert len(registry.requests) == registered  # encode asked nothing more
    await codec.prepare()
    assert len(registry.requests) == registered


def test_look_up_only_never_registers(registry: FakeSchemaRegistry) -> None:
    schema = SCHEMAS.latest(EventType.RUN_STARTED)
    client = _client(registry, auto_register=False)
    with pytest.raises(SchemaRegistryError) as info:
        client.id_of(schema)
    error = info.value
    assert (error.status, error.error_code, error.retriable) == (404, 40401, False)
    assert "io.runwire.v1.RunStartedEvent" in str(error)
    assert "Subject 'io.runwire.v1.RunStartedEvent' not found." in str(error)
    assert registry.subjects() == {}
    schema_id = _client(registry).id_of(schema)  # a publisher registers it
    assert client.id_of(schema) == schema_id
    assert registry.requests[-1] == ("POST", "/subjects/io.runwire.v1.RunStartedEvent")


# -- the reader side ----------------------------------------------------------


def test_an_unknown_id_is_a_decode_error_naming_the_id_and_the_registry(
    registry: FakeSchemaRegistry,
) -> None:
    body = Codec().encode(sample_event(EventType.ASSISTANT_TEXT))[10:]
    data = confluent_header(4242) + body
    client = _client(registry)
    with pytest.raises(DecodeError) as info:
        Codec(lookup=client).decode(data)
    assert info.value.reason == "unknown_schema_id"
    assert "4242" in str(info.value)
    assert registry.url in str(info.value)
    # Remembered for a while: a topic full of such records costs one request.
    with pytest.raises(DecodeError):
        Codec(lookup=client).decode(data)
    assert registry.requests == [("GET", "/schemas/ids/4242")]


def test_a_newer_producers_schema_is_fetched_and_resolved_to_ours(
    registry: FakeSchemaRegistry,
) -> None:
    """Another service registered a v2 (an extra field with a default): we read it as v1."""
    newer = json.loads(json.dumps(SCHEMAS.latest(EventType.ASSISTANT_TEXT).definition))
    payload = next(f for f in newer["fields"] if f["name"] == "payload")["type"]
    payload["fields"].append({"name": "lang", "type": "string", "default": "en"})
    registry.add(json.dumps(newer), 77, subject="io.runwire.v1.AssistantTextEvent")
    event = sample_event(EventType.ASSISTANT_TEXT)
    record = to_record(event)
    record["payload"]["lang"] = "fr"
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(newer), record)
    data = confluent_header(77) + buffer.getvalue()
    assert Codec(lookup=_client(registry)).decode(data) == event


def test_a_schema_of_another_kind_is_unknown_type(registry: FakeSchemaRegistry) -> None:
    registry.add(json.dumps({"type": "record", "name": "x.Other", "fields": []}), 5)
    with pytest.raises(DecodeError) as info:
        Codec(lookup=_client(registry)).decode(confluent_header(5) + b"")
    assert info.value.reason == "unknown_type"


# -- errors and their retry posture --------------------------------------------


def test_a_server_error_is_retriable_and_says_what_the_registry_said(
    registry: FakeSchemaRegistry,
) -> None:
    client = _client(registry, cooldown=0.3)
    registry.fail_next(1)
    schema = SCHEMAS.latest(EventType.USAGE)
    with pytest.raises(SchemaRegistryError) as info:
        client.id_of(schema)
    error = info.value
    assert error.retriable
    assert (error.status, error.error_code) == (500, 50001)
    assert error.registry_message == "Error in the backend data store"
    assert error.url == f"{registry.url}/subjects/io.runwire.v1.UsageEvent/versions"
    assert error.url in str(error)
    assert "error_code 50001: Error in the backend data store" in str(error)
    # During the cooldown the loop is not blocked again: no request is sent.
    with pytest.raises(SchemaRegistryError, match="not asked") as again:
        client.id_of(schema)
    assert again.value.retriable
    assert len(registry.requests) == 1
    time.sleep(0.35)
    assert client.id_of(schema) >= 1


def test_a_rate_limit_is_retriable_and_a_refusal_is_not(registry: FakeSchemaRegistry) -> None:
    schema = SCHEMAS.latest(EventType.USAGE)
    registry.fail_next(1, status=429, error_code=42901, message="Rate limit exceeded")
    with pytest.raises(SchemaRegistryError) as limited:
        _client(registry).id_of(schema)
    assert limited.value.retriable
    registry.fail_next(
        1, status=409, error_code=409, message="Schema being registered is incompatible"
    )
    with pytest.raises(SchemaRegistryError) as refused:
        _client(registry).id_of(schema)
    assert not refused.value.retriable
    assert refused.value.error_code == 409
    assert "incompatible" in str(refused.value)


def test_basic_auth() -> None:
    with FakeSchemaRegistry(credentials=("svc", "s3cret")) as secured:
        schema = SCHEMAS.latest(EventType.THINKING)
        with pytest.raises(SchemaRegistryError) as info:
            _client(secured, username="svc", password="wrong").id_of(schema)
        assert (info.value.status, info.value.error_code, info.value.retriable) == (
            401,
            401,
            False,
        )
        assert "Unauthorized" in str(info.value)
        assert _client(secured, username="svc", password="s3cret").id_of(schema) == 1


def test_an_unreachable_registry_is_retriable_and_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    client = SchemaRegistryClient(f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(SchemaRegistryError) as info:
        Codec(lookup=client).decode(confluent_header(3) + b"\x00")
    assert info.value.retriable
    assert f"127.0.0.1:{port}/schemas/ids/3" in str(info.value)
    assert "schema_registry_url" in str(info.value)


def test_a_slow_registry_blocks_at_most_the_timeout(registry: FakeSchemaRegistry) -> None:
    registry.delay = 1.0
    client = _client(registry, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(SchemaRegistryError) as info:
        client.schema_by_id(1)
    elapsed = time.monotonic() - started
    assert info.value.retriable
    assert elapsed < 0.6, elapsed


def test_a_wrong_url_is_not_mistaken_for_an_unknown_id(registry: FakeSchemaRegistry) -> None:
    """A bare 404 (no registry error code) must not dead-letter every record."""
    client = SchemaRegistryClient(f"{registry.url}/not-the-registry")
    registry.fail_next(1, status=404, error_code=404, message="HTTP 404 Not Found")
    with pytest.raises(SchemaRegistryError) as info:
        client.schema_by_id(3)
    assert not info.value.retriable
    assert info.value.status == 404


# -- configuration -------------------------------------------------------------


def test_settings_choose_the_codec(
    registry: FakeSchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = Settings(schema_registry_url=None)
    assert codec_for(plain).framing is Framing.SINGLE_OBJECT
    assert registry_client_for(plain) is None
    monkeypatch.setenv("RUNWIRE_SCHEMA_REGISTRY_URL", registry.url)
    monkeypatch.setenv("RUNWIRE_SCHEMA_REGISTRY_USERNAME", "svc")
    monkeypatch.setenv("RUNWIRE_SCHEMA_REGISTRY_PASSWORD", "pw")
    configured = Settings()
    assert configured.schema_registry_url == registry.url
    codec = codec_for(configured)
    assert codec.framing is Framing.CONFLUENT
    assert codec_for(Settings()) is codec  # one per process: registration happens once
    client = registry_client_for(configured)
    assert client is not None
    assert client.url == registry.url
    assert "pw" not in repr(configured)
    event = sample_event(EventType.SESSION_CREATED)
    assert read_header(codec.encode(event)).framing is Framing.CONFLUENT
    assert codec_for(plain).decode(codec_for(plain).encode(event)) == event
    assert codec.decode(codec_for(plain).encode(event)) == event


def test_every_projector_reads_both_framings_when_a_registry_is_set(
    registry: FakeSchemaRegistry,
) -> None:
    """Including the memory projection, whose own decoder also reads tombstones."""
    from runwire.projections.memory.fold import is_placeholder
    from runwire.projections.memory.projection import MemoryProjection
    from runwire.projections.runs.projection import RunsProjection
    from runwire.projections.runtime.consumer import decoder_for
    from runwire.projections.runtime.pg import Pool

    configured = Settings(schema_registry_url=registry.url)
    no_pool = cast(Pool, None)  # building a projection does not connect
    memory_set = sample_event(EventType.MEMORY_SET)
    confluent = codec_for(configured).encode(memory_set)
    assert read_header(confluent).framing is Framing.CONFLUENT
    for projection in (MemoryProjection(no_pool, configured), RunsProjection(no_pool, configured)):
        decoder = decoder_for(projection, configured)
        assert decoder.decode(confluent) == memory_set
        assert decoder.decode(Codec().encode(memory_set)) == memory_set
    assert is_placeholder(
        decoder_for(MemoryProjection(no_pool, configured), configured).decode(b"")
    )
