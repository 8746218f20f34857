"""Run-on training pairs (data.run_on_fraction)."""

from __future__ import annotations

import pytest

from training.config import ConfigError, validate_config
from training.data import prepare_data
from training.run_ons import joined_pairs

SRC = ["A dog runs.", "Two men walk!", "A child plays", "A cat sleeps."]
TGT = ["Ein Hund rennt.", "Zwei Männer gehen!", "Ein Kind spielt", "Eine Katze schläft."]


def test_joined_pairs_are_two_pairs_with_or_without_the_first_boundary() -> None:
    src, tgt = SRC * 25, TGT * 25
    joined = joined_pairs(src, tgt, fraction=1.0, seed=3)
    assert joined == joined_pairs(src, tgt, fraction=1.0, seed=3)
    assert joined != joined_pairs(src, tgt, fraction=1.0, seed=4)
    boundary = {(f"{SRC[i]} {SRC[j]}", f"{TGT[i]} {TGT[j]}") for i in range(4) for j in range(4)}
    run_on = {
        (f"{SRC[i].rstrip('.!?')} {SRC[j]}", f"{TGT[i].rstrip('.!?')} {TGT[j]}")
        for i in range(4)
        for j in range(4)
    }
    pairs = list(zip(*joined, strict=True))
    assert len(pairs) == 100 and all(pair in boundary | run_on for pair in pairs)
    without_mark = sum(pair in run_on - boundary for pair in pairs)
    assert 25 <= without_mark <= 60  # half drop the mark; a quarter of firsts have none


def test_run_ons_are_added_to_the_training_split(tiny_config: dict) -> None:
    plain = prepare_data(validate_config(tiny_config)).train
    tiny_config["data"]["run_on_fraction"] = 0.25
    joined = prepare_data(validate_config(tiny_config)).train
    assert plain is not None and joined is not None
    assert len(joined) == len(plain) + round(0.25 * len(plain))
    assert joined[: len(plain)] == plain
    longest = max(len(e.src) for e in plain)
    assert max(len(e.src) for e in joined[len(plain) :]) > longest


def test_run_ons_need_the_training_split_in_memory(tiny_config: dict) -> None:
    tiny_config["data"].update(run_on_fraction=0.1, streaming=True)
    with pytest.raises(ConfigError, match="run_on_fraction"):
        validate_config(tiny_config)
