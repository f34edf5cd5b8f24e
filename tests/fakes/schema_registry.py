"""A fake Confluent Schema Registry, in a thread (the registry client blocks).

Wire format, as the Confluent Schema Registry speaks it:
- ``POST /subjects/{subject}/versions`` with ``{"schema": text, "schemaType":
  "AVRO"}`` -> ``{"id": N}``. Ids are global: the same schema under another
  subject gets the same id; a schema that does not parse is HTTP 422 with
  ``error_code`` 42201.
- ``POST /subjects/{subject}`` (look up) -> ``{"subject", "id", "version",
  "schema"}``; 404 with 40401 (no such subject) or 40403 (not under it).
- ``GET /schemas/ids/{id}`` -> ``{"schema": text}``; 404 with 40403.
- Error bodies are ``{"error_code": N, "message": text}``; responses are
  ``application/vnd.schemaregistry.v1+json``; POSTs with another content type
  than the registry's or ``application/json`` are 415. With ``credentials`` set, requests without those basic-auth
  credentials are 401 (``error_code`` 401).

Test controls: ``fail_next(n, status, error_code, message)`` answers the next
``n`` requests with that error, ``delay`` holds every answer back,
``add(text, schema_id)`` stores a schema another producer registered, and
``requests`` records (method, path) of every request.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPTED_TYPES = (CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json")


@dataclass
class _Failure:
    count: int
    status: int
    error_code: int
    message: str


@dataclass
class _State:
    by_id: dict[int, str] = field(default_factory=dict)
    id_by_canonical: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failure: _Failure | None = None
    credentials: tuple[str, str] | None = None
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Error(Exception):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _canonical(text: str) -> str:
    try:
        return str(to_parsing_canonical_form(parse_schema(json.loads(text))))
    except Exception as e:
        raise _Error(422, 42201, f"Invalid schema {text[:80]}: {e}") from e


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 resets connections of a start-up burst
    daemon_threads = True


class FakeSchemaRegistry:
    """``with FakeSchemaRegistry() as registry:`` serves on ``registry.url``."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self._state = _State(credentials=credentials)
        self._server = _Server(("127.0.0.1", 0), _handler_for(self._state))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def delay(self) -> float:
        return self._state.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._state.delay = seconds

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        error_code: int = 50001,
        message: str = "Error in the backend data store",
    ) -> None:
        with self._state.lock:
            self._state.failure = _Failure(count, status, error_code, message)

    def add(self, text: str, schema_id: int, subject: str | None = None) -> None:
        """Store ``text`` under ``schema_id`` as if another producer had registered it."""
        with self._state.lock:
            self._state.by_id[schema_id] = text
            self._state.id_by_canonical[_canonical(text)] = schema_id
            if subject is not None:
                self._state.subjects.setdefault(subject, []).append(schema_id)

    def subjects(self) -> dict[str, list[int]]:
        with self._state.lock:
            return {k: list(v) for k, v in self._state.subjects.items()}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real registry

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with state.lock:
                state.requests.append((method, self.path))
            if state.delay:
                time.sleep(state.delay)
            try:
                status, body = self._answer(method, raw)
            except _Error as e:
                status, body = e.status, {"error_code": e.error_code, "message": e.message}
            data = json.dumps(body).encode()
            # A client that timed out has gone: nothing to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def _answer(self, method: str, raw: bytes) -> tuple[int, Any]:
            with state.lock:
                failure = state.failure
                if failure is not None:
                    failure.count -= 1
                    if failure.count <= 0:
                        state.failure = None
                    raise _Error(failure.status, failure.error_code, failure.message)
            self._check_auth()
            parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
            if method == "GET" and len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
                return 200, self._schema_by_id(parts[2])
            if method == "POST" and parts[:1] == ["subjects"] and len(parts) in (2, 3):
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if content_type not in _ACCEPTED_TYPES:
                    raise _Error(415, 415, "HTTP 415 Unsupported Media Type")
                text = self._schema_in(raw)
                if len(parts) == 3 and parts[2] == "versions":
                    return 200, self._register(parts[1], text)
                if len(parts) == 2:
                    return 200, self._look_up(parts[1], text)
            raise _Error(404, 404, "HTTP 404 Not Found")

        def _check_auth(self) -> None:
            if state.credentials is None:
                return
            user, password = state.credentials
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                raise _Error(401, 401, "Unauthorized")

        @staticmethod
        def _schema_in(raw: bytes) -> str:
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise _Error(422, 422, f"Unrecognized field or malformed JSON: {e}") from e
            schema_type = body.get("schemaType", "AVRO")
            if schema_type != "AVRO":
                raise _Error(422, 42201, f"Invalid schema type {schema_type}")
            text = body.get("schema")
            if not isinstance(text, str):
                raise _Error(422, 42201, "Empty schema")
            return text

        @staticmethod
        def _schema_by_id(raw_id: str) -> dict[str, Any]:
            with state.lock:
                text = state.by_id.get(int(raw_id)) if raw_id.isdigit() else None
            if text is None:
                raise _Error(404, 40403, f"Schema {raw_id} not found")
            return {"schema": text}

        @staticmethod
        def _register(subject: str, text: str) -> dict[str, Any]:
            canonical = _canonical(text)
            with state.lock:
                schema_id = state.id_by_canonical.get(canonical)
                if schema_id is None:
                    schema_id = max(state.by_id, default=0) + 1
                    state.by_id[schema_id] = text
                    state.id_by_canonical[canonical] = schema_id
                versions = state.subjects.setdefault(subject, [])
                if schema_id not in versions:
                    versions.append(schema_id)
            return {"id": schema_id}

        @staticmethod
        def _look_up(subject: str, text: str) -> dict[str, Any]:
            canonical = _canonical(text)
            with state.lock:
                versions = state.subjects.get(subject)
                if versions is None:
                    raise _Error(404, 40401, f"Subject '{subject}' not found.")
                schema_id = state.id_by_canonical.get(canonical)
                if schema_id is None or schema_id not in versions:
                    raise _Error(404, 40403, "Schema not found")
                return {
                    "subject": subject,
                    "id": schema_id,
                    "version": versions.index(schema_id) + 1,
                    "schema": state.by_id[schema_id],
                }

    return Handler
