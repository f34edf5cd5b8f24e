"""Choosing a provider is one setting; misconfiguration names the setting."""

from __future__ import annotations

import pytest

from runwire.errors import ConfigurationError
from runwire.providers.anthropic_messages import AnthropicMessagesProvider
from runwire.providers.base import ModelProvider, ModelRequest
from runwire.providers.bedrock_converse import BedrockConverseProvider
from runwire.providers.factory import provider_from_settings
from runwire.providers.local import LocalModel
from runwire.providers.openai_chat import OpenAIChatProvider
from runwire.settings import Settings
from runwire.transcript.messages import Message, TextPart
from tests.fakes.openai_chat import FakeOpenAIServer
from tests.fakes.server import Turn


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_HOME", "/nonexistent")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


async def test_the_local_model_is_the_default() -> None:
    async with provider_from_settings(Settings()) as provider:
        assert isinstance(provider, LocalModel)
        assert isinstance(provider, ModelProvider)
        assert provider.default_model == "runwire-local-1"


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("openai", OpenAIChatProvider),
        ("anthropic", AnthropicMessagesProvider),
        ("bedrock", BedrockConverseProvider),
    ],
)
async def test_each_provider_is_one_setting_away(
    monkeypatch: pytest.MonkeyPatch, name: str, cls: type[ModelProvider]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    settings = Settings(
        model_provider=name,
        model_name="some-model",
        provider_base_url="http://127.0.0.1:9",
        provider_api_key="key",
    )
    async with provider_from_settings(settings) as provider:
        assert type(provider) is cls
        assert provider.name == name
        assert provider.default_model == "some-model"


async def test_a_factory_built_provider_reaches_the_configured_server() -> None:
    async with FakeOpenAIServer() as fake:
        fake.enqueue(Turn(parts=(TextPart(text="hello from the fake"),)))
        settings = Settings(
            model_provider="openai", model_name="llama-3", provider_base_url=fake.base_url
        )
        async with provider_from_settings(settings) as provider:
            response = await provider.complete(
                ModelRequest(messages=(Message(role="user", parts=(TextPart(text="hi"),)),))
            )
    assert response.message().text() == "hello from the fake"
    assert fake.requests[0].body["model"] == "llama-3"


def test_a_real_provider_with_the_local_model_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RUNWIRE_MODEL_NAME"):
        provider_from_settings(Settings(model_provider="anthropic"))


def test_openai_without_a_key_or_a_server_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="RUNWIRE_PROVIDER_API_KEY"):
        provider_from_settings(Settings(model_provider="openai", model_name="gpt-x"))


def test_bedrock_without_a_region_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="AWS_DEFAULT_REGION"):
        provider_from_settings(Settings(model_provider="bedrock", model_name="m"))
