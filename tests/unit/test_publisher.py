"""The publisher's rules that need no broker: lifecycle, refusals, routing."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from runwire.contract.codec import EventTooLargeError, default_codec
from runwire.contract.events import (
    AssistantText,
    Event,
    EventType,
    MemoryDeleted,
    SessionEnded,
    Stream,
    ToolUse,
)
from runwire.contract.identity import body_digest
from runwire.contract.routing import (
    event_of_record,
    memory_key,
    parse_memory_key,
    record_headers,
    record_key,
    topic_for,
)
from runwire.errors import ContractError, DecodeError, PublishError
from runwire.log import Publisher, kafka_error
from runwire.log.clients import producer_options
from runwire.settings import Settings
from tests.support.event_samples import sample_event


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens once the socket is closed


def _settings(**values: object) -> Settings:
    return Settings().model_copy(
        update={
            "kafka_bootstrap_servers": f"127.0.0.1:{_closed_port()}",
            "topic_prefix": "p.",
            **values,
        }
    )


async def test_using_a_publisher_that_is_not_started_says_so() -> None:
    publisher = Publisher(_settings())
    with pytest.raises(PublishError, match="not started: use `async with Publisher"):
        await publisher.publish(Event.create(AssistantText(text="a"), run_id="r"))


async def test_an_unreachable_cluster_is_a_retriable_publish_error_naming_the_setting() -> None:
    publisher = Publisher(_settings())
    with pytest.raises(PublishError, match="kafka_bootstrap_servers") as info:
        await publisher.start()
    assert info.value.retriable is True
    await publisher.stop()
    await publisher.stop()  # idempotent


async def test_a_stopped_publisher_refuses_work_and_restarts() -> None:
    publisher = Publisher(_settings())
    await publisher.stop()
    with pytest.raises(PublishError, match="stopped"):
        await publisher.publish(Event.create(AssistantText(text="a"), run_id="r"))
    with pytest.raises(PublishError, match="stopped"):
        await publisher.start()


async def test_an_event_over_the_size_limit_is_refused_before_sending() -> None:
    publisher = Publisher(_settings(max_event_bytes=500))
    big = Event.create(AssistantText(text="x" * 1_000), run_id="r")
    with pytest.raises(EventTooLargeError, match="max_event_bytes=500"):
        await publisher.publish(big)


async def test_publish_message_takes_the_run_events_of_one_run() -> None:
    publisher = Publisher(_settings())
    with pytest.raises(ContractError, match="at least one event"):
        await publisher.publish_message([])
    mixed = [
        Event.create(AssistantText(text="a"), run_id="r1"),
        Event.create(AssistantText(text="b"), run_id="r2"),
    ]
    with pytest.raises(ContractError, match=r"for runs \['r1', 'r2'\]"):
        await publisher.publish_message(mixed)
    session = [Event.create(SessionEnded(), session_id="s", run_id="r1")]
    with pytest.raises(ContractError, match="run events of one run"):
        await publisher.publish_message(session)


@pytest.mark.parametrize(
    ("cause", "retriable"),
    [
        # Raised by aiokafka's accumulator when a batch waited too long for its
        # partition's slot: neither marked retriable nor a TimeoutError, yet one.
        (KafkaTimeoutError(), True),
        (KafkaConnectionError(), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (RecordTooLargeError(), False),
        (TopicAuthorizationFailedError(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_publish_errors_are_retriable_when_a_retry_can_succeed(
    cause: BaseException, retriable: bool
) -> None:
    error = kafka_error("publishing x to t", cause)
    assert isinstance(error, PublishError)
    assert error.retriable is retriable
    assert type(cause).__name__ in str(error)


def test_producer_options_are_idempotent_and_follow_settings() -> None:
    options = producer_options(
        _settings(producer_compression="none", producer_linger_ms=7, producer_max_batch_bytes=4096)
    )
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert options["compression_type"] is None
    assert (options["linger_ms"], options["max_batch_size"]) == (7, 4096)


# -- routing ---------------------------------------------------------------------


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_every_event_has_a_topic_and_key(event_type: EventType) -> None:
    settings = _settings()
    event = sample_event(event_type)
    topic = topic_for(event.stream, settings)
    assert topic in {
        settings.run_events,
        settings.session_events,
        settings.memory,
        settings.checkpoints,
        settings.live,
    }
    assert topic.startswith("p.")
    key = record_key(event)
    if topic in (settings.run_events, settings.live):
        assert key == b"run-1"
    elif topic == settings.session_events:
        assert key == b"session-1"
    elif topic == settings.checkpoints:
        assert key == b"thread-1"
    else:
        assert parse_memory_key(key)[0] in ("user", "global")


def test_memory_keys_are_unambiguous() -> None:
    assert memory_key("user", "a/b", "c") != memory_key("user", "a", "b/c")
    assert parse_memory_key(memory_key("agent", 'we"ird', "ключ")) == ("agent", 'we"ird', "ключ")
    for bad in (b"user/a/b", b'["team","a","b"]', b'["user",1,"b"]'):
        with pytest.raises(DecodeError) as info:
            parse_memory_key(bad)
        assert info.value.reason == "bad_key"


def test_a_memory_key_is_compact_json_in_utf8_for_every_code_point() -> None:
    import json

    def reference(*parts: str) -> bytes:
        return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()

    code_points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for start in range(0, len(code_points), 4096):
        text = "".join(map(chr, code_points[start : start + 4096]))
        assert memory_key("user", text, text[::-1]) == reference("user", text, text[::-1])
    # A lone surrogate has no UTF-8: refused as it always was.
    with pytest.raises(UnicodeEncodeError):
        memory_key("user", "a\ud800", "k")


def test_headers_name_type_id_and_schema() -> None:
    event = Event.create(ToolUse(id="t", name="n"), run_id="r")
    fingerprint = default_codec().writer_schema(event.type).fingerprint
    headers = dict(record_headers(event, fingerprint))
    assert headers == {
        "runwire-type": b"tool_use",
        "runwire-event-id": event.event_id.encode(),
        "runwire-schema": fingerprint.hex().encode(),
    }


def test_a_tombstone_stands_for_its_memory_deleted_event() -> None:
    event = Event.create(MemoryDeleted(scope="session", owner="s1", key="k"), producer="svc")
    key = record_key(event)
    headers = record_headers(event, None)
    assert event_of_record(default_codec(), key, None, headers, tombstones=True) == event
    with pytest.raises(DecodeError, match="without runwire headers"):
        event_of_record(default_codec(), key, None, [], tombstones=True)
    with pytest.raises(DecodeError, match="neither value nor key"):
        event_of_record(default_codec(), None, None, headers, tombstones=True)
    # Only the memory topic has tombstones: elsewhere the same record is truncated,
    # the reason every consumer gives.
    with pytest.raises(DecodeError) as elsewhere:
        event_of_record(default_codec(), key, None, headers, tombstones=False)
    assert elsewhere.value.reason == "truncated"


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_every_event_type_is_keyed_by_its_stream_s_field(event_type: EventType) -> None:
    # record_key dispatches on the type, not the payload's class: each type's
    # payload must have the field its stream is keyed by.
    event = sample_event(event_type)
    payload: Any = event.payload
    stream = event.stream
    if stream is Stream.RUN or stream is Stream.LIVE:
        assert record_key(event) == str(event.run_id).encode()
    elif stream is Stream.SESSION:
        assert record_key(event) == str(event.session_id).encode()
    elif stream is Stream.CHECKPOINT:
        assert record_key(event) == payload.thread_id.encode()
    elif event_type is EventType.USER_ERASED:
        assert record_key(event) == memory_key("user", payload.owner, "")
    else:
        assert record_key(event) == memory_key(payload.scope, payload.owner, payload.key)


def test_a_tombstone_event_is_the_model_s_own_and_keeps_its_rules() -> None:
    # tombstone_event builds the event without the model's validation: it must
    # be the event the model makes, and refuse what the model refuses.
    event = Event.create(MemoryDeleted(scope="user", owner="ü", key="k"), producer="svc")
    key, headers = record_key(event), record_headers(event, None)
    made = event_of_record(default_codec(), key, None, headers, tombstones=True)
    assert made == event
    assert made.model_dump_json() == event.model_dump_json()
    assert body_digest(made) == body_digest(event)

    def with_header(name: str, value: bytes) -> list[tuple[str, bytes]]:
        return [(n, value if n == name else v) for n, v in headers]

    upper = with_header("runwire-event-id", event.event_id.upper().encode())
    assert event_of_record(default_codec(), key, None, upper, tombstones=True) == event
    for name, value in [
        ("runwire-event-id", b"not-a-uuid"),
        ("runwire-producer", b"x" * 1000),
        ("runwire-producer", b"a\x00b"),
    ]:
        with pytest.raises(DecodeError, match="tombstone headers") as refused:
            event_of_record(default_codec(), key, None, with_header(name, value), tombstones=True)
        assert refused.value.reason == "invalid_event"


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_outgoing_records_match_the_routing_rules(event_type: EventType) -> None:
    settings = _settings()
    event = sample_event(event_type)
    record = Publisher(settings).record_for(event)
    assert record.topic == topic_for(event.stream, settings)
    assert record.key == record_key(event)
    if event_type is EventType.MEMORY_DELETED:
        assert record.value is None
        assert record.headers == record_headers(event, None)
    else:
        assert record.value is not None
        assert default_codec().decode(record.value) == event
        fingerprint = default_codec().writer_schema(event_type).fingerprint
        assert record.headers == record_headers(event, fingerprint)
