"""Choosing a model provider is one setting: ``RUNWIRE_MODEL_PROVIDER``.

``provider_from_settings`` builds the provider the settings name; only that
provider's SDK is imported. The settings it reads: ``model_provider``,
``model_name``, ``provider_base_url``, ``provider_api_key`` and
``model_timeout_seconds`` (retries are :class:`RetryPolicy`'s, from
``model_max_retries``).
"""

from __future__ import annotations

from runwire.errors import ConfigurationError
from runwire.providers.base import ModelProvider
from runwire.providers.local import DEFAULT_LOCAL_MODEL, LocalModel
from runwire.settings import Settings


def provider_from_settings(settings: Settings) -> ModelProvider:
    """A new, open provider for ``settings``; the caller closes it (``async with``).

    Bedrock uses ``provider_base_url`` as its endpoint URL and the AWS
    credential chain (``AWS_*`` environment, profile or role) with its region.
    """
    name = settings.model_provider
    if name == "local":
        return LocalModel(model=settings.model_name)
    if settings.model_name == DEFAULT_LOCAL_MODEL:
        raise ConfigurationError(
            f"RUNWIRE_MODEL_NAME is {DEFAULT_LOCAL_MODEL!r}, the local model's name; set it "
            f"to the {name} model to use with RUNWIRE_MODEL_PROVIDER={name}"
        )
    timeout = settings.model_timeout_seconds
    # Each branch imports only its own SDK (they take seconds to import).
    if name == "openai":
        from runwire.providers.openai_chat import OpenAIChatProvider

        return OpenAIChatProvider(
            model=settings.model_name,
            api_key=settings.provider_api_key,
            base_url=settings.provider_base_url,
            timeout=timeout,
        )
    if name == "anthropic":
        from runwire.providers.anthropic_messages import AnthropicMessagesProvider

        return AnthropicMessagesProvider(
            model=settings.model_name,
            api_key=settings.provider_api_key,
            base_url=settings.provider_base_url,
            timeout=timeout,
        )
    if name == "bedrock":
        from runwire.providers.bedrock_converse import BedrockConverseProvider

        return BedrockConverseProvider(
            model=settings.model_name,
            endpoint_url=settings.provider_base_url,
            timeout=timeout,
        )
    raise ConfigurationError(  # pragma: no cover - the setting's type rules this out
        f"RUNWIRE_MODEL_PROVIDER={name!r} is not one of local, openai, anthropic, bedrock"
    )
