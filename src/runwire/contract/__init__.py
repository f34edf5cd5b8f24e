"""The event contract: models, Avro schemas, codec and event identity."""
