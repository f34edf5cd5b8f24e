"""The Avro contract of runwire events, one ``<event_type>.v<N>.avsc`` file per released version.

These files are data, shipped with the package; ``runwire.contract.schemas``
loads them. Released files never change: a new version is a new file.
"""
