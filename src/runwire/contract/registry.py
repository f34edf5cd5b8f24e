"""A Confluent Schema Registry client: the ``SchemaLookup`` behind Confluent framing.

Contract:
- Speaks the registry's REST API (``application/vnd.schemaregistry.v1+json``):
  ``POST /subjects/{subject}/versions`` registers a schema and returns its id
  (the existing id when it is already registered), ``POST /subjects/{subject}``
  looks one up without registering, ``GET /schemas/ids/{id}`` returns the
  schema text of an id. Works with any registry that implements that API
  (Confluent, Karapace, Redpanda, Apicurio's compatibility API).
- Subjects follow the RecordNameStrategy: the subject of a schema is the Avro
  full name of its record (``io.runwire.v1.UserMessageEvent``). runwire has one
  record schema per event type and one topic carries many types, so the
  TopicNameStrategy (one subject ``<topic>-value`` per topic) would put
  unrelated records in one subject, and the registry's compatibility check
  would refuse the second event type. Under the record name, a subject's
  versions are exactly the released versions of one event type (schemas/),
  and the registry's compatibility rules apply where ours do.
- Ids are cached both ways (id -> schema text, fingerprint -> id) for the life
  of the client: a registry id names one schema forever. A schema is
  registered at most once per client (so once per process when the client is
  shared, as ``runwire.contract.codec.codec_for`` does). An id the registry
  does not know is remembered as unknown for ``negative_ttl`` seconds (10 by
  default), so a topic full of records with a bad id does not cost one request
  per record; short, because a registry replica that lags behind the one a
  producer registered with may not know a fresh id yet (such records are
  dead-lettered and can be redriven).
- Blocking, on purpose: the codec's ``decode`` is synchronous and runs inside
  consumer loops, so an id seen for the first time is fetched with a blocking
  request bounded by ``timeout`` (2 s by default) -- once per id per process;
  everything after is a dictionary lookup. After a failed request, requests
  fail at once for ``cooldown`` seconds instead of blocking the loop again for
  every record. The writer side does not block at all when the codec is
  prepared first (``await Codec.prepare()``, which the publisher does on
  start): ``register_all`` registers the writer schemas concurrently on the
  event loop with an async client.
- Errors are ``SchemaRegistryError`` naming the URL, the subject or id, the
  HTTP status and the registry's ``error_code`` / ``message``. ``retriable``
  is true for what may pass (connection errors, timeouts, 408, 429, 5xx) and
  false for the registry's verdicts on the request (other 4xx: bad
  credentials, an invalid or incompatible schema).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from runwire.contract.schemas import EventSchema, crc64_avro
from runwire.errors import RunwireError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPT = f"{CONTENT_TYPE}, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"
# The registry's "not there" error codes (any other is reported as it comes).
SUBJECT_NOT_FOUND = 40401
SCHEMA_NOT_FOUND = 40403  # the only one that makes an id unknown
# register_all's requests in flight at once: a start-up burst stays polite.
_CONCURRENT_REQUESTS = 4


class SchemaRegistryError(RunwireError):
    """The schema registry refused a request or could not be reached.

    ``url`` is the request's URL; ``status`` the HTTP status (None when no
    answer came); ``error_code`` and ``registry_message`` what the registry
    said in its error body, when it said anything.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        error_code: int | None = None,
        registry_message: str | None = None,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.error_code = error_code
        self.registry_message = registry_message
        self.retriable = retriable


def subject_of(schema: EventSchema) -> str:
    """The subject ``schema`` is registered under (RecordNameStrategy: its full name)."""
    return schema.full_name


def schema_text(schema: EventSchema) -> str:
    """The schema as registered: the released definition, as JSON."""
    return json.dumps(schema.definition, separators=(",", ":"))


def fingerprint_of_text(text: str) -> bytes:
    """The CRC-64-AVRO fingerprint of an Avro schema given as JSON text."""
    return crc64_avro(to_parsing_canonical_form(parse_schema(json.loads(text))))


