"""Translate text with a trained model: batching by length, search, detokenization."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nmt.alignment import confidence, hard_alignment, word_attention, words
from nmt.checkpoint import LoadedModel, load_model
from nmt.device import autocast, resolve_device
from nmt.inference import InferenceModel, prepare_for_inference
from nmt.inference.ensemble import Ensemble
from nmt.inference.prepare import Quantization
from nmt.search import Hypothesis, SearchConfig, SearchModel, beam_search, greedy_search


def empty_hypothesis(with_attention: bool) -> Hypothesis:
    """The translation of an empty source: no tokens, log-probability 0."""
    attention = torch.zeros((1, 0)) if with_attention else None
    return Hypothesis(tokens=[], score=0.0, log_prob=0.0, attention=attention)


def decode_ids(
    model: SearchModel,
    sources: list[list[int]],
    bos: int,
    eos: int,
    cfg: SearchConfig,
    batch_size: int = 64,
) -> list[list[Hypothesis]]:
    """Search for every source (subword ids, no EOS), in length-sorted batches.

    A source of zero subwords (a text of invisible characters only) is not searched:
    its one hypothesis is the empty translation, scored 0, with an empty (1, 0)
    attention (the EOS row over no source token).

    Returns the hypotheses in the order of ``sources``.
    """
    device = model.device
    pad = model.pad_id
    results: list[list[Hypothesis]] = [
        [] if ids else [empty_hypothesis(cfg.return_attention)] for ids in sources
    ]
    nonempty = [i for i, ids in enumerate(sources) if ids]
    order = sorted(nonempty, key=lambda i: len(sources[i]), reverse=True)
    search = greedy_search if cfg.beam_size == 1 else beam_search
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        lengths = torch.tensor([len(sources[i]) for i in chunk])
        src = torch.full((len(chunk), int(lengths.max())), pad, dtype=torch.long)
        for row, i in enumerate(chunk):
            src[row, : len(sources[i])] = torch.tensor(sources[i], dtype=torch.long)
        hyps = search(model, src.to(device), lengths.to(device), bos, eos, cfg)
        for i, h in zip(chunk, hyps, strict=True):
            results[i] = h
    return results


@dataclass
class Translation:
    """The best translation of one text and what led to it.

    ``attention`` is (target subwords + EOS) x source subwords; ``word_attention`` is
    target words x source words; ``alignment`` holds (source word, target word) pairs.
    """

    text: str
    score: float
    confidence: float
    source_tokens: list[str]
    target_tokens: list[str]
    attention: list[list[float]] | None
    source_words: list[str] = field(default_factory=list)
    target_words: list[str] = field(default_factory=list)
    word_attention: list[list[float]] | None = None
    alignment: list[tuple[int, int]] = field(default_factory=list)
    n_best: list[tuple[str, float]] = field(default_factory=list)


def _load_prepared(
    path: str | Path, device: torch.device, quantize: Quantization | None, precision: str
) -> tuple[LoadedModel, InferenceModel]:
    loaded = load_model(path, device)
    model = prepare_for_inference(loaded.model, quantize, precision)
    # one copy of the weights: the prepared model's (int8 quantized a copy)
    return dataclasses.replace(loaded, model=model.model), model


def _vocabulary(loaded: LoadedModel) -> tuple[object, ...]:
    """What ensembled models must share: both tokenizers and the languages."""
    src, tgt = loaded.src_tokenizer, loaded.tgt_tokenizer
    return (
        src.model_proto,
        src.vocabulary,
        tgt.model_proto,
        tgt.vocabulary,
        loaded.src_lang,
        loaded.tgt_lang,
    )


class Translator:
    """A model prepared for decoding (or an ensemble of them), with its tokenizers:
    translates raw text.

    ``loaded`` describes the (first) checkpoint: languages, step, scores; ``model`` is
    what search runs on, under autocast to ``amp_dtype`` (None: fp32).
    """

    def __init__(
        self, loaded: LoadedModel, model: SearchModel, amp_dtype: torch.dtype | None = None
    ) -> None:
        self.loaded = loaded
        self.model = model
        self.src_tok = loaded.src_tokenizer
        self.tgt_tok = loaded.tgt_tokenizer
        self.device = model.device
        self.amp_dtype = amp_dtype

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "auto",
        quantize: Quantization | None = None,
        precision: str = "fp32",
    ) -> Translator:
        """Load ``path`` on ``device`` and prepare it (``prepare_for_inference``):
        ``quantize="int8"`` for CPU inference; ``precision`` (``fp32``, ``bf16``,
        ``auto``...) decodes under autocast, as in training."""
        loaded, model = _load_prepared(path, resolve_device(device), quantize, precision)
        return cls(loaded, model, model.amp_dtype)

    @classmethod
    def from_checkpoints(
        cls,
        paths: list[str | Path],
        device: str = "auto",
        quantize: Quantization | None = None,
        precision: str = "fp32",
    ) -> Translator:
        """One checkpoint as ``from_checkpoint``; several as an ensemble, which decodes
        about as many times slower. Ensembled checkpoints must have the same tokenizers
        and languages (checkpoints of one run, for instance).

        Raises:
            ValueError: the checkpoints cannot be ensembled.
        """
        if len(paths) == 1:
            return cls.from_checkpoint(paths[0], device, quantize, precision)
        where = resolve_device(device)
        members = [_load_prepared(p, where, quantize, precision) for p in paths]
        first = members[0][0]
        for loaded, _ in members[1:]:
            if _vocabulary(loaded) != _vocabulary(first):
                raise ValueError(
                    f"cannot ensemble {first.path} and {loaded.path}: their tokenizers or "
                    "languages differ"
                )
        ensemble = Ensemble([model for _, model in members])
        return cls(first, ensemble, members[0][1].amp_dtype)

    def translate(
        self, texts: list[str], cfg: SearchConfig | None = None, batch_size: int = 64
    ) -> list[Translation]:
        """Translate raw texts; output order follows input order."""
        return self.translate_ids(self.src_tok.encode(texts), cfg, batch_size)

    def translate_ids(
        self, src_ids: list[list[int]], cfg: SearchConfig | None = None, batch_size: int = 64
    ) -> list[Translation]:
        """Translate texts already encoded by ``src_tok`` (the service encodes once, to
        check its limits, and decodes these ids)."""
        cfg = cfg or SearchConfig()
        with autocast(self.device, self.amp_dtype):
            results = decode_ids(
                self.model, src_ids, self.tgt_tok.bos_id, self.tgt_tok.eos_id, cfg, batch_size
            )
        return [self._describe(ids, hyps) for ids, hyps in zip(src_ids, results, strict=True)]

    def _describe(self, src_ids: list[int], hyps: list[Hypothesis]) -> Translation:
        if not hyps:  # only a model with non-finite scores gets here
            raise RuntimeError("search finished no hypothesis: the model's scores are not finite")
        best = hyps[0]
        src_pieces = self.src_tok.pieces(src_ids)
        tgt_pieces = self.tgt_tok.pieces(best.tokens)
        word_attn = None
        if best.attention is not None:
            word_attn = word_attention(best.attention, src_pieces, tgt_pieces)
        return Translation(
            text=self.tgt_tok.decode([best.tokens])[0],
            score=best.score,
            confidence=confidence(best.log_prob, len(best.tokens) + 1, best.attention),
            source_tokens=src_pieces,
            target_tokens=tgt_pieces,
            attention=None if best.attention is None else best.attention.tolist(),
            source_words=words(src_pieces),
            target_words=words(tgt_pieces),
            word_attention=None if word_attn is None else word_attn.tolist(),
            alignment=[] if word_attn is None else hard_alignment(word_attn),
            n_best=[(self.tgt_tok.decode([h.tokens])[0], h.score) for h in hyps],
        )
