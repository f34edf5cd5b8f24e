"""Infrastructure runwire stands on: the topics it needs and the local stack.

- ``topics.toml`` declares every topic (name, partitions, retention, cleanup
  policy); :mod:`runwire.infra.topics` provisions it on any cluster.
- :mod:`runwire.infra.stack` runs real Kafka, PostgreSQL and Redis on this
  machine, without Docker, for development and the test suite.
"""
