"""runwire: an event-sourced backbone for AI-agent conversations.

Every event of an agent run is a record on Kafka keyed by run id; Postgres and
Redis read models are projections of that log that can be rebuilt by replay.
"""

__version__ = "0.1.0"
