"""Texts that encode to nothing, or to much more than they look, never break decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmt.search import SearchConfig
from nmt.translator import Translator

# Each encodes to zero subwords once SentencePiece has normalized it.
INVISIBLE = ["\u200b\u200b\u200b", "\ufeff", "\u200b\ufeff \u200b"]


@pytest.fixture(scope="module")
def translator(toy_model: Path) -> Translator:
    return Translator.from_checkpoint(toy_model, "cpu")


@pytest.mark.parametrize("beam_size", [1, 3])
def test_zero_subword_texts_get_empty_translations_and_spare_their_batch(
    translator: Translator, beam_size: int
) -> None:
    assert all(ids == [] for ids in translator.src_tok.encode(INVISIBLE))
    cfg = SearchConfig(beam_size=beam_size, n_best=beam_size)
    alone = translator.translate(["the dog runs"], cfg)[0]
    mixed = translator.translate([INVISIBLE[0], "the dog runs", *INVISIBLE[1:]], cfg)
    assert mixed[1].text == alone.text and mixed[1].score == pytest.approx(alone.score)
    for empty in (mixed[0], *mixed[2:]):
        assert empty.text == "" and empty.score == 0.0
        assert empty.source_tokens == [] and empty.target_tokens == []
        assert empty.attention == [[]] and empty.word_attention == [] and empty.alignment == []
        assert empty.n_best == [("", 0.0)]


def test_a_batch_of_only_empty_sources_needs_no_model(translator: Translator) -> None:
    done = translator.translate(INVISIBLE, SearchConfig(beam_size=2, return_attention=False))
    assert [t.text for t in done] == [""] * len(INVISIBLE)
    assert all(t.attention is None for t in done)


def test_search_refuses_a_zero_length_source_by_name(translator: Translator) -> None:
    import torch

    from nmt.search import beam_search

    src = torch.zeros((1, 1), dtype=torch.long)
    with pytest.raises(ValueError, match="at least one token"):
        beam_search(translator.model, src, torch.tensor([0]), 2, 3)


def test_max_length_caps_the_output(translator: Translator) -> None:
    long_text = " ".join(["the big red dog runs"] * 8)
    for beam in (1, 3):
        cfg = SearchConfig(beam_size=beam, max_length=4, max_len_a=10.0)
        done = translator.translate([long_text], cfg)[0]
        assert len(done.target_tokens) <= 3  # the fourth token is EOS


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_any_unicode_translates_without_error(translator: Translator, texts: list[str]) -> None:
    cfg = SearchConfig(beam_size=2, n_best=2, max_length=30)
    done = translator.translate(texts, cfg)
    assert len(done) == len(texts)
    for t in done:
        assert len(t.attention or []) == len(t.target_tokens) + 1


def test_validation_drops_pairs_without_subwords(corpus_dir: Path, tiny_config: dict) -> None:
    from training.config import validate_config
    from training.trainer import Trainer

    lines = {lang: (corpus_dir / f"val.{lang}").read_text().splitlines() for lang in ("xx", "yy")}
    (corpus_dir / "val.xx").write_text("\n".join([*lines["xx"], "\u200b\u200b"]) + "\n")
    (corpus_dir / "val.yy").write_text("\n".join([*lines["yy"], "the dog"]) + "\n")
    trainer = Trainer(validate_config(tiny_config))
    assert len(trainer.validator.sources) == len(lines["xx"])
    assert trainer.validator.refs == lines["yy"]
    assert trainer.validate().bleu >= 0.0
