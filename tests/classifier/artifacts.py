"""Editing saved classifier folders the way an attacker (or an older release) could."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from classifier.artifact import MANIFEST, MANIFEST_FORMAT


def resign(folder: Path) -> Path:
    """Rewrite the manifest to match the files, as anyone can: valid, whatever the files hold."""
    hashes = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items()))
    content_hash = hashlib.sha256(lines.encode()).hexdigest()
    manifest = {"format": MANIFEST_FORMAT, "files": hashes, "content_hash": content_hash}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder
