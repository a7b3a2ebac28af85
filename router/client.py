"""HTTP client for the CLI commands that talk to a running service (register, eval, bench)."""

from __future__ import annotations

import httpx


def service_client(url: str, api_key: str | None, timeout_s: float = 30.0) -> httpx.Client:
    """A client rooted at the service URL that sends the key, when there is one, as a bearer token."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers)
