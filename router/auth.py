"""API keys with scopes: `user` keys chat, route and list models; `admin` keys also manage adapters and the
router. Settings hold only SHA-256 digests of the keys, so a leaked config file leaks no key."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable, Coroutine, Mapping
from enum import IntEnum
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from router.errors import AuthenticationError, PermissionDeniedError

KEY_PREFIX = "lr-"
HASH_PREFIX = "sha256:"


class Scope(IntEnum):
    """Ordered: a scope allows everything the lower ones do."""

    USER = 1
    ADMIN = 2


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_key_hashes(hashes: Mapping[str, str]) -> None:
    """ValueError naming the first entry that is not ``sha256:<64 hex>`` → ``user``/``admin``."""
    for digest, scope in hashes.items():
        hex_part = digest.removeprefix(HASH_PREFIX)
        if not digest.startswith(HASH_PREFIX) or len(hex_part) != 64 or not _is_hex(hex_part):
            raise ValueError(
                f"api key entry {digest[:16]!r}… is not 'sha256:<64 hex digits>'; "
                "store hashes, not keys (`lora-router api-key` prints one)"
            )
        if scope not in ("user", "admin"):
            raise ValueError(f"api key scope must be 'user' or 'admin', got {scope!r}")


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiKeys:
    """Decides the scope of a request from its ``Authorization: Bearer`` key.

    With no keys configured the header is not looked at, as a bare ``vllm serve`` ignores it: the user
    endpoints are open to every client (each SDK sends some key, often a placeholder), and the admin
    endpoints stay closed unless ``admin_localhost`` lets loopback clients in (development).
    """

    def __init__(self, hashes: Mapping[str, str], *, admin_localhost: bool = False) -> None:
        check_key_hashes(hashes)
        self._scopes = {digest: Scope[scope.upper()] for digest, scope in hashes.items()}
        self.admin_localhost = admin_localhost

    @property
    def enabled(self) -> bool:
        return bool(self._scopes)

    def scope_of_key(self, key: str) -> Scope | None:
        digest = hash_key(key)
        # Compare every stored digest so timing says nothing about which one (if any) came close.
        found = None
        for stored, scope in self._scopes.items():
            if hmac.compare_digest(stored, digest):
                found = scope
        return found

    def authorize(self, authorization: str | None, client_host: str | None, needed: Scope) -> Scope | None:
        """The caller's scope, or None where ``needed`` asks for none; raises 401 / 403 errors."""
        key = _bearer(authorization) if self.enabled else None
        if key is None:
            if self.admin_localhost and _is_loopback(client_host):
                return Scope.ADMIN
            if needed is Scope.USER and not self.enabled:
                return None
            raise AuthenticationError(
                "this endpoint needs an API key: send 'Authorization: Bearer <key>'"
                + (" with an admin key" if needed is Scope.ADMIN else "")
            )
        scope = self.scope_of_key(key)
        if scope is None:
            raise AuthenticationError("invalid API key")
        if scope < needed:
            raise PermissionDeniedError("this endpoint needs an admin key; yours is a user key")
        return scope


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    kind, _, key = authorization.partition(" ")
    if kind.lower() != "bearer" or not key.strip():
        raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
    return key.strip()


# Only for the OpenAPI document (clients and fuzzers see that a bearer key is expected); the header is
# parsed by ApiKeys, which tells a malformed header from a missing one.
_BEARER_SCHEME = HTTPBearer(auto_error=False, description="An API key (`lora-router api-key` makes one).")


def require(needed: Scope) -> Callable[..., Coroutine[Any, Any, None]]:
    """A route dependency refusing callers below ``needed``."""

    async def dependency(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER_SCHEME)]
    ) -> None:
        keys: ApiKeys = request.app.state.api_keys
        client = request.client.host if request.client else None
        keys.authorize(request.headers.get("authorization"), client, needed)

    return dependency
