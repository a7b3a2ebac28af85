"""LoRA experts: task data, adapter training, merging and evaluation."""
