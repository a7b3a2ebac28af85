"""Schemathesis hooks (schemathesis.toml names this module) that keep a fuzzing run bounded in time: a
generated chat may ask for the whole context, which on a CPU engine takes minutes. Only the output length is
bounded; every other field, and the limits themselves (zero, negative, wrong types), are fuzzed as drawn."""

from __future__ import annotations

from typing import Any

import schemathesis

MAX_FUZZ_TOKENS = 16


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if isinstance(body, dict) and "model" in body:  # the generation endpoints
        for field in ("max_tokens", "max_completion_tokens"):
            value = body.get(field)
            if value is None or (
                isinstance(value, int) and not isinstance(value, bool) and value > MAX_FUZZ_TOKENS
            ):
                body[field] = MAX_FUZZ_TOKENS
    return body
