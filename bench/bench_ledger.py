"""The transcript ledger's fold: CPU per event, beside ``Codec.decode`` of the same events.

- ``fold``: every run event of a synthetic log (``tests/support/workload.py``
  ``synthetic_events``: lifecycles, thinking, text, tool calls and results,
  usage, endings, re-published duplicates), already decoded, fed in log order
  to one :class:`~runwire.transcript.ledger.TranscriptBuilder` per run, as the
  transcript cache's projector does (events without a run are not fed).
- ``decode``: ``Codec.decode`` of the same events' bytes, for scale: the raw
  limit every consumer of the log pays before any fold.
- Both sides alternate, ``--repeat`` rounds each, in this process, tuned as a
  projector tunes its own (``tune_for_batches``); the figures are medians of
  process CPU (``time.process_time``) per event, and ``fold / decode`` is
  their ratio. The load average is recorded beside them: on a shared
  machine only runs of the same session compare.

Run: .venv/bin/python bench/bench_ledger.py [--events N] [--runs R] [--repeat K]
Writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from runwire.contract.codec import Codec
from runwire.contract.events import Event
from runwire.projections.runtime.tuning import tune_for_batches
from runwire.transcript.errors import LedgerError
from runwire.transcript.ledger import TranscriptBuilder

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"

sys.path.insert(0, str(REPO))  # the workload generator lives with the tests
from tests.support.workload import synthetic_events  # noqa: E402


def fold(events: list[Event]) -> tuple[int, int]:
    """Fold ``events`` into one builder per run; (changed, refused) counts."""
    builders: dict[str, TranscriptBuilder] = {}
    changed = refused = 0
    for event in events:
        run_id = event.run_id
        assert run_id is not None
        builder = builders.get(run_id)
        if builder is None:
            builder = builders[run_id] = TranscriptBuilder(run_id)
        try:
            changed += builder.apply(event)
        except LedgerError:
            refused += 1
    return changed, refused


def decode(codec: Codec, data: list[bytes]) -> None:
    for value in data:
        codec.decode(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=1_600)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    codec = Codec()
    log = synthetic_events(runs=args.runs, events=args.events, seed=7).events
    data = [codec.encode(e) for e in log if e.run_id is not None]
    events = [codec.decode(d) for d in data]
    n = len(events)
    changed, refused = fold(events)  # warm-up, and what the fold does
    tune_for_batches()

    fold_us: list[float] = []
    decode_us: list[float] = []
    for _ in range(args.repeat):
        start = time.process_time()
        decode(codec, data)
        decode_us.append((time.process_time() - start) / n * 1e6)
        start = time.process_time()
        fold(events)
        fold_us.append((time.process_time() - start) / n * 1e6)

    load = os.getloadavg()
    fold_med = statistics.median(fold_us)
    decode_med = statistics.median(decode_us)
    result = {
        "events": n,
        "runs": args.runs,
        "changed": changed,
        "duplicates": n - changed - refused,
        "refused": refused,
        "repeat": args.repeat,
        "fold_cpu_us_per_event": round(fold_med, 3),
        "decode_cpu_us_per_event": round(decode_med, 3),
        "fold_over_decode": round(fold_med / decode_med, 3),
        "fold_rounds_us": [round(v, 3) for v in fold_us],
        "decode_rounds_us": [round(v, 3) for v in decode_us],
        "load_average": [round(v, 2) for v in load],
    }
    print(
        f"{n} run events ({changed} changed, {n - changed - refused} duplicates, "
        f"{refused} refused), {args.repeat} rounds, load {load[0]:.2f}"
    )
    print(f"fold:   {fold_med:7.2f} us/event CPU (median)")
    print(f"decode: {decode_med:7.2f} us/event CPU (median, Codec.decode of the same events)")
    print(f"fold / decode: {fold_med / decode_med:.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ledger.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
