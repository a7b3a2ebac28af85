"""Router artifacts on disk: a router whose files were tampered with, or that carries a pickle, is refused
and the last good router keeps serving."""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
from pathlib import Path

import pytest

from router.protocol import ChatMessage
from router.routing.manager import RouterManager
from router.routing.policy import FallbackReason, PolicyConfig
from router.routing.store import RouterStore

BASE = "base-model"
CONFIG = PolicyConfig(threshold=0.5, min_margin=0.1, fallback=BASE, base_model=BASE, route_map={"chat": BASE})
SQL = [ChatMessage(role="user", content="List the five most expensive products with a query")]


class Boom:
    """Unpickling this would run a command: it must never be unpickled."""

    def __reduce__(self) -> tuple:
        return (Path("/tmp/lora-router-pwned").touch, ())


@pytest.fixture
def store(tmp_path: Path, default_router_dir: Path) -> RouterStore:
    shutil.copytree(default_router_dir, tmp_path / "routers")
    return RouterStore(tmp_path / "routers")


def manager(store: RouterStore) -> RouterManager:
    router = RouterManager(store, CONFIG, adapters=lambda: {"sql", "math", "extract"})
    router.load_current()
    return router


def corrupt_copy(store: RouterStore, spoil) -> str:  # noqa: ANN001
    good = store.current_version()
    shutil.copytree(store.folder(good), store.root / "spoiled")
    spoil(store.root / "spoiled" / "classifier")
    store.activate("spoiled")
    return good


def test_live_router_routes_and_explains(store: RouterStore) -> None:
    router = manager(store)
    routed = asyncio.run(router.route(SQL))
    assert routed.version == store.current_version()
    assert routed.decision.model == "sql" and routed.decision.fallback_reason is None
    assert routed.latency_ms > 0


@pytest.mark.parametrize(
    "spoil",
    [
        lambda folder: (folder / "model_head.pkl").write_bytes(pickle.dumps(Boom())),
        lambda folder: (folder / "head.safetensors").write_bytes(b"\0" * 64),
        lambda folder: (folder / "manifest.json").unlink(),
        lambda folder: (folder / "classifier.json").write_text(json.dumps({"labels": ["x", "y"]})),
    ],
    ids=["pickle-head", "tampered-head", "no-manifest", "edited-labels"],
)
def test_refused_artifact_leaves_the_last_good_router_live(store: RouterStore, spoil) -> None:  # noqa: ANN001
    router = manager(store)
    good = router.live.version
    corrupt_copy(store, spoil)
    router.load_current()  # e.g. another replica pointed at it
    assert router.live.version == good
    assert asyncio.run(router.route(SQL)).version == good
    assert not Path("/tmp/lora-router-pwned").exists()


def test_service_starting_on_a_refused_artifact_has_no_router_and_falls_back(store: RouterStore) -> None:
    corrupt_copy(store, lambda folder: (folder / "model_head.pkl").write_bytes(pickle.dumps(Boom())))
    router = manager(store)
    assert router.live is None
    routed = asyncio.run(router.route(SQL))
    assert routed.decision.model == BASE
    assert routed.decision.fallback_reason == FallbackReason.NO_ROUTER


def test_a_classifier_exception_falls_back_instead_of_failing(
    store: RouterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = manager(store)

    def broken(_: object) -> None:
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(router.live.classifier, "predict_proba", broken)
    routed = asyncio.run(router.route(SQL))
    assert routed.decision.model == BASE
    assert routed.decision.fallback_reason == FallbackReason.CLASSIFIER_ERROR
    assert "encoder exploded" in routed.decision.detail
