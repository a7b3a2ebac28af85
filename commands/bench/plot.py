"""The engine scenarios as one picture: output tokens/s against the number of adapters mixed, per
concurrency, for vLLM's multi-LoRA batching (solid) and the hot-swap baseline (dashed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def compare(engine: dict[str, Any], hotswap: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows present in both results, with the throughput ratio vLLM / hot-swap."""
    swapped = {(r["adapters"], r["concurrency"]): r for r in hotswap["rows"]}
    # A stream the baseline served one request per batch (every run of one adapter is one request long)
    # takes as long at any concurrency: that row stands for all of them.
    unbatched = {r["adapters"]: r for r in hotswap["rows"] if r["batches"] == r["requests"]}
    rows = []
    for row in engine["rows"]:
        other = swapped.get((row["adapters"], row["concurrency"])) or unbatched.get(row["adapters"])
        if other is not None:
            rows.append(
                {
                    "adapters": row["adapters"],
                    "concurrency": row["concurrency"],
                    "vllm_tokens_per_s": row["output_tokens_per_s"],
                    "hotswap_tokens_per_s": other["output_tokens_per_s"],
                    "vllm_over_hotswap": round(row["output_tokens_per_s"] / other["output_tokens_per_s"], 2),
                }
            )
    return rows


def save_plot(engine: dict[str, Any], hotswap: dict[str, Any] | None, path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    results = [r for r in (engine, hotswap) if r is not None]
    counts = sorted({row["adapters"] for result in results for row in result["rows"]})
    position = {n: i for i, n in enumerate(counts)}
    for result, style, name in ((engine, "-o", "vLLM multi-LoRA"), (hotswap, "--s", "hot-swap (PEFT)")):
        if result is None:
            continue
        for concurrency in sorted({r["concurrency"] for r in result["rows"]}):
            rows = sorted(
                (r for r in result["rows"] if r["concurrency"] == concurrency), key=lambda r: r["adapters"]
            )
            ax.plot(
                [position[r["adapters"]] for r in rows],
                [r["output_tokens_per_s"] for r in rows],
                style,
                label=f"{name}, concurrency {concurrency}",
            )
    ax.set_xticks(range(len(counts)), ["base" if n == 0 else str(n) for n in counts])
    ax.set_xlabel("adapters mixed in the stream")
    ax.set_ylabel("output tokens/s")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
