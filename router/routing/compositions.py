"""Compositions requested by ``model`` (``"sql:0.7+extract:0.3"``), each written once as one adapter.

The first request for a composition writes it under the adapter root (off the event loop; a second request
for it meanwhile waits for the same write), later ones find it in memory. It gets an engine id of its own,
derived from its content, so the engine batches it with every other adapter; unregistering a part drops the
compositions made from it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from lora_registry import AdapterSpec, ComposePart
from lora_registry.composite import CompositePlan, plan_composite
from lora_registry.composition import composition_name

logger = logging.getLogger(__name__)

# Above every registry id (SQLite and PostgreSQL count from 1) and below the identity adapter's (2**31 - 1).
FIRST_ID = 2**30
ID_SPAN = 2**30 - 1

Key = tuple[tuple[int, float], ...]
"""(part's registry id, weight) per part: ids are never reused, so a key names one content."""


class Compositions:
    def __init__(self, folder: Path, *, base_model: str, max_rank: int) -> None:
        self.folder = folder
        self.base_model = base_model
        self.max_rank = max_rank
        self._made: dict[Key, AdapterSpec] = {}
        self._writing: dict[Key, asyncio.Task[AdapterSpec]] = {}
        self._contents: dict[int, str] = {}  # engine id -> content key

    async def get(self, parts: Sequence[ComposePart], specs: Sequence[AdapterSpec]) -> AdapterSpec:
        """The composite of ``specs`` weighed as ``parts`` say; raises CompositionError when it cannot be
        served."""
        key: Key = tuple((spec.id, part.weight) for part, spec in zip(parts, specs, strict=True))
        if (made := self._made.get(key)) is not None:
            return made
        # Checked here, so a composition that cannot be served is refused before anything is written.
        plan = plan_composite(parts, specs, base_model=self.base_model, max_rank=self.max_rank)
        task = self._writing.get(key)
        if task is None:
            task = self._writing[key] = asyncio.create_task(self._make(key, parts, plan))
            task.add_done_callback(lambda _: self._writing.pop(key, None))
        # Shielded: a client that goes away does not cancel the write others wait for.
        return await asyncio.shield(task)

    def forget(self, adapter_id: int) -> list[AdapterSpec]:
        """Drop the compositions made from the adapter ``adapter_id``; returns them, for the engine to unload
        (and `remove_files` to delete once it has)."""
        gone = [key for key in self._made if any(part_id == adapter_id for part_id, _ in key)]
        return [self._made.pop(key) for key in gone]

    def remove_files(self, composite: AdapterSpec, registered: Collection[AdapterSpec]) -> None:
        """Delete a dropped composite's folder unless a composition still made, or ``registered``, uses it
        (equal content, equal folder)."""
        if any(spec.path == composite.path for spec in (*self._made.values(), *registered)):
            return
        self._contents.pop(composite.id, None)
        shutil.rmtree(composite.path, ignore_errors=True)

    async def _make(self, key: Key, parts: Sequence[ComposePart], plan: CompositePlan) -> AdapterSpec:
        started = time.perf_counter()
        path = await asyncio.to_thread(plan.write, self.folder)
        size = await asyncio.to_thread(lambda: sum(f.stat().st_size for f in path.iterdir()))
        weighted, rank = plan.parts, plan.rank
        # The part with the largest weight lends its generation defaults (system prompt, stop, format).
        lead = max(weighted, key=lambda part: part.weight).spec
        spec = AdapterSpec(
            # The folder is named by the content's digest.
            id=self._engine_id(path.name),
            name=composition_name(parts),
            path=path,
            base_model=self.base_model,
            rank=rank,
            alpha=float(rank),
            target_modules=sorted({m for part in weighted for m in part.spec.target_modules}),
            size_bytes=size,
            description=f"composition of {', '.join(f'{p.adapter} ({p.weight:g})' for p in parts)}",
            defaults=lead.defaults,
            created_at=int(time.time()),
        )
        self._made[key] = spec
        logger.info(
            "composition %s written as rank %d (id %d) in %.2f s",
            spec.name,
            rank,
            spec.id,
            time.perf_counter() - started,
        )
        return spec

    def _engine_id(self, content: str) -> int:
        """An id derived from the content, so routers sharing remote replicas name the same composite alike;
        probing past one taken by another content."""
        candidate = FIRST_ID + int(content[:15], 16) % ID_SPAN
        while self._contents.get(candidate, content) != content:
            candidate = FIRST_ID + (candidate - FIRST_ID + 1) % ID_SPAN
        self._contents[candidate] = content
        return candidate
