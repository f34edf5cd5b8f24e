"""Amazon Bedrock Converse / ConverseStream, on boto3's ``bedrock-runtime`` client.

Contract (beyond :mod:`runwire.providers.base`):
- botocore's retries are off (``total_max_attempts=1``); errors, including
  exceptions inside an event stream, are classified by
  :func:`runwire.providers.retry.classify_error`.
- boto3 blocks, so calls run on the provider's own thread pool
  (``max_concurrency`` threads and as many pooled connections): one slow
  call never waits for a thread another call holds, and the event loop never
  blocks.
- Cancelling the awaiting task returns at once. A streaming call's thread
  stops reading and closes the connection when its current read returns (the
  next event, or the read timeout); a non-streaming call's thread cannot be
  interrupted and finishes (or hits the read timeout, ``timeout``) in the
  background, its result dropped.
- The streamed events are accumulated into the shape ``converse`` returns
  and decoded by the same decoder, so both give the same parts.
- Credentials come from the usual AWS chain (environment, profile, role)
  unless given; ``endpoint_url`` points at another endpoint (a test server).
- Tool input keeps every digit the model wrote: botocore parses numbers as
  floats, so a ``converse`` response's toolUse inputs are re-read from its
  body by :mod:`runwire.contract.jsonvalues` (an ``after-call`` hook on the
  client); streamed input is parsed from its text the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from runwire.contract import jsonvalues
from runwire.errors import ConfigurationError, ProviderError
from runwire.providers.base import (
    ChunkHandler,
    ModelRequest,
    ModelResponse,
    ProviderLifecycle,
    StopReason,
    StreamDelta,
    model_response,
)
from runwire.providers.encoders import bedrock_converse as encoder
from runwire.providers.encoders.common import parse_tool_arguments
from runwire.providers.retry import classify_error

PROVIDER = "bedrock"

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
}

_DONE = object()


def _exact_tool_inputs(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    """botocore's ``after-call`` hook: toolUse inputs from the body, numbers exact."""
    content = ((parsed.get("output") or {}).get("message") or {}).get("content") or []
    if not any(isinstance(block, dict) and "toolUse" in block for block in content):
        return
    try:
        exact = jsonvalues.loads(http_response.content)["output"]["message"]["content"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # not a Converse body: what botocore parsed is decoded as usual
    for block, raw in zip(content, exact, strict=False):
        if "toolUse" in block and isinstance(raw, dict) and "input" in raw.get("toolUse", {}):
            block["toolUse"]["input"] = raw["toolUse"]["input"]


class BedrockConverseProvider(ProviderLifecycle):
    """A model behind Bedrock's Converse API.

    ``timeout`` is botocore's read timeout (seconds without a byte from the
    server). ``extra`` is merged into every ``converse`` call's arguments.
    """

    def __init__(
        self,
        *,
        model: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 60.0,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        max_concurrency: int = 32,
        extra: Mapping[str, Any] | None = None,
        client: Any = None,
    ) -> None:
        if client is None:
            config = botocore.config.Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                read_timeout=timeout,
                connect_timeout=min(timeout, 10.0),
                max_pool_connections=max_concurrency,
            )
            try:
                client = boto3.session.Session().client(
                    "bedrock-runtime",
                    region_name=region,
                    endpoint_url=endpoint_url,
                    aws_access_key_id=aws_access_key_id,
                    aws_secret_access_key=aws_secret_access_key,
                    aws_session_token=aws_session_token,
                    config=config,
                )
            except botocore.exceptions.NoRegionError as exc:
                raise ConfigurationError(
                    "the bedrock provider needs an AWS region: set AWS_DEFAULT_REGION "
                    "(or the region of the AWS profile in use)"
                ) from exc
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:
            events.register("after-call.bedrock-runtime.Converse", _exact_tool_inputs)
        self._client = client
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="runwire-bedrock"
        )
        self._extra = dict(extra or {})
        super().__init__(PROVIDER, model)

    async def _aclose(self) -> None:
        # Threads still blocked in a canceled call end with their read timeout.
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self._client.close()

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkHandler | None = None
    ) -> ModelResponse:
        self._ensure_open()
        model = self.model_for(request)
        kwargs = encoder.encode_request(
            request.messages,
            model=model,
            max_tokens=request.max_tokens,
            system=request.system,
            tools=request.tools,
            thinking=request.thinking_budget_tokens if request.thinking else None,
            extra=self._extra,
        )
        try:
            # botocore's read timeout is fixed per client; a request's own
            # timeout is enforced here.
            async with asyncio.timeout(request.timeout):
                if on_chunk is None:
                    raw = await self._in_thread(functools.partial(self._client.converse, **kwargs))
                else:
                    raw = await self._stream(kwargs, on_chunk)
        except TimeoutError as exc:
            raise ProviderError(
                f"{PROVIDER}: request timed out after {request.timeout}s",
                retriable=True,
                kind="timeout",
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise classify_error(exc, provider=PROVIDER) from exc
        except botocore.exceptions.ClientError as exc:
            raise classify_error(exc, provider=PROVIDER) from exc
        return model_response(
            PROVIDER,
            parts=encoder.decode_response(raw, tools=request.tools),
            usage=encoder.decode_usage(raw),
            raw_stop_reason=raw.get("stopReason"),
            stop_reasons=_STOP_REASONS,
            model=model,
        )

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _stream(self, kwargs: dict[str, Any], on_chunk: ChunkHandler) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        handle: dict[str, Any] = {}

        def post(item: object) -> None:
            # The loop may be gone when a canceled call's thread finishes.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            """Runs in a worker thread: read events, hand them to the loop."""
            try:
                response = self._client.converse_stream(**kwargs)
                handle["stream"] = response["stream"]
                for event in _events(response["stream"], stop):
                    post(event)
            except Exception as exc:  # handed over to the awaiting side
                if not stop.is_set():
                    post(exc)
            finally:
                post(_DONE)

        reader = loop.run_in_executor(self._executor, pump)
        accumulator = _StreamAccumulator()
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, dict)
                delta = accumulator.add(item)
                if delta is not None:
                    await on_chunk(delta)
        except BaseException:
            stop.set()
            stream = handle.get("stream")
            if stream is not None:
                # Closing waits for the reader thread's current read (they
                # share a lock), so it must not run on the event loop.
                threading.Thread(target=_close_quietly, args=(stream,), daemon=True).start()
            raise
        await reader
        return accumulator.response()


