"""The usage projection: model calls' tokens per run, model and UTC day, priced when read.

Rules: :mod:`.fold`. Writing: :mod:`.projection` (``UsageProjection``, the
catalog opener ``open_usage``). Reading: :mod:`.reader` (``UsageStore``,
``summary(by=...)``). Prices: :mod:`.prices` (``PriceTable``). The twin:
:mod:`.inmem` (``InMemoryUsage``). See docs/usage.md.
"""

from runwire.projections.usage.prices import Cost, PriceTable
from runwire.projections.usage.projection import NAME, UsageProjection, open_usage
from runwire.projections.usage.reader import DIMENSIONS, UsageGroup, UsageSource, UsageStore

__all__ = [
    "DIMENSIONS",
    "NAME",
    "Cost",
    "PriceTable",
    "UsageGroup",
    "UsageProjection",
    "UsageSource",
    "UsageStore",
    "open_usage",
]
