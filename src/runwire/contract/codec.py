"""The event codec: ``Event`` <-> Avro record (``records``) <-> payload codec <-> framed
bytes (``framing``), each layer replaceable.

Contract:
- The *payload codec* (:class:`PayloadCodec`, bytes <-> bytes) turns the Avro
  body into what follows the frame header and back; None (the default) is
  the identity. It is the seam where sealing (per-session encryption) goes:
  the frame header, record key and headers stay clear. A body it cannot
  open is ``DecodeError("unreadable_payload")``; a payload codec that cannot
  work now (its key store down) raises a retriable error, never skipped.
  A body whose session was erased is ``ErasedError`` (reason ``erased``):
  consumers skip it, never dead-letter it (:mod:`runwire.contract.sealing`).
- ``Codec.encode`` writes the newest released schema of the event's type,
  framed with Avro single-object encoding (default) or the Confluent wire
  format (needs a ``SchemaLookup`` that knows the schema's registry id). It
  refuses an event whose encoded size is over ``max_event_bytes`` with
  ``EventTooLargeError`` before anything is sent.
- ``Codec.decode`` reads either framing. Any released version of a type
  decodes (resolved to the newest); a writer schema the lookup knows (by
  fingerprint or registry id) is resolved the same way. Undecodable bytes raise
  ``DecodeError`` whose ``reason`` is one of ``REASONS``; consumers route those
  to dead letters.
- A codec is cheap to share: schemas are parsed once, lookups are cached.
- ``codec_for(settings)`` is the one place a process gets its codec from:
  Confluent framing over a shared ``SchemaRegistryClient`` when
  ``schema_registry_url`` is set, single-object framing otherwise; decoding
  accepts both framings either way (Confluent-framed values need the registry
  to be configured to be read).
"""

from __future__ import annotations

import atexit
import io
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form

from runwire.contract.events import Event, EventType
from runwire.contract.framing import (
    CONFLUENT_HEADER_SIZE,
    SINGLE_OBJECT_HEADER_SIZE,
    SINGLE_OBJECT_MAGIC,
    Framing,
    Header,
    confluent_header,
    read_header,
    single_object_header,
)
from runwire.contract.limits import check_event
from runwire.contract.records import SHAPES, PayloadShape, RecordError, event_from_record, to_record
from runwire.contract.schemas import (
    EventSchema,
    SchemaSet,
    build_event_schema,
    crc64_avro,
    released_schemas,
)
from runwire.errors import ConfigurationError, ContractError, DecodeError, InputError

if TYPE_CHECKING:
    from runwire.contract.registry import SchemaRegistryClient
    from runwire.settings import Settings

REASONS = frozenset(
    {
        "bad_magic",  # not a framing runwire knows
        "truncated",  # header or body ends early
        "unknown_fingerprint",  # single-object fingerprint of no known schema
        "unknown_schema_id",  # Confluent schema id the lookup does not know
        "unknown_type",  # the writer schema is not a runwire event type
        "incompatible_schema",  # the writer schema cannot be read as the newest one
        "invalid_body",  # the Avro body does not parse with its schema
        "invalid_event",  # the record parses but breaks an event rule
        "unreadable_payload",  # the payload codec cannot open the body (e.g. a bad seal)
        "key_mismatch",  # the record key is not the event's routing key (the envelope)
        "wrong_partition",  # not the contract partitioner's partition for the key (envelope)
        "wrong_topic",  # an event of another stream than its topic carries (envelope)
    }
)
"""Every reason a consumer dead-letters an unreadable record with (one vocabulary)."""


class EventTooLargeError(ContractError):
    """An encoded event is over ``Settings.max_event_bytes``; it was not sent."""


class SchemaLookup(Protocol):
    """Where writer schemas come from when they are not among the released ones.

    A schema-registry client implements this (and should cache: the codec
    asks once per id or fingerprint, but asks synchronously).
    ``runwire.contract.registry.SchemaRegistryClient`` is the one runwire has.
    ``str(lookup)`` is used in errors to say where the codec looked.
    """

    def schema_by_id(self, schema_id: int) -> str | None:
        """The Avro schema text registered under ``schema_id``, or None."""
        ...

    def schema_by_fingerprint(self, fingerprint: bytes) -> str | None:
        """The Avro schema text with this CRC-64-AVRO fingerprint, or None."""
        ...

    def id_of(self, schema: EventSchema) -> int | None:
        """The registry id of ``schema`` (for Confluent framing), or None."""
        ...


