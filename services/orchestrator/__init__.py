"""The orchestrator: answers run deltas by calling a model (``runwire serve orchestrator``).

- :mod:`.run_state` — the per-run fold: deltas, answers, what to do next (pure).
- :mod:`.answers` — the events of an answer, with deterministic ids (pure).
- :mod:`.service` — the consumer service: catch-up, one task per run, lifecycle.
- :mod:`.context` / :mod:`.history` — what the model is shown (session history).
- :mod:`.agents` — per-agent instructions and tools.
- :mod:`.wiring` — the one place it is built from settings.
"""
