"""The session index: one row per session, folded from session and run events.

Rules: :mod:`runwire.projections.sessions.fold`. Reading: :class:`SessionIndex`.
"""

from runwire.projections.sessions.fold import Session
from runwire.projections.sessions.projection import SessionsProjection
from runwire.projections.sessions.reader import SessionIndex

__all__ = ["Session", "SessionIndex", "SessionsProjection"]
