"""A model provider with its calls measured and traced (wrapped at the orchestrator's call site).

Contract:
- :class:`ObservedProvider` is a :class:`~runwire.providers.base.ModelProvider`
  that hands every call to the provider it wraps, unchanged, and around
  each attempt records ``runwire_model_call_duration_seconds`` (outcome
  ``ok`` or the error's kind), ``runwire_model_errors_total``,
  ``runwire_model_tokens_total`` (input, output) by provider and model,
  and, while tracing is on, a CLIENT span ``chat <model>`` with the
  OpenTelemetry GenAI attributes (system, request model, tokens, finish
  reason, error type).
- Observing never changes what the call returns or raises.
"""

from __future__ import annotations

import asyncio
import time

from runwire.errors import ProviderError
from runwire.providers.base import ChunkHandler, ModelProvider, ModelRequest, ModelResponse
from runwire.telemetry import tracing
from runwire.telemetry.metrics import MODEL_ERRORS, MODEL_SECONDS, MODEL_TOKENS

__all__ = ["ObservedProvider"]


class ObservedProvider:
    """See the module contract."""

    def __init__(self, inner: ModelProvider) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def default_model(self) -> str:
        return self.inner.default_model

    async def close(self) -> None:
        await self.inner.close()

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        provider = self.inner.name
        model = request.model or self.inner.default_model
        started = time.perf_counter()
        with tracing.span(
            f"chat {model}",
            {"gen_ai.system": provider, "gen_ai.request.model": model},
            client=True,
        ) as span:
            try:
                response = await self.inner.complete(request, on_chunk=on_chunk)
            except asyncio.CancelledError:
                MODEL_SECONDS.labels(provider, model, "canceled").observe(
                    time.perf_counter() - started
                )
                raise
            except Exception as e:
                kind = e.kind if isinstance(e, ProviderError) else type(e).__name__
                MODEL_SECONDS.labels(provider, model, kind).observe(time.perf_counter() - started)
                MODEL_ERRORS.labels(provider, model, kind).inc()
                if span is not None:
                    span.set_attribute("error.type", kind)
                raise
            MODEL_SECONDS.labels(provider, model, "ok").observe(time.perf_counter() - started)
            usage = response.usage
            MODEL_TOKENS.labels(provider, model, "input").inc(usage.input_tokens)
            MODEL_TOKENS.labels(provider, model, "output").inc(usage.output_tokens)
            if span is not None:
                span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": usage.input_tokens,
                        "gen_ai.usage.output_tokens": usage.output_tokens,
                        "gen_ai.response.finish_reasons": response.stop_reason,
                    }
                )
            return response