def _is_retriable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class SchemaRegistryClient:
    """A caching client of one schema registry; implements ``SchemaLookup``.

    ``url`` is the registry's base URL (``http://host:8081``); ``username`` /
    ``password`` are sent as HTTP basic auth when given. ``auto_register``
    False makes ``id_of`` only look schemas up (for credentials that may not
    register); then an unregistered schema is an error.

    Thread-safe: the blocking ``Session`` may decode from other threads.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 2.0,
        auto_register: bool = True,
        negative_ttl: float = 10.0,
        cooldown: float = 1.0,
    ) -> None:
        self._url = url.rstrip("/")
        self._auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._timeout = timeout
        self.auto_register = auto_register
        self._negative_ttl = negative_ttl
        self._cooldown = cooldown
        self._headers = {"Accept": _ACCEPT, "Content-Type": CONTENT_TYPE}
        self._text_by_id: dict[int, str] = {}
        self._id_by_fingerprint: dict[bytes, int] = {}
        self._unknown_until: dict[int, float] = {}
        self._failing_until = 0.0
        self._last_failure: SchemaRegistryError | None = None
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self.requests = 0
        """HTTP requests sent so far (both clients); tests and logs read it."""

    @property
    def url(self) -> str:
        return self._url

    def __str__(self) -> str:
        return f"the schema registry at {self._url}"

    # -- SchemaLookup (blocking; the codec calls these) -------------------------

    def schema_by_id(self, schema_id: int) -> str | None:
        """The schema text of ``schema_id``; None when the registry says it has none."""
        text = self._text_by_id.get(schema_id)
        if text is not None:
            return text
        if self._unknown_until.get(schema_id, 0.0) > time.monotonic():
            return None
        with self._lock:
            text = self._text_by_id.get(schema_id)
            if text is not None:
                return text
            try:
                body = self._send("GET", f"/schemas/ids/{schema_id}", what=f"schema id {schema_id}")
            except SchemaRegistryError as e:
                # Only the registry's own verdict: a bare 404 (a wrong URL, a
                # proxy) must not turn every record into a dead letter.
                if e.status == 404 and e.error_code == SCHEMA_NOT_FOUND:
                    self._unknown_until[schema_id] = time.monotonic() + self._negative_ttl
                    return None
                raise
            return self._remember(
                schema_id, _schema_in(body, f"{self._url}/schemas/ids/{schema_id}")
            )

    def schema_by_fingerprint(self, fingerprint: bytes) -> str | None:
        """A schema this client has seen with this fingerprint (the registry has no such index)."""
        schema_id = self._id_by_fingerprint.get(fingerprint)
        return None if schema_id is None else self._text_by_id.get(schema_id)

    def id_of(self, schema: EventSchema) -> int:
        """The registry id of ``schema``, registering it first (once) unless told not to."""
        known = self._id_by_fingerprint.get(schema.fingerprint)
        if known is not None:
            return known
        with self._lock:
            known = self._id_by_fingerprint.get(schema.fingerprint)
            if known is not None:
                return known
            path, what = self._id_request(schema)
            body = self._send("POST", path, what=what, json_body=self._id_body(schema))
            schema_id = _id_in(body, f"{self._url}{path}")
            self._remember(schema_id, schema_text(schema), schema.fingerprint)
            return schema_id

    # -- async (on the event loop, without blocking it) ------------------------

    async def register_all(self, schemas: Iterable[EventSchema]) -> dict[bytes, int]:
        """Learn (registering when allowed) the ids of ``schemas`` concurrently.

        Returns fingerprint -> id for every one of them; afterwards ``id_of``
        answers them from the cache.
        """
        schemas = list(schemas)
        missing = [s for s in schemas if s.fingerprint not in self._id_by_fingerprint]
        if missing:
            async with httpx.AsyncClient(
                auth=self._auth,
                timeout=self._timeout,
                headers=self._headers,
                verify=self._verify(),
                limits=httpx.Limits(max_connections=_CONCURRENT_REQUESTS),
            ) as client:
                ids = await asyncio.gather(*(self._aid_of(client, s) for s in missing))
            for schema, schema_id in zip(missing, ids, strict=True):
                self._remember(schema_id, schema_text(schema), schema.fingerprint)
        return {s.fingerprint: self._id_by_fingerprint[s.fingerprint] for s in schemas}

    async def _aid_of(self, client: httpx.AsyncClient, schema: EventSchema) -> int:
        path, what = self._id_request(schema)
        url = f"{self._url}{path}"
        self.requests += 1
        try:
            response = await client.post(url, json=self._id_body(schema))
        except httpx.HTTPError as e:
            raise self._unreachable(url, what, e) from e
        return _id_in(self._checked(response, url, what), url)

    # -- plumbing --------------------------------------------------------------

    def _id_request(self, schema: EventSchema) -> tuple[str, str]:
        subject = subject_of(schema)
        path = f"/subjects/{quote(subject, safe='')}"
        if self.auto_register:
            path += "/versions"
        verb = "registering" if self.auto_register else "looking up"
        return path, f"{verb} {subject} v{schema.version} (subject {subject!r})"

    @staticmethod
    def _id_body(schema: EventSchema) -> dict[str, Any]:
        return {"schema": schema_text(schema), "schemaType": "AVRO"}

    def _remember(self, schema_id: int, text: str, fingerprint: bytes | None = None) -> str:
        """Cache ``text`` under ``schema_id`` (and its fingerprint, computed unless given)."""
        if fingerprint is None:
            try:
                fingerprint = fingerprint_of_text(text)
            except Exception:  # not Avro we can parse: the codec reports it as unknown_type
                fingerprint = None
        self._text_by_id[schema_id] = text
        self._unknown_until.pop(schema_id, None)
        if fingerprint is not None:
            self._id_by_fingerprint.setdefault(fingerprint, schema_id)
        return text

    def _send(
        self, method: str, path: str, *, what: str, json_body: dict[str, Any] | None = None
    ) -> Any:
        url = f"{self._url}{path}"
        if time.monotonic() < self._failing_until and self._last_failure is not None:
            raise SchemaRegistryError(
                f"{what}: not asked, {self._last_failure} (retrying after {self._cooldown:g}s)",
                url=url,
                status=self._last_failure.status,
                retriable=True,
            )
        self.requests += 1
        try:
            # A client per request: misses are rare (once per id or schema per
            # process), and a shared client would be a connection to close.
            with httpx.Client(
                auth=self._auth, timeout=self._timeout, headers=self._headers, verify=self._verify()
            ) as http:
                response = http.request(method, url, json=json_body)
        except httpx.HTTPError as e:
            raise self._unreachable(url, what, e) from e
        return self._checked(response, url, what)

    def _verify(self) -> ssl.SSLContext | bool:
        """TLS settings for a request: built once, as loading the CA bundle takes ~100 ms."""
        if not self._url.startswith("https:"):
            return False  # plain HTTP: nothing to verify, nothing to load
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return self._tls

    def _unreachable(self, url: str, what: str, e: httpx.HTTPError) -> SchemaRegistryError:
        error = SchemaRegistryError(
            f"{what}: cannot reach the schema registry at {url} (schema_registry_url): "
            f"{type(e).__name__}: {e}",
            url=url,
            retriable=True,
        )
        self._failed(error)
        return error

    def _failed(self, error: SchemaRegistryError) -> None:
        self._last_failure = error
        self._failing_until = time.monotonic() + self._cooldown

    def _checked(self, response: httpx.Response, url: str, what: str) -> Any:
        """The JSON body of a successful response; a ``SchemaRegistryError`` otherwise."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                raise _malformed(url, response.text, "a JSON body")
            return body
        error_code = body.get("error_code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        said = (
            f"error_code {error_code}: {message}"
            if error_code is not None or message is not None
            else repr(response.text[:200])
        )
        retriable = _is_retriable(status)
        error = SchemaRegistryError(
            f"{what}: the schema registry answered HTTP {status} at {url}: {said}",
            url=url,
            status=status,
            error_code=error_code if isinstance(error_code, int) else None,
            registry_message=message if isinstance(message, str) else None,
            retriable=retriable,
        )
        if retriable:
            self._failed(error)
        raise error


def _malformed(url: str, body: Any, wanted: str) -> SchemaRegistryError:
    # The registry's fault, not the record's: consumers wait for it rather
    # than dead-letter records they could read once it answers properly.
    return SchemaRegistryError(
        f"{url} answered without {wanted}: {body!r:.200}", url=url, status=200, retriable=True
    )


def _schema_in(body: Any, url: str) -> str:
    """The schema text of a ``GET /schemas/ids/{id}`` answer.

    A schema of another type (JSON Schema, Protobuf) is returned as it is: the
    codec reports it as ``unknown_type``, a fact about the record.
    """
    text = body.get("schema") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise _malformed(url, body, "a schema")
    return text


def _id_in(body: Any, url: str) -> int:
    schema_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(schema_id, int) or isinstance(schema_id, bool):
        raise _malformed(url, body, "an id")
    return schema_id
