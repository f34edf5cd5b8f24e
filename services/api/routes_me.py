"""``GET /v1/me``: who the API key speaks for (the web page checks a pasted key with it).

``DELETE /v1/me``: the caller erases itself for good (sealing on, docs/sealing.md):
every session of its (tenant, user), its user memory and their keys; the
answer is the receipt (``user_erased``). Erasing again answers the same.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from runwire.services.api.auth import Caller, Writer
from runwire.services.api.backends import Using
from runwire.services.api.errors import ApiError
from runwire.services.api.models import UserErasureOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["auth"])


class Me(BaseModel):
    user_id: str
    access: str
    tenant: str | None = None


@router.get("/me", response_model=Me, summary="The user and access of the API key")
async def me(principal: Caller) -> Me:
    return Me(user_id=principal.user_id, access=principal.access, tenant=principal.tenant)


@router.delete("/me", response_model=UserErasureOut, summary="Erase the caller for good")
async def erase_me(principal: Writer, using: Using) -> UserErasureOut:
    """Erase every session of the API key's (tenant, user), its user-scope memory,
    and destroy their keys: nothing of the user on the log can be read by anyone
    afterwards, and the user can write nothing again.

    409 ``erasure_unavailable`` when the deployment does not seal (nothing is
    erased then). A failure midway (the key store down) is 503: ask again, or
    ``runwire users erase``; every step is safe to repeat.
    """
    if using.eraser is None:
        raise ApiError(
            409,
            "erasure_unavailable",
            "erasing a user needs sealing on in the API's deployment "
            "(RUNWIRE_SEALING=true, docs/sealing.md)",
        )
    receipt = await using.eraser.erase_user(principal.user_id, principal.tenant)
    return UserErasureOut(
        user_id=receipt.user_id,
        tenant=receipt.tenant,
        receipt_event_id=receipt.event_id,
        erased_at=receipt.erased_at,
        erased_key_ids=list(receipt.key_ids),
        session_ids=list(receipt.session_ids),
    )
