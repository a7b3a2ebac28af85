"""``/v1/models``: the base model, the virtual ``auto`` model, and every registered adapter."""

from __future__ import annotations

import time

from lora_registry import AdapterRegistry
from router.protocol import ModelCard, ModelList
from router.settings import AUTO_MODEL


class ModelsServing:
    def __init__(self, registry: AdapterRegistry, base_model_name: str) -> None:
        self._registry = registry
        self._base = base_model_name
        self._started = int(time.time())

    def list(self) -> ModelList:
        cards = [
            ModelCard(id=self._base, created=self._started, root=self._base),
            ModelCard(
                id=AUTO_MODEL,
                created=self._started,
                root=self._base,
                parent=self._base,
                description="Routes each message to the best adapter.",
            ),
        ]
        cards += [
            ModelCard(
                id=spec.name,
                created=spec.created_at,
                root=str(spec.path),
                parent=self._base,
                description=spec.description or None,
                system_prompt=spec.defaults.system_prompt,
                composition=spec.composition,
            )
            for spec in self._registry.list()
        ]
        return ModelList(data=cards)