class InMemorySchemaLookup:
    """A ``SchemaLookup`` over schemas registered in this process (tests, tools)."""

    def __init__(self) -> None:
        self._by_id: dict[int, str] = {}
        self._ids_by_fingerprint: dict[bytes, int] = {}

    def __str__(self) -> str:
        return "the in-memory schema lookup"

    def register(self, schema_text: str, schema_id: int | None = None) -> int:
        """Register a schema; the same schema always gets the same id."""
        fingerprint = _fingerprint_of_text(schema_text)
        known = self._ids_by_fingerprint.get(fingerprint)
        if known is not None:
            return known
        if schema_id is None:
            schema_id = max(self._by_id, default=0) + 1
        self._by_id[schema_id] = schema_text
        self._ids_by_fingerprint[fingerprint] = schema_id
        return schema_id

    def schema_by_id(self, schema_id: int) -> str | None:
        return self._by_id.get(schema_id)

    def schema_by_fingerprint(self, fingerprint: bytes) -> str | None:
        schema_id = self._ids_by_fingerprint.get(fingerprint)
        return None if schema_id is None else self._by_id[schema_id]

    def id_of(self, schema: EventSchema) -> int | None:
        return self._ids_by_fingerprint.get(schema.fingerprint)


def _fingerprint_of_text(schema_text: str) -> bytes:
    return crc64_avro(to_parsing_canonical_form(parse_schema(json.loads(schema_text))))


def _without_uuid_logical_type(node: Any) -> Any:
    """A copy of a schema without ``logicalType: uuid``.

    The models keep event ids as text, so fastavro need not build UUID objects
    and turn them back into text; the canonical form (and so the fingerprint)
    does not include logical types, so the wire format is unchanged.
    """
    if isinstance(node, dict):
        return {
            k: _without_uuid_logical_type(v)
            for k, v in node.items()
            if not (k == "logicalType" and v == "uuid")
        }
    if isinstance(node, list):
        return [_without_uuid_logical_type(v) for v in node]
    return node


def _fast_view(schema: EventSchema) -> Any:
    return parse_schema(_without_uuid_logical_type(schema.definition))


@dataclass(frozen=True, slots=True)
class _Writer:
    schema: EventSchema
    parsed: Any
    header: bytes


@dataclass(frozen=True, slots=True)
class _Reader:
    event_type: EventType
    writer: Any
    reader: Any | None
    """None when the writer is the newest schema (no resolution needed)."""
    shape: PayloadShape


class PayloadCodec(Protocol):
    """Bytes <-> bytes between an event's Avro body and its framing (see the module contract)."""

    def seal(self, event: Event, body: bytes) -> bytes:
        """What to write after the frame header for ``body`` (the Avro body of ``event``)."""
        ...

    def open(self, event_type: EventType, data: bytes) -> bytes:
        """The Avro body ``data`` was sealed from; ``DecodeError`` when it cannot be."""
        ...


