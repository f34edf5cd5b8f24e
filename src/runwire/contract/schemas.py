"""The released Avro schemas, loaded once from the ``runwire.schemas`` package.

Contract:
- Every event type has its own record schema, released as
  ``<event_type>.v<N>.avsc`` (N = 1, 2, ...); each file is the envelope plus
  that type's payload record, named ``io.runwire.v1.<Payload>Event``. One schema
  per type (rather than one envelope with a payload union) is what lets a new
  event type arrive without breaking FULL compatibility: adding a branch to a
  union is a change old readers cannot read.
- Released files never change; a new version is a new file, and every version
  chain must be FULL_TRANSITIVE compatible (tests/unit enforces it).
- The newest version of a type is what producers write and readers resolve to;
  every released version is known by its CRC-64-AVRO fingerprint of the
  parsing canonical form, so old data still decodes.
- Payload fields marked ``"contentType": "application/json"`` carry JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from runwire.contract.events import EventType
from runwire.errors import ContractError

NAMESPACE = "io.runwire.v1"
JSON_CONTENT_TYPE = "application/json"
_FILE_NAME = re.compile(r"^(?P<type>[a-z_]+)\.v(?P<version>[1-9][0-9]*)\.avsc$")


def crc64_avro(canonical_form: str) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of a canonical form."""
    return bytes.fromhex(_fastavro_fingerprint(canonical_form, "CRC-64-AVRO"))


@dataclass(frozen=True, eq=False)
class EventSchema:
    """One released (or foreign, writer-side) schema of one event type."""

    event_type: EventType
    version: int
    definition: Mapping[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)
    canonical_form: str = field(repr=False)
    fingerprint: bytes
    json_fields: frozenset[str]
    """Payload fields that carry JSON text."""

    @property
    def full_name(self) -> str:
        return f"{self.definition.get('namespace', NAMESPACE)}.{self.definition['name']}"

    @property
    def fingerprint_int(self) -> int:
        """The fingerprint as Java's ``SchemaNormalization.parsingFingerprint64`` gives it."""
        return int.from_bytes(self.fingerprint, "little", signed=True)


def _payload_record(definition: Mapping[str, Any]) -> Mapping[str, Any]:
    for f in definition.get("fields", ()):
        if f["name"] == "payload" and isinstance(f["type"], dict):
            return f["type"]
    raise ContractError(f"schema {definition.get('name')!r} has no payload record field")


def build_event_schema(
    definition: Mapping[str, Any], event_type: EventType, version: int = 0
) -> EventSchema:
    """Parse one event schema definition; ``version`` 0 means "not a released file"."""
    parsed = parse_schema(dict(definition))
    canonical = to_parsing_canonical_form(parsed)
    json_fields = frozenset(
        f["name"]
        for f in _payload_record(definition)["fields"]
        if f.get("contentType") == JSON_CONTENT_TYPE
    )
    return EventSchema(
        event_type=event_type,
        version=version,
        definition=definition,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=crc64_avro(canonical),
        json_fields=json_fields,
    )


class SchemaSet:
    """Every released schema, by type and by fingerprint."""

    def __init__(self, schemas: Iterable[EventSchema]) -> None:
        self._versions: dict[EventType, list[EventSchema]] = {}
        self._by_fingerprint: dict[bytes, EventSchema] = {}
        self._by_name: dict[str, EventType] = {}
        for schema in sorted(schemas, key=lambda s: (s.event_type.value, s.version)):
            chain = self._versions.setdefault(schema.event_type, [])
            if chain and chain[-1].version == schema.version:
                raise ContractError(f"{schema.event_type.value} v{schema.version} is defined twice")
            chain.append(schema)
            self._by_fingerprint[schema.fingerprint] = schema
            known = self._by_name.setdefault(schema.full_name, schema.event_type)
            if known is not schema.event_type:
                raise ContractError(
                    f"{schema.full_name} is used by {known} and {schema.event_type}"
                )
        for event_type, chain in self._versions.items():
            numbers = [s.version for s in chain]
            if numbers != list(range(1, len(chain) + 1)):
                raise ContractError(f"{event_type.value} versions must be 1..N, found {numbers}")

    def event_types(self) -> list[EventType]:
        return list(self._versions)

    def versions(self, event_type: EventType) -> list[EventSchema]:
        """Every released version of ``event_type``, oldest first."""
        return list(self._versions[event_type])

    def latest(self, event_type: EventType) -> EventSchema:
        """The version producers write and readers resolve to."""
        try:
            return self._versions[event_type][-1]
        except KeyError:
            raise ContractError(f"no schema released for event type {event_type.value!r}") from None

    def by_fingerprint(self, fingerprint: bytes) -> EventSchema | None:
        return self._by_fingerprint.get(fingerprint)

    def event_type_named(self, full_name: str) -> EventType | None:
        """The event type whose record has this full name, if any."""
        return self._by_name.get(full_name)

    def __iter__(self) -> Iterator[EventSchema]:
        for chain in self._versions.values():
            yield from chain


def read_released_files() -> dict[str, str]:
    """File name -> text of every ``.avsc`` file shipped in ``runwire.schemas``."""
    root = resources.files("runwire.schemas")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in root.iterdir()
        if entry.name.endswith(".avsc")
    }


def load_from_texts(files: Mapping[str, str]) -> SchemaSet:
    """Build a schema set from ``{file name: .avsc text}`` (names as released)."""
    schemas = []
    for name, text in files.items():
        match = _FILE_NAME.match(name)
        if match is None:
            raise ContractError(f"schema file {name!r} is not named <event_type>.v<N>.avsc")
        try:
            event_type = EventType(match["type"])
        except ValueError:
            raise ContractError(f"schema file {name!r}: unknown event type") from None
        try:
            definition = json.loads(text)
        except ValueError as e:
            raise ContractError(f"schema file {name!r} is not JSON: {e}") from e
        schemas.append(build_event_schema(definition, event_type, int(match["version"])))
    return SchemaSet(schemas)


@cache
def released_schemas() -> SchemaSet:
    """Every schema shipped with runwire (parsed and fingerprinted once per process)."""
    return load_from_texts(read_released_files())
