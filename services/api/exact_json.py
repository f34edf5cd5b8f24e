"""JSON in and out of the API the way every runwire value is: numbers exact.

Contract:
- :class:`ExactJsonRoute` is the route class of every router with a body. A JSON body is parsed by :func:`runwire.contract.jsonvalues.loads`, never
  ``json.loads``: a number keeps the decimal its text writes (``1e400``,
  ``3.14159265358979323846``), as the SDK keeps it (docs/json-numbers.md).
- A body that is not such JSON (not UTF-8, cut short, ``NaN``, an integer over
  ``MAX_INT_DIGITS`` digits, nested deeper than ``MAX_DEPTH``) is 422
  ``invalid_request`` with a problem at ``body`` saying why; nothing is written.
- :func:`dumps` writes a model as pydantic's JSON mode would, except that a
  ``Decimal`` (a number no float writes: docs/json-numbers.md) is written as
  its exact number, not as a string; :class:`ExactJSONResponse` answers with it.
  Routes serving JSON values (transcripts, history, events, session metadata) use them.
- Every time the API writes (these and the response models' :data:`Instant`
  fields) is RFC 3339 with all six digits of its microseconds, in UTC with
  ``Z`` (:func:`instant`): pydantic drops a zero fraction (``...:57Z`` beside
  ``...:56.914000Z``), and then text order is not time order.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from runwire.contract import jsonvalues

__all__ = ["BodyNotJson", "ExactJSONResponse", "ExactJsonRoute", "dumps", "instant"]


class BodyNotJson(HTTPException):
    """The body is not JSON runwire keeps (422 with the problem at ``body``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(422, f"body: {reason}")
        self.problems = [{"where": "body", "what": reason}]


class _ExactJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                # Lone surrogates kept here: each field refuses them, naming where.
                self._json = jsonvalues.loads(await self.body(), lone_surrogates=True)
            except jsonvalues.JsonValueError as e:
                # An HTTPException: FastAPI hands it on as it is (any other error
                # here it answers with a bare 400 that says nothing of why).
                raise BodyNotJson(str(e)) from None
        return self._json


class ExactJsonRoute(APIRoute):
    """An :class:`APIRoute` whose request parses its JSON body exactly (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactJsonRequest(request.scope, request.receive))

        return exact


def instant(at: datetime) -> str:
    """``at`` as the API writes every time (see the module contract); a naive time
    (none of runwire's) keeps having no offset."""
    if at.tzinfo is None:
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _exact(python: Any, json: Any) -> Any:
    """``json`` (a JSON-mode dump) with the Decimals of ``python`` (the same model's
    Python-mode dump, the same shape) put back where JSON mode wrote strings, and
    its times written by :func:`instant`."""
    if isinstance(python, Decimal):
        return python
    if isinstance(python, datetime):
        return instant(python)
    if isinstance(python, dict) and isinstance(json, dict) and len(python) == len(json):
        return {
            jk: _exact(pv, jv) for (pv, (jk, jv)) in zip(python.values(), json.items(), strict=True)
        }
    if isinstance(python, list | tuple) and isinstance(json, list) and len(python) == len(json):
        return [_exact(p, j) for p, j in zip(python, json, strict=True)]
    return json


def dumps(model: BaseModel) -> bytes:
    """``model`` as JSON, numbers exact (see the module contract)."""
    return jsonvalues.dumps(_exact(model.model_dump(), model.model_dump(mode="json")))


class ExactJSONResponse(Response):
    """A JSON answer of a model, written by :func:`dumps`."""

    media_type = "application/json"

    def __init__(self, model: BaseModel, status_code: int = 200) -> None:
        super().__init__(dumps(model), status_code=status_code)