class Codec:
    """Encodes and decodes runwire events; see the module contract."""

    def __init__(
        self,
        schemas: SchemaSet | None = None,
        *,
        framing: Framing = Framing.SINGLE_OBJECT,
        lookup: SchemaLookup | None = None,
        max_event_bytes: int | None = None,
        payload: PayloadCodec | None = None,
    ) -> None:
        self._payload = payload
        self._schemas = schemas if schemas is not None else released_schemas()
        self._framing = framing
        self._lookup = lookup
        self._max_event_bytes = max_event_bytes
        if framing is Framing.CONFLUENT and lookup is None:
            raise ConfigurationError("Confluent framing needs a schema lookup (a registry)")
        self._single_object_writers: dict[EventType, _Writer] = {}
        self._readers: dict[bytes, _Reader] = {}
        self._readers_by_id: dict[int, _Reader] = {}
        newest: dict[EventType, Any] = {}
        for event_type in self._schemas.event_types():
            latest = self._schemas.latest(event_type)
            newest[event_type] = _fast_view(latest)
            header = single_object_header(latest.fingerprint)
            self._single_object_writers[event_type] = _Writer(latest, newest[event_type], header)
        self._newest = newest
        # Confluent writers are filled on first use: their ids come from the lookup.
        self._writers = (
            dict(self._single_object_writers) if framing is Framing.SINGLE_OBJECT else {}
        )
        for schema in self._schemas:
            is_newest = schema is self._schemas.latest(schema.event_type)
            self._readers[schema.fingerprint] = _Reader(
                schema.event_type,
                newest[schema.event_type] if is_newest else _fast_view(schema),
                None if is_newest else newest[schema.event_type],
                SHAPES[schema.event_type],
            )

    @property
    def payload(self) -> PayloadCodec | None:
        """The payload codec (None: the identity), e.g. the sealing one with its key store."""
        return self._payload

    @property
    def schemas(self) -> SchemaSet:
        return self._schemas

    @property
    def framing(self) -> Framing:
        """The framing ``encode`` writes (``decode`` reads both)."""
        return self._framing

    def writer_schema(self, event_type: EventType) -> EventSchema:
        """The schema ``encode`` writes events of this type with."""
        return self._writer(event_type).schema

    async def prepare(self) -> None:
        """Learn the registry ids of every schema ``encode`` writes, without blocking the loop.

        With Confluent framing over a lookup that has ``register_all`` (the
        registry client), the writer schemas are registered concurrently on
        the event loop; afterwards ``encode`` never waits for the registry.
        Otherwise a no-op: each type's id is asked for (blocking) the first
        time an event of that type is encoded.
        Raises the lookup's error (``SchemaRegistryError``) when the registry
        refuses or cannot be reached.
        """
        register_all = getattr(self._lookup, "register_all", None)
        if self._framing is not Framing.CONFLUENT or register_all is None:
            return
        await register_all([w.schema for w in self._single_object_writers.values()])
        for event_type in self._single_object_writers:
            self._writer(event_type)

    # -- encode ----------------------------------------------------------------

    def _writer(self, event_type: EventType) -> _Writer:
        writer = self._writers.get(event_type)
        if writer is not None:
            return writer
        single_object = self._single_object_writers.get(event_type)
        if single_object is None:
            raise ContractError(f"no schema released for event type {event_type.value!r}")
        assert self._lookup is not None  # only Confluent framing gets here; __init__ checked
        schema_id = self._lookup.id_of(single_object.schema)
        if schema_id is None:
            raise ConfigurationError(
                f"schema {single_object.schema.full_name} v{single_object.schema.version} has "
                "no registry id; register it before writing with Confluent framing"
            )
        writer = _Writer(single_object.schema, single_object.parsed, confluent_header(schema_id))
        self._writers[event_type] = writer
        return writer

    def encode(self, event: Event) -> bytes:
        """The framed Avro bytes of ``event``."""
        writer = self._writers.get(event.type) or self._writer(event.type)
        buffer = io.BytesIO()
        if self._payload is None:  # the identity: the body follows the header as it is
            buffer.write(writer.header)
        try:
            schemaless_writer(buffer, writer.parsed, to_record(event))
        except (ValueError, TypeError, OverflowError) as e:
            raise ContractError(
                f"event {event.event_id} ({event.type.value}) does not fit its schema: {e}"
            ) from e
        if self._payload is None:
            data = buffer.getvalue()
        else:
            data = writer.header + self._payload.seal(event, buffer.getvalue())
        if self._max_event_bytes is not None and len(data) > self._max_event_bytes:
            raise EventTooLargeError(
                f"event {event.event_id} ({event.type.value}, run {event.run_id}) is "
                f"{len(data)} bytes encoded; the limit is max_event_bytes="
                f"{self._max_event_bytes} (RUNWIRE_MAX_EVENT_BYTES)"
            )
        return data

    # -- decode ----------------------------------------------------------------

    def framed_type(self, data: bytes) -> EventType | None:
        """The event type ``data``'s frame header names, when known without asking anyone.

        What the body is written with (a released fingerprint, or a registry id
        read before), never a header beside it, so a reader may skip types it
        does not want without decoding. None: unknown here, decode to find out.
        """
        if data[:2] == SINGLE_OBJECT_MAGIC:
            reader = self._readers.get(data[2:10])
        elif data[:1] == b"\x00" and len(data) >= CONFLUENT_HEADER_SIZE:
            reader = self._readers_by_id.get(int.from_bytes(data[1:5], "big"))
        else:
            return None
        return None if reader is None else reader.event_type

    def decode(self, data: bytes) -> Event:
        """The event in ``data``; raises ``DecodeError`` (with a reason) when there is none."""
        # The common cases (a schema already seen, either framing) skip the
        # general header parsing: it runs once per consumed record.
        reader: _Reader | None = None
        if data[:2] == SINGLE_OBJECT_MAGIC:
            reader = self._readers.get(data[2:10])
            body_offset = SINGLE_OBJECT_HEADER_SIZE
        elif data[:1] == b"\x00" and len(data) >= CONFLUENT_HEADER_SIZE:
            reader = self._readers_by_id.get(int.from_bytes(data[1:5], "big"))
            body_offset = CONFLUENT_HEADER_SIZE
        if reader is None:
            header = read_header(data)
            reader = self._reader_for(header)
            body_offset = header.body_offset
        if self._payload is None:
            buffer = io.BytesIO(data)
            buffer.seek(body_offset)
        else:
            body = self._payload.open(reader.event_type, data[body_offset:])
            buffer, data = io.BytesIO(body), body
        try:
            record = schemaless_reader(buffer, reader.writer, reader.reader)
        except EOFError as e:
            raise DecodeError("truncated", f"Avro body ends early: {e}") from e
        except SchemaResolutionError as e:
            raise DecodeError("incompatible_schema", str(e)) from e
        except OverflowError as e:
            # The one logical type fastavro turns into an object is occurred_at's
            # timestamp-millis (a datetime: years 1-9999); malformed longs wrap, they
            # never overflow. So the body parsed, and its time is what breaks a rule.
            raise DecodeError(
                "invalid_event",
                f"{reader.event_type.value}: occurred_at is outside the years 1-9999 "
                f"(epoch milliseconds -62135596800000 to 253402300799999): {e}",
            ) from e
        # Malformed bytes make fastavro fail in many ways (bad lengths, union
        # indexes, UTF-8); all of them mean the same thing to a consumer.
        except Exception as e:
            raise DecodeError("invalid_body", f"{type(e).__name__}: {e}") from e
        if buffer.tell() != len(data):
            raise DecodeError(
                "invalid_body", f"{len(data) - buffer.tell()} bytes left after the Avro body"
            )
        try:
            event = event_from_record(reader.shape, record)  # type: ignore[arg-type]
        except RecordError as e:
            raise DecodeError("invalid_event", f"{reader.event_type.value}: {e}") from e
        # What a writer may not write, no reader accepts: every consumer refuses
        # it alike, and nothing downstream has to copy an envelope it cannot write.
        try:
            check_event(event)
        except InputError as e:
            raise DecodeError("invalid_event", f"{reader.event_type.value}: {e}") from e
        return event

    def _reader_for(self, header: Header) -> _Reader:
        if header.fingerprint is not None:
            reader = self._readers.get(header.fingerprint)
            if reader is not None:
                return reader
            text = self._lookup.schema_by_fingerprint(header.fingerprint) if self._lookup else None
            if text is None:
                raise DecodeError(
                    "unknown_fingerprint",
                    f"no known schema has fingerprint {header.fingerprint.hex()}",
                )
            reader = self._foreign_reader(text, f"fingerprint {header.fingerprint.hex()}")
            self._readers[header.fingerprint] = reader
            return reader
        assert header.schema_id is not None  # a header has one or the other
        reader = self._readers_by_id.get(header.schema_id)
        if reader is not None:
            return reader
        text = self._lookup.schema_by_id(header.schema_id) if self._lookup else None
        if text is None:
            where = (
                str(self._lookup)
                if self._lookup
                else "no schema registry (schema_registry_url is not set)"
            )
            raise DecodeError(
                "unknown_schema_id", f"schema id {header.schema_id} not found in {where}"
            )
        reader = self._foreign_reader(text, f"schema id {header.schema_id}")
        self._readers_by_id[header.schema_id] = reader
        return reader

    def _foreign_reader(self, text: str, where: str) -> _Reader:
        """A reader for a writer schema that is not (or not known to be) released."""
        try:
            definition = json.loads(text)
            name = f"{definition.get('namespace', '')}.{definition['name']}".lstrip(".")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DecodeError("unknown_type", f"{where}: not an event schema ({e})") from e
        event_type = self._schemas.event_type_named(name)
        if event_type is None:
            raise DecodeError("unknown_type", f"{where}: {name} is not a runwire event type")
        try:
            schema = build_event_schema(definition, event_type)
        except Exception as e:
            raise DecodeError("unknown_type", f"{where}: unusable schema ({e})") from e
        known = self._readers.get(schema.fingerprint)
        if known is not None:
            return known
        return _Reader(event_type, _fast_view(schema), self._newest[event_type], SHAPES[event_type])


