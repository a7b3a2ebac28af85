"""Routing quality on a public benchmark: CLINC150 (150 crowd-written intents in 10 domains, plus
out-of-scope queries), its 10 domains standing for 10 adapters.

Few-shot training sets are drawn from the train split, routers are trained through the service's own code
(`IntentClassifier.train` with the settings' training options) and judged on the validation split under the
service's own policy (`decide`). The test split is not used here: it is kept for an evaluation the project
does not see.

Training sets, per domain:

- ``varied``: ``k`` examples spread over the domain's intents (each intent once before any twice), as an
  adapter's owner writing a few varied examples would; ``random``: ``k`` examples drawn at random (some of
  the domain's intents get none);
- ``sub-intents``: ``k`` examples of every intent, labelled ``<domain>/<intent>``.

Optionally ``none`` examples (out-of-scope queries of the train split) teach what no adapter answers.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from classifier import OUT_OF_SCOPE_LABEL, Example, IntentClassifier, TrainingConfig
from router.routing.policy import PolicyConfig, Turn, decide

OOS = "oos"
Draw = Literal["varied", "random", "sub-intents"]


@dataclass(frozen=True)
class Query:
    text: str
    intent: str
    domain: str


def load_split(folder: Path, split: str) -> list[Query]:
    """``train`` or ``val`` of the data set's JSON lines (text, intent, domain)."""
    path = folder / f"{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Query(r["text"], r["intent"], r["domain"]) for r in rows]


