"""Router versions shared by several router replicas through PostgreSQL.

A version's folder travels as a tar in ``router_versions``; ``router_live`` names the live version. Each
replica unpacks the versions it uses into its own cache folder and loads them with `RouterStore`, which
verifies the classifier's content hash: what comes out of the database is trusted no more than a local folder.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import tarfile
from pathlib import Path, PurePosixPath

import psycopg

from classifier import ArtifactError, Example, IntentClassifier
from classifier.model import Backend
from database.connection import Database
from database.files import staged_folder
from router.routing.store import RouterStore

logger = logging.getLogger(__name__)

# Sent (with the version) when a version goes live, for replicas that listen instead of polling.
LIVE_CHANNEL = "lora_router_live"
# Versions are sha256 content hashes; anything else from the database must not become a path.
VERSION = re.compile(r"[0-9a-f]{64}")


class PostgresRouterStore:
    def __init__(self, url: str, cache_root: Path, *, backend: Backend = "onnx", threads: int = 1) -> None:
        """``backend`` and ``threads`` say how loaded classifiers encode (see `IntentClassifier`)."""
        self._local = RouterStore(cache_root, backend=backend, threads=threads)
        self._db = Database(url)

    def current_version(self) -> str | None:
        def select(conn: psycopg.Connection) -> tuple | None:
            return conn.execute("SELECT version FROM router_live").fetchone()

        row = self._db.run(select)
        return None if row is None else row[0]

    def folder(self, version: str) -> Path:
        return self._local.folder(version)

    def load(self, version: str) -> tuple[IntentClassifier, list[Example]]:
        """Load a version, downloading it first if this replica has not yet; raises ArtifactError when the
        version or its files are refused."""
        if not VERSION.fullmatch(version):
            raise ArtifactError(f"{version!r} is not a router version (a sha256 content hash)")
        if self.folder(version).is_dir():
            return self._local.load(version)
        self._download(version)
        try:
            return self._local.load(version)
        except ArtifactError:
            # Not kept: it would shadow a corrected artifact put in the database later.
            shutil.rmtree(self.folder(version), ignore_errors=True)
            raise

    def examples(self, version: str) -> list[Example]:
        if not VERSION.fullmatch(version):
            raise ArtifactError(f"{version!r} is not a router version (a sha256 content hash)")
        if not self.folder(version).is_dir():
            self._download(version)
        return self._local.examples(version)

    def save(self, classifier: IntentClassifier, examples: list[Example]) -> str:
        """Write the version to the cache and upload it (idempotent: the same content is the same row)."""
        version = self._local.save(classifier, examples)
        self._upload(version)
        return version

    def share_cached(self) -> str | None:
        """With no version live yet, make the one the cache folder's own pointer names (what `prepare` or
        `train-router` left there) the live one, uploaded as it is; returns what is live now."""
        live = self.current_version()
        cached = self._local.current_version()
        if live is None and cached is not None:
            self._upload(cached)
            self.activate(cached)
            return cached
        return live

    def _upload(self, version: str) -> None:
        def stored(conn: psycopg.Connection) -> bool:
            query = "SELECT 1 FROM router_versions WHERE version = %s"
            return conn.execute(query, (version,)).fetchone() is not None

        # The check first spares packing and sending the whole folder again (the body weighs ~100 MB).
        if not self._db.run(stored):
            artifact = _pack(self.folder(version))
            insert = "INSERT INTO router_versions (version, artifact) VALUES (%s, %b) ON CONFLICT DO NOTHING"
            self._db.run(lambda conn: conn.execute(insert, (version, artifact)))

    def activate(self, version: str) -> None:
        def point(conn: psycopg.Connection) -> None:
            conn.execute(
                "INSERT INTO router_live (id, version) VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, activated_at = now()",
                (version,),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, version))

        self._db.run(point)
        logger.info("router %s is now the live router of every replica", version)

    def close(self) -> None:
        self._db.close()

    def _download(self, version: str) -> None:
        def select(conn: psycopg.Connection) -> tuple | None:
            query = "SELECT artifact FROM router_versions WHERE version = %s"
            return conn.execute(query, (version,), binary=True).fetchone()

        row = self._db.run(select)
        if row is None:
            raise ArtifactError(f"router {version} is not in the database")
        # Another thread may get it meanwhile: the same version is the same content, so its copy stays.
        with staged_folder(self.folder(version), existing="keep") as staging:
            with tarfile.open(fileobj=io.BytesIO(row[0]), mode="r:") as tar:
                tar.extractall(staging, filter=_plain_members)
        logger.info("router %s downloaded to %s", version, self.folder(version))


def _pack(folder: Path) -> bytes:
    # Uncompressed: model weights hardly compress, and the database stores the column as it comes.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=child.name)
    return buffer.getvalue()


def _plain_members(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Only files and folders under relative paths; tarfile's "data" filter does the rest (modes, owners)."""
    path = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()) or path.is_absolute() or ".." in path.parts:
        raise ArtifactError(f"router artifact member {member.name!r} is not a plain file or folder inside it")
    return tarfile.data_filter(member, dest)
