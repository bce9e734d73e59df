"""`/v1/auth/*` (traders' Sign-In with Ethereum sessions) and `/v1/api-keys` (operator)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field, model_validator

from gateway.access.control import AccessControl
from gateway.api.access import access_control
from gateway.api.schemas import Address, ErrorOut, _Strict
from gateway.domain.foreign_text import NO_CONTROL_CHARACTERS
from gateway.store.access_repository import StoredApiKey

router = APIRouter(prefix="/v1", tags=["access"])
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
KeyId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]


def _access(request: Request) -> AccessControl:
    access = access_control(request.app)
    assert access is not None  # the runtime is running
    return access


class NonceOut(BaseModel):
    nonce: str
    expires_at: datetime


class SignInIn(_Strict):
    message: str = Field(max_length=4096, description="The EIP-4361 message, exactly as signed")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="personal_sign, 65 bytes")


class SessionOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`")
    address: str
    expires_at: datetime


@router.get(
    "/auth/siwe/nonce",
    response_model=NonceOut,
    summary="A single-use nonce for a Sign-In with Ethereum message",
)
async def siwe_nonce(request: Request) -> NonceOut:
    nonce, expires_at = await _access(request).issue_nonce()
    return NonceOut(nonce=nonce, expires_at=expires_at)


@router.post(
    "/auth/siwe",
    response_model=SessionOut,
    responses=ERRORS,
    summary="Sign in with Ethereum (EIP-4361): a trader's session for its own accounts",
)
async def siwe_sign_in(body: SignInIn, request: Request) -> SessionOut:
    host = request.headers.get("host")
    session = await _access(request).sign_in(body.message, body.signature, host)
    return SessionOut(token=session.token, address=session.address, expires_at=session.expires_at)


@router.delete("/auth/session", status_code=204, summary="End the bearer token's session")
async def sign_out(request: Request) -> Response:
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    if kind.lower() == "bearer" and token.strip():
        await _access(request).sign_out(token.strip())
    return Response(status_code=204)


Scope = Literal["quote", "trade", "read", "unsigned"]


def _read_only() -> list[Scope]:
    return ["read"]


class ApiKeyIn(_Strict):
    role: Literal["protocol", "auditor"] = "protocol"
    scopes: list[Scope] = Field(
        default_factory=_read_only,
        max_length=4,
        description="protocol: any of quote, trade, read, and unsigned (with trade: orders "
        "for the key's own accounts without the owner's signature; they trade but never "
        "settle on chain; needs `accounts`); an auditor key is read-only",
    )
    accounts: list[Address] = Field(
        default_factory=list,
        max_length=1000,
        description="Accounts the key acts for; empty: any (trading still needs each "
        "order's owner signature)",
    )
    label: str | None = Field(default=None, max_length=100, pattern=NO_CONTROL_CHARACTERS)

    @model_validator(mode="after")
    def _unsigned_is_bounded(self) -> ApiKeyIn:
        # a key that trades without signatures may do so only for accounts named here
        if "unsigned" in self.scopes and (not self.accounts or "trade" not in self.scopes):
            raise ValueError("the unsigned scope needs the trade scope and the key's accounts")
        return self


class ApiKeyOut(BaseModel):
    key_id: str
    role: str
    scopes: list[str]
    accounts: list[str]
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    secret: str = Field(description="Shown once: the HMAC key of X-Isthmus-Signature")


def _key_out(key: StoredApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        key_id=key.key_id,
        role=key.role,
        scopes=sorted(key.scopes),
        accounts=list(key.accounts),
        label=key.label,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/api-keys",
    response_model=NewApiKeyOut,
    status_code=201,
    responses=ERRORS,
    summary="Issue an API key (operator); its secret is returned this once",
)
async def create_api_key(body: ApiKeyIn, request: Request) -> NewApiKeyOut:
    key, secret = await _access(request).create_api_key(
        body.role, frozenset(body.scopes), tuple(dict.fromkeys(body.accounts)), body.label
    )
    return NewApiKeyOut(**_key_out(key).model_dump(), secret=secret)


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="Every API key (operator)")
async def list_api_keys(request: Request) -> list[ApiKeyOut]:
    return [_key_out(key) for key in await _access(request).api_keys()]


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyOut,
    responses=ERRORS,
    summary="Revoke an API key (operator); its requests are refused from now on",
)
async def revoke_api_key(key_id: KeyId, request: Request) -> ApiKeyOut:
    return _key_out(await _access(request).revoke_api_key(key_id))
