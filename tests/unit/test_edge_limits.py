"""Ids, labels and stored texts are checked where they enter: the event envelope
(every SDK writer) and the HTTP API (422 naming the field, never a 500)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from runwire.contract import limits
from runwire.contract.codec import default_codec
from runwire.contract.events import (
    AssistantText,
    Event,
    MemorySet,
    RunFailed,
    RunStarted,
    SessionCreated,
    SessionMetadataSet,
    ToolUse,
    UserMessage,
)
from runwire.errors import ContractError, DecodeError, InputError, RunwireError
from tests.unit.api_twins import ALICE, Twins, auth, client, make_run, make_session, twin_app

UUID = "0190f1c2-5a9b-7c3d-8e4f-0123456789ab"

# -- the envelope: one check for every writer ------------------------------------------


@pytest.mark.parametrize("field", ["run_id", "session_id", "agent_id", "turn_id", "user_id"])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\ud800b", "U+D800"),
        ("x" * 201, "201 characters, over the limit of 200"),
        ("", "empty"),
    ],
)
def test_an_id_a_store_cannot_hold_is_refused_naming_the_field(
    field: str, value: str, why: str
) -> None:
    ids: dict[str, Any] = {"run_id": "r-1", "session_id": "s-1", field: value}
    if (field, value) == ("run_id", ""):  # a run event without its run: the envelope's rule
        with pytest.raises(ValidationError, match="run_id is required"):
            Event.create(UserMessage(parts=["hi"]), **ids)
        return
    with pytest.raises(InputError) as caught:
        Event.create(UserMessage(parts=["hi"]), **ids)
    assert caught.value.field == field
    assert why in str(caught.value)
    assert isinstance(caught.value, ContractError)
    assert isinstance(caught.value, RunwireError)
    assert "\x00" not in str(caught.value)  # safe to log


@pytest.mark.parametrize(
    "good", [UUID, "run-1", "s-1", "x" * 200, "café ü 日本", "a:b/c.d@e", "with space"]
)
def test_ids_of_every_known_shape_are_fine(good: str) -> None:
    event = Event.create(
        RunStarted(agent_id=good, parent_run_id=good, labels={good[:100]: "v"}),
        run_id=good,
        session_id=good,
        agent_id=good,
        turn_id=good,
        user_id=good,
        tenant=good,
        causation_id=good,
        producer=good,
    )
    assert event.run_id == good


@pytest.mark.parametrize(
    ("labels", "field", "why"),
    [
        ({"k": "v" * 2_000_000}, "labels['k']", "over the limit of 1000"),
        ({"k": "a\x00"}, "labels['k']", "NUL"),
        ({"k\x01": "v"}, "labels['k\\x01']", "key holds the control character U+0001"),
        ({"k" * 101: "v"}, "labels['kkkk", "key 101 characters"),
        ({"": "v"}, "labels['']", "key empty"),
        ({f"k{i}": "v" for i in range(33)}, "labels", "33 labels, over the limit of 32"),
    ],
)
def test_labels_over_a_limit_are_refused(labels: dict[str, str], field: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        Event.create(UserMessage(parts=["hi"]), run_id="r-1", labels=labels)
    assert caught.value.field.startswith(field)
    assert why in caught.value.reason
    with pytest.raises(InputError) as in_payload:
        Event.create(RunStarted(labels=labels), run_id="r-1")
    assert in_payload.value.field.startswith("payload." + field)


def test_labels_at_the_limits_and_with_any_printable_value_are_fine() -> None:
    labels = {f"{i:03d}" + "k" * 97: "v\tw\n" + "x" * 996 for i in range(32)}
    event = Event.create(RunStarted(labels=labels), run_id="r-1", labels=labels)
    assert event.labels == labels


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (RunFailed(error_kind="x", message="bad\x00"), "payload.message"),
        (RunFailed(error_kind="x\x00", message="m"), "payload.error_kind"),
        (SessionCreated(metadata={"a": {"b\x00": 1}}), "payload.metadata"),
        (SessionCreated(metadata={"a": ["\x00"]}), "payload.metadata"),
        (SessionCreated(user_id="u\x00"), "payload.user_id"),
        (SessionMetadataSet(key="k\x00", value=1), "payload.key"),
        (SessionMetadataSet(key="k", value="v\x00"), "payload.value"),
        (MemorySet(scope="user", owner="o\x00", key="k"), "payload.owner"),
        (RunStarted(agent_id="a\x00"), "payload.agent_id"),
        (ToolUse(id="t\x00", name="n"), "payload.id"),
        (ToolUse(id="t" * 201, name="n"), "payload.id"),
    ],
)
def test_payload_text_a_projection_stores_holds_no_nul(payload: object, field: str) -> None:
    with pytest.raises(InputError) as caught:
        Event.create(payload, run_id="r-1", session_id="s-1")  # type: ignore[arg-type]
    assert caught.value.field == field


def test_storable_text_keeps_everything_but_what_no_store_holds() -> None:
    text = limits.storable("a\x00b\ud800c\n\td é")
    assert text == "a\ufffdb\ufffdc\n\td é"
    event = Event.create(RunFailed(error_kind="x", message=text), run_id="r-1")
    assert event.payload == RunFailed(error_kind="x", message=text)


def test_transcript_text_is_not_restricted_it_never_reaches_postgres() -> None:
    for payload in (AssistantText(text="a\x00b"), UserMessage(parts=["\x00", "\n\x01"])):
        assert Event.create(payload, run_id="r-1").payload == payload


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"agent_id": "a" * 300}, "agent_id"),
        ({"labels": {"": "empty key"}}, "labels['']"),
        ({"labels": {"k": "v" * 5000}}, "labels['k']"),
        ({"user_id": "a\x00b"}, "user_id"),
    ],
)
def test_what_no_writer_may_write_no_reader_accepts(update: dict[str, Any], field: str) -> None:
    """Another producer's event over a limit is refused by the codec, so by every
    consumer alike, naming the field (and no service echoes an envelope it cannot
    write back)."""
    valid = Event.create(UserMessage(parts=["hi"]), run_id="r-1")
    codec = default_codec()
    foreign = codec.encode(valid.model_copy(update=update))
    with pytest.raises(DecodeError) as refused:
        codec.decode(foreign)
    assert refused.value.reason == "invalid_event"
    assert field in str(refused.value)
    assert codec.decode(codec.encode(valid)) == valid


def test_the_limits_are_what_the_api_documents() -> None:
    assert (limits.MAX_ID_CHARS, limits.MAX_LABELS) == (200, 32)
    assert (limits.MAX_LABEL_KEY_CHARS, limits.MAX_LABEL_VALUE_CHARS) == (100, 1000)


# -- the HTTP API: 422 naming the field, nothing written -----------------------------------


@pytest.fixture
def twins() -> Twins:
    t = Twins()
    t.add(
        make_session("s-alice", "alice", minute=1),
        make_run("r-alice", "alice", "s-alice", minute=1, status="running"),
    )
    return t


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/v1/runs/{bad}", "path.run_id"),
        ("/v1/runs/{bad}/transcript", "path.run_id"),
        ("/v1/runs/{bad}/events", "path.run_id"),
        ("/v1/sessions/{bad}", "path.session_id"),
        ("/v1/sessions/{bad}/runs", "path.session_id"),
    ],
)
@pytest.mark.parametrize("bad", ["\x00", "r\x00", "r\x1b[31m", "r" * 201])
async def test_an_id_in_the_path_that_cannot_exist_is_422(
    twins: Twins, path: str, where: str, bad: str
) -> None:
    async with client(twin_app(twins)) as http:
        answer = await http.get(path.format(bad=quote(bad)), headers=auth(ALICE))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert [p["where"] for p in answer.json()["problems"]] == [where]


@pytest.mark.parametrize(
    "query",
    [
        "label=a:%00",
        "label=a%00:b",
        "label=:b",
        "label=a:" + "v" * 1001,
        "label=" + "k" * 101 + ":v",
    ],
)
async def test_a_label_filter_a_store_cannot_hold_is_422(twins: Twins, query: str) -> None:
    async with client(twin_app(twins)) as http:
        answer = await http.get(f"/v1/sessions?{query}", headers=auth(ALICE))
    assert answer.status_code == 422, answer.text
    assert [p["where"] for p in answer.json()["problems"]] == ["query.label"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"agent_id": "a\u0000"}, "body.agent_id"),
        ({"turn_id": "t\u0000"}, "body.turn_id"),
        ({"session_id": "s\u0000"}, "body.session_id"),
        ({"session_id": "s\ud800"}, "body.session_id"),
        ({"agent_id": "a" * 201}, "body.agent_id"),
        ({"labels": {"k": "v\u0000"}}, "body.labels"),
        ({"labels": {"k": "v" * 5000}}, "body.labels"),
        ({"labels": {"k\u0000": "v"}}, "body.labels"),
        ({"labels": {f"k{i}": "v" for i in range(33)}}, "body.labels"),
    ],
)
async def test_a_run_a_store_cannot_hold_is_422_and_nothing_is_written(
    twins: Twins, body: dict[str, object], where: str
) -> None:
    # JSON escapes (\u0000, a lone \ud800) as a client would send them.
    text = json.dumps({"prompt": "hi", **body}, ensure_ascii=True)
    headers = {**auth(ALICE), "Content-Type": "application/json"}
    async with client(twin_app(twins)) as http:
        answer = await http.post("/v1/runs", content=text, headers=headers)
    assert answer.status_code == 422, answer.text
    assert where in [p["where"] for p in answer.json()["problems"]]
    assert twins.calls == []


async def test_a_two_megabyte_label_is_refused_before_anything_is_written(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        answer = await http.post(
            "/v1/runs",
            json={"prompt": "hi", "labels": {"k": "v" * 2_000_000}},
            headers=auth(ALICE),
        )
    assert answer.status_code in (413, 422), answer.text
    assert twins.calls == []


async def test_cancel_reasons_and_tool_result_ids_are_checked(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        cancel = await http.post(
            "/v1/runs/r-alice/cancel", json={"reason": "no\u0000"}, headers=auth(ALICE)
        )
        resume = await http.post(
            "/v1/runs/r-alice/tool-results",
            json={"results": [{"tool_use_id": "tu\u0000"}]},
            headers=auth(ALICE),
        )
    assert cancel.status_code == 422, cancel.text
    assert [p["where"] for p in cancel.json()["problems"]] == ["body.reason"]
    assert resume.status_code == 422, resume.text
    assert [p["where"] for p in resume.json()["problems"]] == ["body.results.0.tool_use_id"]
    assert twins.calls == []


async def test_ordinary_foreign_ids_and_labels_are_still_taken(twins: Twins) -> None:
    async with client(twin_app(twins)) as http:
        started = await http.post(
            "/v1/runs",
            json={
                "prompt": "hi",
                "agent_id": "agent: café",
                "session_id": "s-1",
                "turn_id": UUID,
                "labels": {"tier": "gold", "note": "two\nlines"},
            },
            headers=auth(ALICE),
        )
        listed = await http.get("/v1/sessions?label=tier:gold", headers=auth(ALICE))
        read = await http.get(f"/v1/runs/{quote('run-1')}", headers=auth(ALICE))
    assert started.status_code == 202, started.text
    assert listed.status_code == 200, listed.text
    assert read.status_code == 404  # well-formed, merely unknown
