"""The toy language the tests translate: a tiny parallel corpus, a config that trains on it
in seconds, and a model that has learnt it.

``python tests/toy.py DIR`` trains that model into DIR and prints its checkpoint's path
(docker/build_and_smoke.sh serves it from the image).
"""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path
from typing import Any

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


def tiny_config_dict(corpus_dir: Path, output_dir: Path) -> dict[str, Any]:
    """A raw config dict for a model that trains in a second or two."""
    return {
        "output_dir": str(output_dir),
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


def learning_fast(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` set to learn the toy language within a few dozen steps."""
    raw["train"]["learning_rate"] = 0.01
    # PyTorch's default init learns this tiny model faster than U(-0.1, 0.1)
    raw["model"].update(dropout=0.0, init_range=0.0)
    return raw


def train_toy_model(root: Path) -> Path:
    """Train the toy model in ``root``; returns its best.pt (validation BLEU > 30)."""
    from training.config import validate_config
    from training.trainer import Trainer

    corpus = root / "data"
    corpus.mkdir(parents=True, exist_ok=True)
    write_split(corpus, "train", make_pairs(80, seed=1), gz=True)
    write_split(corpus, "val", make_pairs(12, seed=2))
    raw = learning_fast(tiny_config_dict(corpus, root / "run"))
    raw["train"].update(valid_every=100, keep_last=0)
    torch.manual_seed(0)
    Trainer(validate_config(raw)).run(max_steps=300)
    return root / "run" / "best.pt"


if __name__ == "__main__":
    print(train_toy_model(Path(sys.argv[1])))
