"""Agents files: what a good one gives, and every mistake named with its place."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from runwire.context import ContextPolicy
from runwire.errors import ConfigurationError
from runwire.providers.base import ModelRequest
from runwire.providers.local import LOCAL_TOOL_SPECS, LocalModel
from runwire.services.agents_file import load_agents_file, parse_agents
from runwire.services.orchestrator.agents import AgentProfile
from runwire.services.orchestrator.configured import configured_agents
from runwire.services.orchestrator.history import SYSTEM_KEY
from runwire.sessions.names import SYSTEM_KEY as SESSIONS_SYSTEM_KEY
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart

GOOD = """
[tools.lookup]
url = "http://127.0.0.1:9/lookup"
description = "Look a word up."
input_schema = { type = "object", properties = { q = { type = "string" } }, required = ["q"] }
headers = { Authorization = "Bearer ${LOOKUP_TOKEN}" }

[agents.boss]
system = "You delegate."
tools = ["calculator", "lookup"]
agents = ["helper"]
approval = ["lookup"]
max_turns = 5
default = true

[agents.helper]
description = "Does sums."
model = "runwire-local-1"
tools = ["calculator"]
history = false
max_tokens = 512

[agents.chatty]
approval = "all"
tools = ["clock"]
history = { history_runs = 3 }
"""


def _refused(text: str) -> str:
    import tomllib

    with pytest.raises(ConfigurationError) as caught:
        parse_agents(tomllib.loads(text), source="agents.toml")
    return str(caught.value)


def test_a_good_file_gives_agents_tools_and_policies(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(GOOD)
    parsed = load_agents_file(path)
    assert parsed.default_agent() == "boss"
    boss = parsed.agents["boss"]
    assert boss.tool_names() == ("calculator", "lookup", "helper")
    assert boss.needs_approval("lookup")
    assert not boss.needs_approval("calculator")
    assert parsed.agents["chatty"].needs_approval("anything")
    assert parsed.agents["helper"].context_policy() == ContextPolicy.stateless()
    assert parsed.agents["chatty"].context_policy() == ContextPolicy(history_runs=3)


async def test_configured_agents_build_profiles() -> None:
    import tomllib

    parsed = parse_agents(tomllib.loads(GOOD))
    fallback = AgentProfile(system="fallback")
    async with contextlib.AsyncExitStack() as stack:
        built = await configured_agents(parsed, Settings(), stack, fallback=fallback)
    directory = built.directory
    boss = directory.profile("boss")
    assert [t.name for t in boss.tools] == ["calculator", "lookup", "helper"]
    assert boss.tools[1].input_schema["required"] == ["q"]
    assert boss.tools[2].description == "Does sums."
    assert boss.tools[2].input_schema["required"] == ["task"]
    assert boss.max_turns == 5
    assert boss.provider is None
    assert boss.needs_approval("lookup")
    assert not boss.needs_approval("helper")
    assert directory.profile("chatty").approval is None
    assert directory.profile("helper").model == "runwire-local-1"
    assert directory.profile("helper").max_tokens == 512
    # Unknown agents get the file's default agent.
    assert directory.profile("nobody") is boss
    assert directory.profile(None) is boss
    assert set(built.policies) == {"helper", "chatty"}


async def test_a_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    parsed = parse_agents(
        tomllib.loads(
            '[agents.a]\nprovider = "openai"\nmodel = "m"\napi_key_env = "NO_SUCH_KEY_VAR"\n'
        )
    )
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(ConfigurationError, match="NO_SUCH_KEY_VAR is not set"):
            await configured_agents(parsed, Settings(), stack, fallback=AgentProfile())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "defines no agent"),
        ('[agents.a]\ntools = ["nope"]\n', "agents.a.tools[0]: no tool named 'nope'"),
        ('[agents.a]\nagents = ["b"]\n', "agents.a.agents[0]: no agent named 'b'"),
        (
            '[agents.a]\nagents = ["b"]\n[agents.b]\nagents = ["c"]\n[agents.c]\nagents = ["a"]\n',
            "cycle: a -> b -> c -> a",
        ),
        ('[agents.a]\nagents = ["a"]\n', "cycle: a -> a"),
        ('[agents.a]\ntools = ["clock"]\napproval = ["calculator"]\n', "agents.a.approval[0]"),
        ("[agents.a]\nmax_tokens = 0\n", "agents.a.max_tokens"),
        ("[agents.a]\ncolour = 1\n", "agents.a.colour: Extra inputs are not permitted"),
        ('[agents.a]\nprovider = "acme"\n', "agents.a.provider"),
        ('[agents.a]\nprovider = "openai"\n', "agents.a.model: required with provider 'openai'"),
        ("[agents.a]\ndefault = true\n[agents.b]\ndefault = true\n", "only one agent"),
        ('[agents."a b"]\n', "'a b': a name must be"),
        ('[agents.a]\n[tools.clock]\nurl = "http://x"\n', "tools.clock: clashes with the built-in"),
        ('[agents.a]\n[tools.a]\nurl = "http://x"\n', "tools.a: clashes with the agent"),
        ('[agents.a]\n[tools.t]\nurl = "ftp://x"\n', "tools.t.url"),
        (
            '[agents.a]\n[tools.t]\nurl = "http://x"\ninput_schema = { type = "string" }\n',
            'tools.t.input_schema: Value error, a tool\'s input schema must have "type": "object"',
        ),
        ('[agents.a]\ntools = ["clock", "clock"]\n', "the tool 'clock' is offered twice"),
        ('[agents.a]\napi_key_env = "1X"\n', "agents.a.api_key_env"),
    ],
)
def test_mistakes_are_refused_with_their_place(text: str, said: str) -> None:
    message = _refused(text)
    assert message.startswith("agents.toml: ")
    assert said in message


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_agents_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[agents.a\n")
    with pytest.raises(ConfigurationError, match=r"bad\.toml: not valid TOML"):
        load_agents_file(bad)


def test_the_session_system_key_is_the_sessions_one() -> None:
    assert SYSTEM_KEY == SESSIONS_SYSTEM_KEY


def _ask(text: str, tools: tuple[str, ...]) -> ModelRequest:
    from runwire.providers.base import ToolSpec

    specs = tuple(ToolSpec(name=t) for t in tools)
    return ModelRequest(messages=(Message(role="user", parts=(TextPart(text=text),)),), tools=specs)


def test_the_local_model_calls_named_tools_and_agents() -> None:
    model = LocalModel()
    response = model.respond(
        _ask(
            'call the lookup tool with {"q": "abc"}\nask helper to work out 2+3',
            ("lookup", "helper", "calculator"),
        )
    )
    calls = [(u.name, u.input) for u in response.tool_uses()]
    # The task's "2+3" belongs to the helper, not to this agent's calculator.
    assert calls == [("lookup", {"q": "abc"}), ("helper", {"task": "work out 2+3"})]
    alone = model.respond(_ask("ask helper to say hi", ()))
    assert not alone.tool_uses()
    assert "I would need the helper agent" in alone.message().text()
    assert {s.name for s in LOCAL_TOOL_SPECS} == {"calculator", "clock", "remember", "recall"}
