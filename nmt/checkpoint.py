"""Self-describing checkpoints: one file with config, weights, subword models and scores.

Files are written atomically (temporary file in the same folder, then rename), so
a crash never leaves a half-written checkpoint under the final name, and loaded
with ``weights_only=True``, so that loading never runs code from the file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nmt.model import ModelConfig, Seq2Seq
from nmt.tokenizer import Tokenizer

FORMAT_VERSION = 1
KIND = "nmt-attention-rnn"
REQUIRED_KEYS = ("format_version", "kind", "model_config", "model", "src_spm", "tgt_spm")


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or of another format."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` atomically; adds the format version and kind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "kind": KIND, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable: without it, a power loss can bring back
    the old file (or none) even though the new one was written and synced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms and file systems cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sweep_temporary_files(directory: Path) -> list[Path]:
    """Remove checkpoint temporary files that a killed writer left in ``directory``."""
    stale = sorted(directory.glob(".*.pt.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint file without unpickling any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(
            f"checkpoint {path} is truncated, corrupt or not a checkpoint of this project "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(f"{path} is not a checkpoint of this project (kind != {KIND!r})")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}; this version of nmt reads "
            f"version {FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return payload


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with its tokenizers and metadata."""

    model: Seq2Seq
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_lang: str
    tgt_lang: str
    step: int
    scores: dict[str, Any]
    path: Path


def tokenizer_entries(src_tok: Tokenizer, tgt_tok: Tokenizer) -> dict[str, Any]:
    """The checkpoint entries that describe both tokenizers (``tokenizers`` reads them)."""
    return {
        "src_spm": src_tok.model_proto,
        "tgt_spm": tgt_tok.model_proto,
        "src_vocab": src_tok.vocabulary,
        "tgt_vocab": tgt_tok.vocabulary,
    }


def checkpoint_payload(
    model: Seq2Seq,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    *,
    languages: tuple[str, str],
    step: int,
    scores: dict[str, Any],
    run_config: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``save_checkpoint`` writes: the model with its config, tokenizers, language
    pair, step and scores; the whole run's config and, for resuming, the training state
    (``training.state``) where given."""
    payload: dict[str, Any] = {
        "model_config": model.config.model_dump(mode="json"),
        "src_lang": languages[0],
        "tgt_lang": languages[1],
        **tokenizer_entries(src_tok, tgt_tok),
        "model": model.state_dict(),
        "step": step,
        "scores": scores,
    }
    if run_config is not None:
        payload["config"] = run_config
    if training is not None:
        payload["training"] = training
    return payload


def tokenizers(payload: dict[str, Any]) -> tuple[Tokenizer, Tokenizer]:
    """The source and target tokenizers stored in ``payload``; checkpoints written
    before vocabularies were restricted per side have no ``*_vocab`` entries."""
    return (
        Tokenizer(payload["src_spm"], payload.get("src_vocab")),
        Tokenizer(payload["tgt_spm"], payload.get("tgt_vocab")),
    )


def build_model(payload: dict[str, Any]) -> tuple[Seq2Seq, Tokenizer, Tokenizer]:
    """Rebuild the (untrained-weights) model and tokenizers described by ``payload``."""
    config = ModelConfig.model_validate(payload["model_config"])
    src_tok, tgt_tok = tokenizers(payload)
    model = Seq2Seq(config, src_tok.vocab_size, tgt_tok.vocab_size, tgt_tok.pad_id)
    return model, src_tok, tgt_tok


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Load a checkpoint for inference: the model in eval mode on ``device``."""
    payload = read_checkpoint(path)
    model, src_tok, tgt_tok = build_model(payload)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path} does not match its own model config: {err}"
        ) from err
    model.to(device).eval()
    return LoadedModel(
        model=model,
        src_tokenizer=src_tok,
        tgt_tokenizer=tgt_tok,
        src_lang=payload.get("src_lang", "src"),
        tgt_lang=payload.get("tgt_lang", "tgt"),
        step=int(payload.get("step", 0)),
        scores=dict(payload.get("scores", {})),
        path=Path(path),
    )
