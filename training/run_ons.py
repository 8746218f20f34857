"""Run-on training pairs: two sentence pairs joined into one.

A sentence splitter cannot find a boundary that has no punctuation ("A child is
splashing in the water Two men walk"), and a model trained on single sentences then
gets a run-on input it has never seen and tends to translate only its first half.
Joining random training pairs, half of them with the first one's final punctuation
dropped on both sides, shows the model such inputs with their full translations.
"""

from __future__ import annotations

import random

# what may end a sentence and is dropped to make a run-on
FINAL_PUNCTUATION = ".!?"


def joined_pairs(
    src: list[str], tgt: list[str], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """``round(fraction * len(src))`` pairs, each two random pairs of ``src``/``tgt``
    joined by a space; the same for the same arguments."""
    rng = random.Random(seed)
    joined_src, joined_tgt = [], []
    for _ in range(round(fraction * len(src))):
        i, j = rng.randrange(len(src)), rng.randrange(len(src))
        first_src, first_tgt = src[i], tgt[i]
        if rng.random() < 0.5:
            first_src = first_src.rstrip(FINAL_PUNCTUATION).rstrip()
            first_tgt = first_tgt.rstrip(FINAL_PUNCTUATION).rstrip()
        joined_src.append(f"{first_src} {src[j]}")
        joined_tgt.append(f"{first_tgt} {tgt[j]}")
    return joined_src, joined_tgt
