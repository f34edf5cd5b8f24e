"""What a schema registry costs runwire: start-up registration, a cache miss, decode/encode rates.

Against tests/fakes/schema_registry.py on 127.0.0.1 (in this process, in a
thread), so the registry's own time is included and the figures are an upper
bound for a registry on the same machine.

- ``prepare``: ``Codec.prepare()`` registering every writer schema (what the
  publisher does on start; async, the event loop is free meanwhile).
- ``miss``: one blocking ``GET /schemas/ids/{id}`` of a fresh client, the time
  a consumer loop is held up the first time it meets an id.
- decode / encode rates of one event in each framing, caches warm.

Prints each figure and the Confluent / single-object ratio of the rates.
Run: .venv/bin/python bench/bench_registry.py [--repeat K] [--count N]
Writes bench/results/registry.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from runwire.contract.codec import Codec
from runwire.contract.events import AssistantText, Event
from runwire.contract.framing import Framing, read_header
from runwire.contract.registry import SchemaRegistryClient
from runwire.contract.schemas import released_schemas

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(REPO))  # the fake registry lives with the tests
from tests.fakes.schema_registry import FakeSchemaRegistry  # noqa: E402


def _rate(action: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args()
    event = Event.create(AssistantText(text="the answer is 84 " * 8), run_id="r-1", session_id="s")
    with FakeSchemaRegistry() as fake:
        prepare_ms = []
        for _ in range(args.repeat):
            codec = Codec(framing=Framing.CONFLUENT, lookup=SchemaRegistryClient(fake.url))
            started = time.perf_counter()
            asyncio.run(codec.prepare())
            prepare_ms.append((time.perf_counter() - started) * 1000)
        confluent = codec.encode(event)
        schema_id = read_header(confluent).schema_id
        assert schema_id is not None
        miss_ms = []
        for _ in range(args.repeat * 10):
            client = SchemaRegistryClient(fake.url)
            started = time.perf_counter()
            client.schema_by_id(schema_id)
            miss_ms.append((time.perf_counter() - started) * 1000)
        plain = Codec()
        single = plain.encode(event)
        reader = Codec(lookup=SchemaRegistryClient(fake.url))
        reader.decode(confluent)
        actions: dict[str, Callable[[], object]] = {
            "decode confluent": lambda: reader.decode(confluent),
            "decode single-object": lambda: reader.decode(single),
            "encode confluent": lambda: codec.encode(event),
            "encode single-object": lambda: plain.encode(event),
        }
        rates: dict[str, list[float]] = {name: [] for name in actions}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
            for name, action in actions.items():
                rates[name].append(_rate(action, args.count))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    results = {
        "schemas_registered": len(released_schemas().event_types()),
        "prepare_ms": round(statistics.median(prepare_ms), 1),
        "miss_median_ms": round(statistics.median(miss_ms), 2),
        "miss_max_ms": round(max(miss_ms), 2),
        **{
            name.replace(" ", "_").replace("-", "_") + "_per_s": round(v)
            for name, v in medians.items()
        },
        "decode_ratio": round(medians["decode confluent"] / medians["decode single-object"], 3),
        "encode_ratio": round(medians["encode confluent"] / medians["encode single-object"], 3),
    }
    for name, value in results.items():
        print(f"{name}: {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "registry.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
