"""The HTTP API fuzzed from its own OpenAPI document, on the real stack.

Schemathesis generates requests for every operation of ``/openapi.json``,
valid ones and invalid ones, authenticated with a test API key, and checks
each answer: never a 5xx, and never a status, content type or body the
document does not declare. Deterministic (hypothesis ``derandomize``, no
example database) and bounded (a fixed number of examples per operation).
Every failure of every operation is collected and reported together.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
from schemathesis import openapi
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from runwire.settings import Settings
from tests.helpers import on_the_stack
from tests.integration.api_support import ALICE, api, auth, projectors

EXAMPLES = 40  # per operation and generation mode
NOT_HTTP = "Invalid HTTP request received."
"""uvicorn's whole answer to a request that is not valid HTTP (its 400)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def describe(error: BaseException) -> str:
    """The error and, for a group (hypothesis' "flaky" wraps what failed), what it holds."""
    lines = [f"{type(error).__name__}: {error}"]
    if isinstance(error, BaseExceptionGroup):
        lines += [describe(inner) for inner in error.exceptions]
    return "\n".join(lines)


def fuzz(document: dict[str, Any], base_url: str) -> list[str]:
    """Every failure found, one line each: the operation, the mode and what failed."""
    schema = openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # the document itself is wrong: that fails the test
            failures.append(f"an operation the fuzzer cannot read: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @on_the_stack(EXAMPLES)
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers=auth(ALICE), timeout=30)
                if response.status_code == 400 and response.text == NOT_HTTP:
                    # A negative case's headers that are not HTTP (a Content-Length
                    # of letters, a name with a ';'): the server refused them before
                    # any route saw them; the document describes the API's answers.
                    return
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to make invalid (an operation without parameters)
            except (Exception, BaseExceptionGroup) as e:  # collected, reported together below
                failures.append(f"{operation.label} ({mode.value}): {describe(e)}")
    return failures


# Schemathesis' invalid-case strategies draw from `random` (hypothesis seeds it per example,
# so the cases stay reproducible); only that deprecation notice is let through.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_the_api_answers_only_what_its_openapi_document_declares(
    settings: Settings,
) -> None:
    async with projectors(settings, ("runs", "sessions")), api(settings) as rw:
        document = (await rw.http.get("/openapi.json")).json()
        failures = await asyncio.to_thread(fuzz, document, rw.url)
    assert not failures, "\n\n".join(failures)
