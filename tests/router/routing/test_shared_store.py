"""Router versions shared through a real PostgreSQL server: what one replica saves and makes live, another
loads into its own cache folder; a tampered or unsafe artifact is refused and the live router stays."""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
from pathlib import Path

import numpy as np
import psycopg
import pytest

from classifier import ArtifactError, Example, IntentClassifier
from router.routing.manager import RouterManager
from router.routing.open_store import open_router_store
from router.routing.shared_store import PostgresRouterStore
from router.routing.store import RouterStore
from router.settings import Settings
from tests.postgres import PostgresCluster
from tests.router.routing.test_manager import CONFIG, SQL

TEXTS = ["List the five most expensive products with a query", "What is 12 times 7?", "hello there"]
Router = tuple[IntentClassifier, list[Example]]


@pytest.fixture(scope="module")
def default_router(default_router_dir: Path) -> Router:
    store = RouterStore(default_router_dir)
    return store.load(store.current_version())


@pytest.fixture(scope="module")
def published(
    postgres: PostgresCluster, default_router: Router, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, bytes]:
    """The default router's version and artifact as a replica uploads them, for tests to put into their own
    databases."""
    url = postgres.create_database()
    store = PostgresRouterStore(url, tmp_path_factory.mktemp("publisher"))
    version = store.save(*default_router)
    store.close()
    with psycopg.connect(url) as conn:
        query = "SELECT artifact FROM router_versions WHERE version = %s"
        row = conn.execute(query, (version,), binary=True).fetchone()
    return version, row[0]


def put_version(url: str, version: str, artifact: bytes) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO router_versions (version, artifact) VALUES (%s, %b)", (version, artifact))


Member = tuple[tarfile.TarInfo, bytes]


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, target: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, len(data)
    return info, data


def tar_with(extra: Member, base: bytes | None = None) -> bytes:
    """The members of the tar ``base`` (if any), then ``extra``: of two members with one name, the later one
    is what extraction leaves."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        if base is not None:
            with tarfile.open(fileobj=io.BytesIO(base)) as source:
                for info in source.getmembers():
                    tar.addfile(info, source.extractfile(info))
        tar.addfile(extra[0], io.BytesIO(extra[1]))
    return out.getvalue()


def test_a_version_saved_by_one_replica_loads_on_another(
    postgres: PostgresCluster, tmp_path: Path, default_router: Router
) -> None:
    url = postgres.create_database()
    here, there = PostgresRouterStore(url, tmp_path / "a"), PostgresRouterStore(url, tmp_path / "b")
    assert there.current_version() is None
    version = here.save(*default_router)
    here.activate(version)
    assert there.current_version() == version

    classifier, examples = there.load(version)
    assert classifier.content_hash == version and examples == default_router[1]
    assert (tmp_path / "b" / version).is_dir()
    expected = default_router[0].predict_proba(TEXTS)
    np.testing.assert_allclose(classifier.predict_proba(TEXTS), expected, rtol=0, atol=1e-6)
    # The same router saved by the other replica is the same version, stored once.
    assert there.save(classifier, examples) == version
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM router_versions").fetchone() == (1,)


def test_open_router_store_shares_versions_with_a_database(postgres: PostgresCluster, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=postgres.create_database())
    store = open_router_store(settings)
    assert isinstance(store, PostgresRouterStore) and store.folder("v") == settings.router_dir / "v"
    assert isinstance(open_router_store(Settings(data_dir=tmp_path)), RouterStore)


def test_a_tampered_artifact_is_refused_and_not_kept(
    postgres: PostgresCluster, tmp_path: Path, published: tuple[str, bytes]
) -> None:
    version, artifact = published
    url = postgres.create_database()
    store = PostgresRouterStore(url, tmp_path / "cache")
    put_version(url, version, tar_with(member("classifier/head.safetensors", b"\0" * 64), artifact))
    with pytest.raises(ArtifactError, match="head.safetensors"):
        store.load(version)
    assert not store.folder(version).exists()
    # Once the database holds the right artifact again, it loads.
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE router_versions SET artifact = %b", (artifact,))
    assert store.load(version)[0].content_hash == version


@pytest.mark.parametrize(
    "unsafe",
    [
        member("/tmp/lora-router-escape", b"x"),
        member("../escape", b"x"),
        member("classifier/../../escape", b"x"),
        member("classifier", kind=tarfile.SYMTYPE, target="/etc"),
        member("examples.jsonl", kind=tarfile.SYMTYPE, target="classifier/manifest.json"),
        member("examples.jsonl", kind=tarfile.LNKTYPE, target="/etc/passwd"),
        member("fifo", kind=tarfile.FIFOTYPE),
    ],
    ids=["absolute", "parent", "inner-parent", "symlink-out", "symlink-in", "hardlink", "fifo"],
)
def test_an_unsafe_tar_is_refused_before_anything_is_written(
    postgres: PostgresCluster, tmp_path: Path, unsafe: Member
) -> None:
    url = postgres.create_database()
    store = PostgresRouterStore(url, tmp_path / "cache")
    version = "e" * 64
    put_version(url, version, tar_with(unsafe))
    with pytest.raises(ArtifactError, match="not a plain file"):
        store.load(version)
    assert list((tmp_path / "cache").iterdir()) == []  # the download's staging folder is gone too
    assert not (tmp_path / "escape").exists() and not Path("/tmp/lora-router-escape").exists()


def test_a_version_not_named_by_a_hash_is_no_path(postgres: PostgresCluster, tmp_path: Path) -> None:
    store = PostgresRouterStore(postgres.create_database(), tmp_path / "cache")
    with pytest.raises(ArtifactError, match="not a router version"):
        store.load("../../elsewhere")


def test_sync_picks_up_a_version_made_live_elsewhere(
    postgres: PostgresCluster, tmp_path: Path, published: tuple[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    version, artifact = published
    url = postgres.create_database()
    elsewhere = PostgresRouterStore(url, tmp_path / "elsewhere")
    here = PostgresRouterStore(url, tmp_path / "here")
    router = RouterManager(here, CONFIG, adapters=lambda: {"sql", "math", "extract"})
    router.load_current()
    assert router.live is None and asyncio.run(router.sync()) is False

    put_version(url, version, artifact)
    elsewhere.activate(version)
    assert asyncio.run(router.sync()) is True
    assert router.live.version == version
    assert asyncio.run(router.route(SQL)).decision.model == "sql"
    assert asyncio.run(router.sync()) is False  # nothing new

    # A version whose files do not hash to its name goes live elsewhere: refused, once.
    forged = "0" * 64
    put_version(url, forged, artifact)
    elsewhere.activate(forged)
    assert asyncio.run(router.sync()) is False
    assert asyncio.run(router.sync()) is False
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"router {forged} is refused; keeping the live router"]
    assert router.live.version == version
    assert asyncio.run(router.route(SQL)).version == version
