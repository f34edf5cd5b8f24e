"""``GET /v1/me``: who the API key speaks for (the web page checks a pasted key with it)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from runwire.services.api.auth import Caller

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["auth"])


class Me(BaseModel):
    user_id: str
    access: str
    tenant: str | None = None


@router.get("/me", response_model=Me, summary="The user and access of the API key")
async def me(principal: Caller) -> Me:
    return Me(user_id=principal.user_id, access=principal.access, tenant=principal.tenant)
