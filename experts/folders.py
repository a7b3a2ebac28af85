"""The PEFT adapter folder's file names, and the key of a LoRA factor in its weights."""

from __future__ import annotations

import re

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Written beside a composite adapter (lora_registry.composite): its parts' folders and weights.
COMPOSITION_RECIPE = "composition.json"
LORA_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")
