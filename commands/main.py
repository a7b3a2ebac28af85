"""``lora-router``: one entry point for serving and the jobs around it. Each command group lives in its own
module (service, router, experts, chat, bench); heavy imports stay inside the commands."""

from __future__ import annotations

import typer

from commands import chat, experts, router, service
from commands.bench.cli import app as bench_app

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Serve one base LLM with many LoRA experts."
)

# In the order `lora-router --help` lists them.
for name, command in (
    ("prepare", service.prepare),
    ("train-router", router.train_router),
    ("eval-router", router.eval_router),
    ("generate-data", experts.generate_data),
    ("train-adapter", experts.train_adapter),
    ("api-key", service.api_key),
    ("chat", chat.chat),
    ("merge", experts.merge),
    ("eval-experts", experts.eval_experts),
    ("serve", service.serve),
    ("replica", service.replica),
    ("eval-merged", experts.eval_merged),
    ("eval-blend", experts.eval_blend),
):
    app.command(name)(command)
app.add_typer(bench_app, name="bench")
