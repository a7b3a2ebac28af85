"""Artifact folders on disk: written atomically with a sha256 manifest, and refused unless they verify.

``manifest.json`` lists every other file of the folder with its sha256 and an overall ``content_hash``::

    {"format": "lora-router-manifest", "files": {"body/model.safetensors": "<sha256>", ...},
     "content_hash": "<sha256>"}

``content_hash`` is the sha256 of the ``sha256sum``-style lines ``"<sha256>  <path>\\n"`` of all listed files,
sorted by path: any change of a file's bytes or name changes it, and nothing else does. The manifest guards
against corruption and tampering after writing; it is not a signature. What keeps loading safe is that files
which unpickle (and so can run code) are refused before anything is opened.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from classifier.errors import ArtifactError
from database.files import file_sha256, staged_folder

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "lora-router-manifest"
# Formats loaded through pickle (torch.load, joblib, pickle itself); never opened, whatever their content.
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".joblib")
MAX_MANIFEST_BYTES = 1024 * 1024


def write_artifact(target: Path, fill: Callable[[Path], None], *, overwrite: bool = False) -> str:
    """Create folder ``target`` from what ``fill(folder)`` writes plus a manifest; return its content hash.

    Everything is written into a temporary sibling folder and renamed into place, so ``target`` is either
    absent or complete, never half-written. An existing ``target`` is replaced only with ``overwrite``.
    """
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} already exists; pass overwrite=True to replace it")
    with staged_folder(target, existing="replace" if overwrite else "refuse") as staging:
        fill(staging)
        files = list_files(staging)
        hashes = {name: file_sha256(staging / name) for name in files}
        content_hash = _content_hash(hashes)
        manifest = {"format": MANIFEST_FORMAT, "files": hashes, "content_hash": content_hash}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        # Flush to disk before the rename publishes the folder, so a power cut cannot expose empty files.
        for name in [*files, MANIFEST, "."]:
            _fsync(staging / name)
    return content_hash


def verify_artifact(folder: Path) -> str:
    """Check ``folder`` against its manifest without opening any unsafe file; return the content hash."""
    if not folder.is_dir():
        raise ArtifactError(f"{str(folder)!r} is not a folder")
    on_disk = set(list_files(folder))
    on_disk.discard(MANIFEST)
    if not (folder / MANIFEST).is_file():
        raise ArtifactError(f"{MANIFEST} is missing from {str(folder)!r}; refusing an unverifiable artifact")
    listed = _read_manifest(folder / MANIFEST)
    if extra := sorted(on_disk - listed.keys()):
        raise ArtifactError(f"{extra[0]} is not listed in {MANIFEST}; refusing a file added after saving")
    if missing := sorted(listed.keys() - on_disk):
        raise ArtifactError(f"{missing[0]} is listed in {MANIFEST} but missing")
    for name in sorted(listed):
        if file_sha256(folder / name) != listed[name]:
            raise ArtifactError(f"{name} does not match its sha256 in {MANIFEST} (corrupted or modified)")
    return _content_hash(listed)


def list_files(folder: Path) -> list[str]:
    """Relative POSIX paths of all files under ``folder``, sorted; refuses unsafe files and links."""
    names = []
    for root, dirs, files in os.walk(folder):
        for entry in [*dirs, *files]:
            path = Path(root, entry)
            name = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise ArtifactError(f"{name} is a symbolic link; artifacts must hold plain files only")
            if entry in files:
                if entry.lower().endswith(UNSAFE_SUFFIXES):
                    raise ArtifactError(
                        f"{name} is a pickle-based file (loading it can run code); refused without opening it"
                    )
                if not path.is_file():
                    raise ArtifactError(f"{name} is not a regular file")
                names.append(name)
    return sorted(names)


def _read_manifest(path: Path) -> dict[str, str]:
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{MANIFEST} is over {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        manifest = {}
    files = manifest.get("files")
    if (
        manifest.get("format") != MANIFEST_FORMAT
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise ArtifactError(f"{MANIFEST} is not a {MANIFEST_FORMAT!r} manifest with a 'files' mapping")
    if manifest.get("content_hash") != _content_hash(files):
        raise ArtifactError(f"{MANIFEST}: content_hash does not match the listed file hashes")
    return files


def _content_hash(hashes: dict[str, str]) -> str:
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
