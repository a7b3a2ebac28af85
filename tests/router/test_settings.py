"""Settings refused where they are read, naming the setting, rather than by the engine as it starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router.settings import Settings


@pytest.mark.parametrize("value", ["0.5", "0", "-1"])
def test_a_kv_cache_the_cpu_engine_cannot_take_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # vLLM's CPU engine reads its KV cache size as whole GiB and fails at start-up on a fraction.
    monkeypatch.setenv("LORA_ROUTER_KV_CACHE_GIB", value)
    with pytest.raises(ValidationError, match="kv_cache_gib"):
        Settings()
    monkeypatch.setenv("LORA_ROUTER_KV_CACHE_GIB", "2")
    assert Settings().kv_cache_gib == 2
