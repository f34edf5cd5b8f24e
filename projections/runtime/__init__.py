"""The projector runtime every read model shares.

The seam is :class:`Projection` (see :mod:`.protocol` for its contract): a
read model that applies batches of decoded records and stores its partition
positions atomically with them. :class:`Projector` drives one against Kafka
(own consumer group, seek to stored positions on assignment, dead letters,
retries); :func:`rebuild` builds a fresh copy from offset 0 and switches
readers to it; :func:`projection_status` reports lag; :func:`wait_for` gives
read-your-writes. :class:`PostgresProjection` implements the storage side
once for every Postgres read model.
"""

from runwire.projections.runtime.consumer import (
    Decoder,
    Projector,
    ProjectorOptions,
    ProjectorStats,
    consumer_group,
    is_transient,
)
from runwire.projections.runtime.dead_letters import (
    DeadLetter,
    DeadLetterProducer,
    list_dead_letters,
    redrive,
)
from runwire.projections.runtime.paging import Page
from runwire.projections.runtime.protocol import (
    ApplyResult,
    Batch,
    DeadLetterSink,
    LogPosition,
    Projection,
    ProjectionError,
    Rebuild,
    Rebuildable,
    Rejection,
    SourceRecord,
    TopicPartition,
)
from runwire.projections.runtime.waiting import NotCaughtUpError, wait_for

__all__ = [
    "ApplyResult",
    "Batch",
    "DeadLetter",
    "DeadLetterProducer",
    "DeadLetterSink",
    "Decoder",
    "LogPosition",
    "NotCaughtUpError",
    "Page",
    "Projection",
    "ProjectionError",
    "Projector",
    "ProjectorOptions",
    "ProjectorStats",
    "Rebuild",
    "Rebuildable",
    "Rejection",
    "SourceRecord",
    "TopicPartition",
    "consumer_group",
    "is_transient",
    "list_dead_letters",
    "redrive",
    "wait_for",
]
