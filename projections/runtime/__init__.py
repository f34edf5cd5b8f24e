"""The projector runtime every read model shares.

The seam is :class:`Projection` (see :mod:`.protocol` for its contract): a
read model that applies batches of decoded records and stores its partition
positions atomically with them. :class:`Projector` drives one against Kafka
(own consumer group, seek to stored positions on assignment, dead letters,
retries, a pipelined loop); :func:`rebuild` builds a fresh copy from offset 0
and switches readers to it; :func:`projection_lag` reports lag;
:func:`wait_for` gives read-your-writes; :func:`serve_projection` runs one as
a service. :class:`PostgresProjection` implements the storage side once for
every Postgres read model, :class:`InMemoryProjection` is its twin for tests.
:mod:`.timings` hands each applied batch's timings (fetched, decoded, apply
began and returned) to observers a bench or a diagnosis installs.
"""

from runwire.log.records import LogPosition, SourceRecord, TopicPartition
from runwire.projections.runtime.consumer import (
    Decoder,
    Projector,
    ProjectorOptions,
    ProjectorStats,
    caused_by_record,
    consumer_group,
    is_transient,
)
from runwire.projections.runtime.dead_letters import (
    DeadLetter,
    DeadLetterProducer,
    list_dead_letters,
    redrive,
)
from runwire.projections.runtime.lag import PartitionLag, ProjectionLag, projection_lag
from runwire.projections.runtime.paging import Page
from runwire.projections.runtime.protocol import (
    ApplyResult,
    Batch,
    DeadLetterSink,
    Projection,
    ProjectionError,
    Rebuild,
    Rebuildable,
    Rejection,
)
from runwire.projections.runtime.rebuild import RebuildProgress, RebuildReport, rebuild
from runwire.projections.runtime.tuning import tune_for_batches, tune_for_rebuild
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
    "PartitionLag",
    "Projection",
    "ProjectionError",
    "ProjectionLag",
    "Projector",
    "ProjectorOptions",
    "ProjectorStats",
    "Rebuild",
    "RebuildProgress",
    "RebuildReport",
    "Rebuildable",
    "Rejection",
    "SourceRecord",
    "TopicPartition",
    "caused_by_record",
    "consumer_group",
    "is_transient",
    "list_dead_letters",
    "projection_lag",
    "rebuild",
    "redrive",
    "tune_for_batches",
    "tune_for_rebuild",
    "wait_for",
]
