"""The shipped default experts (``router/defaults/experts/``): copied under the adapter root and registered
at start-up, so a fresh `make serve` routes to real experts without training anything."""

from __future__ import annotations

import filecmp
import logging
import shutil
from pathlib import Path

from database.files import publish_folder, staging_folder
from lora_registry import AdapterRegistry, AdapterSpec

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "defaults" / "experts"
REGISTRY_FILE = SHIPPED / "registry.yaml"
# A folder of its own under the adapter root, so a user's adapter folder named "sql" is never touched.
INSTALL_DIR = "default-experts"


def install_default_experts(registry: AdapterRegistry, adapter_root: Path) -> list[AdapterSpec]:
    """Copy the shipped experts under ``adapter_root`` (refreshing a copy that differs) and register those
    whose names are free; returns the newly registered ones."""
    for folder in sorted(p for p in SHIPPED.iterdir() if p.is_dir()):
        target = adapter_root / INSTALL_DIR / folder.name
        if target.is_dir() and not _differs(folder, target):
            continue
        # A staging folder of its own: router replicas sharing the adapter root may install at the same time.
        with staging_folder(target.parent, folder.name) as staging:
            shutil.copytree(folder, staging, dirs_exist_ok=True)
            try:
                publish_folder(staging, target, existing="replace")
            except OSError:  # another replica's copy landed first
                continue
        logger.info("installed default expert %s at %s", folder.name, target)
    return registry.seed_from_yaml(REGISTRY_FILE)


def _differs(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if p.is_file())
    if names != sorted(p.name for p in b.iterdir() if p.is_file()):
        return True
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return bool(mismatch or errors)
