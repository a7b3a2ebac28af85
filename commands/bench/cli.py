"""`lora-router bench`: the benchmark commands, gathered from the modules that define them."""

from __future__ import annotations

import typer

from commands.bench import cli_engine, cli_routing, cli_service

app = typer.Typer(no_args_is_help=True, help="Benchmarks: each prints a table and writes JSON.")

# In the order `lora-router bench --help` lists them.
for name, command in (
    ("load", cli_service.bench_load),
    ("router", cli_routing.bench_router),
    ("routing-quality", cli_routing.bench_routing_quality),
    ("serve", cli_service.bench_serve),
    ("replicas", cli_service.bench_replicas),
    ("relay", cli_service.bench_relay),
    ("cold", cli_service.bench_cold),
    ("engine", cli_engine.bench_engine),
    ("lora-ops", cli_engine.bench_lora_ops),
    ("hotswap", cli_engine.bench_hotswap),
    ("compare", cli_engine.bench_compare),
):
    app.command(name)(command)
