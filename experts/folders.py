"""Output folders that appear whole or not at all, and file digests for provenance."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(output: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield an empty sibling folder of ``output`` to write into; on a clean exit it is renamed to ``output``,
    on an exception it is removed. A sibling stays on the same filesystem, so the rename is atomic.

    Raises FileExistsError up front (and again at the end, should one have appeared meanwhile) when
    ``output`` exists and ``overwrite`` is false.
    """
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = output.with_name(f".{output.name}.staging-{uuid.uuid4().hex[:8]}")
    stage.mkdir()
    try:
        yield stage
        _publish(stage, output, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _publish(stage: Path, output: Path, *, overwrite: bool) -> None:
    if not output.exists():
        os.replace(stage, output)
        return
    if not overwrite:
        raise FileExistsError(f"{output} appeared meanwhile; not replacing it")
    # A folder cannot replace a non-empty folder in one rename: move the old one aside, then drop it.
    old = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(output, old)
    try:
        os.replace(stage, output)
    except BaseException:
        os.replace(old, output)
        raise
    shutil.rmtree(old, ignore_errors=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The PEFT adapter folder's files, and the key of a LoRA factor in its weights.
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
LORA_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")
