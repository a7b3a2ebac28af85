"""Train the shipped default experts (sql, math, extract): seeded task data → `train_adapter` → a quick
greedy check against the base model with transformers, recorded in each model card.

This is the recipe behind ``router/defaults/experts/``. It runs anywhere `lora-router train-adapter` runs; on
a GPU it takes minutes, on a 2-core CPU hours. Usage::

    python scripts/train_default_experts.py --base-model .data/models/SmolLM2-135M-Instruct --out experts-out

The numbers it writes into the model cards come from transformers' ``generate`` on the task's eval split;
the README's table comes from `lora-router eval-experts` through the service.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experts.evaluation import MAX_TOKENS
from experts.formatting import ChatFormatter
from experts.tasks import TASKS, TaskExample, write_jsonl
from experts.training import AdapterTrainConfig, train_adapter

# Per task: training examples and epochs. math needs the most practice: the model has to carry digits.
RECIPE = {
    "sql": {"n_train": 6000, "epochs": 2.0},
    "math": {"n_train": 12000, "epochs": 2.0},
    "extract": {"n_train": 6000, "epochs": 2.0},
}


def greedy_scores(
    base_model: Path, adapter: Path | None, examples: list[TaskExample], *, batch_size: int = 64
) -> tuple[float, list[str]]:
    """Mean task score of greedy answers, with the adapter (or the base model alone when None)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    tokenizer.padding_side = "left"
    formatter = ChatFormatter(tokenizer)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=dtype).to(device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).to(device)
    model.eval()
    task = TASKS[examples[0].task]
    outputs: list[str] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        prompts = [formatter.prompt([{"role": "user", "content": e.prompt}]) for e in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                max_new_tokens=MAX_TOKENS[task.name],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new = generated[:, encoded["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    scores = [task.score(e, o) for e, o in zip(examples, outputs, strict=True)]
    return sum(scores) / len(scores), outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", default=",".join(RECIPE))
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every recipe's n_train.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    for name in args.tasks.split(","):
        recipe = RECIPE[name]
        started = time.perf_counter()
        data = write_jsonl(
            TASKS[name].examples("train", int(recipe["n_train"] * args.scale), seed=args.seed),
            args.out / f"{name}-train.jsonl",
        )
        config = AdapterTrainConfig(
            rank=args.rank,
            alpha=args.alpha,
            dropout=0.05,
            target_modules="all-linear",
            epochs=recipe["epochs"],
            learning_rate=args.lr,
            batch_size=args.batch_size,
            max_length=384,
            seed=args.seed,
        )
        folder = args.out / name
        card = train_adapter(args.base_model, data, folder, config, overwrite=True)
        eval_set = TASKS[name].examples("eval", args.n_eval, seed=args.seed)
        base_score, _ = greedy_scores(args.base_model, None, eval_set)
        expert_score, samples = greedy_scores(args.base_model, folder, eval_set)
        card.eval = {
            "how": "transformers generate, greedy, on the task's eval split (seed 0); the README's table "
            "is measured through the service with `lora-router eval-experts`",
            "n": len(eval_set),
            "base": round(base_score, 4),
            "expert": round(expert_score, 4),
        }
        card.write(folder)
        summary[name] = {
            **card.eval,
            "steps": card.steps,
            "final_loss": card.final_loss,
            "size_mb": round(card.size_bytes / 1e6, 2),
            "seconds": round(time.perf_counter() - started, 1),
            "samples": [[e.prompt, o] for e, o in zip(eval_set[:3], samples[:3], strict=True)],
        }
        print(json.dumps({name: summary[name]}), flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
