"""The ``?page=`` parameter: page tokens the API hands out are signed.

Contract:
- Every ``next_page`` the API answers with is the store's token sealed by a
  :class:`~runwire.projections.runtime.paging.PageTokenSigner` for the
  caller's user and the listing's path; ``?page=`` must be such a token, else
  400 ``bad_page_token`` (a forged, changed or garbage token, or one handed out
  to another user or for another listing).
- The HMAC key is ``Settings.api_page_secret`` (``RUNWIRE_API_PAGE_SECRET``):
  API instances behind one address must share it, or a page handed out by one
  cannot be followed on another. Unset, each app makes a random key
  (tokens then last as long as the process). ``create_app`` builds the
  signer (``app.state.page_tokens``) from the settings it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from runwire.projections.runtime.paging import PageTokenSigner
from runwire.services.api.auth import Caller

__all__ = ["MAX_PAGE_TOKEN_CHARS", "PageParam", "Paging", "signer_of"]

MAX_PAGE_TOKEN_CHARS = 2000
"""Longest ``?page=``: a token of a 200-character key of 4-byte characters fits."""


def signer_of(request: Request) -> PageTokenSigner:
    """The app's signer (see the module contract), made once per app."""
    state = request.app.state
    signer = getattr(state, "page_tokens", None)
    if not isinstance(signer, PageTokenSigner):  # an app built without create_app
        signer = PageTokenSigner.random()
        state.page_tokens = signer
    return signer


@dataclass(frozen=True, slots=True)
class Paging:
    """Where a listing starts (``after``: the store's token) and how to seal its next page."""

    after: str | None
    signer: PageTokenSigner
    scope: str

    def seal(self, next_page: str | None) -> str | None:
        """``next_page`` of the store as the token to hand out (None stays None)."""
        return None if next_page is None else self.signer.seal(next_page, self.scope)


async def paging(
    request: Request,
    principal: Caller,
    page: Annotated[
        str | None,
        Query(
            max_length=MAX_PAGE_TOKEN_CHARS,
            description="the next_page of the previous page (400 for any other value)",
        ),
    ] = None,
) -> Paging:
    """The ``?page=`` of a listing, opened (400 ``bad_page_token`` when it is not one we sealed)."""
    signer = signer_of(request)
    scope = f"{principal.user_id}\x00{request.url.path}"
    if principal.tenant is not None:  # a token pages for one (tenant, user) only
        scope = f"{principal.tenant}\x00{scope}"
    after = None if page is None else signer.open(page, scope)
    return Paging(after=after, signer=signer, scope=scope)


PageParam = Annotated[Paging, Depends(paging)]
"""A route parameter: the listing's ``?page=``, verified."""
