"""The models a server holds: loaded in the background at start-up, found by pair or name."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from nmt.search import SearchConfig
from nmt.translator import Translation, Translator
from service.batcher import Batcher
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)


class UnknownModel(LookupError):
    """No loaded model matches the requested name or language pair."""


@dataclass
class ServedModel:
    """One loaded checkpoint and the queue in front of it."""

    name: str
    path: Path
    translator: Translator
    batcher: Batcher[SearchConfig, Translation]

    @property
    def source(self) -> str:
        return self.translator.loaded.src_lang

    @property
    def target(self) -> str:
        return self.translator.loaded.tgt_lang

    @property
    def device(self) -> str:
        return str(next(self.translator.model.parameters()).device)


class ModelRegistry:
    """Loads every configured checkpoint and records, per model, why one failed."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.paths = settings.model_paths()
        self.models: dict[str, ServedModel] = {}
        self.errors: dict[str, str] = {}
        self.loading = True
        if not self.paths:
            self.errors["*"] = (
                "no models configured: pass --model NAME=CHECKPOINT, or set NMT_MODELS "
                "or NMT_MODEL_DIR"
            )

    @property
    def ready(self) -> bool:
        """True once every configured model has loaded."""
        return not self.loading and not self.errors

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
                    self.errors[name] = f"{path}: {err}"
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

        def decode(texts: list[str], cfg: SearchConfig) -> list[Translation]:
            results = translator.translate(texts, cfg, batch_size=len(texts))
            metrics.target_tokens.labels(name).inc(sum(len(r.target_tokens) + 1 for r in results))
            return results

        def on_batch(size: int, tokens: int, seconds: float) -> None:
            metrics.batch_size.labels(name).observe(size)
            metrics.decode_seconds.labels(name).observe(seconds)
            metrics.source_tokens.labels(name).inc(tokens)

        batcher: Batcher[SearchConfig, Translation] = Batcher(
            decode,
            lambda text: len(translator.src_tok.encode([text])[0]),
            max_sentences=s.max_batch_sentences,
            max_tokens=s.max_batch_tokens,
            max_wait_ms=s.max_wait_ms,
            queue_size=s.queue_size,
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

    async def close(self) -> None:
        for served in self.models.values():
            await served.batcher.close()
