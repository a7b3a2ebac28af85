"""Router endpoints: explain a decision without generating, show the live router, retrain it at runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

from classifier import Example, load_examples
from lora_registry import AdapterRegistry
from router.errors import InvalidRequestError, RouterUnavailableError
from router.protocol import (
    LabelScore,
    PolicyScore,
    RouteRequest,
    RouterEvalRequest,
    RouterEvaluation,
    RouterExamples,
    RouterInfo,
    RouterTrainRequest,
    RoutingInfo,
    TrainingExample,
)
from router.routing.evaluation import evaluate_router
from router.routing.manager import RouterManager
from router.routing.resolver import ModelResolver


class RoutingServing:
    def __init__(
        self, router: RouterManager, resolver: ModelResolver, registry: AdapterRegistry, heldout: Path
    ) -> None:
        self._router = router
        self._resolver = resolver
        self._registry = registry
        self._heldout = heldout

    async def route(self, request: RouteRequest) -> RoutingInfo:
        return (await self._resolver.route(request.conversation)).routing

    def info(self) -> RouterInfo:
        live, config, training = self._router.live, self._router.config, self._router.training
        labels = live.classifier.labels if live else []
        return RouterInfo(
            version=live.version if live else None,
            labels=labels,
            route_map={label: config.target_of(label) for label in labels},
            fallback=config.fallback,
            threshold=config.threshold,
            min_margin=config.min_margin,
            out_of_scope=config.out_of_scope,
            oos_threshold=live.classifier.oos_threshold if live else None,
            oos_quantile=self._router.training_options.classifier.oos_quantile,
            sticky_margin=config.sticky_margin,
            sticky_turns=self._router.sticky_turns,
            calibration_temperature=live.classifier.head.calibration if live else None,
            num_examples=len(live.examples) if live else 0,
            activated_at=int(live.activated_at) if live else None,
            training=training.running,
            training_progress=training.progress,
            last_training_error=training.last_error,
        )

    def examples(self) -> RouterExamples:
        live = self._router.live
        data = [TrainingExample(text=e.text, label=e.label) for e in live.examples] if live else []
        return RouterExamples(version=live.version if live else None, data=data)

    async def train(self, request: RouterTrainRequest) -> RouterInfo:
        submitted = [Example(text=e.text, label=e.label) for e in request.examples]
        # Utterances registered with an adapter belong to its name's label, or to its sub-intents' labels.
        from_adapters = [
            Example(text=text, label=label)
            for spec in self._registry.list()
            for label, text in spec.labelled_examples()
        ]
        examples = self._router.training_set([*submitted, *from_adapters], replace=request.mode == "replace")
        await self._router.train(examples)
        return self.info()

    async def evaluate(self, request: RouterEvalRequest) -> RouterEvaluation:
        live = self._router.live  # one read: the whole evaluation is of one router
        if live is None:
            raise RouterUnavailableError("no router is trained yet; train one first")
        examples = [Example(text=e.text, label=e.label) for e in request.examples]
        if request.heldout:
            examples += await asyncio.to_thread(load_examples, self._heldout)
        if not examples:
            raise InvalidRequestError(
                "nothing to evaluate: send examples or leave heldout on", param="examples"
            )
        limit = self._router.training_options.max_examples
        if len(examples) > limit:
            raise InvalidRequestError(f"at most {limit} examples are evaluated at once", param="examples")
        config = self._router.config
        report = await asyncio.to_thread(
            evaluate_router, live.classifier, examples, config, set(self._registry.names())
        )
        metrics = report.classifier
        return RouterEvaluation(
            version=live.version,
            count=metrics.count,
            accuracy=metrics.accuracy,
            macro_f1=metrics.macro_f1,
            labels=metrics.labels,
            confusion=metrics.confusion,
            per_label=[LabelScore(**vars(m)) for m in metrics.per_label],
            fallback_label=config.fallback_label(),
            policy=PolicyScore(**vars(report.policy)),
        )
