"""The API's JSON in and out keeps numbers exact, and its scoping checks the tenant
everywhere (in-memory twins; the real stack: tests/integration/test_api_attacks.py)."""

from __future__ import annotations

import importlib
import json
import pkgutil
from decimal import Decimal

import pytest
from fastapi.routing import APIRoute

from runwire.contract import ids, jsonvalues
from runwire.contract.events import Event, RunCompleted, RunStarted, UserMessage
from runwire.services import api
from runwire.services.api.exact_json import ExactJsonRoute
from runwire.services.api.sse import run_event_stream
from tests.unit.api_twins import ALICE, Twins, auth, client, make_run, make_session, twin_app
from tests.unit.test_api_sse import collect, from_list, parse


def test_every_route_with_a_body_parses_it_exactly() -> None:
    modules = [
        importlib.import_module(f"{api.__name__}.{m.name}")
        for m in pkgutil.iter_modules(api.__path__)
        if m.name.startswith("routes_")
    ]
    routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
    with_body = [r for r in routes if r.body_field is not None]
    assert len(with_body) >= 5  # start, cancel, tool results, approvals, fork
    assert [r.path for r in with_body if not isinstance(r, ExactJsonRoute)] == []


async def test_session_metadata_is_served_with_its_numbers_exact() -> None:
    twins = Twins()
    metadata = {"budget": Decimal("1e400"), "rate": Decimal("0.1000000000000000055511151231")}
    twins.add(make_session("s-1", "alice", metadata={**metadata, "n": 2}))
    async with client(twin_app(twins)) as http:
        one = await http.get("/v1/sessions/s-1", headers=auth(ALICE))
        listed = await http.get("/v1/sessions", headers=auth(ALICE))
    assert one.status_code == 200, one.text
    assert json.loads(one.text, parse_float=Decimal)["metadata"] == {**metadata, "n": 2}
    (item,) = json.loads(listed.text, parse_float=Decimal)["items"]
    assert item["metadata"] == {**metadata, "n": 2}  # a string "1E+400" would not be equal


async def test_a_runs_tree_leaves_out_children_of_another_tenant() -> None:
    # A reader that does not scope by tenant (an admin's, a twin) must not leak them.
    twins = Twins()
    twins.add(
        make_run("r-root", "alice", "s-1"),
        make_run("r-mine", "alice", "s-1", minute=1, parent_run_id="r-root"),
        make_run("r-tenant", "alice", "s-1", minute=2, parent_run_id="r-root", tenant="t-b"),
    )
    async with client(twin_app(twins)) as http:
        tree = await http.get("/v1/runs/r-root/tree", headers=auth(ALICE))
    assert tree.status_code == 200, tree.text
    assert [n["run"]["run_id"] for n in tree.json()["items"]] == ["r-root", "r-mine"]


async def test_a_resume_id_the_run_never_had_ends_its_stream_with_an_error_not_an_end() -> None:
    events = [
        Event.create(p, run_id="r-1")
        for p in (RunStarted(agent_id="a"), UserMessage(parts=["hi"]), RunCompleted())
    ]
    unknown = ids.new_event_id()  # well formed: the route lets it through
    body = await collect(run_event_stream("r-1", from_list(events), last_event_id=unknown))
    (only,) = parse(body)[1:]  # nothing of the run was sent, and no end claimed it whole
    assert only["event"] == "error", body
    assert unknown in json.loads(only["data"])["message"]


def test_a_value_nested_too_deep_for_the_slow_path_is_refused_naming_where() -> None:
    # Off orjson's fast path (a Decimal), canonical() used to recurse into a RecursionError.
    value: list[object] = [Decimal("1e400")]
    for _ in range(600):
        value = [value]
    with pytest.raises(jsonvalues.JsonValueError, match=r"^tool\.input\[0\].* nested deeper"):
        jsonvalues.canonical(value, "tool.input")