_default: Codec | None = None


def default_codec() -> Codec:
    """A process-wide codec over the released schemas (single-object framing)."""
    global _default
    if _default is None:
        _default = Codec()
    return _default


_registries: dict[tuple[str, str | None, str | None, float], SchemaRegistryClient] = {}
_codecs: dict[tuple[SchemaRegistryClient | None, int, tuple[object, ...] | None], Codec] = {}
_factory_lock = threading.Lock()  # the blocking Session builds codecs from its own thread


def registry_client_for(settings: Settings) -> SchemaRegistryClient | None:
    """The process-wide client of ``settings.schema_registry_url`` (None when it is not set).

    Shared, so that each schema is registered and each id fetched once per
    process whichever component asks.
    """
    from runwire.contract.registry import SchemaRegistryClient

    url = settings.schema_registry_url
    if not url:
        return None
    password = settings.schema_registry_password
    key = (
        url,
        settings.schema_registry_username,
        password.get_secret_value() if password is not None else None,
        settings.schema_registry_timeout_seconds,
    )
    with _factory_lock:
        client = _registries.get(key)
        if client is None:
            client = _registries[key] = SchemaRegistryClient(
                url, username=key[1], password=key[2], timeout=key[3]
            )
        return client


def codec_for(settings: Settings) -> Codec:
    """The process-wide codec for ``settings``: the one factory every component uses.

    - ``schema_registry_url`` unset: single-object framing; Confluent-framed
      values do not decode (``unknown_schema_id``: no registry to ask).
    - set: Confluent framing over :func:`registry_client_for`; single-object
      values still decode, so a topic can move from one framing to the other
      while every reader keeps reading.
    - ``max_event_bytes`` is enforced by ``encode``.
    - ``sealing`` on: the payload codec seals each session's events with its
      data key, kept in Postgres (``postgres_dsn``) and wrapped by the key file
      (``sealing_key_file``); see :mod:`runwire.contract.sealing`.
    """
    registry = registry_client_for(settings)
    sealing = (
        (settings.postgres_dsn, _key_file(settings), settings.sealing_key_cache_seconds)
        if settings.sealing
        else None
    )
    key = (registry, settings.max_event_bytes, sealing)
    with _factory_lock:
        codec = _codecs.get(key)
        if codec is None:
            codec = _codecs[key] = Codec(
                framing=Framing.SINGLE_OBJECT if registry is None else Framing.CONFLUENT,
                lookup=registry,
                max_event_bytes=settings.max_event_bytes,
                payload=_sealing(settings) if settings.sealing else None,
            )
        return codec


def _key_file(settings: Settings) -> str:
    path = settings.sealing_key_file or settings.home / "sealing-keys.json"
    return str(path.expanduser().resolve())


def _sealing(settings: Settings) -> PayloadCodec:
    from pathlib import Path

    from runwire.contract.sealing import SealingPayload
    from runwire.contract.sealing.kek import KeyFile
    from runwire.contract.sealing.postgres import PostgresKeyStore

    kek = KeyFile(Path(_key_file(settings)))
    store = PostgresKeyStore(
        settings.postgres_dsn, kek, cache_seconds=settings.sealing_key_cache_seconds
    )
    atexit.register(store.close)  # process-wide like the codec: its connection lives as long
    return SealingPayload(store)
