"""The log layer: the only place runwire touches Kafka.

One writer (:class:`Publisher`), one retry posture (:mod:`.retrying`), one
partitioner (:mod:`.partitioner`), one client factory (:mod:`.clients`),
one way a consumed record becomes an event (:func:`decode_record`), one run
reader (:mod:`.runs`), one live watcher (:mod:`.watcher`), and one hook seam
for headers and counters (:mod:`.hooks`). Everything above reaches Kafka
through these; nothing here imports a read model or a service.
"""

from runwire.log.records import LogPosition, SourceRecord, TopicPartition, decode_record
from runwire.log.retrying import kafka_error, publish_retrying
from runwire.log.writer import EventWriter, OutgoingRecord, Position, Publisher, QueueingWriter

__all__ = [
    "EventWriter",
    "LogPosition",
    "OutgoingRecord",
    "Position",
    "Publisher",
    "QueueingWriter",
    "SourceRecord",
    "TopicPartition",
    "decode_record",
    "kafka_error",
    "publish_retrying",
]
