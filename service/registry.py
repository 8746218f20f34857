"""The models a server holds: loaded in the background at start-up, found by pair or name."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nmt.search import SearchConfig
from nmt.translator import Translation, Translator
from service.batcher import Batcher
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)


ATTENTION_DIGITS = 5  # in answers: 1e-5 is far below any difference a reader can use


def _rounded(matrix: list[list[float]] | None) -> list[list[float]] | None:
    """Attention weights to ``ATTENTION_DIGITS`` decimals: the JSON of the largest
    allowed request shrinks from ~20 to ~8 bytes a weight."""
    if matrix is None:
        return None
    return [[round(v, ATTENTION_DIGITS) for v in row] for row in matrix]


class UnknownModel(LookupError):
    """No loaded model matches the requested name or language pair."""


@dataclass
class ServedModel:
    """One loaded checkpoint and the queue in front of it."""

    name: str
    path: Path
    translator: Translator
    batcher: Batcher[list[int], SearchConfig, Translation]

    @property
    def source(self) -> str:
        return self.translator.loaded.src_lang

    @property
    def target(self) -> str:
        return self.translator.loaded.tgt_lang

    @property
    def device(self) -> str:
        return str(self.translator.device)


class ModelRegistry:
    """Loads every configured checkpoint and records, per model, why one failed."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.paths = settings.model_paths()
        self.models: dict[str, ServedModel] = {}
        self.failed: set[str] = set()  # why is in the log, not in any answer
        self.loading = True
        if not self.paths:
            log.error(
                "no models configured: pass --model NAME=CHECKPOINT, or set NMT_MODELS "
                "or NMT_MODEL_DIR"
            )

    @property
    def ready(self) -> bool:
        """Loading is over and every model (``ready_when: all``) or at least one
        (``any``: degraded, a bad file does not keep the replica out) is in."""
        if self.loading or not self.models:
            return False
        return self.settings.ready_when == "any" or not self.failed

    def states(self) -> dict[str, Literal["loading", "loaded", "failed"]]:
        """Every configured model's state, by name."""
        return {name: self._state(name) for name in self.paths}

    def _state(self, name: str) -> Literal["loading", "loaded", "failed"]:
        if name in self.models:
            return "loaded"
        return "failed" if name in self.failed else "loading"

    def stalled(self) -> list[str]:
        """Models whose decoding worker has been stuck longer than ``stall_seconds``."""
        limit = self.settings.stall_seconds
        return [n for n, m in self.models.items() if m.batcher.stalled_for() > limit]

    async def load_all(self) -> None:
        """Load the checkpoints one after another, each in a worker thread."""
        try:
            for name, path in self.paths.items():
                try:
                    translator = await asyncio.to_thread(
                        Translator.from_checkpoint,
                        path,
                        self.settings.device,
                        self.settings.quantize,
                        self.settings.precision,
                    )
                except Exception as err:  # any failure is reported, not raised
                    self.failed.add(name)
                    log.error("model %s failed to load from %s: %s", name, path, err)
                    continue
                self.models[name] = self._serve(name, path, translator)
                log.info(
                    "model %s (%s -> %s) loaded from %s on %s",
                    name,
                    translator.loaded.src_lang,
                    translator.loaded.tgt_lang,
                    path,
                    self.models[name].device,
                )
        finally:
            self.loading = False

    def _serve(self, name: str, path: Path, translator: Translator) -> ServedModel:
        s, metrics = self.settings, self.metrics

        def decode(sources: list[list[int]], cfg: SearchConfig) -> list[Translation]:
            results = translator.translate_ids(sources, cfg, batch_size=len(sources))
            for r in results:  # in the worker thread, so the event loop never waits on it
                r.attention = _rounded(r.attention)
                r.word_attention = _rounded(r.word_attention)
            metrics.source_tokens.labels(name).inc(sum(len(ids) for ids in sources))
            metrics.target_tokens.labels(name).inc(sum(len(r.target_tokens) + 1 for r in results))
            return results

        def on_batch(size: int, work: int, seconds: float) -> None:
            metrics.batch_size.labels(name).observe(size)
            metrics.decode_seconds.labels(name).observe(seconds)

        batching = s.batching(translator.device.type)
        batcher: Batcher[list[int], SearchConfig, Translation] = Batcher(
            decode,
            lambda ids, cfg: (len(ids) + 1) * cfg.beam_size,
            max_sentences=batching.max_sentences,
            max_cost=s.max_batch_work,
            max_wait_ms=s.max_wait_ms,
            queue_size=s.queue_size,
            workers=batching.workers,
            on_batch=on_batch,
        )
        batcher.start()
        metrics.queue_depth.labels(name).set_function(lambda: batcher.depth)
        return ServedModel(name, path, translator, batcher)

    def find(
        self, model: str | None = None, source: str | None = None, target: str | None = None
    ) -> ServedModel:
        """The model called ``model``, or else the one that translates ``source`` -> ``target``.

        Raises:
            UnknownModel: with a message listing what is available.
        """
        if model is not None:
            if model in self.models:
                return self.models[model]
            raise UnknownModel(f"unknown model {model!r}; available: {sorted(self.models)}")
        for served in self.models.values():
            if served.source == source and served.target == target:
                return served
        pairs = sorted(f"{m.source}-{m.target}" for m in self.models.values())
        raise UnknownModel(f"no model translates {source!r} to {target!r}; available: {pairs}")

    def sources_for(self, target: str) -> list[str]:
        """Source languages of the models that translate into ``target``."""
        return sorted({m.source for m in self.models.values() if m.target == target})

    def sources(self) -> list[str]:
        """Every language some model translates from."""
        return sorted({m.source for m in self.models.values()})

    def targets(self) -> list[str]:
        """Every language some model translates into."""
        return sorted({m.target for m in self.models.values()})

    async def close(self) -> None:
        for served in self.models.values():
            await served.batcher.close()
