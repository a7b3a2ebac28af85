"""Router artifacts on disk: a router whose files were tampered with, or that carries a pickle, is refused
and the last good router keeps serving."""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
from pathlib import Path

import pytest

from classifier import Example
from router.protocol import ChatMessage
from router.routing.manager import RouterManager
from router.routing.policy import FallbackReason, PolicyConfig
from router.routing.store import RouterStore
from tests.classifier.artifacts import resign

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

    monkeypatch.setattr(router.live.classifier, "classify", broken)
    routed = asyncio.run(router.route(SQL))
    assert routed.decision.model == BASE
    assert routed.decision.fallback_reason == FallbackReason.CLASSIFIER_ERROR
    assert "encoder exploded" in routed.decision.detail


class FullDisk(RouterStore):
    """A store whose disk is full: saving fails after training succeeded."""

    def save(self, classifier: object, examples: object) -> str:  # type: ignore[override]
        raise OSError(28, "No space left on device")


def test_a_failed_training_leaves_the_live_router_in_place(store: RouterStore) -> None:
    router = manager(FullDisk(store.root))
    good = router.live
    with pytest.raises(OSError, match="No space left"):
        asyncio.run(router.train([*good.examples, Example("sum the squares of 1 to 10", "math")]))
    assert router.live is good and router.training.last_error and not router.training.running
    assert asyncio.run(router.route(SQL)).version == good.version


def test_retraining_encodes_only_new_examples(store: RouterStore) -> None:
    router = manager(store)
    before = router.live
    asyncio.run(router.train([*before.examples, Example("what is the cube root of 27", "math")]))
    after = router.live
    assert after.version != before.version and after.classifier.metadata["encoded"] == 1
    assert asyncio.run(router.route(SQL)).version == after.version


def test_a_router_saved_in_an_older_format_is_retrained_at_start(store: RouterStore) -> None:
    version = store.current_version()
    config_path = store.folder(version) / "classifier" / "classifier.json"
    config = json.loads(config_path.read_text())
    config["format_version"] = 1
    config_path.write_text(json.dumps(config))
    resign(config_path.parent)
    router = manager(store)
    assert router.live is not None and router.live.version not in (None, version)
    assert store.current_version() == router.live.version
    assert router.live.examples == store.examples(version)
    assert asyncio.run(router.route(SQL)).decision.model == "sql"


def test_conversation_turns_are_classified_once_and_held_by_stickiness(store: RouterStore) -> None:
    config = PolicyConfig(0.4, 0.1, BASE, BASE, route_map={"chat": BASE}, sticky_margin=0.3)
    router = RouterManager(store, config, adapters=lambda: {"sql", "math", "extract"})
    router.load_current()
    first = ChatMessage(role="user", content="Write a SQL query listing every customer who ordered twice")
    conversation = [
        first,
        ChatMessage(role="assistant", content="SELECT ..."),
        ChatMessage(role="user", content="ok"),
    ]
    assert router.texts_to_classify(conversation) == [first.text, "ok"]
    routed = asyncio.run(router.route(conversation))
    assert (routed.decision.model, routed.decision.sticky) == ("sql", True)
    assert len(router._turns) == 2  # both turns cached: the next request classifies only its new turn