def draw_examples(train: list[Query], draw: Draw, k: int, seed: int, none: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    by_domain: dict[str, dict[str, list[Query]]] = {}
    for q in train:
        if q.domain != OOS:
            by_domain.setdefault(q.domain, {}).setdefault(q.intent, []).append(q)
    examples = []
    for domain, intents in sorted(by_domain.items()):
        if draw == "sub-intents":
            for intent, queries in sorted(intents.items()):
                picked = rng.choice(len(queries), k, replace=False)
                examples += [Example(queries[i].text, f"{domain}/{intent}") for i in picked]
        elif draw == "random":
            pool = [q for _, queries in sorted(intents.items()) for q in queries]
            examples += [Example(pool[i].text, domain) for i in rng.choice(len(pool), k, replace=False)]
        else:
            pools = {name: list(rng.permutation(len(qs))) for name, qs in sorted(intents.items())}
            chosen: list[Query] = []
            while len(chosen) < k:
                for name in rng.permutation(sorted(pools)):
                    if len(chosen) < k and pools[name]:
                        chosen.append(intents[name][pools[name].pop()])
            examples += [Example(q.text, domain) for q in chosen]
    if none:
        oos = [q for q in train if q.domain == OOS]
        examples += [
            Example(oos[i].text, OUT_OF_SCOPE_LABEL) for i in rng.choice(len(oos), none, replace=False)
        ]
    return examples


@dataclass
class RunResult:
    seed: int
    examples: int
    train_seconds: float
    accuracy: float
    """In-scope: the top adapter is the query's domain (whether or not the policy then falls back)."""
    routed_accuracy: float
    """In-scope: the policy sends the query to its domain's adapter (a fallback is wrong)."""
    fallback_rate: float
    """In-scope queries the policy sends to the fallback (any reason)."""
    oos_recall: float
    """Out-of-scope queries the policy sends to the fallback (any reason)."""
    fallback_reasons: dict[str, int]
    sub_intent_accuracy: float | None
    curve: list[tuple[float, float]] = field(default_factory=list)
    """(in-scope fallback rate, out-of-scope recall) as the similarity threshold moves, other rules as set."""


def evaluate(
    classifier: IntentClassifier, policy: PolicyConfig, queries: list[Query], domains: set[str]
) -> dict[str, Any]:
    texts = [q.text for q in queries]
    features = classifier.encode(texts)
    probabilities = classifier.head.predict_proba(features)
    similarity = classifier.head.similarity(features)
    labels = classifier.labels
    decisions = [
        decide(
            Turn(dict(zip(labels, p.tolist(), strict=True)), float(s)),
            policy,
            domains,
            oos_threshold=classifier.oos_threshold,
        )
        for p, s in zip(probabilities, similarity, strict=True)
    ]
    return {"decisions": decisions, "probabilities": probabilities, "similarity": similarity}


def run_once(
    train: list[Query],
    val: list[Query],
    *,
    draw: Draw,
    k: int,
    seed: int,
    none: int,
    config: TrainingConfig,
    policy: PolicyConfig,
) -> RunResult:
    examples = draw_examples(train, draw, k, seed, none)
    started = time.perf_counter()
    classifier = IntentClassifier.train(examples, config=config)
    seconds = time.perf_counter() - started
    domains = {q.domain for q in val if q.domain != OOS}
    scored = evaluate(classifier, policy, val, domains)
    decisions, similarity = scored["decisions"], scored["similarity"]
    inside = np.array([q.domain != OOS for q in val])
    top = np.array([max(d.target_scores, key=d.target_scores.__getitem__) for d in decisions])
    truth = np.array([q.domain for q in val])
    fell_back = np.array([d.fallback_reason is not None for d in decisions])
    answered = np.array([d.model for d in decisions])
    reasons: dict[str, int] = {}
    for d, is_inside in zip(decisions, inside, strict=True):
        if is_inside and d.fallback_reason:
            reasons[d.fallback_reason] = reasons.get(d.fallback_reason, 0) + 1
    sub_accuracy = None
    if draw == "sub-intents":
        best = np.array(classifier.labels)[scored["probabilities"].argmax(axis=1)]
        wanted = np.array([f"{q.domain}/{q.intent}" for q in val])
        sub_accuracy = float((best == wanted)[inside].mean())
    # Other fallbacks stay as the policy made them; the similarity rule alone moves along the curve.
    others = fell_back & ~np.array([d.fallback_reason == "out_of_scope" for d in decisions])
    curve = []
    for q in np.linspace(0.0, 0.5, 26):
        threshold = np.quantile(similarity[inside], q)
        caught = others | (similarity < threshold)
        curve.append((round(float(caught[inside].mean()), 4), round(float(caught[~inside].mean()), 4)))
    return RunResult(
        seed=seed,
        examples=len(examples),
        train_seconds=round(seconds, 2),
        accuracy=float((top == truth)[inside].mean()),
        routed_accuracy=float((answered == truth)[inside].mean()),
        fallback_rate=float(fell_back[inside].mean()),
        oos_recall=float(fell_back[~inside].mean()),
        fallback_reasons=reasons,
        sub_intent_accuracy=sub_accuracy,
        curve=curve,
    )


def mean_sd(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
    }


def summarize(runs: list[RunResult]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        name: mean_sd([getattr(r, name) for r in runs])
        for name in ("accuracy", "routed_accuracy", "fallback_rate", "oos_recall", "train_seconds")
    }
    if runs[0].sub_intent_accuracy is not None:
        summary["sub_intent_accuracy"] = mean_sd([r.sub_intent_accuracy or 0.0 for r in runs])
    points = np.array([r.curve for r in runs])  # runs × points × 2
    summary["curve"] = [[round(float(x), 4), round(float(y), 4)] for x, y in points.mean(axis=0)]
    return summary


def run_benchmark(
    data: Path,
    settings_config: TrainingConfig,
    policy: PolicyConfig,
    setups: list[tuple[Draw, int, int]],
    seeds: int,
    on_run: Callable[[str], None] = lambda label: None,
) -> dict[str, Any]:
    """Each setup (draw, k, none examples) over ``seeds`` seeds; the shipped training and policy settings."""
    train, val = load_split(data, "train"), load_split(data, "val")
    rows = []
    for draw, k, none in setups:
        runs = []
        for seed in range(seeds):
            on_run(f"{draw} k={k} none={none} seed={seed}")
            runs.append(
                run_once(
                    train, val, draw=draw, k=k, seed=seed, none=none, config=settings_config, policy=policy
                )
            )
        rows.append(
            {
                "draw": draw,
                "k": k,
                "none_examples": none,
                "examples": runs[0].examples,
                **summarize(runs),
                "runs": [{key: value for key, value in vars(r).items() if key != "curve"} for r in runs],
            }
        )
    return {
        "data": "CLINC150 train (training sets) and validation (evaluation) splits",
        "validation": {
            "in_scope": sum(q.domain != OOS for q in val),
            "out_of_scope": sum(q.domain == OOS for q in val),
        },
        "policy": {
            "threshold": policy.threshold,
            "min_margin": policy.min_margin,
            "out_of_scope": policy.out_of_scope,
        },
        "training": {
            "finetune": settings_config.finetune,
            "body_layers": settings_config.body_layers,
            "oos_quantile": settings_config.oos_quantile,
        },
        "seeds": seeds,
        "rows": rows,
    }


def save_curve_png(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for row in result["rows"]:
        xs, ys = zip(*row["curve"], strict=True)
        label = f"{row['draw']}, k={row['k']}" + (
            f", {row['none_examples']} none" if row["none_examples"] else ""
        )
        line = ax.plot(xs, ys, label=label)[0]
        ax.scatter(
            [row["fallback_rate"]["mean"]], [row["oos_recall"]["mean"]], color=line.get_color(), zorder=3
        )
    ax.axvline(0.10, color="grey", lw=0.8, ls="--")
    ax.axhline(0.60, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("in-scope messages falling back")
    ax.set_ylabel("out-of-scope messages caught")
    ax.set_title("CLINC150 validation: abstaining (dots: shipped settings)")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
