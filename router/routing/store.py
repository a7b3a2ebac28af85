"""Router artifacts on disk: one folder per version (its content hash), and a pointer to the live one.

The pointer is replaced with an atomic rename, so a crash at any moment leaves either the old or the new
router live, never a half-written one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from classifier import Example, IntentClassifier, load_examples
from classifier.model import Backend
from database.files import publish_folder, staged_file, staging_folder

logger = logging.getLogger(__name__)

EXAMPLES_FILE = "examples.jsonl"
POINTER_FILE = "current.json"


class RouterVersionStore(Protocol):
    """Where router versions live: `RouterStore` (files of one replica), or `PostgresRouterStore` (shared)."""

    def current_version(self) -> str | None: ...

    def folder(self, version: str) -> Path: ...

    def load(self, version: str) -> tuple[IntentClassifier, list[Example]]: ...

    def examples(self, version: str) -> list[Example]:
        """A version's training examples alone (to retrain it when its classifier is refused)."""
        ...

    def save(self, classifier: IntentClassifier, examples: list[Example]) -> str: ...

    def activate(self, version: str) -> None: ...


class RouterStore:
    def __init__(self, root: Path, *, backend: Backend = "onnx", threads: int = 1) -> None:
        """``backend`` and ``threads`` say how loaded classifiers encode (see `IntentClassifier`)."""
        self.root = root
        self.backend: Backend = backend
        self.threads = threads

    @property
    def pointer(self) -> Path:
        return self.root / POINTER_FILE

    def current_version(self) -> str | None:
        try:
            return json.loads(self.pointer.read_text())["version"]
        except FileNotFoundError:
            return None

    def folder(self, version: str) -> Path:
        return self.root / version

    def load(self, version: str) -> tuple[IntentClassifier, list[Example]]:
        """Load a version; raises the classifier's ArtifactError if the folder was tampered with."""
        folder = self.folder(version)
        classifier = IntentClassifier.from_pretrained(
            folder / "classifier", backend=self.backend, threads=self.threads
        )
        if classifier.content_hash != version:
            from classifier import ArtifactError

            raise ArtifactError(f"router {version} holds a classifier with hash {classifier.content_hash}")
        return classifier, self.examples(version)

    def examples(self, version: str) -> list[Example]:
        return load_examples(self.folder(version) / EXAMPLES_FILE)

    def save(self, classifier: IntentClassifier, examples: list[Example]) -> str:
        """Write a version (idempotent: the same content is the same folder) and return its id."""
        # The folder is named by the classifier's content hash, known only once it is written.
        with staging_folder(self.root, "version") as staging:
            version = classifier.save_pretrained(staging / "classifier")
            write_examples(staging / EXAMPLES_FILE, examples)
            publish_folder(staging, self.folder(version), existing="keep")
        return version

    def activate(self, version: str) -> None:
        with staged_file(self.pointer) as staging:
            staging.write_text(json.dumps({"version": version}))
        logger.info("router %s is now the live router", version)


def write_examples(path: Path, examples: list[Example]) -> None:
    path.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in examples))
