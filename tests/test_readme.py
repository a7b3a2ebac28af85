"""The README's configuration table names every setting the service reads."""

from __future__ import annotations

from pathlib import Path

from router.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name for name in Settings.model_fields if f"LORA_ROUTER_{name.upper()}" not in README]
    assert not missing, f"README configuration table lacks: {missing}"
