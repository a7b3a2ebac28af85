"""The live router: classify a conversation, decide, and retrain at runtime without disturbing traffic.

Requests read the live router once, through a single reference; a retrain builds, validates and saves a
new one off the event loop and replaces that reference only at the end. So a request is always routed by
one whole router, old or new, and a failed retrain leaves the old one serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from classifier import (
    ArtifactError,
    ArtifactFormatError,
    Classification,
    Example,
    IntentClassifier,
    TrainingDataError,
)
from router.errors import RouterBusyError, TrainingRejectedError
from router.protocol import ChatMessage
from router.routing.policy import (
    Decision,
    FallbackReason,
    PolicyConfig,
    Turn,
    decide_conversation,
    fallback,
    unmapped_labels,
)
from router.routing.store import RouterVersionStore
from router.routing.training import TrainingOptions, train_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveRouter:
    classifier: IntentClassifier
    version: str
    examples: list[Example]
    activated_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Routed:
    decision: Decision
    version: str | None
    latency_ms: float


@dataclass
class TrainingStatus:
    running: bool = False
    progress: float = 0.0
    started_at: float | None = None
    last_error: str | None = None


# Classifications of recent user turns: in a conversation, every request repeats the turns before its last.
CACHED_TURNS = 4096


class RouterManager:
    def __init__(
        self,
        store: RouterVersionStore,
        config: PolicyConfig,
        adapters: Callable[[], set[str]],
        *,
        context_turns: int = 1,
        sticky_turns: int = 4,
        training: TrainingOptions | None = None,
    ) -> None:
        self._store = store
        self.config = config
        self._adapters = adapters
        self._context_turns = context_turns
        self._sticky_turns = sticky_turns
        self.training_options = training or TrainingOptions()
        self._turns: OrderedDict[tuple[str, str], Classification] = OrderedDict()
        self._live: LiveRouter | None = None
        # A version `sync` found unloadable: not downloaded and verified again every round.
        self._refused: str | None = None
        self._store_unreachable = False
        self._train_lock = asyncio.Lock()
        self.training = TrainingStatus()

    @property
    def sticky_turns(self) -> int:
        return self._sticky_turns

    @property
    def live(self) -> LiveRouter | None:
        return self._live

    def load_current(self) -> None:
        """Load the version the pointer names; a bad artifact is logged and leaves what is live in place."""
        version = self._store.current_version()
        if version is None:
            logger.warning("no router trained yet: `auto` answers with %s", self.config.fallback)
            return
        try:
            classifier, examples = self._store.load(version)
        except ArtifactFormatError as exc:
            logger.warning("router %s: %s; retraining it from its examples", version, exc)
            try:
                self._go_live(self._retrain_in_place(version))
            except Exception:
                logger.exception("router %s could not be retrained; `auto` falls back until it is", version)
            return
        except Exception:
            logger.exception("router %s could not be loaded; keeping the live router", version)
            return
        self._go_live(LiveRouter(classifier, version, examples))

    def _retrain_in_place(self, version: str) -> LiveRouter:
        """The same examples, trained by this code: routers saved by an older release come back at start-up
        (training takes seconds) instead of leaving `auto` without a router."""
        examples = self._store.examples(version)
        new_version, _ = train_version(self._store, examples, self.training_options)
        return self._activate(new_version, examples)

    def _activate(self, version: str, examples: list[Example]) -> LiveRouter:
        # What goes live is the saved, verified artifact (with its ONNX body), as after a restart.
        classifier, _ = self._store.load(version)
        self._store.activate(version)
        return LiveRouter(classifier, version, examples)

    async def sync(self) -> bool:
        """Swap in the version the store names live if another replica changed it; True when it swapped.

        A version that fails to load is logged and the live router keeps serving.
        """
        live = self._live
        try:
            version = await asyncio.to_thread(self._store.current_version)
        except Exception as exc:
            # Once per outage, not once per poll.
            if not self._store_unreachable:
                logger.error("could not read which router is live (%s); keeping the live router", exc)
            self._store_unreachable = True
            return False
        if self._store_unreachable:
            logger.info("the router store answers again")
            self._store_unreachable = False
        if version is None or version == self._refused or (live is not None and live.version == version):
            return False
        try:
            classifier, examples = await asyncio.to_thread(self._store.load, version)
        except ArtifactError:
            logger.exception("router %s is refused; keeping the live router", version)
            self._refused = version
            return False
        except Exception:
            logger.exception("router %s could not be loaded; keeping the live router", version)
            return False
        if self._live is not live:  # a retrain here swapped in meanwhile, and made its router the live one
            return False
        self._go_live(LiveRouter(classifier, version, examples))
        return True

    def _go_live(self, live: LiveRouter) -> None:
        self._live = live
        missing = unmapped_labels(live.classifier.labels, self.config, self._adapters())
        if missing:
            logger.warning("labels without a registered adapter fall back for now: %s", ", ".join(missing))
        logger.info("router %s loaded with labels %s", live.version, ", ".join(live.classifier.labels))

    def texts_to_classify(self, messages: Sequence[ChatMessage]) -> list[str]:
        """One text per user turn the decision looks at (the last ``sticky_turns``, oldest first), each the
        turn joined with the ``context_turns - 1`` user turns before it."""
        user_turns = [m.text for m in messages if m.role == "user"]
        last = range(max(0, len(user_turns) - self._sticky_turns), len(user_turns))
        return ["\n".join(user_turns[max(0, i + 1 - self._context_turns) : i + 1]) for i in last]

    async def route(self, messages: Sequence[ChatMessage]) -> Routed:
        live = self._live  # one read: this request is routed by one whole router
        started = time.perf_counter()
        if live is None:
            decision = fallback(self.config, FallbackReason.NO_ROUTER, "no router is trained yet")
            return Routed(decision, None, 0.0)
        texts = self.texts_to_classify(messages)
        try:
            classifications = await self._classify(live, texts)
            turns = [Turn.of(live.classifier.labels, c) for c in classifications]
            decision = decide_conversation(
                turns, self.config, self._adapters(), oos_threshold=live.classifier.oos_threshold
            )
        except Exception as exc:
            logger.exception("classifier failed; falling back")
            decision = fallback(self.config, FallbackReason.CLASSIFIER_ERROR, f"classifier error: {exc}")
        return Routed(decision, live.version, (time.perf_counter() - started) * 1000)

    async def _classify(self, live: LiveRouter, texts: list[str]) -> list[Classification]:
        """Each text's classification; earlier turns come from the cache of recent ones."""
        cached = {text: self._turns.get((live.version, text)) for text in texts}
        known = {text: found for text, found in cached.items() if found is not None}
        missing = [text for text in cached if text not in known]
        if missing:
            # Off the event loop: the encoder releases the GIL, so other requests keep streaming meanwhile.
            fresh = await asyncio.to_thread(lambda: [live.classifier.classify(text) for text in missing])
            for text, classification in zip(missing, fresh, strict=True):
                known[text] = classification
                self._turns[(live.version, text)] = classification
            while len(self._turns) > CACHED_TURNS:
                self._turns.popitem(last=False)
        return [known[text] for text in texts]

    def training_set(self, submitted: list[Example], *, replace: bool) -> list[Example]:
        """The live router's examples (unless replaced), the submitted ones, and registered adapters' own."""
        base = [] if replace or self._live is None else self._live.examples
        return list(dict.fromkeys([*base, *submitted]))

    async def train(self, examples: list[Example]) -> LiveRouter:
        """Train, validate, save and swap in a new router; 409 while another training runs."""
        if self._train_lock.locked():
            raise RouterBusyError("a router is already being trained; try again when it has finished")
        async with self._train_lock:
            self.training = TrainingStatus(running=True, started_at=time.time())
            try:
                return await self._train(examples)
            except Exception as exc:
                self.training.last_error = str(exc)
                raise
            finally:
                self.training.running = False

    async def _train(self, examples: list[Example]) -> LiveRouter:
        def progress(fraction: float) -> None:
            self.training.progress = fraction

        started = time.perf_counter()
        current = self._live
        try:
            version, _ = await asyncio.to_thread(
                train_version,
                self._store,
                examples,
                self.training_options,
                warm_start=current.classifier if current else None,
                on_progress=progress,
                check_labels=self._check_labels,
            )
        except TrainingDataError as exc:
            raise TrainingRejectedError(exc.message, param=exc.param) from exc
        live = await asyncio.to_thread(self._activate, version, examples)
        self._live = live
        logger.info(
            "router %s trained on %d examples in %.1fs and swapped in",
            version,
            len(examples),
            time.perf_counter() - started,
        )
        return live

    def _check_labels(self, labels: list[str]) -> None:
        missing = unmapped_labels(labels, self.config, self._adapters())
        if missing:
            raise TrainingRejectedError(
                f"labels without an adapter: {', '.join(missing)}. Register an adapter with that name, or "
                "map the label to a model with LORA_ROUTER_ROUTE_MAP",
                param="examples",
            )
