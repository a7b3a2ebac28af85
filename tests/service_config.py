"""What the shared test service is configured with: the API keys it accepts (their hashes are in its
settings, as in production) and its admission limit."""

from __future__ import annotations

import json

from router.auth import hash_key

USER_KEY = "lr-test-user-key"
ADMIN_KEY = "lr-test-admin-key"
API_KEYS_SETTING = json.dumps({hash_key(USER_KEY): "user", hash_key(ADMIN_KEY): "admin"})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# Small enough that test_limits_api can fill it; no other test has this many requests at once.
MAX_ADMITTED = 16

# Seconds without engine output (requests in flight) before the service replaces its engine; the default is
# longer, and the hang test waits this long.
ENGINE_HANG_S = 10
