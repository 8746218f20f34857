"""Shared fixtures: a tiny synthetic parallel corpus and a matching training config."""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import pytest
import torch

WORDS = ["the", "dog", "cat", "runs", "sees", "a", "big", "small", "red", "man", "woman", "ball"]
GLOSS = {w: w[::-1] + "x" for w in WORDS}  # a "language" whose words are reversed + x


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Source sentences and their deterministic 'translations' (word map + reversal)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        pairs.append((" ".join(words), " ".join(GLOSS[w] for w in reversed(words))))
    return pairs


def write_split(
    directory: Path, split: str, pairs: list[tuple[str, str]], gz: bool = False
) -> None:
    for lang, side in (("xx", 0), ("yy", 1)):
        text = "\n".join(p[side] for p in pairs) + "\n"
        if gz:
            with gzip.open(directory / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            (directory / f"{split}.{lang}").write_text(text, encoding="utf-8")


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    write_split(directory, "train", make_pairs(80, seed=1), gz=True)
    write_split(directory, "val", make_pairs(12, seed=2))
    return directory


@pytest.fixture
def tiny_config(corpus_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """A raw config dict for a model that trains in a second or two."""
    return {
        "output_dir": str(tmp_path / "run"),
        "device": "cpu",
        "data": {"dir": str(corpus_dir), "src_lang": "xx", "tgt_lang": "yy", "download": False},
        "tokenizer": {"joint": True, "vocab_size": 60},
        "model": {"emb_size": 16, "encoder_hidden": 16, "decoder_hidden": 24, "dropout": 0.2},
        "train": {
            "batch_tokens": 120,
            "valid_every": 4,
            "log_every": 2,
            "keep_last": 1,
            "precision": "fp32",
            "seed": 7,
            "early_stopping_patience": None,
        },
    }
