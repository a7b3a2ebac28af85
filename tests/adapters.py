"""Real PEFT LoRA adapters on the real base model, made for the tests (random weights, so greedy output
differs from the base model's; trained experts come from `lora-router train-adapter`, not from here)."""

from commands.bench.fixtures import DEFAULT_TARGETS, make_lora_adapter

__all__ = ["DEFAULT_TARGETS", "make_lora_adapter"]
