"""`auto` blending the top two adapters under the margin: the live router, the registry, the shipped experts
and the composites written for them, all real; only the engine is not involved."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from lora_registry import AdapterRegistry, BaseModelInfo, SqliteAdapterStore
from lora_registry.composite import COMPOSITIONS_FOLDER
from router.default_experts import install_default_experts
from router.protocol import ChatMessage
from router.routing.compositions import Compositions
from router.routing.manager import RouterManager
from router.routing.policy import FallbackReason, PolicyConfig
from router.routing.resolver import ModelResolver, Target
from router.routing.store import RouterStore

MESSAGES = [
    "List the five most expensive products with a query",
    "A shop sells 12 boxes of 8 pens; how many pens is that?",
    "Extract the name and date: Anna Berg booked a table for May 3",
    "How many orders did each customer place, and what is the average per customer?",
    "Pull the total out of this: 3 items at 4.50 each",
]


def resolve_all(
    tmp_path: Path, base_model_dir: Path, default_router_dir: Path, *, max_rank: int
) -> list[Target]:
    base = BaseModelInfo.from_folder(base_model_dir, base_model_dir.name)
    root = tmp_path / "adapters"
    registry = AdapterRegistry(
        SqliteAdapterStore(tmp_path / "registry.sqlite3"),
        adapter_root=root,
        base=base,
        max_rank=max_rank,
        reserved_names={base.name},
    )
    install_default_experts(registry, root)
    shutil.copytree(default_router_dir, tmp_path / "routers")
    # A margin no two targets can clear: every routed message is "ambiguous", so each one whose top two
    # targets are adapters is blended and the others fall back.
    config = PolicyConfig(0.0, 1.01, base.name, base.name, route_map={"chat": base.name}, blend=True)
    router = RouterManager(RouterStore(tmp_path / "routers"), config, adapters=lambda: set(registry.names()))
    router.load_current()
    compositions = Compositions(root / COMPOSITIONS_FOLDER, base_model=base.name, max_rank=max_rank)
    resolver = ModelResolver(registry, router, compositions, base.name)

    async def resolve() -> list[Target]:
        return [await resolver.resolve("auto", [ChatMessage(role="user", content=m)]) for m in MESSAGES]

    return asyncio.run(resolve())


def test_auto_blends_the_top_two_adapters_by_their_scores_where_it_cannot_pick(
    tmp_path: Path, base_model_dir: Path, default_router_dir: Path
) -> None:
    targets = resolve_all(tmp_path, base_model_dir, default_router_dir, max_rank=32)
    blended = [t for t in targets if t.routing.mode == "blend"]
    assert blended, [t.routing.detail for t in targets]
    for target in targets:
        routing = target.routing
        ranked = sorted(routing.adapter_scores.items(), key=lambda item: item[1], reverse=True)
        (first, first_score), (second, second_score) = ranked[:2]
        if routing.mode != "blend":  # the base model is one of the top two: the fallback, as without blend
            assert routing.mode == "auto" and target.model_name in (first, second)
            assert target.adapter is None and routing.fallback_reason == FallbackReason.AMBIGUOUS
            continue
        weight = round(20 * first_score / (first_score + second_score)) / 20
        assert routing.composition == {first: weight, second: round(1 - weight, 10)}
        assert routing.fallback_reason is None and "blended" in routing.detail
        assert target.adapter is not None and target.adapter.name == routing.model == target.model_name
        recipe = json.loads((target.adapter.path / "composition.json").read_text())
        # A part whose share rounds to 0 (a confident message under this margin) is left out.
        weighed = [name for name in (first, second) if routing.composition[name] > 0]
        assert [part["adapter"] for part in recipe] == weighed and target.adapter.rank == 16 * len(weighed)
    assert any(
        len(t.routing.composition or ()) == 2 and 0 not in t.routing.composition.values() for t in blended
    )


def test_a_blend_the_engine_cannot_hold_falls_back_as_unsure(
    tmp_path: Path, base_model_dir: Path, default_router_dir: Path
) -> None:
    # Two rank-16 experts need rank 32.
    targets = resolve_all(tmp_path, base_model_dir, default_router_dir, max_rank=16)
    refused = [t for t in targets if "the blend could not be served" in (t.routing.detail or "")]
    assert refused
    for target in refused:
        assert target.routing.mode == "auto" and target.adapter is None
        assert target.routing.fallback_reason == FallbackReason.AMBIGUOUS
    # Only blends of one weighed part (the other's share rounded to 0) fit rank 16.
    assert all(len([w for w in (t.routing.composition or {}).values() if w]) <= 1 for t in targets)
