"""Typed training configuration, loaded from YAML and validated by pydantic.

Unknown keys and wrong values fail at start with a message naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nmt.device import TRAINING_PRECISION, Precision
from nmt.model import ModelConfig

DEFAULT_DATA_DIR = "../shared/data/multi30k"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    """Where the parallel text is and how it is filtered.

    A split is a file prefix inside ``dir``: ``{dir}/{split}.{lang}`` (plain or
    ``.gz``), or the name of a TSV file (``src<TAB>tgt`` per line).
    """

    dir: Path = Path(DEFAULT_DATA_DIR)
    src_lang: str = Field("en", min_length=1)
    tgt_lang: str = Field("de", min_length=1)
    train: str = "train"
    valid: str = "val"
    test: str | None = "test_2016_flickr"
    download: bool = Field(
        True, description="fetch the public Multi30k files when dir does not exist"
    )
    max_src_len: int = Field(100, ge=1, description="subwords; longer pairs are dropped")
    max_tgt_len: int = Field(100, ge=1, description="subwords; longer pairs are dropped")
    max_valid_sentences: int | None = Field(None, ge=1)
    streaming: bool = Field(
        False,
        description="read, encode and batch the training split chunk by chunk, so that "
        "memory does not grow with the corpus (batches are shuffled within a chunk)",
    )
    chunk_pairs: int = Field(200_000, ge=1, description="training pairs per chunk (streaming)")
    run_on_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="extra training pairs, as a fraction of the training split, each two "
        "random pairs joined (half without the first one's final punctuation), so that "
        "text with a sentence boundary the splitter cannot see is translated whole "
        "(in-memory training only)",
    )

    @model_validator(mode="after")
    def _run_ons_need_the_split_in_memory(self) -> DataConfig:
        if self.streaming and self.run_on_fraction > 0:
            raise ValueError("run_on_fraction needs the training split in memory (no streaming)")
        return self


class TokenizerConfig(Strict):
    """SentencePiece models: trained at the start of a run unless given as files."""

    joint: bool = True
    vocab_size: int = Field(8000, ge=16)
    src_vocab_size: int | None = Field(None, ge=16, description="separate models only")
    tgt_vocab_size: int | None = Field(None, ge=16, description="separate models only")
    model_type: Literal["unigram", "bpe", "char", "word"] = "unigram"
    character_coverage: float = Field(1.0, gt=0.0, le=1.0)
    src_model: Path | None = Field(None, description="existing .model file to reuse")
    tgt_model: Path | None = Field(None, description="existing .model file to reuse")
    sampling_alpha: float | None = Field(
        None,
        gt=0,
        le=1,
        description="subword regularization: segment each training step's pairs by "
        "sampling with this alpha (unigram: smoothing, e.g. 0.5; BPE: merge dropout, "
        "e.g. 0.1); validation and decoding stay deterministic; None: off",
    )
    per_side_vocab: bool = Field(
        True,
        description="keep only the pieces that occur on each side of the training text "
        "(of the sample, when streaming): with a joint model the source embedding and "
        "the output layer shrink to their own side's pieces, as in OpenNMT-py",
    )
    sample_pairs: int = Field(
        1_000_000,
        ge=1,
        description="with data.streaming, the models are trained on this many first pairs",
    )

    @model_validator(mode="after")
    def _check_reuse(self) -> TokenizerConfig:
        if (self.src_model is None) != (self.tgt_model is None) and not self.joint:
            raise ValueError("give both src_model and tgt_model, or neither")
        return self


class TrainConfig(Strict):
    """Optimization, validation and checkpointing."""

    seed: int = 1234
    batch_tokens: int = Field(4000, ge=1, description="padded target tokens per batch")
    max_sentences: int = Field(1024, ge=1, description="sentences per batch at most")
    accumulate: int = Field(
        1,
        ge=1,
        description="batches per optimizer step on each process; the effective batch is "
        "batch_tokens x accumulate x processes",
    )
    max_steps: int | None = Field(
        None, ge=1, description="the run's budget in steps, over all its invocations"
    )
    max_epochs: int = Field(100, ge=1)
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="the run's budget in minutes, over all its invocations (a resumed run "
        "trains what is left)",
    )
    learning_rate: float = Field(1e-3, gt=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0, description="validations without BLEU gain")
    min_learning_rate: float = Field(1e-5, ge=0)
    cooldown_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="over this last fraction of the run's budget (max_minutes or "
        "max_steps, whichever is nearer) the learning rate falls linearly to "
        "min_learning_rate; 0: off",
    )
    clip_norm: float = Field(5.0, gt=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    weight_average_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="validate and write best.pt with an exponential moving average of "
        "the weights, kept with this decay per step (e.g. 0.999); None: off",
    )
    valid_every: int = Field(500, ge=1, description="steps between validations")
    valid_batch_size: int = Field(128, ge=1, description="sentences per decoding batch")
    early_stopping_patience: int | None = Field(8, ge=1, description="validations")
    keep_last: int = Field(3, ge=0, description="step checkpoints kept besides best/last")
    save_every_minutes: float | None = Field(
        5.0,
        gt=0,
        description="also write last.pt this often between validations, so that a kill "
        "loses at most this much training (None: only at validations)",
    )
    log_every: int = Field(50, ge=1)
    precision: Precision = Field(
        TRAINING_PRECISION,
        description="autocast: bf16 where the hardware has it, else fp16 (CUDA) / fp32",
    )
    num_threads: int | None = Field(None, ge=1, description="CPU threads; default all cores")


class Config(Strict):
    """A whole training run."""

    name: str = "nmt"
    output_dir: Path = Path("runs/nmt")
    device: str = "auto"
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field."""


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {field}: {msg} (got {e.get('input')!r})")
    return "\n".join(lines)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return raw


def validate_config(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a nested dict; raise ``ConfigError`` naming every bad field."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read YAML (or start from the defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        raw = loaded or {}
        source = str(path)
    return validate_config(apply_overrides(raw, overrides or []), source)
