"""The tool runner: executes registered tools for every run (``runwire serve tools``).

- :mod:`.runner` — the consumer service (catch-up, one result per tool_use).
- :mod:`.registry` — tools by name; failures and timeouts become error results.
- :mod:`.builtin` — calculator, clock, remember, recall; :mod:`.calculator` the
  safe arithmetic parser; :mod:`.memory` where remember/recall keep facts.
- :mod:`.wiring` — the one place it is built from settings.
"""
