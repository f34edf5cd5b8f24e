"""Local stand-ins for the model providers' HTTP APIs, for tests (no network).

Each fake speaks its provider's real wire format, JSON and streaming, on
127.0.0.1 with an ephemeral port, and answers from a script of replies.
"""
