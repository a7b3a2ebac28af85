"""Files and folders that appear whole or not at all, and file digests.

A writer fills a staging folder (or file) beside its target and renames it into place. A rename within one
filesystem is atomic, so a reader, or the next start after a crash, finds the old target or the new one and
never a half-written one; the old one stays until the new one is in. Router replicas that share a volume may
write the same target at once: ``existing`` says who wins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

Existing = Literal["refuse", "replace", "keep"]
"""What publishing does when the target exists: refuse it (FileExistsError), replace it, or keep it and drop
what was staged (for content-addressed targets, where whoever landed first wrote the same thing)."""


@contextmanager
def staging_folder(parent: Path, name: str) -> Iterator[Path]:
    """Yield a new, empty hidden folder in ``parent`` (created when missing) to write into, removed on the way
    out unless `publish_folder` moved it into place: an exception leaves nothing of it behind.

    For a target known only once the content is written (named by its hash); `staged_folder` otherwise.
    """
    parent.mkdir(parents=True, exist_ok=True)
    # Beside the target, so the rename stays on one filesystem; hidden and unique, so that readers listing the
    # parent skip it and concurrent writers never share one.
    staging = parent / f".{name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_folder(staging: Path, target: Path, *, existing: Existing = "refuse") -> bool:
    """Rename ``staging`` to ``target``; False when ``existing="keep"`` kept a target that was there first.

    Raises FileExistsError when the target exists (or appeared meanwhile, also with ``"replace"``: another
    writer's folder is not thrown away unseen) and ``existing`` does not allow it.
    """
    if existing == "replace" and target.exists():
        _replace(staging, target)
        return True
    try:
        # Fails when the target exists by now, unless it is an empty folder (which nobody is filling: writers
        # fill their staging folders), which it replaces.
        staging.rename(target)
    except OSError:
        if not target.exists():
            raise
        if existing == "keep":
            return False
        raise FileExistsError(f"{str(target)!r} exists; not replacing it") from None
    return True


def _replace(staging: Path, target: Path) -> None:
    # A folder cannot be renamed over a non-empty one: the old one goes aside first, and is dropped only once
    # the new one is in its place, so a failure puts it back.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if target.exists():  # another writer's folder landed in between: it stays, the old one goes
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(target: Path, *, existing: Existing = "refuse") -> Iterator[Path]:
    """Yield an empty folder to fill; on a clean exit it becomes ``target`` (see `publish_folder`), on an
    exception it is removed and ``target`` stays as it was.

    ``existing="refuse"`` refuses an existing target up front too, before anything is written.
    """
    if existing == "refuse" and target.exists():
        raise FileExistsError(f"{str(target)!r} already exists; not replacing it")
    with staging_folder(target.parent, target.name) as staging:
        yield staging
        publish_folder(staging, target, existing=existing)


@contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """Yield a path beside ``target`` to write; on a clean exit it replaces ``target`` in one rename, on an
    exception it is removed and ``target`` stays as it was."""
    staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex[:8]}")
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
