"""The `lora-router` command and the tools around the service: benchmarks, terminal chat, launchers."""
