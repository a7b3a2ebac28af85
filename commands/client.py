"""HTTP clients for the CLI commands that talk to a running service (register, eval, bench)."""

from __future__ import annotations

from typing import Any

import httpx


def auth_headers(api_key: str | None) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {api_key}"} if api_key else None


def service_client(url: str, api_key: str | None, timeout_s: float = 30.0) -> httpx.Client:
    """A client rooted at the service URL that sends the key, when there is one, as a bearer token."""
    return httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=auth_headers(api_key))


def async_service_client(
    url: str, api_key: str | None, timeout_s: float, **options: Any
) -> httpx.AsyncClient:
    headers = auth_headers(api_key)
    return httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers, **options)
