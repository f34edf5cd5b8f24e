"""The HTTP API and the web page: runs and sessions for people and other programs.

One function wires it (:func:`runwire.services.api.app.create_app`);
``runwire serve api`` runs it under uvicorn. The contract (every endpoint,
its errors and the authentication rules) is written out in docs/http-api.md.

- Authentication: bearer API keys from ``Settings.api_keys``, each mapped to
  one user (:mod:`.auth`); a read-only key is refused every write with 403.
- Isolation: every read is scoped to the caller's user. A session or run of
  another user is 404 - the same answer, word for word, as one that does not
  exist - so ids cannot be probed.
- Reads come from the projections (run-status store, session index,
  transcript cache); writes go to the log through the runs API
  (:class:`runwire.client.Client`); the live event stream is read from the
  log itself, from the run's first event.
"""