def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()


def _events(stream: Any, stop: threading.Event) -> Iterator[dict[str, Any]]:
    for event in stream:
        if stop.is_set():
            return
        yield event


class _StreamAccumulator:
    """Builds a ``converse``-shaped response from ConverseStream events."""

    def __init__(self) -> None:
        self._blocks: dict[int, dict[str, Any]] = {}
        self._tool_json: dict[int, str] = {}
        self._stop_reason: str | None = None
        self._usage: dict[str, Any] = {}

    def add(self, event: Mapping[str, Any]) -> StreamDelta | None:
        if "contentBlockStart" in event:
            body = event["contentBlockStart"]
            index = int(body["contentBlockIndex"])
            tool = body.get("start", {}).get("toolUse")
            if tool is not None:
                self._blocks[index] = {
                    "toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}
                }
                self._tool_json[index] = ""
                return StreamDelta(
                    kind="tool_input",
                    index=index,
                    text="",
                    tool_use_id=tool["toolUseId"],
                    tool_name=tool["name"],
                )
        elif "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            return self._delta(int(body["contentBlockIndex"]), body["delta"])
        elif "messageStop" in event:
            self._stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self._usage = dict(event["metadata"].get("usage") or {})
        return None

    def _delta(self, index: int, delta: Mapping[str, Any]) -> StreamDelta | None:
        if "text" in delta:
            block = self._blocks.setdefault(index, {"text": ""})
            block["text"] += delta["text"]
            return StreamDelta(kind="text", index=index, text=delta["text"])
        if "toolUse" in delta:
            piece = delta["toolUse"].get("input", "")
            self._tool_json[index] = self._tool_json.get(index, "") + piece
            tool = self._blocks.get(index, {}).get("toolUse", {})
            return StreamDelta(
                kind="tool_input",
                index=index,
                text=piece,
                tool_use_id=tool.get("toolUseId"),
                tool_name=tool.get("name"),
            )
        if "reasoningContent" in delta:
            reasoning = delta["reasoningContent"]
            block = self._blocks.setdefault(index, {"reasoningContent": {}})["reasoningContent"]
            if "redactedContent" in reasoning:
                block["redactedContent"] = block.get("redactedContent", b"") + bytes(
                    reasoning["redactedContent"]
                )
                return None
            text = block.setdefault("reasoningText", {"text": ""})
            if "signature" in reasoning:
                text["signature"] = reasoning["signature"]
            if "text" in reasoning:
                text["text"] += reasoning["text"]
                return StreamDelta(kind="thinking", index=index, text=reasoning["text"])
        return None

    def response(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if "toolUse" in block:
                tool = block["toolUse"]
                tool["input"] = parse_tool_arguments(
                    PROVIDER, tool["toolUseId"], self._tool_json.get(index)
                )
            content.append(block)
        if self._stop_reason is None:
            raise ProviderError(
                f"{PROVIDER}: the stream ended without a messageStop event",
                retriable=True,
                kind="incomplete_stream",
            )
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop_reason,
            "usage": self._usage,
        }
